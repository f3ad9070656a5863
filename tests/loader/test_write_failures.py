"""Failed Writes of any size are reported per update, with the objects behind them, and undone.

Issue 17.1: a failed batch of more than ~130 updates used to lose its per-update p4.v1.Error
details to gRPC's default metadata limit (spec §"Guidelines for Implementations", "gRPC Metadata
Maximum Size"); the client saw RESOURCE_EXHAUSTED, skipped compensation and left the device half
applied. Both sides now raise the limit, and a failure without usable details (no limit, a lost
reply, a server that fails half-way) is treated as "unknown which updates applied": the loader
re-reads the device, names the updates that are missing and compensates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from k8s_offload.compiler.bundle.model import Bundle, Exact
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.loader.entities import Item, Key, bundle_items
from k8s_offload.loader.sync import Syncer
from k8s_offload.p4rt import client as client_module
from k8s_offload.p4rt.errors import P4RuntimeRpcError
from k8s_offload.p4rt.grpc_api import MAX_MESSAGE
from k8s_offload.p4rt.proto import code_pb2
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import connect, device_state

GOOD = 2000
BAD = 300


def _origin(i: int) -> str:
    return f"Service bad/svc-{i}"


def _big_change(schema: Schema, bundle: Bundle) -> dict[Key, Item]:
    """The shop plus GOOD valid neigh_steer entries and BAD svc_frontend entries naming a group
    that does not exist: the device answers NOT_FOUND for exactly those, whatever the batch size."""
    good = [
        schema.entry(
            "neigh_steer", {"neigh_target": Exact(0x2001_0DB8 << 96 | i)}, "steer_to_port", {"port": 9}
        )
        for i in range(GOOD)
    ]
    vip = 0xFFFF_0A60_FF00  # ::ffff:10.96.255.0, a frontend the shop does not have
    bad = [
        schema.entry(
            "svc_frontend",
            {
                "dst_addr": Exact(vip),
                "l4_proto": Exact(6),
                "dport": Exact(1000 + i),
                "fe_internal": Exact(0),
                "fe_bucket": Exact(0),
            },
            group_id=900_000 + i,
            origin=(_origin(i),),
        )
        for i in range(BAD)
    ]
    return bundle_items(schema, dataclasses.replace(bundle, entries=(*bundle.entries, *good, *bad)))


def _bad_origins() -> set[tuple[str, ...]]:
    return {(_origin(i),) for i in range(BAD)}


@pytest.fixture
def shop_on(p4info: Any, schema: Schema, shop_bundle: Bundle) -> Callable[[EmbeddedTarget], Any]:
    def load(sw: EmbeddedTarget) -> Any:
        client = connect(sw.address, p4info=p4info)
        assert Syncer(client, schema, mode="continue").sync(bundle_items(schema, shop_bundle)).ok
        return client

    return load


@pytest.mark.parametrize("batch_size", [1000, 5000])
def test_staged_failure_is_reported_per_object_and_compensated(
    coe_switch: EmbeddedTarget,
    shop_on: Any,
    p4info: Any,
    schema: Schema,
    shop_bundle: Bundle,
    batch_size: int,
) -> None:
    client = shop_on(coe_switch)
    try:
        before = device_state(client, p4info)
        result = Syncer(client, schema, batch_size=batch_size, mode="continue").sync(
            _big_change(schema, shop_bundle)
        )
        assert not result.ok and result.compensated
        assert {e.origin for e in result.errors} == _bad_origins()
        assert {e.code for e in result.errors} == {code_pb2.NOT_FOUND}
        assert device_state(client, p4info) == before
    finally:
        client.close()


def test_atomic_failure_of_a_big_batch_names_the_object(
    switch: EmbeddedTarget, shop_on: Any, p4info: Any, schema: Schema, shop_bundle: Bundle
) -> None:
    """One DATAPLANE_ATOMIC batch of 2,300 updates: the first bad one is named, the rest ABORTED."""
    client = shop_on(switch)
    try:
        before = device_state(client, p4info)
        result = Syncer(client, schema, mode="dataplane").sync(_big_change(schema, shop_bundle))
        assert not result.ok and result.writes == 1 and not result.compensated
        assert [e.code for e in result.errors] == [code_pb2.NOT_FOUND]
        assert result.errors[0].origin in _bad_origins()
        assert device_state(client, p4info) == before
    finally:
        client.close()


def test_without_the_raised_metadata_limit_the_loader_rereads_and_compensates(
    coe_switch: EmbeddedTarget,
    shop_on: Any,
    p4info: Any,
    schema: Schema,
    shop_bundle: Bundle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client with gRPC's default metadata limit gets RESOURCE_EXHAUSTED and no details: the
    updates that did not land are found by reading the device and named all the same."""
    monkeypatch.setattr(
        client_module,
        "grpc_options",
        lambda: [
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ],
    )
    client = shop_on(coe_switch)
    try:
        before = device_state(client, p4info)
        result = Syncer(client, schema, batch_size=5000, mode="continue").sync(
            _big_change(schema, shop_bundle)
        )
        assert not result.ok and result.compensated
        assert "RESOURCE_EXHAUSTED" in result.reason
        assert {e.origin for e in result.errors} == _bad_origins()
        assert {e.code for e in result.errors} == {grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]}
        assert device_state(client, p4info) == before
    finally:
        client.close()


