"""Node facts (docs/node-facts.md): the documented example parses, every rule has its error."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from k8s_offload.compiler.errors import Location, ManifestErrors
from k8s_offload.compiler.frontend import load_node_facts, parse_node_facts
from k8s_offload.compiler.frontend.nodefacts import PodAttachment

DOC = Path(__file__).resolve().parents[3] / "docs" / "node-facts.md"


def example() -> dict[str, object]:
    """The YAML block of docs/node-facts.md, so the doc and the parser cannot drift apart."""
    match = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert match is not None
    data = yaml.safe_load(match.group(1))
    assert isinstance(data, dict)
    return data


def errors(data: object) -> list[str]:
    with pytest.raises(ManifestErrors) as exc:
        parse_node_facts(data, Location("node.yaml"))
    return [str(e) for e in exc.value.errors]


def test_documented_example(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(yaml.safe_dump(example()))
    facts = load_node_facts(path)
    assert facts.node_name == "node-a"
    assert facts.node_ips == (ipaddress.ip_address("192.168.10.11"), ipaddress.ip_address("fd00:10::11"))
    assert str(facts.gateway.ipv4) == "169.254.1.1"
    assert str(facts.gateway.ipv6) == "fe80::1"
    assert facts.gateway.mac == "02:00:00:00:00:01"
    assert (facts.ports.arp_proxy, facts.ports.host, facts.ports.uplink) == (1, 2, 3)
    assert facts.pods == (
        PodAttachment("shop", "frontend-7d9c", 10, "02:00:00:00:00:0a", "eth0", "p4port10", "3f2a..."),
    )


def test_optional_fields_and_pod_order() -> None:
    data = example()
    data["pods"] = [
        {"namespace": "shop", "name": "b", "port": 11, "mac": "02:00:00:00:00:0B"},
        {"namespace": "shop", "name": "a", "port": 12, "mac": "02:00:00:00:00:0c"},
    ]
    del data["nodeIPs"]
    del data["gateway"]["ipv6"]  # type: ignore[attr-defined]
    facts = parse_node_facts(data, Location("node.yaml"))
    assert [p.name for p in facts.pods] == ["a", "b"]
    assert facts.pods[1].mac == "02:00:00:00:00:0b"
    assert facts.gateway.ipv6 is None and facts.node_ips == ()


def test_ports_exclude_cpu_and_drop_port() -> None:
    """v1model ports are 9 bits; 510 is the CPU port and 511 the drop port (docs/node-facts.md)."""
    data = example()
    data["ports"] = {"arpProxy": 510, "host": 511, "uplink": -1}
    assert errors(data) == [
        f"node.yaml: NodeFacts node-a: ports.{key}: must be between 0 and 509 (510 is the CPU port, 511 "
        "the drop "
        f"port), got {value}"
        for key, value in (("arpProxy", 510), ("host", 511), ("uplink", -1))
    ]


def test_pod_ports_unique_and_not_special() -> None:
    data = example()
    data["pods"] = [
        {"namespace": "shop", "name": "a", "port": 10, "mac": "02:00:00:00:00:0a"},
        {"namespace": "shop", "name": "b", "port": 10, "mac": "02:00:00:00:00:0b"},
        {"namespace": "shop", "name": "c", "port": 2, "mac": "02:00:00:00:00:0c"},
        {"namespace": "shop", "name": "a", "port": 12, "mac": "02:00:00:00:00:0d"},
    ]
    assert errors(data) == [
        "node.yaml: NodeFacts node-a: pods[1].port: Duplicate value: 10 is also used by pods[0]",
        "node.yaml: NodeFacts node-a: pods[2].port: must differ from the special ports, got 2 (ports.host)",
        "node.yaml: NodeFacts node-a: pods[3]: Duplicate value: pod shop/a is also pods[0]",
    ]


def test_special_ports_distinct() -> None:
    data = example()
    data["ports"] = {"arpProxy": 1, "host": 1, "uplink": 3}
    assert errors(data) == [
        "node.yaml: NodeFacts node-a: ports.host: Duplicate value: 1 is also ports.arpProxy"
    ]


def test_macs_and_gateway_families() -> None:
    data = example()
    data["gateway"] = {"ipv4": "fe80::1", "ipv6": "169.254.1.1", "mac": "01:00:5e:00:00:01"}
    data["pods"] = [{"namespace": "shop", "name": "a", "port": 10, "mac": "02:00:00:00:0a"}]
    assert errors(data) == [
        "node.yaml: NodeFacts node-a: gateway.ipv4: must be an IPv4 address, got fe80::1",
        "node.yaml: NodeFacts node-a: gateway.ipv6: must be an IPv6 address, got 169.254.1.1",
        "node.yaml: NodeFacts node-a: gateway.mac: must be a unicast MAC address, got '01:00:5e:00:00:01'",
        "node.yaml: NodeFacts node-a: pods[0].mac: must be a MAC address like 02:00:00:00:00:0a, got "
        "'02:00:00:00:0a'",
    ]


def test_required_fields_and_header() -> None:
    assert errors({"apiVersion": "v1", "kind": "Node", "pods": [{"port": 10}]}) == [
        'node.yaml: NodeFacts <no name>: apiVersion: Unsupported value: "v1": supported values: '
        '"offload.k8s-offload.dev/v1alpha1"',
        'node.yaml: NodeFacts <no name>: kind: Unsupported value: "Node": supported values: "NodeFacts"',
        "node.yaml: NodeFacts <no name>: nodeName: Required value",
        "node.yaml: NodeFacts <no name>: gateway.ipv4: Required value",
        "node.yaml: NodeFacts <no name>: gateway.mac: Required value",
        "node.yaml: NodeFacts <no name>: gateway: Required value",
        "node.yaml: NodeFacts <no name>: ports: Required value",
        "node.yaml: NodeFacts <no name>: ports.arpProxy: Required value",
        "node.yaml: NodeFacts <no name>: ports.host: Required value",
        "node.yaml: NodeFacts <no name>: ports.uplink: Required value",
        "node.yaml: NodeFacts <no name>: pods[0].namespace: Required value",
        "node.yaml: NodeFacts <no name>: pods[0].name: Required value",
        "node.yaml: NodeFacts <no name>: pods[0].mac: Required value",
    ]


def test_not_an_object_and_unreadable(tmp_path: Path) -> None:
    assert errors(["a"]) == ["node.yaml: must be an object, got list"]
    with pytest.raises(ManifestErrors) as exc:
        load_node_facts(tmp_path / "missing.yaml")
    assert str(exc.value).startswith(f"{tmp_path}/missing.yaml: cannot read: ")


def test_pod_macs_are_unique_and_not_the_gateways() -> None:
    """Issue 17 item 8: one MAC on two pod interfaces, or a pod with the gateway's MAC, makes frames of
    one look like the other's (the ARP/NDP proxy answers with the gateway's MAC)."""
    data = example()
    data["pods"] = [
        {"namespace": "shop", "name": "a", "port": 10, "mac": "02:00:00:00:00:0a"},
        {"namespace": "shop", "name": "b", "port": 11, "mac": "02-00-00-00-00-0A"},
        {"namespace": "shop", "name": "c", "port": 12, "mac": "02:00:00:00:00:01"},
    ]
    assert errors(data) == [
        "node.yaml: NodeFacts node-a: pods[1].mac: Duplicate value: 02:00:00:00:00:0a is also the MAC of "
        "pods[0]",
        "node.yaml: NodeFacts node-a: pods[2].mac: must differ from the gateway's MAC, got 02:00:00:00:00:01 "
        "(gateway.mac)",
    ]
