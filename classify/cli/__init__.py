"""``classify`` command line: the backbone zoo, summaries, classic filters, visualisation, training.

    classify list [PATTERN]
    classify summary MODEL [--input-size C H W] [--num-classes N] [--depth D] [--format table|markdown|json]
    classify filters [IMAGE] [--filters sobel_x,laplacian4,...] [--sigma S] [--border reflect] [--out PNG]
    classify viz MODEL_OR_CHECKPOINT [--weights W] [--image PATH] [--stage NAME] [--channels N] [--out DIR]
    classify train --config PRESET.yaml [--flag value ...]
    classify eval CHECKPOINT [--data D] [--split S]

One module a verb, each with ``add_parser(sub)``; the parser is assembled here. Every user error
ends in one ``error: ...`` line on stderr and exit code 2 (:func:`classify.base.cli.run_command`),
never a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from classify.base.cli import command_parser, run_main
from classify.cli import evaluate, filters, list_models, summary, train, viz

DESCRIPTION = "the CNN backbone zoo: list, summarise, visualise, train and evaluate classifiers"
#: the verbs in the order ``classify --help`` lists them
VERBS = (list_models, summary, filters, viz, train, evaluate)


def build_parser() -> argparse.ArgumentParser:
    return command_parser("classify", DESCRIPTION, VERBS)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(build_parser(), argv)
