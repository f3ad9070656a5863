"""Our own three-tier cases (tests/policy/tiers/extra.yaml) on the NetworkPolicy conformance model."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.policy.conformance.model import Topology, cluster_objects
from tests.policy.reference import selector_matches

Obj = dict[str, Any]

HERE = Path(__file__).parent


@dataclass(frozen=True, slots=True)
class ExtraProbe:
    client: str  # NS/POD
    target: str  # NS/POD, svc:NS/NAME or an IP address
    protocol: str
    port: int
    expected: bool


@dataclass(frozen=True, slots=True)
class ExtraCase:
    id: str
    why: str
    family: int
    objects: tuple[Obj, ...]
    probes: tuple[ExtraProbe, ...]

    def cluster(self, multi_node: bool = False) -> list[Obj]:
        """The model's objects (x on node-a, y on node-b, z on node-c when `multi_node`) and the case's."""
        return cluster_objects(Topology(self.family, multi_node)) + [dict(o) for o in self.objects]


def load() -> list[ExtraCase]:
    raw = yaml.safe_load((HERE / "extra.yaml").read_text(encoding="utf-8"))
    return [
        ExtraCase(
            c["id"],
            c["why"],
            int(c.get("family", 4)),
            tuple(c["objects"]),
            tuple(ExtraProbe(a, str(b), proto, int(port), bool(ok)) for a, b, proto, port, ok in c["probes"]),
        )
        for c in raw["cases"]
    ]


EXTRA = load()


def find_pod(objects: list[Obj], ref: str) -> Obj:
    ns, name = ref.split("/")
    for o in objects:
        if o["kind"] == "Pod" and o["metadata"]["namespace"] == ns and o["metadata"]["name"] == name:
            return o
    raise KeyError(ref)


def address(pod: Obj, family: int) -> str:
    return next(
        str(e["ip"]) for e in pod["status"]["podIPs"] if ipaddress.ip_address(e["ip"]).version == family
    )


def server_address(objects: list[Obj], target: str, family: int) -> str:
    """The address the server sees the connection to: a Service's is its (single) backend pod's,
    the model's Services mapping each port to the same target port."""
    if target.startswith("svc:"):
        ns, name = target.removeprefix("svc:").split("/")
        svc = next(
            o
            for o in objects
            if o["kind"] == "Service" and o["metadata"]["namespace"] == ns and o["metadata"]["name"] == name
        )
        backends = [
            o
            for o in objects
            if o["kind"] == "Pod"
            and o["metadata"]["namespace"] == ns
            and selector_matches({"matchLabels": svc["spec"]["selector"]}, o["metadata"].get("labels") or {})
        ]
        assert len(backends) == 1, target
        return address(backends[0], family)
    if "/" in target:
        return address(find_pod(objects, target), family)
    return target


def tracer_target(objects: list[Obj], target: str, family: int) -> str:
    """What the Tracer is asked to reach: the pod's address of the family, the Service or the IP."""
    if "/" in target and not target.startswith("svc:"):
        return address(find_pod(objects, target), family)
    return target
