"""Hypothesis strategies: small random clusters of namespaces, pods and NetworkPolicies as dicts."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import strategies as st

Obj = dict[str, Any]
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network

NAMESPACES = ("x", "y", "z")
LABEL_KEYS = ("app", "tier")
LABEL_VALUES = ("a", "b")
PORT_NAMES = ("web", "api")
PROTOCOLS = ("TCP", "UDP", "SCTP")


def labels() -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(st.sampled_from(LABEL_KEYS), st.sampled_from(LABEL_VALUES), max_size=2)


def selector() -> st.SearchStrategy[Obj]:
    expr = st.fixed_dictionaries(
        {
            "key": st.sampled_from(LABEL_KEYS),
            "operator": st.sampled_from(("In", "NotIn", "Exists", "DoesNotExist")),
        }
    ).flatmap(
        lambda e: (
            st.just(e)
            if e["operator"] in ("Exists", "DoesNotExist")
            else st.lists(st.sampled_from(LABEL_VALUES), min_size=1, max_size=2, unique=True).map(
                lambda vs: {**e, "values": vs}
            )
        )
    )
    return st.fixed_dictionaries(
        {},
        optional={"matchLabels": labels(), "matchExpressions": st.lists(expr, max_size=2)},
    )


@st.composite
def ip_block(draw: st.DrawFn) -> Obj:
    """Blocks are cut from the pods' ranges (10.0.0.0/24, fd00::/120) so that they hit pods."""
    base = ipaddress.ip_network(draw(st.sampled_from(("10.0.0.0/24", "fd00::/120"))))
    cidr = _subnet(draw, base)
    block: Obj = {"cidr": str(cidr)}
    if cidr.prefixlen < cidr.max_prefixlen:
        excepts = {str(_subnet(draw, cidr, strict=True)) for _ in range(draw(st.integers(0, 2)))}
        if excepts:
            block["except"] = sorted(excepts)
    return block


def _subnet(draw: st.DrawFn, net: IPNet, *, strict: bool = False) -> IPNet:
    plen = draw(st.integers(net.prefixlen + (1 if strict else 0), net.max_prefixlen))
    subnets = list(net.subnets(new_prefix=plen)) if plen > net.prefixlen else [net]
    return draw(st.sampled_from(subnets))


def peer() -> st.SearchStrategy[Obj]:
    return st.one_of(
        ip_block().map(lambda b: {"ipBlock": b}),
        st.fixed_dictionaries(
            {}, optional={"podSelector": selector(), "namespaceSelector": selector()}
        ).filter(bool),
    )


def port() -> st.SearchStrategy[Obj]:
    numeric = st.tuples(st.integers(1, 30), st.integers(0, 5), st.booleans()).map(
        lambda t: {"port": t[0], "endPort": t[0] + t[1]} if t[2] else {"port": t[0]}
    )
    named = st.sampled_from(PORT_NAMES).map(lambda n: {"port": n})
    body = st.one_of(numeric, named, st.just({}))
    return st.tuples(body, st.one_of(st.none(), st.sampled_from(PROTOCOLS))).map(
        lambda t: {**t[0], **({"protocol": t[1]} if t[1] else {})}
    )


def rule(peer_key: str) -> st.SearchStrategy[Obj]:
    return st.fixed_dictionaries(
        {}, optional={peer_key: st.lists(peer(), max_size=2), "ports": st.lists(port(), max_size=2)}
    )


def policy(index: int) -> st.SearchStrategy[Obj]:
    spec = st.fixed_dictionaries(
        {"podSelector": selector()},
        optional={
            "ingress": st.lists(rule("from"), max_size=2),
            "egress": st.lists(rule("to"), max_size=2),
            "policyTypes": st.sampled_from((["Ingress"], ["Egress"], ["Ingress", "Egress"])),
        },
    )
    return st.tuples(st.sampled_from(NAMESPACES), spec).map(
        lambda t: {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": f"p{index}", "namespace": t[0]},
            "spec": t[1],
        }
    )


def pod(index: int) -> st.SearchStrategy[Obj]:
    cport = st.tuples(st.sampled_from(PORT_NAMES), st.integers(1, 30), st.sampled_from(PROTOCOLS))
    return st.tuples(
        st.sampled_from(NAMESPACES),
        labels(),
        st.lists(cport, max_size=2, unique_by=lambda c: c[0]),
        st.booleans(),
    ).map(
        lambda t: {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"pod{index}", "namespace": t[0], "labels": t[1]},
            "spec": {
                "nodeName": "node-a",
                "containers": [
                    {
                        "name": "c",
                        "ports": [{"name": n, "containerPort": p, "protocol": pr} for n, p, pr in t[2]],
                    }
                ],
            },
            "status": {
                "phase": "Running",
                "podIPs": [{"ip": f"10.0.0.{index + 1}"}]
                + ([{"ip": f"fd00::{index + 1:x}"}] if t[3] else []),
            },
        }
    )


@st.composite
def clusters(draw: st.DrawFn) -> list[Obj]:
    ns_objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": draw(labels())}}
        for n in NAMESPACES
    ]
    n_pods = draw(st.integers(1, 5))
    n_pols = draw(st.integers(0, 3))
    pods = [draw(pod(i)) for i in range(n_pods)]
    pols = [draw(policy(i)) for i in range(n_pols)]
    return ns_objs + pods + pols
