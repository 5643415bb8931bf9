"""``python -m classify``: the ``classify`` command line (see :mod:`classify.cli`)."""

from classify.cli import main

raise SystemExit(main())
