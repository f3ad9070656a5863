"""p4src/k8s_dp_pna.p4 against the real P4-DPDK toolchain (issue 19).

p4c-dpdk 1.2.4.8 compiles the PNA program unchanged, DPDK 23.11's SWX pipeline builds its spec
(swx-check: codegen, C build, pipeline build, control object), and its P4Info shares every
v1model table's name, id, match fields, actions and size. What is not yet true is written as a
strict xfail: the SWX operand window (tests/dpdk/swx_spec.py, docs/architectures.md).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import text_format

from k8s_offload.compiler.bundle.model import Exact
from k8s_offload.compiler.contract import read_p4info
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.lower.ecmp import DPDK_SELECTOR_GROUPS, DPDK_SELECTOR_OUTPUT_WIDTH
from k8s_offload.compiler.passes.pipeline import PassConfig
from k8s_offload.p4rt.proto import p4info as p4i
from tests.dpdk.swx_entries import swx_script
from tests.dpdk.swx_spec import OPERAND_WINDOW_BYTES, operand_window
from tests.p4ref import tool, tool_env

REPO = Path(__file__).resolve().parents[2]
PROGRAM = REPO / "p4src" / "k8s_dp_pna.p4"
COMMITTED_P4INFO = REPO / "p4src" / "build" / "k8s_dp_pna.p4info.txtpb"
SHOP = REPO / "examples" / "shop"
EAL = ["--no-huge", "-m", "2048", "--no-pci", "--no-shconf", "-l", "0"]


@dataclass(frozen=True)
class DpdkBuild:
    spec: Path
    p4info: p4i.P4Info
    stderr: str
    workdir: Path
    p4info_text: str


@pytest.fixture(scope="module")
def dpdk_build(tmp_path_factory: pytest.TempPathFactory) -> DpdkBuild:
    compiler = tool("p4c-dpdk")
    out = tmp_path_factory.mktemp("p4c-dpdk")
    spec, info = out / "k8s_dp_pna.spec", out / "k8s_dp_pna.p4info.txtpb"
    done = subprocess.run(
        [str(compiler), "--arch", "pna", "--p4runtime-files", str(info),
         "--bf-rt-schema", str(out / "k8s_dp_pna.bfrt.json"),
         "--context", str(out / "k8s_dp_pna.context.json"), "-o", str(spec), str(PROGRAM)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    message = p4i.P4Info()
    text_format.Parse(info.read_text(), message)
    return DpdkBuild(spec, message, done.stderr, out, info.read_text())


def test_p4c_dpdk_compiles_the_pna_program_without_errors(dpdk_build: DpdkBuild) -> None:
    assert "error" not in dpdk_build.stderr.lower(), dpdk_build.stderr
    text = dpdk_build.spec.read_text()
    # The flow cache and the affinity memory are learner tables, the backends one selector.
    assert text.count("\nlearner ") == 3
    assert "\nselector svc_selector_sel {" in text
    # p4c-dpdk: the selector's size is its groups, 2^(output width) its slots per group, which
    # DPDK also makes the bound of member ids: the compiler's dpdk model (lower/ecmp.py).
    assert f"n_groups_max {DPDK_SELECTOR_GROUPS:#x}" in text
    assert f"n_members_per_group_max {1 << DPDK_SELECTOR_OUTPUT_WIDTH:#x}" in text


def test_the_committed_pna_p4info_is_p4c_dpdks(dpdk_build: DpdkBuild) -> None:
    """p4src/build/k8s_dp_pna.p4info.txtpb is what p4c-dpdk writes today (`make p4info-pna`;
    our front end reads the v1model program only, issue 19)."""
    assert COMMITTED_P4INFO.read_text() == dpdk_build.p4info_text, "stale: run `make p4info-pna`"


def test_the_dpdk_swx_pipeline_builds_the_spec(dpdk_build: DpdkBuild) -> None:
    done = subprocess.run(
        [str(tool("swx-check")), *EAL, "--file-prefix", f"swxchk{id(dpdk_build)}", "--",
         "-d", str(dpdk_build.workdir / "check"), str(dpdk_build.spec)],
        capture_output=True, text=True, timeout=300, check=False, env=tool_env(),
    )  # fmt: skip
    results = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(results) == 1, done.stdout + done.stderr
    assert " OK built: " in results[0], results[0]
    assert "3 learners" in results[0] and "1 selectors" in results[0], results[0]


def test_shared_tables_have_the_v1model_programs_names_ids_and_shapes(dpdk_build: DpdkBuild) -> None:
    """One IR, two programs: every v1model table exists in the PNA program's P4Info (p4c-dpdk's)
    with the same name, id, match fields, action refs and size; the actions differ only where
    p4c-dpdk needs 64-bit pieces of a 128-bit value (arch.p4), by parameters appended."""
    v1 = read_p4info()
    pna_tables = {t.preamble.name: t for t in dpdk_build.p4info.tables}
    for table in v1.tables:
        other = pna_tables.pop(table.preamble.name)
        assert other.preamble.id == table.preamble.id
        assert list(other.match_fields) == list(table.match_fields), table.preamble.name
        assert [a.id for a in other.action_refs] == [a.id for a in table.action_refs]
        assert other.size == table.size
    assert sorted(pna_tables) == [
        "K8sIngress.aff_mem", "K8sIngress.ct_orig", "K8sIngress.ct_reply", "K8sIngress.port_out",
    ]  # fmt: skip
    pna_actions = {a.preamble.name: a for a in dpdk_build.p4info.actions}
    appended = {}
    for action in v1.actions:
        other = pna_actions[action.preamble.name]
        assert other.preamble.id == action.preamble.id
        assert list(other.params)[: len(action.params)] == list(action.params)
        extra = [p.name for p in other.params[len(action.params) :]]
        if extra:
            appended[action.preamble.name] = extra
    assert appended == {
        "K8sIngress.nat_source.set_nat_source": ["addr4"],
        "K8sIngress.set_backend6": ["addr_hi", "addr_lo"],
    }


@pytest.mark.xfail(
    strict=True,
    reason="issue 19 blocker: p4c-dpdk puts all metadata in one struct (827 bytes) and DPDK SWX "
    "addresses instruction operands with 8-bit byte offsets (docs/architectures.md)",
)
def test_every_instruction_operand_is_within_the_swx_operand_window(dpdk_build: DpdkBuild) -> None:
    report = operand_window(dpdk_build.spec.read_text())
    assert report.outside_uses == 0, (report.metadata_bytes, report.outside.most_common(10))


SMALL_SPEC = """
struct m_t {
\tbit<32> a
\tbit<2016> pad
\tbit<16> far
\tbit<16> key_only
}
metadata instanceof m_t

