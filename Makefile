# Developer entry points. `make demo` and `make test` are the two a newcomer needs.
.PHONY: deps test lint fmt demo build

deps:
	bash scripts/bootstrap

test:
	bash scripts/test

lint: deps
	.venv/bin/ruff check .

fmt: deps
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

demo:
	bash scripts/demo

build: deps
	.venv/bin/python -m pip wheel --no-deps -w dist .
