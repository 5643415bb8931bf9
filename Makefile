# The two entry points of the README. Both install first (idempotent).
.PHONY: setup run test docs

setup:
	bash scripts/setup.sh

# the detection service on the repository's model (configs/service.yaml); Ctrl-C stops it
run: setup
	.venv/bin/detect serve

test: setup
	.venv/bin/python -m pytest -n 2 --timeout 900

# docs/cli.md, the command-line reference, from the parsers (needs the .venv of `make setup`)
docs:
	.venv/bin/python tools/cli_reference.py
