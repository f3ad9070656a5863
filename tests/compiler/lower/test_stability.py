"""Ids and output stability: adding an unrelated Service must not renumber the others
(compiler-core issue: "adding one Service must not renumber others"), and capacity overflow
names the table, the need and the capacity."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.contract import read_p4info
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.lower.bundle import CapacityError
from k8s_offload.compiler.lower.ids import stable_ids

GOLDEN = Path(__file__).resolve().parents[1] / "golden"

EXTRA = """
apiVersion: v1
kind: Service
metadata: {name: other, namespace: elsewhere}
spec:
  clusterIP: 10.96.99.99
  clusterIPs: [10.96.99.99]
  ports: [{name: http, protocol: TCP, port: 80, targetPort: 9000}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: other-1, namespace: elsewhere, labels: {kubernetes.io/service-name: other}}
addressType: IPv4
ports: [{name: http, protocol: TCP, port: 9000}]
endpoints: [{addresses: [10.244.9.9]}]
"""


def test_adding_a_service_keeps_every_existing_entity(tmp_path: Path) -> None:
    case = GOLDEN / "shop"
    manifests = sorted(str(p) for p in case.glob("*.yaml") if p.name != "node.yaml")
    before = compile_sources(manifests, case / "node.yaml").lowered.bundle
    extra = tmp_path / "extra.yaml"
    extra.write_text(EXTRA)
    after = compile_sources([*manifests, str(extra)], case / "node.yaml").lowered.bundle
    assert set(before.members) <= set(after.members)
    assert set(before.groups) <= set(after.groups)
    assert set(before.entries) <= set(after.entries)
    added = set(after.entries) - set(before.entries)
    assert added and all(any("elsewhere/other" in o for o in e.origin) for e in added)


def test_stable_ids_do_not_depend_on_other_identities() -> None:
    alone = stable_ids(["a", "b"], 24)
    crowded = stable_ids(["a", "b", *(f"x{i}" for i in range(1000))], 24)
    # Neither "a" nor "b" collides with the x-identities (crc32 is fixed), so neither moves.
    assert (alone["a"], alone["b"]) == (crowded["a"], crowded["b"])
    assert len(set(crowded.values())) == len(crowded)
    assert 0 not in crowded.values()


def test_stable_ids_probe_on_collision_and_refuse_overflow() -> None:
    """In a 255-id space 200 identities must collide; every one still gets a distinct id."""
    ids = stable_ids([f"k{i}" for i in range(200)], 8)
    assert len(set(ids.values())) == 200 and all(1 <= v <= 255 for v in ids.values())
    with pytest.raises(ValueError, match="256 ids do not fit in 8 bits"):
        stable_ids([f"k{i}" for i in range(256)], 8)


def test_capacity_overflow_names_table_need_and_capacity() -> None:
    info = read_p4info()
    for table in info.tables:
        if table.preamble.name.endswith("svc_frontend"):
            table.size = 1
    small = Schema(info)
    with pytest.raises(CapacityError, match=r"table svc_frontend: needs 2 entries, holds 1"):
        compile_sources([str(GOLDEN / "multiport-named" / "manifests.yaml")], schema=small)
