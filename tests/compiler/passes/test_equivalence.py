"""Every optimization pass leaves packet-level verdicts unchanged.

Random clusters (tests/policy/strategies.py) are compiled with no pass and with one pass (and
with all of them), for each target profile, verifiers on; the same random probes (pod to pod,
and pod to addresses that ipBlocks and their `except`s cut) are traced through the interpreter
with each bundle and must get the same verdicts. Agreement with the NetworkPolicy reference with
all passes on is tests/policy/test_trace_property.py (the default compile runs every pass).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k8s_offload.analysis.trace import Probe, Tracer
from k8s_offload.compiler.driver import CompileResult, compile_sources
from k8s_offload.compiler.frontend.model import Protocol
from k8s_offload.compiler.passes.pipeline import PASS_NAMES, PassConfig
from k8s_offload.compiler.passes.range_encoding import PROFILES
from k8s_offload.target.install import interpreter_with
from tests.policy.strategies import PROTOCOLS, clusters

CHOICES = [(name, profile) for name in (*PASS_NAMES, "all") for profile in PROFILES]


def _verdicts(result: CompileResult, probes: list[Probe]) -> list[tuple[bool, str]]:
    tracer = Tracer(
        result.manifests, result.ir, result.schema, interpreter_with(result.schema, result.lowered.bundle)
    )
    out = []
    for p in probes:
        try:
            out.append((tracer.run(p).allowed, p.target))
        except ValueError:  # e.g. an IPv6 target for an IPv4-only pod: not a packet
            out.append((False, "no probe"))
    return out


@pytest.mark.parametrize(("pass_name", "profile"), CHOICES, ids=[f"{n}-{p}" for n, p in CHOICES])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=clusters(), data=st.data())
def test_pass_keeps_verdicts(
    tmp_path_factory: Any, pass_name: str, profile: str, objects: list[dict[str, Any]], data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("cluster") / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    enabled = frozenset(PASS_NAMES) if pass_name == "all" else frozenset({pass_name})
    off = compile_sources([str(path)], passes=PassConfig(frozenset(), profile, check=True))
    on = compile_sources([str(path)], passes=PassConfig(enabled, profile, check=True))
    pods = [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in objects if o["kind"] == "Pod"]
    if not pods:
        return
    targets = st.one_of(
        st.sampled_from(pods), st.integers(0, 40).map(lambda i: f"10.0.0.{i}"), st.just("fd00::80")
    )
    probe = st.builds(
        Probe,
        st.sampled_from(pods),
        targets,
        st.integers(1, 40),
        st.sampled_from(PROTOCOLS).map(Protocol),
    )
    probes = [p for p in data.draw(st.lists(probe, min_size=1, max_size=12)) if p.source != p.target]
    assert _verdicts(on, probes) == _verdicts(off, probes)
