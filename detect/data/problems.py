"""Problems found while reading or validating a dataset, each pinned to a file and object."""

from __future__ import annotations

from dataclasses import dataclass

from classify.base.cli import ProblemsFound


@dataclass(frozen=True)
class Problem:
    """One defect in a dataset.

    Attributes:
        file: the file that holds the defect (annotation file, label file or image).
        message: what was expected and what came.
        index: 0-based object index within the image (``None`` for image-level defects).
        line: 1-based line number in ``file`` where known.
    """

    file: str
    message: str
    index: int | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line is not None else "")
        obj = f" object {self.index}:" if self.index is not None else ""
        return f"{where}:{obj} {self.message}"


class DatasetError(ProblemsFound):
    """A dataset could not be read cleanly; ``problems`` lists every defect found (one a line).

    The message lists the first ``max_shown`` problems (``None``: all of them), then ``note``.
    """

    def __init__(self, problems: list[Problem], max_shown: int | None = 20, note: str = "") -> None:
        self.problems = list(problems)
        max_shown = len(self.problems) if max_shown is None else max_shown
        shown = "\n  ".join(str(p) for p in self.problems[:max_shown])
        more = len(self.problems) - max_shown
        tail = f"\n  ... and {more} more (run 'detect validate' for the full list)" if more > 0 else ""
        tail += f"\n{note}" if note else ""
        super().__init__(f"{len(self.problems)} problem(s) in the dataset:\n  {shown}{tail}")
