"""Entities P4Runtime cannot MODIFY are replaced, and every default entry is reconciled.

A selector group's max_size is fixed at INSERT (the server answers INVALID_ARGUMENT to a MODIFY
that changes it), so the plan deletes the group after everything on the device that refers to it
(its svc_frontend entries, and the svc_frontend_internal entries key-linked to those) and inserts
it again before them.
"""

from __future__ import annotations

from typing import Any

import pytest

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.loader.entities import (
    Item,
    Key,
    bundle_items,
    container,
    entity_value,
    with_initial_defaults,
)
from k8s_offload.loader.plan import DELETE, INSERT, MODIFY, References, make_plan
from k8s_offload.loader.sync import Syncer
from k8s_offload.p4rt.client import CONTINUE_ON_ERROR, DATAPLANE_ATOMIC
from k8s_offload.p4rt.proto import p4runtime as p4r
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import connect, device_state


def _resized(items: dict[Key, Item], group: Key, max_size: int) -> dict[Key, Item]:
    out = dict(items)
    entity = p4r.Entity()
    entity.CopyFrom(items[group].entity)
    entity.action_profile_group.max_size = max_size
    out[group] = Item(group, entity, items[group].origin)
    return out


def _a_group(items: dict[Key, Item]) -> Key:
    return min(k for k in items if k[0] == "group")


def test_max_size_change_is_delete_then_insert_in_reference_order(
    schema: Schema, shop_bundle: Bundle
) -> None:
    current = bundle_items(schema, shop_bundle)
    group = _a_group(current)
    desired = _resized(current, group, 256)
    plan = make_plan(schema, desired, current)
    ops = list(plan.ops())
    assert not [op for op in ops if op.type == MODIFY and op.item.key == group]
    stage = {(op.type, op.item.key): n for n, s in enumerate(plan.stages) for op in s}
    assert stage[(DELETE, group)] < stage[(INSERT, group)]
    refs = References(schema, list(current.values()))
    users = [k for k, it in current.items() if group in refs.of(it)]
    assert users and all(container(schema, k) == "svc_frontend" for k in users)
    for user in users:  # withdrawn before the group goes, published after it is back
        assert stage[(DELETE, user)] < stage[(DELETE, group)] < stage[(INSERT, group)] < stage[(INSERT, user)]
        for fe in (k for k, it in current.items() if user in refs.of(it)):  # key-linked entries
            assert stage[(DELETE, fe)] < stage[(DELETE, user)] and stage[(INSERT, user)] < stage[(INSERT, fe)]
    replaced = {k for t, k in stage if t == DELETE}
    assert {k for t, k in stage if t == INSERT} == replaced  # nothing else changes
    assert len(replaced) >= 2  # the group and the svc_frontend entry using it


@pytest.mark.parametrize("atomicity", [DATAPLANE_ATOMIC, CONTINUE_ON_ERROR])
def test_max_size_change_reaches_the_device(
    switch: EmbeddedTarget, p4info: Any, schema: Schema, shop_bundle: Bundle, atomicity: int
) -> None:
    client = connect(switch.address, p4info=p4info)
    try:
        syncer = Syncer(client, schema, mode="continue" if atomicity == CONTINUE_ON_ERROR else "auto")
        items = bundle_items(schema, shop_bundle)
        assert syncer.sync(items).ok
        group = _a_group(items)
        desired = _resized(items, group, 128)
        result = syncer.sync(desired)
        assert result.ok, result.reason
        assert result.counts["MODIFY"] == 0 and result.counts["DELETE"] == result.counts["INSERT"] >= 2
        got = device_state(client, p4info)
        assert got[group].entity.action_profile_group.max_size == 128
        assert {k for k in got if k[0] != "default"} <= set(desired)
        assert all(entity_value(got[k].entity) == entity_value(v.entity) for k, v in desired.items())
    finally:
        client.close()


def test_every_direct_default_entry_is_reconciled(
    switch: EmbeddedTarget, p4info: Any, schema: Schema, shop_bundle: Bundle
) -> None:
    """A default the bundle leaves alone still drifts back to the program's initial default."""
    desired = with_initial_defaults(schema, bundle_items(schema, shop_bundle))
    direct = [t for t in p4info.tables if not t.implementation_id and not t.const_default_action_id]
    assert {("default", t.preamble.id) for t in direct} <= set(desired)
    table, other = next(
        (t, ref.id)
        for t in direct
        if ("default", t.preamble.id) not in bundle_items(schema, shop_bundle)
        for ref in t.action_refs
        if ref.id != t.initial_default_action.action_id and ref.scope != ref.TABLE_ONLY
    )
    client = connect(switch.address, p4info=p4info)
    try:
        syncer = Syncer(client, schema)
        assert syncer.sync(desired).ok
        drift = p4r.Update(type=p4r.Update.MODIFY)
        te = drift.entity.table_entry
        te.table_id, te.is_default_action = table.preamble.id, True
        te.action.action.action_id = other
        action = next(a for a in p4info.actions if a.preamble.id == other)
        for param in action.params:
            te.action.action.params.add(param_id=param.id, value=b"\x01")
        client.write([drift])
        key = ("default", table.preamble.id)
        assert entity_value(device_state(client, p4info)[key].entity) != entity_value(desired[key].entity)
        result = syncer.sync(desired)
        assert result.ok and result.counts == {"INSERT": 0, "MODIFY": 1, "DELETE": 0}
        assert entity_value(device_state(client, p4info)[key].entity) == entity_value(desired[key].entity)
    finally:
        client.close()
