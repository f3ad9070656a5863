"""Textual policy rule IR, appended to `--emit ir` after the cluster IR and printed by
`--dump-after`; `k8s_offload.compiler.ir.parse` reads it back (docs/ir.md, "Textual IR").

A rule prints as `Rule.__str__` (also its content identity): peers as the set's networks (`any`
for every address, `-` for the empty set), ports as `protocol/low[-high]` (`any` for every
protocol and port, nothing for none); rule i is bit i of its set.
"""

from __future__ import annotations

from k8s_offload.compiler.ir.dump import addresses, ref
from k8s_offload.compiler.ir.rules import PolicyIR


def dump_rules(pir: PolicyIR) -> str:
    lines: list[str] = []
    for iso in pir.isolations:
        pols = ",".join(ref(k) for k in iso.policies)
        lines.append(
            f"isolation {iso.direction.value.lower()} {ref(iso.pod)} "
            f"addrs={addresses(iso.addresses)} policies=[{pols}]"
        )
        lines.extend(f"  rule {i} {rule}" for i, rule in enumerate(iso.rule_set.rules))
    return "\n".join(lines) + ("\n" if lines else "")
