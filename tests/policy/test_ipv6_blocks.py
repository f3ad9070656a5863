"""IPv6 ipBlocks and the pipeline's IPv4-mapped keys.

The pipeline keys IPv4 addresses as ::ffff:a.b.c.d (p4src/README.md), so an IPv6 block such as
::/0 would cover every IPv4 address unless the compiler cuts the mapped range out. The API says an
ipBlock matches addresses of its own family only (NetworkPolicyPeer.ipBlock, IPBlock.cidr).
"""

from __future__ import annotations

from pathlib import Path

from k8s_offload.analysis.trace import Probe, Tracer
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.frontend.model import Protocol
from k8s_offload.target.install import interpreter_with

MANIFESTS = """
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: app, labels: {app: server}}
spec: {nodeName: node-a, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.1.0.10, podIPs: [{ip: 10.1.0.10}, {ip: "fd00:1::10"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: app, labels: {app: client}}
spec: {nodeName: node-a, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.1.0.20, podIPs: [{ip: 10.1.0.20}, {ip: "fd00:1::20"}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: v6-only, namespace: app}
spec:
  podSelector: {matchLabels: {app: server}}
  policyTypes: [Ingress]
  ingress:
    - from: [{ipBlock: {cidr: "::/0"}}]
"""


def test_ipv6_any_block_does_not_open_ipv4(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(MANIFESTS)
    result = compile_sources([str(path)])
    tracer = Tracer(
        result.manifests, result.ir, result.schema, interpreter_with(result.schema, result.lowered.bundle)
    )
    v4 = tracer.run(Probe("app/client", "10.1.0.10", 80, Protocol.TCP))
    v6 = tracer.run(Probe("app/client", "fd00:1::10", 80, Protocol.TCP))
    assert not v4.allowed, v4.reason
    assert v6.allowed, v6.reason