action act args none {
\tmov m.far m.a
\treturn
}

apply {
\trx m.a
\thash crc32 m.a m.far m.key_only
\tjmpeq L m.far 0x1
\ttable t
\tL : tx m.a
}
"""


def test_operand_window_counts_only_8_bit_offsets_past_256_bytes() -> None:
    report = operand_window(SMALL_SPEC)
    assert report.metadata_bytes == (32 + 2016 + 16 + 16) // 8
    # far starts at byte 256: its mov and jmpeq count, the hash input does not (16-bit offset).
    assert dict(report.outside) == {"far": 2}
    assert report.operand_uses == 6  # mov a/far, rx a, hash dst a, jmpeq far, tx a
    assert OPERAND_WINDOW_BYTES == 256


def test_operand_window_rejects_what_is_not_a_spec() -> None:
    with pytest.raises(ValueError, match="not an SWX spec"):
        operand_window("struct x {\n}\n")


def test_the_shop_bundle_loads_into_the_pna_pipeline(dpdk_build: DpdkBuild) -> None:
    """Every member, group and entry of the shop example (dpdk profile) is accepted by the SWX
    pipeline built from k8s_dp_pna.p4 (names, key widths, value/mask forms, action arguments),
    through tests/dpdk/swx_entries.py: the entry half of issue 19's differential test."""
    result = compile_sources([SHOP / "cluster"], SHOP / "node.yaml", passes=PassConfig(profile="dpdk"))
    bundle = result.lowered.bundle
    context = json.loads((dpdk_build.workdir / "k8s_dp_pna.context.json").read_text())
    ports = sorted(
        {
            m.value
            for e in bundle.entries
            for f, m in e.match
            if f == "meta.ingress_port" and isinstance(m, Exact)
        }
    )
    script = swx_script(context, bundle, ports)
    commands = dpdk_build.workdir / "shop.script"
    commands.write_text("\n".join(script.lines) + "\n")
    ran = subprocess.run(
        [str(tool("swx-run")), *EAL, "--file-prefix", f"swxshop{id(script)}", "--",
         "-d", str(dpdk_build.workdir / "shop"), str(dpdk_build.spec), str(commands)],
        capture_output=True, text=True, timeout=300, check=False, env=tool_env(),
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    groups = [line.split()[2] for line in ran.stdout.splitlines() if line.startswith("GROUP ")]
    assert groups == [str(i) for i in range(len(bundle.groups))]  # the ids swx_script assumed
    assert len(script.lines) > len(bundle.entries) > 50
    assert {e.table.rsplit(".", 1)[-1] for e in script.defaults} == {"neigh_steer", "nat_source", "fwd"}
