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


# -- Policy tiers (AdminNetworkPolicy / BaselineAdminNetworkPolicy v1alpha1, ClusterNetworkPolicy
# v1alpha2): random tier policies over the clusters above, plus Nodes for `nodes` peers.

NODE_ADDRESSES = {"node-a": ("10.0.0.100", "fd00::64"), "node-b": ("10.0.0.101", "fd00::65")}
OUTSIDE_ADDRESSES = ("10.0.0.200", "192.0.2.1", "fd00::c8")


def node_objects(draw: st.DrawFn) -> list[Obj]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": draw(labels())},
            "status": {"addresses": [{"type": "InternalIP", "address": ip} for ip in ips]},
        }
        for name, ips in NODE_ADDRESSES.items()
    ]


def tier_subject() -> st.SearchStrategy[Obj]:
    return st.one_of(
        st.just({"namespaces": {}}),  # every pod: random selectors alone rarely meet random labels
        selector().map(lambda s: {"namespaces": s}),
        st.tuples(selector(), selector()).map(
            lambda t: {"pods": {"namespaceSelector": t[0], "podSelector": t[1]}}
        ),
    )


@st.composite
def tier_peer(draw: st.DrawFn, egress: bool) -> Obj:
    kinds = ["namespaces", "pods"] + (["networks", "nodes"] if egress else [])
    kind = draw(st.sampled_from(kinds))
    if draw(st.integers(0, 3)) == 0 and kind in ("namespaces", "nodes"):
        return {kind: {}}  # every namespace's pods, every node
    if kind == "namespaces":
        return {"namespaces": draw(selector())}
    if kind == "pods":
        return {"pods": {"namespaceSelector": draw(selector()), "podSelector": draw(selector())}}
    if kind == "nodes":
        return {"nodes": draw(selector())}
    nets = {str(ipaddress.ip_network(draw(ip_block())["cidr"])) for _ in range(draw(st.integers(1, 2)))}
    return {"networks": sorted(nets)}


@st.composite
def tier_ports(draw: st.DrawFn, version: str) -> Obj:
    """`ports` (v1alpha1) or `protocols` (v1alpha2): numbers, ranges or names of the pods' ports."""
    out = []
    for _ in range(draw(st.integers(1, 2))):
        form = draw(st.sampled_from(("number", "range", "named")))
        proto = draw(st.sampled_from(PROTOCOLS))
        low = draw(st.integers(1, 12))  # near the probes' ports, so that port-scoped rules match
        high = low + draw(st.integers(1, 5))
        name = draw(st.sampled_from(PORT_NAMES))
        if version == "v1alpha1":
            if form == "number":
                out.append({"portNumber": {"protocol": proto, "port": low}})
            elif form == "range":
                out.append({"portRange": {"protocol": proto, "start": low, "end": high}})
            else:
                out.append({"namedPort": name})
        elif form == "named":
            out.append({"destinationNamedPort": name})
        else:
            dest = {"number": low} if form == "number" else {"range": {"start": low, "end": high}}
            out.append({proto.lower(): {"destinationPort": dest}})
    return {"ports" if version == "v1alpha1" else "protocols": out}


@st.composite
def tier_rule(draw: st.DrawFn, version: str, actions: tuple[str, ...], egress: bool, index: int) -> Obj:
    peers = draw(st.lists(tier_peer(egress), min_size=1, max_size=2))
    rule: Obj = {
        "name": f"r{index}",
        "action": draw(st.sampled_from(actions)),
        "to" if egress else "from": peers,
    }
    # The v1alpha2 CRD forbids destinationNamedPort next to networks/nodes peers; keep that valid.
    plain = all(k in ("namespaces", "pods") for p in peers for k in p)
    if draw(st.booleans()):
        ports = draw(tier_ports(version))
        named = any("namedPort" in p or "destinationNamedPort" in p for v in ports.values() for p in v)
        if plain or not named:
            rule.update(ports)
    return rule


@st.composite
def tier_spec(draw: st.DrawFn, version: str, actions: tuple[str, ...]) -> Obj:
    spec: Obj = {"subject": draw(tier_subject())}
    for field, egress in (("ingress", False), ("egress", True)):
        n = draw(st.integers(0, 3))
        if n:
            spec[field] = [draw(tier_rule(version, actions, egress, i)) for i in range(n)]
    return spec


@st.composite
def tier_policies(draw: st.DrawFn) -> list[Obj]:
    """Tier policies of one API version (the API does not order v1alpha1 against v1alpha2), with
    distinct priorities within a tier (equal ones may apply in either order, by the API's text)."""
    version = draw(st.sampled_from(("v1alpha1", "v1alpha2")))
    group = f"policy.networking.k8s.io/{version}"
    out: list[Obj] = []
    admin_prios = draw(st.lists(st.integers(0, 1000), min_size=1, max_size=3, unique=True))
    if version == "v1alpha1":
        for i, prio in enumerate(admin_prios):
            spec = {"priority": prio, **draw(tier_spec(version, ("Allow", "Deny", "Pass")))}
            out.append(
                {
                    "apiVersion": group,
                    "kind": "AdminNetworkPolicy",
                    "metadata": {"name": f"anp{i}"},
                    "spec": spec,
                }
            )
        if draw(st.booleans()):
            spec = draw(tier_spec(version, ("Allow", "Deny")))
            out.append(
                {
                    "apiVersion": group,
                    "kind": "BaselineAdminNetworkPolicy",
                    "metadata": {"name": "default"},
                    "spec": spec,
                }
            )
        return out
    base_prios = draw(st.lists(st.integers(0, 1000), max_size=2, unique=True))
    for tier, prios, actions in (
        ("Admin", admin_prios, ("Accept", "Deny", "Pass")),
        ("Baseline", base_prios, ("Accept", "Deny")),
    ):
        for i, prio in enumerate(prios):
            spec = {"tier": tier, "priority": prio, **draw(tier_spec(version, actions))}
            name = f"{tier.lower()}{i}"
            out.append(
                {
                    "apiVersion": group,
                    "kind": "ClusterNetworkPolicy",
                    "metadata": {"name": name},
                    "spec": spec,
                }
            )
    return out


@st.composite
def tiered_clusters(draw: st.DrawFn) -> list[Obj]:
    """A random cluster with NetworkPolicies (clusters()), Nodes and tier policies."""
    return draw(clusters()) + node_objects(draw) + draw(tier_policies())