def _faulty(apply: str) -> Iterator[EmbeddedTarget]:
    """A target whose first Write applies all of the batch (`all`) or its first half (`half`)
    and then fails with a details-less INTERNAL, as a crashing or disconnecting server would."""
    sw = EmbeddedTarget(continue_on_error_only=True)
    real = sw.servicer.Write
    armed = [True]

    def write(request: Any, context: grpc.ServicerContext) -> Any:
        if armed[0]:
            armed[0] = False
            if apply == "denied":  # as if another controller had just taken over
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "not the primary")
            if apply == "half":
                del request.updates[len(request.updates) // 2 :]
            real(request, context)
            context.abort(grpc.StatusCode.INTERNAL, "the reply was lost")
        return real(request, context)

    sw.servicer.Write = write  # type: ignore[method-assign]
    with sw:
        yield sw


@pytest.fixture
def half_applying() -> Iterator[EmbeddedTarget]:
    yield from _faulty("half")


@pytest.fixture
def all_applying() -> Iterator[EmbeddedTarget]:
    yield from _faulty("all")


def test_half_applied_write_without_details_is_compensated(
    half_applying: EmbeddedTarget, p4info: Any, schema: Schema, shop_bundle: Bundle
) -> None:
    client = connect(half_applying.address, p4info=p4info)
    try:
        result = Syncer(client, schema, batch_size=5000, mode="continue").sync(
            bundle_items(schema, shop_bundle)
        )
        assert not result.ok and result.compensated and "INTERNAL" in result.reason
        assert result.errors and {e.code for e in result.errors} == {grpc.StatusCode.INTERNAL.value[0]}
        assert all(e.origin for e in result.errors)  # each names its Kubernetes objects
        assert {k for k in device_state(client, p4info) if k[0] != "default"} == set()
    finally:
        client.close()


def test_fully_applied_write_whose_reply_was_lost_counts_as_done(
    all_applying: EmbeddedTarget, p4info: Any, schema: Schema, shop_bundle: Bundle
) -> None:
    client = connect(all_applying.address, p4info=p4info)
    try:
        want = bundle_items(schema, shop_bundle)
        result = Syncer(client, schema, batch_size=5000, mode="continue").sync(want)
        assert result.ok and not result.errors
        assert set(want) <= set(device_state(client, p4info))
    finally:
        client.close()


@pytest.fixture
def denying() -> Iterator[EmbeddedTarget]:
    yield from _faulty("denied")


def test_a_deposed_loader_neither_blames_objects_nor_compensates(
    denying: EmbeddedTarget, p4info: Any, schema: Schema, shop_bundle: Bundle
) -> None:
    """PERMISSION_DENIED is about us, not the updates: the error goes up to the loop (which
    re-arbitrates), no update is reported as rejected and nothing is written back."""
    client = connect(denying.address, p4info=p4info)
    try:
        with pytest.raises(P4RuntimeRpcError) as err:
            Syncer(client, schema, mode="continue").sync(bundle_items(schema, shop_bundle))
        assert err.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert denying.servicer.write_count == 0
    finally:
        client.close()
