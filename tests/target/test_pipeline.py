"""SetForwardingPipelineConfig RECONCILE_AND_COMMIT (spec §16) and the program's CPU port."""

from __future__ import annotations

from typing import Any

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.loader.entities import bundle_items
from k8s_offload.loader.sync import Syncer
from k8s_offload.p4 import load_program
from k8s_offload.p4rt.client import RECONCILE_AND_COMMIT
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
