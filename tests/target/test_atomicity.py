"""A batch with one invalid entity (P4Runtime spec §"Batch Atomicity", §"Error Reporting").

ROLLBACK_ON_ERROR and DATAPLANE_ATOMIC must leave the device as it was; under CONTINUE_ON_ERROR the
valid updates land, so the loader compensates back to the last good state. Either way the error
detail of the bad update must name the Kubernetes object that produced it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import grpc
import pytest

from k8s_offload.compiler.bundle.model import Bundle, Exact
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.loader.entities import bundle_items
from k8s_offload.loader.plan import make_plan
from k8s_offload.loader.sync import Syncer
from k8s_offload.p4rt.client import DATAPLANE_ATOMIC, ROLLBACK_ON_ERROR
from k8s_offload.p4rt.errors import P4RuntimeRpcError, WriteError
from k8s_offload.p4rt.proto import code_pb2
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import connect, device_state

BROKEN = "Service default/broken"


def _bad_change(schema: Schema, bundle: Bundle) -> Bundle:
    """A valid new entry, a valid modification, and a modification pointing a Service's
    svc_frontend entry at a group that does not exist (the device's NOT_FOUND, not a compile-time
    error)."""
    extra = schema.entry(
        "neigh_steer",
        {"neigh_target": Exact(0xFFFF_0A00_0001)},
        "steer_to_port",
        {"port": 80},
        origin=("Pod x/new",),
    )
    entries = list(bundle.entries)
    i = next(i for i, e in enumerate(entries) if e.table.endswith("neigh_steer") and not e.is_default)
    assert entries[i].action is not None
    params = tuple((n, v + 1 if n == "port" else v) for n, v in entries[i].action.params)
    entries[i] = dataclasses.replace(entries[i], action=dataclasses.replace(entries[i].action, params=params))
    j = next(j for j, e in enumerate(entries) if e.table.endswith("svc_frontend") and e.group_id is not None)
    entries[j] = dataclasses.replace(entries[j], group_id=999_999, origin=(BROKEN,))
    return dataclasses.replace(bundle, entries=(*entries, extra))


@pytest.mark.parametrize("atomicity", [ROLLBACK_ON_ERROR, DATAPLANE_ATOMIC])
def test_all_or_none_modes_leave_device_unchanged(
    switch: EmbeddedTarget, p4info: Any, schema: Schema, shop_bundle: Bundle, atomicity: int
) -> None:
    client = connect(switch.address, p4info=p4info)
    try:
        Syncer(client, schema).sync(bundle_items(schema, shop_bundle))
        before = device_state(client, p4info)
        plan = make_plan(schema, bundle_items(schema, _bad_change(schema, shop_bundle)), before)
        ops = list(plan.ops())
        with pytest.raises(WriteError) as exc:
            client.write([op.update() for op in ops], atomicity)
        errors = exc.value.errors
        assert len(errors) == len(ops)  # one p4.v1.Error per update, in request order
        failed = exc.value.failed()
        bad = [i for i, e in failed if e.code == code_pb2.NOT_FOUND]
        assert [ops[i].item.origin for i in bad] == [(BROKEN,)]
        assert all(e.code == code_pb2.ABORTED for i, e in failed if i not in bad)
        assert device_state(client, p4info) == before
    finally:
        client.close()


@pytest.mark.parametrize("mode", ["dataplane", "rollback"])
def test_loader_reports_origin_and_keeps_state(
    switch: EmbeddedTarget, p4info: Any, schema: Schema, shop_bundle: Bundle, mode: str
) -> None:
    client = connect(switch.address, p4info=p4info)
    try:
        syncer = Syncer(client, schema, mode=mode)
        assert syncer.sync(bundle_items(schema, shop_bundle)).ok
        before = device_state(client, p4info)
        result = syncer.sync(bundle_items(schema, _bad_change(schema, shop_bundle)))
        assert not result.ok and not result.compensated and result.writes == 1
        assert [(e.origin, e.code) for e in result.errors] == [((BROKEN,), code_pb2.NOT_FOUND)]
        assert "svc_frontend" in str(result.errors[0])
        assert device_state(client, p4info) == before
    finally:
        client.close()


def test_continue_on_error_only_target_refuses_atomic_modes(coe_switch: EmbeddedTarget, p4info: Any) -> None:
    """Like bmv2/PI: UNIMPLEMENTED for the optional modes, as an RPC-wide error without details."""
    client = connect(coe_switch.address, p4info=p4info)
    try:
        for atomicity in (ROLLBACK_ON_ERROR, DATAPLANE_ATOMIC):
            with pytest.raises(P4RuntimeRpcError) as exc:
                client.write([], atomicity)
            assert exc.value.code == grpc.StatusCode.UNIMPLEMENTED
    finally:
        client.close()


def test_continue_on_error_failure_is_compensated(
    coe_switch: EmbeddedTarget, p4info: Any, schema: Schema, shop_bundle: Bundle
) -> None:
    """The valid updates of the failed batch were applied; the loader undoes them."""
    client = connect(coe_switch.address, p4info=p4info)
    try:
        syncer = Syncer(client, schema)  # auto: finds out DATAPLANE_ATOMIC is missing
        first = syncer.sync(bundle_items(schema, shop_bundle))
        assert first.ok and first.mode == "CONTINUE_ON_ERROR" and not syncer.atomic_supported
        before = device_state(client, p4info)
        result = syncer.sync(bundle_items(schema, _bad_change(schema, shop_bundle)))
        assert not result.ok and result.compensated
        assert [(e.origin, e.code) for e in result.errors] == [((BROKEN,), code_pb2.NOT_FOUND)]
        # insert + 2 modifies attempted; the insert and the good modify were then undone
        assert result.counts == {"INSERT": 1, "MODIFY": 2, "DELETE": 0} and result.updates == 3 + 2
        assert device_state(client, p4info) == before
    finally:
        client.close()
