"""SetForwardingPipelineConfig RECONCILE_AND_COMMIT (spec §16) and the program's CPU port."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.loader.entities import bundle_items
from k8s_offload.loader.sync import Syncer
from k8s_offload.p4 import load_program
from k8s_offload.p4rt.client import RECONCILE_AND_COMMIT
from k8s_offload.p4rt.errors import P4RuntimeRpcError
from k8s_offload.p4rt.proto import p4info as p4i
from k8s_offload.target.device import Device, state_only_pipeline
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import connect, device_state


def test_reconcile_with_the_same_p4info_keeps_the_state_object(
    switch: EmbeddedTarget, p4info: Any, schema: Schema, shop_bundle: Bundle
) -> None:
    client = connect(switch.address, p4info=p4info)
    try:
        assert Syncer(client, schema).sync(bundle_items(schema, shop_bundle)).ok
        before = device_state(client, p4info)
        state = switch.device().pipeline.state  # type: ignore[union-attr]
        client.set_pipeline(p4info, cookie=7, action=RECONCILE_AND_COMMIT)
        pipe = switch.device().pipeline
        assert pipe is not None and pipe.state is state and pipe.config.cookie.cookie == 7
        assert device_state(client, p4info) == before

        other = p4i.P4Info()
        other.CopyFrom(p4info)
        other.pkg_info.name = "renamed"  # a different P4Info the program still realizes: replayed
        client.set_pipeline(other, cookie=8, action=RECONCILE_AND_COMMIT)
        pipe = switch.device().pipeline
        assert pipe is not None and pipe.state is not state
        assert device_state(client, p4info) == before
    finally:
        client.close()


def test_cpu_port_comes_from_the_program(switch: EmbeddedTarget, p4info: Any) -> None:
    declared = load_program().constant("CPU_PORT").value.value  # type: ignore[union-attr]
    client = connect(switch.address, p4info=p4info)
    try:
        assert switch.device().cpu_port == declared
    finally:
        client.close()
    bare = Device(1, state_only_pipeline)
    assert bare.cpu_port is None
    assert Device(1, state_only_pipeline, cpu_port=64).cpu_port == 64


def _edited(p4info: Any, edit: Any) -> Any:
    out = p4i.P4Info()
    out.CopyFrom(p4info)
    edit(out)
    return out


def _table(info: Any, alias: str) -> Any:
    return next(t for t in info.tables if t.preamble.alias == alias)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda i: setattr(_table(i, "fwd"), "size", 1 << 40),
            "fwd: size 1099511627776 where the program has",
        ),
        (lambda i: setattr(_table(i, "port_class").match_fields[0], "bitwidth", 10_000), "10000"),
        (lambda i: setattr(next(a for a in i.actions if a.params).params[0], "bitwidth", 4096), "action"),
        (lambda i: setattr(i.registers[0], "size", 1 << 30), "register"),
        (lambda i: i.tables.remove(_table(i, "fwd")), "is missing"),
        (
            lambda i: setattr(i.counters.add().preamble, "name", "extra"),
            "counter extra is not in the program",
        ),
    ],
    ids=["table size", "key width", "param width", "register size", "missing table", "extra counter"],
)
def test_a_p4info_that_does_not_describe_the_program_is_refused(
    switch: EmbeddedTarget, p4info: Any, edit: Any, named: str
) -> None:
    """Sizes, widths and objects must be the program's: such a pipeline cannot be realized."""
    client = connect(switch.address)
    try:
        with pytest.raises(P4RuntimeRpcError) as err:
            client.set_pipeline(_edited(p4info, edit))
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "does not match the program" in err.value.message and named in err.value.message
        assert switch.device().pipeline is None  # nothing half-applied
    finally:
        client.close()
