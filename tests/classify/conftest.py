"""Shared fixtures for the classify tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Run a module's tiny-input forward/backward passes on one intra-op thread.

    On 2 cores shared with other jobs, 2 OpenMP threads per tiny op cost 3-5x more wall time
    than one; the previous thread count is restored afterwards.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
