"""Tier sets to the tier stages of p4src (p4src/README.md, "Policy tiers").

Per direction, as the NetworkPolicy stages (lower/policy.py) and with their machinery: each
distinct tier set gets a content-derived id; entry i of a set is bit i of the masks; peers are
classified by the direction's own peer-class tables (`*_tier_peer_host`, `*_tier_peer_class`,
`PeerClasses`/`PeerLpm`, so `lpm_compress` and `exact_hosts` apply), ports by disjoint ranges per
(set, protocol) (`_port_entries`, so the port passes apply). The bits a flow matches,
`hits = (peer rules | any-peer rules) & (port rules | any-port rules)`, go to two ternary tables,
`*_admin` and `*_baseline`: one entry per bit, the earlier entry at the higher priority, so the
first matching rule of the tier decides. Entries grow with rules, peers and ports, never with
their product.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from k8s_offload.compiler.bundle.model import Exact, TableEntry, Ternary
from k8s_offload.compiler.frontend.model import ObjectKey
from k8s_offload.compiler.frontend.policy import PolicyType
from k8s_offload.compiler.frontend.tiers import Tier, TierAction
from k8s_offload.compiler.ir.rules import RuleSet
from k8s_offload.compiler.ir.tiers import PodTiers, TierSet
from k8s_offload.compiler.lower.ids import IdAllocator
from k8s_offload.compiler.lower.policy import (
    RULE_BITS,
    SET_ID_BITS,
    PeerClasses,
    PeerLpm,
    _port_entries,
    _Tables,
    peer_rule_entries,
    pod_stage_entries,
)

if TYPE_CHECKING:
    from k8s_offload.compiler.engine.core import Reads
    from k8s_offload.compiler.passes.pipeline import Build

TIER_TABLES = {
    PolicyType.Egress: _Tables("eg_tier", "eg_tier_pod", "src_addr", "dst_addr"),
    PolicyType.Ingress: _Tables("in_tier", "in_tier_pod", "dst_addr", "src_addr"),
}
TIER_PEERS_ORIGIN = ("cluster policy peers",)
_SHORT = {PolicyType.Egress: "eg", PolicyType.Ingress: "in"}
ACTIONS = {TierAction.Allow: "allow", TierAction.Deny: "deny", TierAction.Pass: "pass"}
"""Action name suffixes of the `*_admin` / `*_baseline` tables: e.g. `eg_tier_deny`."""


def decide_entries(schema: Any, direction: PolicyType, set_id: int, ts: TierSet) -> list[TableEntry]:
    """One ternary entry per bit in the tier's table; P4Runtime: the higher priority wins, so
    entry i gets RULE_BITS - i."""
    p = TIER_TABLES[direction].prefix
    short = _SHORT[direction]
    out: list[TableEntry] = []
    for bit, entry in enumerate(ts.entries):
        table = f"{short}_admin" if entry.tier is Tier.Admin else f"{short}_baseline"
        out.append(
            schema.entry(
                table,
                {f"{p}_set": Exact(set_id), f"{p}_hits": Ternary(1 << bit, 1 << bit)},
                f"{p}_{ACTIONS[entry.action]}",
                {},
                priority=RULE_BITS - bit,
                origin=(entry.describe(direction),),
            )
        )
    return out


def declare_tiers(b: Build) -> None:
    """The tier stages as units, per direction: per tier set (by identity) its id, peer-rule,
    port and decision entries; per local pod its `*_tier_pod` entries; the peer classes and their
    LPM as `Stateful` tables (one pair per direction, apart from NetworkPolicy's)."""
    from k8s_offload.compiler.engine.core import Index, Rule, Stateful

    e, schema, config, t = b.engine, b.schema, b.config, b.t
    pods = t["tier_isolation"]
    set_ids: dict[PolicyType, Any] = {}
    for direction, tables in TIER_TABLES.items():
        p = tables.prefix

        def in_direction(
            key: Any, pt: PodTiers, d: PolicyType = direction
        ) -> tuple[tuple[str, PodTiers], ...]:
            return ((pt.tier_set.identity, pt),) if pt.direction is d else ()

        sets = b.add(Index(e, f"{p}_sets", pods, in_direction))

        def tier_set(r: Reads, ident: str, sets: Any = sets) -> tuple[TierSet, tuple[str, ...]]:
            pts = r.group(sets, ident).values()
            ts = next(iter(pts)).tier_set
            origin = tuple(sorted({str(x.policy) for x in ts.entries}))
            return ts, origin

        tier_sets = b.add(Rule(e, f"{p}_set", tier_set, over=sets))
        ids = set_ids[direction] = b.add(Stateful(e, f"{p}_set_ids", sets, IdAllocator(SET_ID_BITS)))
        users = b.add(
            Index(
                e,
                f"{p}_peer_users",
                tier_sets,
                lambda ident, v: (
                    (x.rule.peers, (ident, bit))
                    for bit, x in enumerate(v[0].entries)
                    if x.rule.peers is not None
                ),
            )
        )
        classes = b.add(Stateful(e, f"{p}_peer_classes", users, PeerClasses(e.track)))
        compress, hosts = "lpm_compress" in config.enabled, "exact_hosts" in config.enabled
        lpm = PeerLpm(schema, tables, compress, e.track, hosts, origin=TIER_PEERS_ORIGIN)
        b.add(Stateful(e, f"{p}_peer_lpm", classes, lpm, out="entities"))

        def set_entries(
            r: Reads,
            ident: str,
            d: PolicyType = direction,
            tables: _Tables = tables,
            tier_sets: Any = tier_sets,
            classes: Any = classes,
            ids: Any = ids,
        ) -> tuple[TableEntry, ...]:
            """(set, class) -> the bits whose peers contain the class; the decision entries."""
            ts, origin = r(tier_sets, ident)
            if len(ts.entries) > RULE_BITS:
                return ()
            sid = r(ids, ident)
            rules = [x.rule for x in ts.entries]
            classes_of = partial(r, classes)
            field = f"{_SHORT[d]}_peer_class"
            peer_entries = peer_rule_entries(schema, tables, field, sid, rules, classes_of, origin)
            return (*peer_entries, *decide_entries(schema, d, sid, ts))

        b.add(Rule(e, f"{p}_set_entries", set_entries, over=tier_sets, out="entities"))

        def port_rules(
            r: Reads, ident: str, tables: _Tables = tables, tier_sets: Any = tier_sets, ids: Any = ids
        ) -> tuple[TableEntry, ...]:
            ts, origin = r(tier_sets, ident)
            if len(ts.entries) > RULE_BITS:
                return ()
            rs = RuleSet(tuple(x.rule for x in ts.entries))
            return tuple(_port_entries(schema, tables, r(ids, ident), rs, origin))

        ports = b.add(Rule(e, f"{p}_port_rules", port_rules, over=tier_sets))
        b.entry_passes(ports, f"{p}_port_rules")

    def pod_entries(r: Reads, key: tuple[PolicyType, ObjectKey]) -> tuple[TableEntry, ...]:
        pt = r(pods, key)
        ts = pt.tier_set
        if len(ts.entries) > RULE_BITS:
            return ()
        origin = (str(pt.pod), *sorted({str(x.policy) for x in ts.entries}))
        sid = r(set_ids[pt.direction], ts.identity)
        rules = [x.rule for x in ts.entries]
        return pod_stage_entries(
            schema, TIER_TABLES[pt.direction], "subject", sid, rules, pt.addresses, origin
        )

    b.add(Rule(e, "tier_pod", pod_entries, over=pods, out="entities"))

    def too_many(r: Reads, key: tuple[PolicyType, ObjectKey]) -> tuple[tuple[Any, str], ...]:
        pt = r(pods, key)
        n = len(pt.tier_set.entries)
        if n <= RULE_BITS:
            return ()
        message = (
            f"{pt.pod}: {pt.direction.value.lower()} cluster policy tiers give {n} resolved rules; "
            f"the pipeline holds {RULE_BITS} per pod and direction"
        )
        return (((2 + (pt.direction is PolicyType.Ingress), pt.pod), message),)

    b.add(Rule(e, "tier_rule_bits", too_many, over=pods, out="lower_errors"))
