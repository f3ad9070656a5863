# Two entry points for a newcomer: `make demo` and `make test`. Both create (or reuse) .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint types pytest p4info p4info-pna bench lab clean finsy-venv p4sh-venv cni-shim

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

# The PNA program's P4Info comes from p4c-dpdk (our front end reads v1model only, issue 19).
p4info-pna:
	@test -n "$(K8S_OFFLOAD_P4REF)" || { echo "p4info-pna: export K8S_OFFLOAD_P4REF (the P4 reference toolchain)" >&2; exit 2; }
	tmp=$$(mktemp -d) && $(K8S_OFFLOAD_P4REF)/bin/p4c-dpdk --arch pna \
	    --p4runtime-files p4src/build/k8s_dp_pna.p4info.txtpb -o $$tmp/k8s_dp_pna.spec p4src/k8s_dp_pna.p4 \
	    && rm -rf $$tmp

bench: $(STAMP)
	$(BIN)/python -m bench.run --sizes $(or $(SIZES),S)
	$(BIN)/python -m bench.peers --sizes $(or $(SIZES),S)

# The CNI plugin a node's runtime executes (docs/cni.md, "On a node"): a static program with no
# dependency but the kernel. deploy/Dockerfile and tests/cni/shim.py build it with this rule.
CC ?= cc
CNI_SHIM ?= build/cni/offload-cni
CNI_SHIM_CFLAGS := -std=c11 -D_GNU_SOURCE -Os -Wall -Wextra -Werror -static -s
cni-shim: $(CNI_SHIM)
$(CNI_SHIM): k8s_offload/cni/shim.c
	mkdir -p $(dir $@)
	$(CC) $(CNI_SHIM_CFLAGS) -o $@ $<

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
