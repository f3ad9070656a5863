"""The textual IR: exact format, and independence from input order (documents, files, objects)."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from k8s_offload.compiler.frontend import load_manifests, load_text
from k8s_offload.compiler.ir import build_ir, check_ir, dump
from tests.compiler.ir.ir_builders import Doc, build, endpoint, endpoint_slice, pod, service, to_text

POLICY: Doc = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "np", "namespace": "shop"},
    "spec": {
        "podSelector": {
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}],
        },
        "ingress": [
            {
                "from": [
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.2.0.0/16", "10.1.0.0/16"]}},
                    {
                        "namespaceSelector": {
                            "matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]
                        },
                        "podSelector": {},
                    },
                ],
                "ports": [{"port": "http"}, {"port": 100, "endPort": 200, "protocol": "UDP"}],
            }
        ],
        "egress": [{}],
    },
}

DOCS: list[Doc] = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"team": "a"}}},
    service(
        ips=("10.96.0.10", "fd00::10"),
        ipFamilies=["IPv4", "IPv6"],
        ports=[
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ],
        type="NodePort",
    ),
    service("db", ips=(), clusterIP="None"),
    pod(
        "web-1",
        "10.0.0.5",
        "fd00::5",
        containers=[{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}],
    ),
    pod("web-2", "10.0.1.7", node="node-b"),
    endpoint_slice(
        "web-a",
        endpoints=[endpoint("10.0.0.5"), endpoint("10.0.1.7", ready=False, serving=True, terminating=True)],
        ports=[{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}],
    ),
    endpoint_slice("web-b", endpoints=[endpoint("10.0.0.9")], ports=[{"name": "http", "port": 9090}]),
    endpoint_slice("web-v6", endpoints=[endpoint("fd00::5")], address_type="IPv6"),
    POLICY,
]

EXPECTED = (Path(__file__).parent / "data" / "sample.ir.txt").read_text()
"""The golden dump of DOCS; regenerate by hand and review the diff when the format changes."""


def test_dump_format() -> None:
    assert dump(build(*DOCS)) == EXPECTED


def test_shuffled_documents_give_identical_dump() -> None:
    for seed in range(20):
        docs = list(DOCS)
        random.Random(seed).shuffle(docs)
        assert dump(build(*docs)) == EXPECTED


def test_files_in_any_layout_give_identical_dump(tmp_path: Path) -> None:
    docs = list(DOCS)
    random.Random(1).shuffle(docs)
    (tmp_path / "sub").mkdir()
    for i, doc in enumerate(docs):
        folder = tmp_path / "sub" if i % 2 else tmp_path
        (folder / f"{len(docs) - i:02}.yaml").write_text(to_text([doc]))
    ir = build_ir(load_manifests([tmp_path]).objects)
    check_ir(ir)
    assert dump(ir) == EXPECTED


OBJECTS = load_text(to_text(DOCS)).objects


@settings(max_examples=50, deadline=None)
@given(st.permutations(OBJECTS))
def test_ir_is_independent_of_object_order(objects: list[object]) -> None:
    """build_ir sorts everything it reads: any permutation of the same objects gives an equal IR."""
    reference = build_ir(OBJECTS)
    ir = build_ir(objects)  # type: ignore[arg-type]
    assert ir == reference
    assert dump(ir) == dump(reference)
