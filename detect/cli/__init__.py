"""``detect`` command line: datasets, training, evaluation, benchmarks, the demo.

One module a verb (or a family of verbs), each with ``add_parser(sub)``; the parser is assembled
here and nowhere else. Every user error ends in one ``error: ...`` on stderr and a non-zero exit
(:func:`classify.base.cli.run_command`), never a traceback. Verbs import torch when they run, so
``detect --help`` stays instant.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from classify.base.cli import command_parser, run_main
from detect.cli import (
    anchors,
    bench,
    convert,
    data,
    demo,
    eval_track,
    evaluate,
    export,
    list_detectors,
    predict,
    serve,
    train,
    validate,
)

DESCRIPTION = "object detection on the classify backbones: a detection service, prediction on images and video, datasets, training, evaluation, benchmarks"
#: the verbs in the order ``detect --help`` lists them
VERBS = (serve, demo, predict, data, convert, validate, train, anchors, evaluate, eval_track, bench, export,
         list_detectors)


def build_parser() -> argparse.ArgumentParser:
    return command_parser("detect", DESCRIPTION, VERBS)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(build_parser(), argv)
