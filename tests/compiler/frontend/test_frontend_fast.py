"""The validating fast path for Pods and EndpointSlices (compiler/frontend/fast.py) against the full
parsers: on every mutation of a few well-formed objects, the fast path either declines (None) or
returns exactly what the full parser returns with no error. Errors themselves always come from the
full parser, so their wording is covered by test_frontend_validation.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from k8s_offload.compiler.errors import Location, ManifestError
from k8s_offload.compiler.frontend.common import subject_of
from k8s_offload.compiler.frontend.fast import fast_endpoint_slice, fast_pod
from k8s_offload.compiler.frontend.fields import Checker
from k8s_offload.compiler.frontend.loader import load_text
from k8s_offload.compiler.frontend.parse_core import parse_pod
from k8s_offload.compiler.frontend.parse_endpoints import parse_endpoint_slice

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "app-0-0", "namespace": "ns-0", "labels": {"app": "app-0", "tier": "be"}},
    "spec": {
        "nodeName": "node-0",
        "hostNetwork": False,
        "containers": [
            {
                "name": "main",
                "ports": [
                    {"name": "http", "containerPort": 8080},
                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                ],
            },
            {"name": "side", "ports": [{"containerPort": 53, "protocol": "UDP"}]},
        ],
    },
    "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]},
}

SLICE: dict[str, Any] = {
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSlice",
    "metadata": {"name": "app-0-0", "namespace": "ns-0", "labels": {"kubernetes.io/service-name": "app-0"}},
    "addressType": "IPv4",
    "ports": [
        {"name": "http", "protocol": "TCP", "port": 8080, "appProtocol": "kubernetes.io/h2c"},
        {"name": "dns", "protocol": "UDP", "port": 53},
    ],
    "endpoints": [
        {
            "addresses": ["10.0.0.1"],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "nodeName": "node-0",
            "zone": "zone-a",
            "hints": {"forZones": [{"name": "zone-b"}, {"name": "zone-a"}]},
            "targetRef": {"kind": "Pod", "namespace": "ns-0", "name": "app-0-0"},
        },
        {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},
        {"addresses": ["10.0.0.3"]},
    ],
}

ODD_VALUES: tuple[object, ...] = (
    None,
    "",
    True,
    False,
    0,
    1,
    -1,
    70000,
    8080.0,
    "80",
    "TCP",
    "ICMP",
    "Bad Name!",
    "a" * 64,
    "-x",
    "x--y",
    "node-0",
    "http",
    "dns",
    "10.0.0.1",
    "10.0.0.9",
    "010.0.0.1",
    "fd00::1",
    "::ffff:10.0.0.1",
    "fe80::1%eth0",
    "IPv6",
    "FQDN",
    [],
    ["10.0.0.1"],
    [{}],
    [{"name": "http", "containerPort": 80}],
    {},
    {"ip": "10.0.0.1"},
    {"a/b": "c"},
    {"app": 1},
    {"/x": "y"},
)

_MISSING = object()


def _paths(obj: object, prefix: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    """Every key and index path in a JSON-like value, containers included."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _mutated(base: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in _paths(base):
        if path[:1] in (("apiVersion",), ("kind",)):
            continue
        for value in (*ODD_VALUES, _MISSING):
            obj = copy.deepcopy(base)
            parent: Any = obj
            for step in path[:-1]:
                parent = parent[step]
            if value is _MISSING:
                if isinstance(parent, dict):
                    del parent[path[-1]]
                else:
                    parent.pop(path[-1])
            else:
                parent[path[-1]] = copy.deepcopy(value)
            yield f"{path}={value!r}", obj
    # extra keys the fast path reads but the bases lack
    for extra in ({"spec": {**base.get("spec", {}), "hostNetwork": "yes"}}, {"metadata": {"name": "x"}}):
        yield f"extra {extra}", {**copy.deepcopy(base), **extra}


Fast = Callable[[dict[str, Any], Location], object]
Full = Callable[[Checker, Any, Location], object]


def _compare(base: dict[str, Any], fast: Fast, full: Full) -> tuple[int, int]:
    location = Location("m.json", 1, 0)
    accepted = declined = 0
    for what, obj in _mutated(base):
        quick = fast(obj, location)
        if quick is None:
            declined += 1
            continue
        accepted += 1
        errors: list[ManifestError] = []
        checker = Checker(location, subject_of(obj["kind"], obj, True), errors)
        slow = full(checker, obj, location)
        assert not errors, f"{what}: fast path accepted an object with errors {errors}"
        assert quick == slow, f"{what}: fast path differs"
        assert quick.location == location  # type: ignore[attr-defined]
    return accepted, declined


@pytest.mark.parametrize(
    ("base", "fast", "full"),
    [
        pytest.param(POD, fast_pod, parse_pod, id="pod"),
        pytest.param(SLICE, fast_endpoint_slice, parse_endpoint_slice, id="endpointslice"),
    ],
)
def test_fast_path_agrees_with_full_parser(base: dict[str, Any], fast: Fast, full: Full) -> None:
    assert fast(copy.deepcopy(base), Location("m.json")) is not None, "the well-formed base must be fast"
    accepted, declined = _compare(base, fast, full)
    assert accepted > 100 and declined > 100  # both branches exercised


def test_fast_path_declines_over_the_size_limits() -> None:
    location = Location("m.json")
    for field, many in (
        ("endpoints", [{"addresses": [f"10.0.{i // 250}.{i % 250 + 1}"]} for i in range(1001)]),
        ("ports", [{"name": f"p{i}", "port": i + 1} for i in range(101)]),
    ):
        assert fast_endpoint_slice({**copy.deepcopy(SLICE), field: many}, location) is None
        assert fast_endpoint_slice({**copy.deepcopy(SLICE), field: many[:3]}, location) is not None
    addresses = [f"10.0.0.{i + 1}" for i in range(101)]
    too_many = {**copy.deepcopy(SLICE), "endpoints": [{"addresses": addresses}]}
    assert fast_endpoint_slice(too_many, location) is None
    too_many["endpoints"][0]["addresses"] = addresses[:100]
    assert fast_endpoint_slice(too_many, location) is not None


def test_fast_path_shares_address_objects() -> None:
    """A slice's address is the Pod's very object (interned), which later lookups benefit from."""
    pod = fast_pod(copy.deepcopy(POD), Location("m.json"))
    eps = fast_endpoint_slice(copy.deepcopy(SLICE), Location("m.json"))
    assert pod is not None and eps is not None
    assert eps.endpoints[0].addresses[0] is pod.ips[0]


def test_errors_still_name_object_field_and_reason() -> None:
    """A bulk List with one bad Pod and one bad slice: the fast path declines them, the full parser
    reports them as before."""
    text = """
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: ok, namespace: a}, status: {podIP: 10.0.0.1}}
- {apiVersion: v1, kind: Pod, metadata: {name: bad, namespace: a},
   spec: {containers: [{ports: [{containerPort: 70000}]}]}, status: {podIP: 10.0.0.2}}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: s, namespace: a}
  addressType: IPv4
  endpoints: [{addresses: ["10.0.0.1", "fd00::1"]}]
"""
    with pytest.raises(Exception) as exc:
        load_text(text, "m.yaml")
    assert [str(e) for e in exc.value.errors] == [  # type: ignore[attr-defined]
        "m.yaml: document 1: items[1]: Pod a/bad: spec.containers[0].ports[0].containerPort: "
        "must be between 1 and 65535, got 70000",
        "m.yaml: document 1: items[2]: EndpointSlice a/s: endpoints[0].addresses[1]: "
        "must be an IPv4 address, got fd00::1",
    ]
