"""Packet-level NetworkPolicy: `trace` verdicts (compiled bundle in the interpreter, request and
reply as real frames) equal the reference evaluator's on random clusters and policies.

Reference: NetworkPolicy API (tests/policy/reference.py); a connection needs the client's egress
and the server's ingress to allow it (concept page, "both sides"); loopback is left out because
the API leaves it undefined (kubernetes/kubernetes#95879).
"""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k8s_offload.analysis.trace import Probe, Tracer
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.frontend.model import Protocol
from k8s_offload.target.install import interpreter_with
from tests.policy.reference import Cluster, Endpoint
from tests.policy.strategies import PROTOCOLS, clusters


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=clusters(), protocol=st.sampled_from(PROTOCOLS), port=st.integers(1, 36), data=st.data())
def test_trace_matches_reference(
    tmp_path_factory: Any, objects: list[dict[str, Any]], protocol: str, port: int, data: st.DataObject
) -> None:
    path = tmp_path_factory.mktemp("cluster") / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    result = compile_sources([str(path)])
    tracer = Tracer(
        result.manifests, result.ir, result.schema, interpreter_with(result.schema, result.lowered.bundle)
    )
    ref = Cluster(objects)
    pods = ref.pods
    pairs = [(a, b) for a in pods for b in pods if a is not b]
    if not pairs:
        return
    for src, dst in data.draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=4)):
        src_ref = f"{src['metadata']['namespace']}/{src['metadata']['name']}"
        dst_ref = f"{dst['metadata']['namespace']}/{dst['metadata']['name']}"
        verdict = tracer.run(Probe(src_ref, dst_ref, port, Protocol(protocol)))
        src_ip = src["status"]["podIPs"][0]["ip"]
        dst_ip = dst["status"]["podIPs"][0]["ip"]
        expected = ref.allows(src, "Egress", Endpoint(dst_ip, dst), protocol, port) and ref.allows(
            dst, "Ingress", Endpoint(src_ip, src), protocol, port
        )
        assert verdict.allowed == expected, (src_ref, dst_ref, protocol, port, verdict.reason)
