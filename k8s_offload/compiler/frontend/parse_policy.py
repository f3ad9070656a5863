"""NetworkPolicy (networking.k8s.io/v1), validated like the API server validates it."""

from __future__ import annotations

from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.frontend import validation
from k8s_offload.compiler.frontend.common import read_labels, read_meta, read_protocol, unsupported
from k8s_offload.compiler.frontend.fields import Checker, Raw, at
from k8s_offload.compiler.frontend.model import IPNetwork, net_sort_key
from k8s_offload.compiler.frontend.policy import (
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Operator,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    PolicyType,
    SelectorRequirement,
)


def parse_network_policy(c: Checker, raw: Raw, location: Location) -> NetworkPolicy:
    key, labels = read_meta(c, raw, "NetworkPolicy", namespaced=True, name_rule=validation.dns1123_subdomain)
    spec = c.mapping(raw, "spec", "")
    if "podSelector" not in spec:
        c.fail("spec.podSelector", "Required value")
    pod_selector = read_selector(c, spec, "podSelector", "spec")
    ingress = tuple(_rule(c, path, r, "from") for path, r in c.objects(spec, "ingress", "spec"))
    egress = tuple(_rule(c, path, r, "to") for path, r in c.objects(spec, "egress", "spec"))
    return NetworkPolicy(
        key=key,
        labels=labels,
        pod_selector=pod_selector,
        policy_types=_policy_types(c, spec, has_egress=bool(spec.get("egress"))),
        ingress=ingress,
        egress=egress,
        location=location,
    )


def _policy_types(c: Checker, spec: Raw, *, has_egress: bool) -> tuple[PolicyType, ...]:
    """Defaulted as the API server does (SetDefaults_NetworkPolicy): Ingress always, Egress when
    `egress` holds at least one rule; an empty `egress: []` does not add Egress."""
    entries = c.strings(spec, "policyTypes", "spec")
    if len(entries) > 2:
        c.fail("spec.policyTypes", f"may not specify more than two policyTypes, got {len(entries)}")
    types: list[PolicyType] = []
    for path, text in entries:
        try:
            ptype = PolicyType(text)
        except ValueError:
            c.fail(path, unsupported(text, ("Egress", "Ingress")))
            continue
        if ptype in types:
            c.fail(path, f'Duplicate value: "{text}"')
            continue
        types.append(ptype)
    if not entries:
        types = [PolicyType.Ingress, PolicyType.Egress] if has_egress else [PolicyType.Ingress]
    return tuple(sorted(types, key=lambda t: t != PolicyType.Ingress))


def read_selector(c: Checker, obj: Raw, key: str, path: str) -> LabelSelector:
    """A metav1.LabelSelector; absent and `{}` both mean "everything"."""
    raw = c.mapping(obj, key, path)
    spath = at(path, key)
    match_labels = read_labels(c, raw, "matchLabels", spath)
    requirements: list[SelectorRequirement] = []
    for rpath, req in c.objects(raw, "matchExpressions", spath):
        req_key = c.string(req, "key", rpath, required=True) or ""
        if req_key and (reason := validation.qualified_name(req_key)) is not None:
            c.fail(at(rpath, "key"), reason)
        op_text = c.string(req, "operator", rpath, required=True)
        values = c.strings(req, "values", rpath)
        for vpath, value in values:
            if (reason := validation.label_value(value)) is not None:
                c.fail(vpath, reason)
        if op_text is None:
            continue
        try:
            operator = Operator(op_text)
        except ValueError:
            c.fail(at(rpath, "operator"), unsupported(op_text, (o.value for o in Operator)))
            continue
        if operator in (Operator.In, Operator.NotIn) and not values:
            c.fail(at(rpath, "values"), "must be specified when `operator` is 'In' or 'NotIn'")
        if operator in (Operator.Exists, Operator.DoesNotExist) and values:
            c.fail(at(rpath, "values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
        requirements.append(SelectorRequirement(req_key, operator, tuple(sorted({v for _, v in values}))))
    return LabelSelector(match_labels, tuple(requirements))


def _rule(c: Checker, path: str, raw: Raw, peers_key: str) -> PolicyRule:
    ports = tuple(_port(c, ppath, p) for ppath, p in c.objects(raw, "ports", path))
    peers = tuple(_peer(c, ppath, p) for ppath, p in c.objects(raw, peers_key, path))
    return PolicyRule(peers=peers, ports=ports)


def _peer(c: Checker, path: str, raw: Raw) -> PolicyPeer:
    has_pods = raw.get("podSelector") is not None
    has_namespaces = raw.get("namespaceSelector") is not None
    has_block = raw.get("ipBlock") is not None
    if not (has_pods or has_namespaces or has_block):
        c.fail(path, "Required value: must specify a peer")
    if has_block and (has_pods or has_namespaces):
        c.fail(path, "may not specify both ipBlock and another peer")
    return PolicyPeer(
        pod_selector=read_selector(c, raw, "podSelector", path) if has_pods else None,
        namespace_selector=read_selector(c, raw, "namespaceSelector", path) if has_namespaces else None,
        ip_block=_ip_block(c, at(path, "ipBlock"), c.mapping(raw, "ipBlock", path)) if has_block else None,
    )


def _ip_block(c: Checker, path: str, raw: Raw) -> IPBlock | None:
    text = c.string(raw, "cidr", path, required=True)
    if text is None:
        return None
    cidr = validation.parse_cidr(text)
    if isinstance(cidr, str):
        c.fail(at(path, "cidr"), cidr)
        return None
    excepts: list[IPNetwork] = []
    for epath, etext in c.strings(raw, "except", path):
        sub = validation.parse_cidr(etext)
        if isinstance(sub, str):
            c.fail(epath, sub)
        elif sub.version != cidr.version:
            c.fail(epath, f"must be of the same IP family as cidr {cidr}, got {etext}")
        elif not (sub.prefixlen > cidr.prefixlen and sub.subnet_of(cidr)):  # type: ignore[arg-type]
            c.fail(epath, f"must be a strict subset of `cidr` {cidr}, got {etext}")
        else:
            excepts.append(sub)
    return IPBlock(cidr, tuple(sorted(set(excepts), key=net_sort_key)))


def _port(c: Checker, path: str, raw: Raw) -> PolicyPort:
    protocol = read_protocol(c, raw, path)
    value = raw.get("port")
    port: int | str | None = None
    if value is None:
        pass
    elif isinstance(value, bool) or not isinstance(value, int | str):
        c.fail(at(path, "port"), "must be an integer or a string")
    elif isinstance(value, int):
        if (reason := validation.port_number(value)) is not None:
            c.fail(at(path, "port"), reason)
        else:
            port = value
    elif (reason := validation.iana_svc_name(value)) is not None:
        c.fail(at(path, "port"), reason)
    else:
        port = value
    end_port = c.integer(raw, "endPort", path)
    if end_port is not None:
        if value is None:
            c.fail(at(path, "port"), "must be specified when endPort is specified")
        elif isinstance(value, str):
            c.fail(at(path, "endPort"), "may not be specified when `port` is non-numeric")
        elif isinstance(value, int) and not isinstance(value, bool) and end_port < value:
            c.fail(at(path, "endPort"), f"must be greater than or equal to `port` ({value}), got {end_port}")
        elif (reason := validation.port_number(end_port)) is not None:
            c.fail(at(path, "endPort"), reason)
    return PolicyPort(protocol, port, end_port)
