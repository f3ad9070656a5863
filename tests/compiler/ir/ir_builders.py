"""Builders for IR tests: Kubernetes objects as dicts, loaded through the real front end."""

from __future__ import annotations

import json
from typing import Any

from k8s_offload.compiler.frontend import NodeFacts, load_text
from k8s_offload.compiler.ir import ClusterIR, build_ir, check_ir

Doc = dict[str, Any]


def service(
    name: str = "web", *, ips: tuple[str, ...] = ("10.96.0.10",), ns: str = "shop", **spec: Any
) -> Doc:
    spec.setdefault("ports", [{"name": "http", "port": 80, "targetPort": "http"}])
    spec.setdefault("selector", {"app": name})
    if ips:
        spec.setdefault("clusterIPs", list(ips))
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def endpoint(address: str, **conditions: bool) -> Doc:
    return {"addresses": [address], "conditions": conditions}


def endpoint_slice(
    name: str,
    svc: str | None = "web",
    *,
    endpoints: list[Doc],
    ports: list[Doc] | None = None,
    address_type: str = "IPv4",
    ns: str = "shop",
) -> Doc:
    labels = {"kubernetes.io/service-name": svc} if svc else {}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": ports if ports is not None else [{"name": "http", "port": 8080}],
    }


def pod(name: str, *ips: str, node: str = "node-a", ns: str = "shop", **extra: Any) -> Doc:
    status: Doc = {"podIPs": [{"ip": ip} for ip in ips]}
    if "phase" in extra:
        status["phase"] = extra.pop("phase")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": extra.pop("labels", {"app": "web"})},
        "spec": {"nodeName": node, **extra},
        "status": status,
    }


def to_text(docs: list[Doc]) -> str:
    """JSON is YAML, so one multi-document stream carries any dict faithfully."""
    return "\n---\n".join(json.dumps(d) for d in docs) + "\n"


def build(*docs: Doc, facts: NodeFacts | None = None) -> ClusterIR:
    ir = build_ir(load_text(to_text(list(docs)), "test.yaml").objects, facts)
    check_ir(ir)
    return ir
