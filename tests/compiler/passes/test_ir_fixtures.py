"""Policy-level passes on text fixtures (tests/compiler/passes/*.ir), xDSL-style.

A fixture names its passes on its first line (`# pass: merge_rules,drop_subsumed`, run in the
pipeline's order with the checks on; `resolve` is NetworkPolicy resolution from a cluster IR),
then holds the input IR, a `# expect:` line and the expected rule IR, written by hand from the
pass's documented semantics (docs/passes.md) and reviewed, never produced by the pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_offload.compiler.ir.check import check_ir
from k8s_offload.compiler.ir.dump_rules import dump_rules
from k8s_offload.compiler.ir.parse import parse_cluster_ir, parse_policy_ir
from k8s_offload.compiler.ir.rules import PolicyIR, check_policy_ir
from k8s_offload.compiler.passes.pipeline import POLICY_PASSES, PassConfig, run_policy_passes
from k8s_offload.compiler.passes.resolve_policy import resolve_unmerged

HERE = Path(__file__).parent
FIXTURES = sorted(HERE.glob("*.ir"))


def _without_comments(text: str) -> str:
    return "".join(line + "\n" for line in text.splitlines() if line and not line.startswith("#"))


def _run(path: Path) -> tuple[str, str]:
    """(what the passes print, the expected text)."""
    text = path.read_text()
    first, _, rest = text.partition("\n")
    assert first.startswith("# pass: "), f"{path.name}: the first line names the passes"
    names = first.removeprefix("# pass: ").split(",")
    source, sep, expected = rest.partition("\n# expect:\n")
    assert sep, f"{path.name}: no '# expect:' line"
    if names == ["resolve"]:
        cluster = parse_cluster_ir(source, path.name)
        check_ir(cluster)
        out: PolicyIR = resolve_unmerged(cluster)
    else:
        assert set(names) <= set(POLICY_PASSES), (
            f"{path.name}: policy-level passes are {sorted(POLICY_PASSES)}"
        )
        pir = parse_policy_ir(source, path.name)
        check_policy_ir(pir)
        out = run_policy_passes(pir, PassConfig(frozenset(names), check=True))
    return dump_rules(out), _without_comments(expected)


def test_every_policy_pass_has_several_fixtures() -> None:
    for name in POLICY_PASSES:
        assert len([f for f in FIXTURES if f.name.startswith(f"{name}-")]) >= 3, name


@pytest.mark.parametrize("path", FIXTURES, ids=[f.stem for f in FIXTURES])
def test_fixture(path: Path) -> None:
    actual, expected = _run(path)
    assert actual == expected
    # The expected text is itself canonical rule IR: it parses and prints back unchanged.
    assert dump_rules(parse_policy_ir(expected)) == expected
