"""What a compile says about cluster policy tiers: never silent (issue 20).

Until the tier stages are in the pipeline, each tier object gets a warning that the device does not
enforce it; a policy with domainNames peers gets one more warning (one per policy, naming the
rules), as the API's fail-closed text for peers an implementation cannot honour asks.
"""

from __future__ import annotations

from pathlib import Path

from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.ir.tiers import NOT_OFFLOADED

ANP = """\
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: egress-names}
spec:
  priority: 3
  subject: {namespaces: {}}
  egress:
  - {name: a, action: Allow, to: [{domainNames: [kubernetes.io]}, {networks: [10.0.0.0/8]}]}
  - {name: b, action: Deny, to: [{networks: [0.0.0.0/0]}]}
  - {name: c, action: Allow, to: [{domainNames: ['*.example.com']}]}
---
apiVersion: v1
kind: Node
metadata: {name: n1}
status: {addresses: [{type: InternalIP, address: 192.168.0.1}]}
"""


def test_tier_policy_warned_and_domain_names_once(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(ANP)
    result = compile_sources([path])
    notes = [str(d) for d in result.diagnostics if d.subject.name == "egress-names"]
    assert notes == [
        f"warning: AdminNetworkPolicy egress-names: {NOT_OFFLOADED}",
        "warning: AdminNetworkPolicy egress-names: domainNames peers cannot be offloaded (the pipeline "
        "matches addresses, not DNS names): egress rules 1, 3: each domainNames peer matches no traffic "
        "(fail closed)",
    ]
    # Cluster-scoped objects do not invent a namespace "" in the IR.
    assert all(ns.key.name for ns in result.ir.namespaces)
