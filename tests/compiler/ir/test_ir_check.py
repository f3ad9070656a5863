"""The verifier catches each broken invariant with a message that says where and what."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest

from k8s_offload.compiler.errors import IRVerificationError
from k8s_offload.compiler.frontend.model import IPFamily, ObjectKey
from k8s_offload.compiler.ir import ClusterIR, check_ir
from tests.compiler.ir.ir_builders import build, endpoint, endpoint_slice, pod, service


def sample() -> ClusterIR:
    return build(
        service("web", ips=("10.96.0.10", "fd00::10"), ipFamilies=["IPv4", "IPv6"]),
        pod("web-1", "10.0.0.5"),
        pod("web-2", "10.0.0.6", node="node-b"),
        endpoint_slice("web-a", endpoints=[endpoint("10.0.0.5"), endpoint("10.0.0.6")]),
    )


def problems(ir: ClusterIR) -> str:
    with pytest.raises(IRVerificationError) as exc:
        check_ir(ir)
    return str(exc.value)


def replace_at(items: tuple[Any, ...], index: int, **changes: Any) -> tuple[Any, ...]:
    return (*items[:index], dataclasses.replace(items[index], **changes), *items[index + 1 :])


def test_sample_is_sound() -> None:
    check_ir(sample())


def test_unsorted_collection() -> None:
    ir = sample()
    bad = dataclasses.replace(ir, pods=tuple(reversed(ir.pods)))
    assert "pods[1]: not sorted: Pod shop/web-1 comes after Pod shop/web-2" in problems(bad)


def test_duplicate_frontend() -> None:
    ir = sample()
    bad = dataclasses.replace(ir, frontends=(ir.frontends[0], *ir.frontends))
    assert "frontends[1]: duplicate frontend 10.96.0.10 TCP 80 of Service shop/web" in problems(bad)


def test_vip_family_mismatch() -> None:
    ir = sample()
    bad = dataclasses.replace(ir, frontends=replace_at(ir.frontends, 0, family=IPFamily.IPv6))
    text = problems(bad)
    assert "frontends[0] (frontend 10.96.0.10 TCP 80 of Service shop/web): VIP 10.96.0.10 is not IPv6" in text


def test_backend_of_wrong_family() -> None:
    ir = sample()
    v6 = ir.backend_sets[1]
    wrong = dataclasses.replace(v6, backends=ir.backend_sets[0].backends)
    bad = dataclasses.replace(ir, backend_sets=(ir.backend_sets[0], wrong))
    assert (
        "backend_sets[1] (shop/web:http/IPv6).backends[0] (backend 10.0.0.5:8080): address is not IPv6"
        in problems(bad)
    )


def test_unsorted_backends() -> None:
    ir = sample()
    v4 = ir.backend_sets[0]
    bad = dataclasses.replace(
        ir, backend_sets=(dataclasses.replace(v4, backends=tuple(reversed(v4.backends))), ir.backend_sets[1])
    )
    assert (
        "backend_sets[0] (shop/web:http/IPv4).backends[1]: not sorted: backend 10.0.0.5:8080 comes after "
        "backend 10.0.0.6:8080" in problems(bad)
    )


def test_dangling_references() -> None:
    ir = sample()
    ghost = ObjectKey("Service", "shop", "ghost")
    bad = dataclasses.replace(ir, frontends=replace_at(ir.frontends, 0, service=ghost))
    text = problems(bad)
    assert (
        "frontends[0] (frontend 10.96.0.10 TCP 80 of Service shop/ghost): dangling reference to Service "
        "shop/ghost" in text
    )
    assert "dangling reference to backend set shop/ghost:http/IPv4" in text
    assert "backend_sets[0] (shop/web:http/IPv4): no frontend refers to it" in text

    v4 = ir.backend_sets[0]
    orphan = replace_at(v4.backends, 0, pod=ObjectKey("Pod", "shop", "gone"))
    bad = dataclasses.replace(ir, backend_sets=(dataclasses.replace(v4, backends=orphan), ir.backend_sets[1]))
    assert "backends[0] (backend 10.0.0.5:8080): dangling reference to Pod shop/gone" in problems(bad)

    bad = dataclasses.replace(ir, namespaces=())
    assert "pods[0] (Pod shop/web-1): dangling reference to Namespace shop" in problems(bad)


def test_locality_must_agree_with_the_pod() -> None:
    ir = sample()
    v4 = ir.backend_sets[0]
    flipped = replace_at(v4.backends, 1, local=False)
    bad = dataclasses.replace(
        ir, backend_sets=(dataclasses.replace(v4, backends=flipped), ir.backend_sets[1])
    )
    assert "backends[1] (backend 10.0.0.6:8080): local=False but Pod shop/web-2 has local=True" in problems(
        bad
    )


def test_local_pod_needs_port_and_ports_are_unique() -> None:
    ir = sample()
    bad = dataclasses.replace(ir, pods=replace_at(ir.pods, 0, port=None))
    assert "pods[0] (Pod shop/web-1): local=True but port=None mac=02:00:00:00:00:10" in problems(bad)
    both = replace_at(ir.pods, 1, port=16)
    assert "pods[1] (Pod shop/web-2): device port 16 is also the port of Pod shop/web-1" in problems(
        dataclasses.replace(ir, pods=both)
    )


def test_vip_must_belong_to_the_service() -> None:
    ir = sample()
    bad = dataclasses.replace(
        ir, frontends=replace_at(ir.frontends, 0, vip=ipaddress.ip_address("10.96.0.99"))
    )
    assert "VIP 10.96.0.99 is not a VIP of Service shop/web" in problems(bad)


def test_all_problems_are_reported_together() -> None:
    ir = sample()
    bad = dataclasses.replace(ir, pods=tuple(reversed(ir.pods)), namespaces=())
    assert problems(bad).count("\n") >= 3


def test_tier_collections_sorted_and_host_network_pods_unattached() -> None:
    ir = sample()
    web1 = ir.pods[0].key
    bad = dataclasses.replace(ir, host_network_pods=(web1, web1))
    found = problems(bad)
    assert "host_network_pods[1]: duplicate Pod shop/web-1" in found, found
    assert ir.pods[0].local
    assert "host_network_pods[0] (Pod shop/web-1): a host-network pod is never attached to a port" in found
