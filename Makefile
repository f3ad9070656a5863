# Two entry points for a newcomer: `make demo` and `make test`. Both create (or reuse) .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint types pytest p4info bench lab clean finsy-venv p4sh-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,verify]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m k8s_offload.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint types pytest

p4info: $(STAMP)
	$(BIN)/offload-compile p4info --format text -o p4src/build/k8s_dp.p4info.txtpb

bench: $(STAMP)
	$(BIN)/python -m bench.run --sizes $(or $(SIZES),S)
	$(BIN)/python -m bench.peers --sizes $(or $(SIZES),S)

# Root: the example cluster's local pods in namespaces, forwarded by the software target.
lab: $(STAMP)
	$(BIN)/offload-lab up
	$(BIN)/offload-lab status

# finsy and p4runtime-shell (third-party P4Runtime clients pinning older protobufs) in venvs of
# their own; tests/target/third_party.py builds the same on first use.
finsy-venv:
	rm -rf .venv-finsy
	$(PYTHON) -m venv .venv-finsy
	.venv-finsy/bin/python -m pip install --quiet finsy==0.30.0
	touch .venv-finsy/.stamp-finsy==0.30.0

p4sh-venv:
	rm -rf .venv-p4sh
	$(PYTHON) -m venv .venv-p4sh
	.venv-p4sh/bin/python -m pip install --quiet p4runtime-shell==0.0.6
	touch .venv-p4sh/.stamp-p4runtime-shell==0.0.6

clean:
	rm -rf $(VENV) .venv-finsy .venv-p4sh .pytest_cache .mypy_cache .ruff_cache .hypothesis
