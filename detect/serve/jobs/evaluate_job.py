"""An ``evaluate`` job: a served model scored on a dataset under the server's data root.

The evaluation is ``detect eval --checkpoint`` (:func:`detect.tasks.evaluate.run_evaluation`):
its files go to the job's folder (``metrics.json``, ``metrics.md``, ``pr_curves.png``,
``confusion_matrix.png``, ``examples.png``) and the job's result is the headline metrics (the 12
COCO stats, VOC mAP, micro P/R/F1 at the score threshold) with the split scored.

An evaluation is not checkpointed: one interrupted (crash, shutdown) runs again from the start,
and a cancel takes effect when it ends (its result is then discarded).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from detect.evaluation.inputs import nan_to_none
from detect.serve.jobs.datasets import resolve_dataset
from detect.serve.jobs.store import Job
from detect.tasks.evaluate import run_evaluation

#: the files of an evaluation, in the order they are listed
FILES = ("metrics.json", "metrics.md", "pr_curves.png", "confusion_matrix.png", "examples.png")
#: images drawn in examples.png
EXAMPLES = 4


def run_evaluate_job(job: Job, model_path: Path, data_root: Path, device: str) -> dict[str, Any]:
    """Evaluate the model file ``model_path`` on the job's dataset; returns the result
    ``{"dataset", "split", "images", "metrics": {...}}``.

    Raises:
        DatasetPathError: the dataset path is refused or gone.
        ValueError, OSError: the dataset cannot be read.
    """
    from rich.console import Console

    dataset, out = resolve_dataset(data_root, job.params["dataset"]), Path(job.output_dir)
    report = run_evaluation(dataset, split=job.params.get("split"), checkpoint=model_path, out_dir=out,
                            device=device, num_examples=EXAMPLES, console=Console(file=io.StringIO()))
    source = json.loads((out / FILES[0]).read_text(encoding="utf-8"))["source"]
    return {"dataset": job.params["dataset"], "split": source["split"], "images": source["images"],
            "objects": source["objects"], "metrics": {k: nan_to_none(v) for k, v in report.summary().items()}}
