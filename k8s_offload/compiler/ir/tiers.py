"""What the compiler tells the user about cluster policy tiers (AdminNetworkPolicy,
BaselineAdminNetworkPolicy, ClusterNetworkPolicy) before they reach the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from k8s_offload.compiler.frontend.model import IPAddress, ObjectKey
from k8s_offload.compiler.frontend.policy import PolicyType
from k8s_offload.compiler.frontend.tiers import ClusterPolicy, PeerKind, Tier, TierAction
from k8s_offload.compiler.ir.model import Diagnostic
from k8s_offload.compiler.ir.rules import Rule


@dataclass(frozen=True, slots=True)
class TierEntry:
    """One match of a tier rule, resolved: traffic whose peer and port `rule` admits gets
    `action`. An API rule resolves to one entry, or several (egress named ports: one per port
    number), always adjacent and with one action, so their order among themselves is moot."""

    rule: Rule
    action: TierAction
    tier: Tier
    policy: ObjectKey
    index: int
    """The API rule's 0-based position in the policy's spec.ingress / spec.egress."""

    def describe(self, direction: PolicyType) -> str:
        """`AdminNetworkPolicy sre-guardrails rule 2 (egress)`: how trace names the deciding rule."""
        return f"{self.policy.kind} {self.policy.name} rule {self.index + 1} ({direction.value.lower()})"


@dataclass(frozen=True, slots=True)
class TierSet:
    """A local pod's tier rules in one direction, in evaluation order: the admin tier's, then the
    baseline tier's; the first that matches decides within its tier (Pass: on to the next tier)."""

    entries: tuple[TierEntry, ...]

    @property
    def identity(self) -> str:
        return _identity(self.entries)

    @property
    def admin(self) -> tuple[TierEntry, ...]:
        return tuple(e for e in self.entries if e.tier is Tier.Admin)

    @property
    def baseline(self) -> tuple[TierEntry, ...]:
        return tuple(e for e in self.entries if e.tier is Tier.Baseline)


@lru_cache(maxsize=4096)
def _identity(entries: tuple[TierEntry, ...]) -> str:
    return ";".join(f"{e.tier.value}:{e.action.value}:{e.policy}#{e.index}:{e.rule}" for e in entries)


@dataclass(frozen=True, slots=True)
class PodTiers:
    """A local pod that some cluster policy's subject selects, in one direction."""

    pod: ObjectKey
    direction: PolicyType
    addresses: tuple[IPAddress, ...]
    tier_set: TierSet


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
    note = domain_names_note(policy)
    return () if note is None else (note,)


def tier_lines(pt: PodTiers) -> list[str]:
    """`--dump-after resolve_tiers`: a pod's tier rules, bit by bit, in evaluation order."""
    addrs = ",".join(str(a) for a in pt.addresses)
    out = [f"tiers {pt.direction.value.lower()} {pt.pod.ref} addrs=[{addrs}]"]
    out += [
        f"  bit {i} {e.tier.value.lower()} {e.action.value} {e.describe(pt.direction)}: {e.rule}"
        for i, e in enumerate(pt.tier_set.entries)
    ]
    return out
