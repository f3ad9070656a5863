"""Plan order (docs/runtime.md): dependencies are written before, and removed after, what uses them;
each stage is its own Write because a server may reorder inside a batch (spec §14.1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.loader.entities import Item, bundle_items, container
from k8s_offload.loader.plan import DELETE, INSERT, KEY_LINKS, LINKS, MODIFY, Plan, References, make_plan
from tests.embedded_fixtures import NODE


def _stage_of(schema: Schema, plan: Plan) -> dict[tuple[int, str], list[int]]:
    """(update type, table or profile part) -> stage numbers it appears in."""
    out: dict[tuple[int, str], list[int]] = {}
    for n, stage in enumerate(plan.stages):
        for op in stage:
            out.setdefault((op.type, container(schema, op.item.key)), []).append(n)
    return out


def _check_order(schema: Schema, plan: Plan, all_items: list[Item], later_refs: bool) -> int:
    """Every op's references that the plan also touches sit in an earlier (or, for deletes, later)
    stage; returns how many such pairs were checked."""
    refs = References(schema, all_items)
    stage = {op.item.key: n for n, s in enumerate(plan.stages) for op in s}
    checked = 0
    for op in plan.ops():
        for target in refs.of(op.item):
            if target in stage:
                before, after = stage[target] < stage[op.item.key], stage[target] > stage[op.item.key]
                assert after if later_refs else before, (op, target)  # never the same Write
                checked += 1
    return checked


def test_publish_bottom_up_and_withdraw_top_down(schema: Schema, shop_bundle: Bundle) -> None:
    items = bundle_items(schema, shop_bundle)
    up = make_plan(schema, items, {})
    assert _check_order(schema, up, list(items.values()), later_refs=False) > 40
    down = make_plan(schema, {}, items)
    assert _check_order(schema, down, list(items.values()), later_refs=True) > 40
    # the VIPs: last to appear, first to go
    vips = {k for k in items if k[0] == "table" and container(schema, k) == "svc_frontend"}
    assert {op.item.key for op in down.stages[0]} >= vips
    kinds = _stage_of(schema, up)
    assert max(kinds[(INSERT, "svc_selector groups")]) < max(kinds[(INSERT, "svc_frontend")])


def test_frontend_options_and_internal_entries_are_ordered(schema: Schema) -> None:
    """Masquerade (svc_options) is in place before a node port load-balances (svc_frontend), and
    svc_frontend_internal comes after the fe_internal 1 entries it leads to; withdrawn the other
    way round (`_check_order` checks every reference, these are the key links among them)."""
    golden = Path(__file__).parents[1] / "compiler" / "golden"
    for case, source, target in (
        ("nodeport-cluster", "svc_frontend", "svc_options"),
        ("nodeport-local", "svc_frontend_internal", "svc_frontend"),
    ):
        result = compile_sources([str(golden / case / "manifests.yaml")], str(golden / case / "node.yaml"))
        items = bundle_items(schema, result.lowered.bundle)
        refs = References(schema, list(items.values()))
        linked = [
            (k, t)
            for k, it in items.items()
            if container(schema, k) == source
            for t in refs.of(it)
            if container(schema, t) == target
        ]
        assert linked, case
        up, down = make_plan(schema, items, {}), make_plan(schema, {}, items)
        assert _check_order(schema, up, list(items.values()), later_refs=False) >= len(linked)
        assert _check_order(schema, down, list(items.values()), later_refs=True) >= len(linked)


def test_policy_change_is_a_two_phase_update(schema: Schema, shop_bundle: Bundle, shop_dir: Path) -> None:
    """New rule set first, one MODIFY of the pod entry, old set last (Reitblatt et al.)."""
    f = shop_dir / "networkpolicies.yaml"
    f.write_text(
        f.read_text().replace(
            "port: postgres\n", "port: postgres\n        - protocol: TCP\n          port: 9999\n", 1
        )
    )
    changed = compile_sources([shop_dir], NODE, schema=schema).lowered.bundle
    plan = make_plan(schema, bundle_items(schema, changed), bundle_items(schema, shop_bundle))
    stages = _stage_of(schema, plan)
    flips = stages[(MODIFY, "in_pod")]
    assert len(flips) >= 1
    new_rules = [n for k, v in stages.items() if k[0] == INSERT and k[1].startswith("in_") for n in v]
    old_rules = [n for k, v in stages.items() if k[0] == DELETE and k[1].startswith("in_") for n in v]
    assert new_rules and old_rules
    assert max(new_rules) < min(flips) and max(flips) < min(old_rules)


def test_peer_class_entries_follow_the_peer_rules_of_their_class(
    schema: Schema, shop_bundle: Bundle, shop_dir: Path
) -> None:
    """A new peer network: the class LPM entry takes the class it points at after that class's
    peer-rule entries are written and, going back, stops pointing at it before they are removed
    (here through a temporary class: the network's old class differs for the old rule set,
    transition.py); the pod still flips in one MODIFY."""
    f = shop_dir / "networkpolicies.yaml"
    f.write_text(
        f.read_text().replace(
            "except: [192.168.10.0/24]\n",
            "except: [192.168.10.0/24]\n        - ipBlock:\n            cidr: 172.16.0.0/12\n",
            1,
        )
    )
    changed = compile_sources([shop_dir], NODE, schema=schema).lowered.bundle
    new, old = bundle_items(schema, changed), bundle_items(schema, shop_bundle)
    refs = References(schema, [*new.values(), *old.values()])
    linked = [
        (k, t)
        for k, it in new.items()
        if k[0] == "table" and container(schema, k) == "eg_peer_class"
        for t in refs.of(it)
    ]
    assert linked and all(container(schema, t) == "eg_peer_rules" for _, t in linked)
    for plan, later in ((make_plan(schema, new, old), False), (make_plan(schema, old, new), True)):
        first: dict[Any, int] = {}
        last: dict[Any, int] = {}
        for n, s in enumerate(plan.stages):
            for op in s:
                first.setdefault(op.item.key, n)
                last[op.item.key] = n
        pairs = [(k, t) for k, t in linked if k in first and t in first]
        assert pairs, "the new class's LPM entry and its peer rules are both in the plan"
        assert all((first[k] < last[t]) if later else (first[t] < last[k]) for k, t in pairs)
        flips = set(_stage_of(schema, plan).get((MODIFY, "eg_pod"), []))
        assert len(flips) == 1  # the pod's entries flip together
    forward = make_plan(schema, new, old)
    assert _check_order(schema, forward, [*new.values(), *old.values()], later_refs=False) > 0


def test_unchanged_bundle_plans_nothing(schema: Schema, shop_bundle: Bundle) -> None:
    items = bundle_items(schema, shop_bundle)
    assert len(make_plan(schema, items, dict(items))) == 0


def test_every_table_keyed_by_a_frontend_is_ordered_against_svc_frontend(schema: Schema) -> None:
    """A frontend's svc_frontend entries published before its options (masquerade, split mask,
    affinity) expose packets to a half-built Service, and svc_frontend_internal published before the
    entries it leads to sends pod traffic nowhere. Every table keyed by a frontend (VIP, protocol,
    port), found here from the P4Info rather than from the list under test, is key-linked."""
    frontend = {"meta.dst_addr", "meta.l4_proto", "meta.dport"}
    keyed = {
        t.preamble.alias
        for t in schema.p4info.tables
        if frontend <= {f.name for f in t.match_fields} and t.preamble.alias != "svc_frontend"
    }
    assert keyed == {"svc_options", "svc_frontend_internal"}
    linked = {kl.table for kl in KEY_LINKS if kl.target == "svc_frontend"}
    linked |= {kl.target for kl in KEY_LINKS if kl.table == "svc_frontend"}
    assert keyed <= linked
    setters = {a.preamble.alias for a in schema.p4info.actions if any(p.name == "aff_id" for p in a.params)}
    assert setters == {"set_options"} and ("set_options", "aff_backend") in {
        (lk.action, lk.table) for lk in LINKS
    }
