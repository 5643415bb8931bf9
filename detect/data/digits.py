"""Moved to :mod:`classify.digits` (classify must not import detect); re-exported here."""

from classify.digits import *  # noqa: F401,F403
from classify.digits import __all__  # noqa: F401
