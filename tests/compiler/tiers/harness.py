"""A small cluster for the tier tests: namespaces x (team a) and y (team b), pods a, b in each,
with real frames through the interpreter (Tracer), every pod local (default placement)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import yaml

from k8s_offload.analysis.trace import Probe, Tracer, Verdict
from k8s_offload.compiler.driver import CompileResult, compile_sources
from k8s_offload.compiler.frontend.model import Protocol
from k8s_offload.target.install import interpreter_with

Obj = dict[str, Any]
ANP_API = "policy.networking.k8s.io/v1alpha1"
CNP_API = "policy.networking.k8s.io/v1alpha2"

IPS = {
    "x/a": ("10.0.1.1", "fd00::101"),
    "x/b": ("10.0.1.2", "fd00::102"),
    "y/a": ("10.0.2.1", "fd00::201"),
    "y/b": ("10.0.2.2", "fd00::202"),
}


def base(host_network: tuple[str, ...] = ()) -> list[Obj]:
    out: list[Obj] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "labels": {"team": "a"}}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "y", "labels": {"team": "b"}}},
    ]
    for ref, ips in IPS.items():
        ns, name = ref.split("/")
        spec: Obj = {
            "nodeName": "node-a",
            "containers": [
                {"name": "c", "ports": [{"name": "web", "containerPort": 8080 if name == "a" else 9090}]}
            ],
        }
        if ref in host_network:
            spec["hostNetwork"] = True
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
                "spec": spec,
                "status": {"phase": "Running", "podIPs": [{"ip": ip} for ip in ips]},
            }
        )
    return out


def anp(name: str, priority: int, subject: Obj, **rules: list[Obj]) -> Obj:
    return {
        "apiVersion": ANP_API,
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"priority": priority, "subject": subject, **rules},
    }


def banp(subject: Obj, **rules: list[Obj]) -> Obj:
    return {
        "apiVersion": ANP_API,
        "kind": "BaselineAdminNetworkPolicy",
        "metadata": {"name": "default"},
        "spec": {"subject": subject, **rules},
    }


def cnp(name: str, tier: str, priority: int, subject: Obj, **rules: list[Obj]) -> Obj:
    return {
        "apiVersion": CNP_API,
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"tier": tier, "priority": priority, "subject": subject, **rules},
    }


def netpol(ns: str, name: str, pod: str | None, types: list[str], **rules: list[Obj]) -> Obj:
    selector: Obj = {"matchLabels": {"app": pod}} if pod else {}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"podSelector": selector, "policyTypes": types, **rules},
    }


def ns_subject(team: str) -> Obj:
    return {"namespaces": {"matchLabels": {"team": team}}}


def pod_peer(team: str, app: str) -> Obj:
    return {
        "pods": {
            "namespaceSelector": {"matchLabels": {"team": team}},
            "podSelector": {"matchLabels": {"app": app}},
        }
    }


def node_facts(node_ips: tuple[str, ...], pods: tuple[str, ...]) -> Obj:
    """Node node-a with these node IPs and device ports for these pods (NS/NAME)."""
    return {
        "apiVersion": "offload.k8s-offload.dev/v1alpha1",
        "kind": "NodeFacts",
        "nodeName": "node-a",
        "nodeIPs": list(node_ips),
        "gateway": {"ipv4": "169.254.1.1", "ipv6": "fe80::1", "mac": "02:00:00:00:00:01"},
        "ports": {"arpProxy": 1, "host": 2, "uplink": 3},
        "pods": [
            {
                "namespace": ref.split("/")[0],
                "name": ref.split("/")[1],
                "port": 10 + i,
                "mac": f"02:00:00:00:00:{10 + i:02x}",
            }
            for i, ref in enumerate(pods)
        ],
    }


class Cluster:
    def __init__(self, objects: list[Obj], facts: Obj | None = None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            node = None
            if facts is not None:
                node = Path(tmp) / "node.yaml"
                node.write_text(yaml.safe_dump(facts))
            text = io.StringIO(yaml.safe_dump_all(objects))
            self.result: CompileResult = compile_sources(["-"], node, stdin=text)
        sim = interpreter_with(self.result.schema, self.result.lowered.bundle)
        self.tracer = Tracer(
            self.result.manifests, self.result.ir, self.result.schema, sim, self.result.lowered
        )

    def probe(self, src: str, dst: str, port: int = 80, protocol: str = "TCP") -> Verdict:
        return self.tracer.run(Probe(src, dst, port, Protocol(protocol)))

    def allowed(self, src: str, dst: str, port: int = 80, protocol: str = "TCP") -> bool:
        return self.probe(src, dst, port, protocol).allowed

    def warnings(self) -> list[str]:
        return [str(d) for d in self.result.diagnostics]
