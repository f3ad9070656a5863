"""What the compiler tells the user about cluster policy tiers (AdminNetworkPolicy,
BaselineAdminNetworkPolicy, ClusterNetworkPolicy) before they reach the pipeline."""

from __future__ import annotations

from k8s_offload.compiler.frontend.tiers import ClusterPolicy, PeerKind, TierAction
from k8s_offload.compiler.ir.model import Diagnostic

NOT_OFFLOADED = (
    "cluster policy tiers are read and validated but not offloaded yet (issue 20): "
    "the device does not enforce this policy"
)


def domain_names_note(policy: ClusterPolicy) -> Diagnostic | None:
    """One warning per policy with `domainNames` peers, naming its rules. The pipeline matches
    addresses, not names, so such a peer is what the API calls an implementation that cannot
    honour a peer: it fails closed, an Allow/Accept rule's domainNames peer matches no traffic
    (the API supports domainNames only in those rules)."""
    rules = [r.index + 1 for r in policy.egress if any(p.kind is PeerKind.domain_names for p in r.peers)]
    if not rules:
        return None
    listed = ", ".join(str(n) for n in rules)
    denying = [
        r.index + 1 for r in policy.egress if r.index + 1 in rules and r.action is not TierAction.Allow
    ]
    extra = (
        f"; egress rule {', '.join(str(n) for n in denying)} is not an Allow rule, where the API does not"
        " support domainNames: treated as matching no traffic too"
        if denying
        else ""
    )
    return Diagnostic(
        policy.key,
        f"domainNames peers cannot be offloaded (the pipeline matches addresses, not DNS names): "
        f"egress rule{'s' if len(rules) > 1 else ''} {listed}: "
        f"each domainNames peer matches no traffic (fail closed){extra}",
    )


def tier_notes(policy: ClusterPolicy | None) -> tuple[Diagnostic, ...]:
    if policy is None:
        return ()
    notes = [Diagnostic(policy.key, NOT_OFFLOADED)]
    note = domain_names_note(policy)
    if note is not None:
        notes.append(note)
    return tuple(notes)
