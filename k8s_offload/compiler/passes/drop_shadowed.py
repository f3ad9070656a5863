"""Pass `drop_shadowed` (tier rules): drop a tier rule whose peers and ports lie inside an
earlier rule's of the same tier.

A tier decides by its first matching rule, so a rule that only matches traffic an earlier rule of
its tier already matches is never the first: dropping it changes no verdict and frees a rule bit
(and its peer-class, port and decision entries). Only earlier rules of the same tier shadow: a
Pass ends the admin tier for what it matches, and the baseline tier is consulted apart. (The rule
passes that treat a set as a union, `merge_rules` and `drop_subsumed`, do not apply to ordered
rules.) `trace` never names a dropped rule, since it could not decide.
"""

from __future__ import annotations

from k8s_offload.compiler.ir.tiers import TierEntry
from k8s_offload.compiler.passes.drop_subsumed import _peers_within, _ports_within


def drop_shadowed(entries: tuple[TierEntry, ...]) -> tuple[TierEntry, ...]:
    kept: list[TierEntry] = []
    for e in entries:
        shadowed = any(
            k.tier is e.tier
            and _ports_within(e.rule.ports, k.rule.ports)
            and _peers_within(e.rule.peers, k.rule.peers)
            for k in kept
        )
        if not shadowed:
            kept.append(e)
    return tuple(kept)
