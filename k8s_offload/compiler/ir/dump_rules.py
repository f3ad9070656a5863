"""Textual form of the resolved policy IR, appended to `--emit ir` after the cluster IR."""

from __future__ import annotations

from k8s_offload.compiler.ir.rules import PolicyIR


def dump_rules(pir: PolicyIR) -> str:
    lines: list[str] = []
    for iso in pir.isolations:
        addrs = ",".join(str(a) for a in iso.addresses)
        pols = ",".join(k.ref for k in iso.policies)
        lines.append(
            f"isolation {iso.direction.value.lower()} {iso.pod.ref} addrs=[{addrs}] policies=[{pols}]"
        )
        for i, rule in enumerate(iso.rule_set.rules):
            lines.append(f"  rule {i} {rule}")
    return "\n".join(lines) + ("\n" if lines else "")
