"""Lab pieces that need no root: cluster reading, port maps, metric rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_offload.lab.core import DEFAULT_CLUSTER, Lab, LabError, load_cluster, node_files
from k8s_offload.loader.metrics import Metrics
from k8s_offload.target.dataplane import parse_port_map

REPO = Path(__file__).resolve().parents[2]


def test_load_cluster_picks_local_pods_with_addresses_and_tcp_ports() -> None:
    facts, pods = load_cluster(REPO / "examples/lab/cluster", REPO / "examples/lab/node.yaml")
    assert facts["nodeName"] == "lab-node"
    assert [(p.key, p.ips, p.tcp_ports) for p in pods] == [
        ("demo/client", ["10.244.1.20", "fd00:244:1::20"], []),
        ("demo/guest", ["10.244.1.21", "fd00:244:1::21"], []),
        ("demo/web-a", ["10.244.1.10", "fd00:244:1::10"], [8080]),
        ("demo/web-b", ["10.244.1.11", "fd00:244:1::11"], [8080]),
    ]


def test_load_cluster_of_the_shop_skips_other_nodes() -> None:
    _, pods = load_cluster(REPO / "examples/shop/cluster", REPO / "examples/shop/node.yaml")
    keys = {p.key for p in pods}
    assert "shop/frontend-5c7d9-abcde" in keys and "shop/frontend-5c7d9-klmno" not in keys


def test_load_cluster_errors(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="node facts"):
        load_cluster(REPO / "examples/lab/cluster", tmp_path / "missing.yaml")
    with pytest.raises(LabError, match="no manifests"):
        load_cluster(tmp_path, REPO / "examples/lab/node.yaml")


def test_node_files_next_to_the_cluster_in_order() -> None:
    cluster = REPO / "examples/lab/cluster"
    assert node_files(cluster, 1) == [REPO / "examples/lab/node.yaml"]
    assert node_files(cluster, 2) == [REPO / "examples/lab/node.yaml", REPO / "examples/lab/node-b.yaml"]
    with pytest.raises(LabError, match="3 nodes need 3 node facts files"):
        node_files(cluster, 3)
    _, pods = load_cluster(cluster, REPO / "examples/lab/node-b.yaml")
    assert {(p.key, p.node) for p in pods} == {("demo/api-0", "lab-node-b"), ("demo/api-1", "lab-node-b")}


def test_the_default_cluster_is_the_shipped_one() -> None:
    assert (REPO / "examples/lab/cluster").resolve() == DEFAULT_CLUSTER  # through k8s_offload/examples


def test_up_refuses_bad_node_counts_before_building_anything(tmp_path: Path) -> None:
    lab = Lab("unit", tmp_path / "state")
    cluster = REPO / "examples/lab/cluster"
    with pytest.raises(LabError, match="one or two nodes"):
        lab.up(cluster, nodes=3)
    with pytest.raises(LabError, match="2 nodes need 2 node facts files, got 1"):
        lab.up(cluster, [REPO / "examples/lab/node.yaml"], nodes=2)
    node = REPO / "examples/lab/node.yaml"
    with pytest.raises(LabError, match="name the same node"):
        lab.up(cluster, [node, node])
    assert not (tmp_path / "state").exists()


def test_lab_names_are_checked() -> None:
    with pytest.raises(LabError):
        Lab("bad name")
    with pytest.raises(LabError):
        Lab("x" * 33)


def test_port_map() -> None:
    assert parse_port_map(["1=dp1", "10=dp10"]) == {1: "dp1", 10: "dp10"}
    for bad in (["dp1"], ["x=dp1"], ["1="], ["1=a", "1=b"], ["1=a", "2=a"]):
        with pytest.raises(ValueError):
            parse_port_map(bad)


def test_metrics_keep_full_precision() -> None:
    m = Metrics()
    m.declare("ts", "gauge", "a timestamp")
    m.set("ts", 1795772519.125)
    m.declare("n", "gauge", "a count")
    m.set("n", 3)
    m.declare("inf", "gauge", "infinite")
    m.set("inf", float("inf"))
    from prometheus_client.parser import text_string_to_metric_families

    values = {f.name: f.samples[0].value for f in text_string_to_metric_families(m.render()[0].decode())}
    assert values["ts"] == 1795772519.125 and values["n"] == 3 and values["inf"] == float("inf")
