"""The textual IR parses back: `parse(dump(ir)) == ir` and `dump(parse(text)) == text`, for the
cluster IR and the policy rule IR, on IRs built from random objects by the real front end, on IRs
drawn field by field (odd strings that need quoting included), and on every golden case."""

from __future__ import annotations

import ipaddress
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from k8s_offload.compiler.errors import Location, ManifestErrors
from k8s_offload.compiler.frontend.model import (
    ContainerPort,
    EndpointConditions,
    IPFamily,
    ObjectKey,
    Protocol,
    ServiceType,
)
from k8s_offload.compiler.frontend.nodefacts import Gateway, NodeFacts, PodAttachment, SpecialPorts
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
from k8s_offload.compiler.ir import build_ir, dump
from k8s_offload.compiler.ir.dump_rules import dump_rules
from k8s_offload.compiler.ir.model import (
    Backend,
    BackendSet,
    BackendSetKey,
    ClusterIR,
    Diagnostic,
    FrontendKind,
    NamespaceInfo,
    PodEndpoint,
    ServiceFrontend,
    ServiceInfo,
)
from k8s_offload.compiler.ir.parse import parse, parse_cluster_ir, parse_policy_ir
from k8s_offload.compiler.ir.rules import PodIsolation, PolicyIR, RuleSet
from k8s_offload.compiler.passes.merge_rules import merge_policy_rules
from k8s_offload.compiler.passes.resolve_policy import resolve_unmerged
from tests.compiler.golden.test_golden import GOOD, compile_case
from tests.compiler.incremental import objects
from tests.compiler.passes.test_rule_passes import rules as rule_tuples
from tests.policy import strategies as policy_strategies


def _round_trip_cluster(ir: ClusterIR) -> None:
    text = dump(ir)
    again = parse_cluster_ir(text)
    assert again == ir
    assert dump(again) == text


def _round_trip_policy(pir: PolicyIR) -> None:
    text = dump_rules(pir)
    again = parse_policy_ir(text)
    assert again == pir
    assert dump_rules(again) == text


# ---- IRs built by the front end from random objects --------------------------------------------
@st.composite
def built_irs(draw: st.DrawFn) -> ClusterIR:
    """Namespaces, pods and NetworkPolicies (the policy strategies) plus Services, slices and
    legacy Endpoints (the incremental compiler's pools), with or without node facts."""
    bodies = draw(policy_strategies.clusters()) + draw(st.lists(objects.any_object, max_size=12))
    by_key = {}
    for body in bodies:
        meta = body["metadata"]
        by_key[(body["kind"], meta.get("namespace", ""), meta["name"])] = body
    facts = draw(st.sampled_from((None, objects.facts(), objects.facts(zone="z0"))))
    try:
        return build_ir([objects.parse(b) for b in by_key.values()], facts)
    except ManifestErrors:  # e.g. two Services with one VIP: input errors, not IRs
        assume(False)
        raise


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(built_irs())
def test_built_cluster_ir_round_trips(ir: ClusterIR) -> None:
    _round_trip_cluster(ir)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(built_irs())
def test_resolved_policy_ir_round_trips(ir: ClusterIR) -> None:
    unmerged = resolve_unmerged(ir)
    _round_trip_policy(unmerged)
    _round_trip_policy(merge_policy_rules(unmerged))
    text = dump(ir) + dump_rules(unmerged)
    both = parse(text)
    assert (both.cluster, both.policy if unmerged.isolations else None) == (
        ir,
        unmerged if unmerged.isolations else None,
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(rule_tuples(), min_size=1, max_size=3), st.sampled_from(list(PolicyType)))
def test_random_rule_sets_round_trip(sets: list[tuple[object, ...]], direction: PolicyType) -> None:
    isolations = tuple(
        PodIsolation(
            ObjectKey("Pod", "a", f"p{i}"),
            direction,
            (ipaddress.IPv4Address(f"10.1.0.{i}"),),
            RuleSet(rules),  # type: ignore[arg-type]
            (ObjectKey("NetworkPolicy", "a", "np"),),
        )
        for i, rules in enumerate(sets)
    )
    _round_trip_policy(PolicyIR(isolations))


# ---- IRs drawn field by field ------------------------------------------------------------------
KEYWORDS = ("any", "local", "remote", "in", "notin", "ns", "pods", "ip", "declared", "headless", "-", "*")
# Words, keywords, and strings that must be quoted (spaces, quotes, brackets, non-ASCII, empty).
texts = st.one_of(
    st.text(string.ascii_lowercase + string.digits + "-._", min_size=1, max_size=8),
    st.sampled_from(KEYWORDS),
    st.text(max_size=6),
)
names = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=6)
v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
v6 = (
    st.integers(0, 2**128 - 1)
    .map(ipaddress.IPv6Address)
    .filter(lambda a: a.ipv4_mapped is None and a.scope_id is None)
)
macs = st.integers(0, 2**48 - 1).map(lambda v: ":".join(f"{(v >> s) & 255:02x}" for s in range(40, -8, -8)))
keys = st.builds(ObjectKey, st.just("Pod"), texts, texts)
labels = st.lists(st.tuples(texts, st.text(max_size=4)), max_size=3, unique_by=lambda kv: kv[0]).map(
    lambda kvs: tuple(sorted(kvs))
)
device_ports = st.integers(0, 509)
service_ports = st.integers(1, 65535)
conditions = st.builds(EndpointConditions, st.booleans(), st.booleans(), st.booleans())
protocols = st.sampled_from(list(Protocol))
port_names = st.sampled_from(("", "http", "dns-tcp", "p8080", "a1"))

node_facts = st.builds(
    NodeFacts,
    st.none() | texts,
    st.lists(v4 | v6, max_size=2).map(tuple),
    st.builds(Gateway, v4, st.none() | v6, macs),
    st.builds(SpecialPorts, device_ports, device_ports, device_ports),
    st.lists(
        st.builds(
            PodAttachment,
            texts,
            texts,
            device_ports,
            macs,
            st.none() | texts,
            st.none() | texts,
            st.none() | texts,
        ),
        max_size=2,
    ).map(tuple),
    st.none() | texts,
)
namespaces = st.builds(
    NamespaceInfo, st.builds(ObjectKey, st.just("Namespace"), st.just(""), texts), labels, st.booleans()
)
pods = st.builds(
    PodEndpoint,
    keys,
    labels,
    st.none() | v4,
    st.none() | v6,
    st.sampled_from(("", "node-a")) | texts,
    st.booleans(),
    st.none() | device_ports,
    st.none() | macs,
    st.lists(st.builds(ContainerPort, port_names, service_ports, protocols), max_size=2).map(tuple),
)
services = st.builds(
    ServiceInfo,
    st.builds(ObjectKey, st.just("Service"), texts, texts),
    st.sampled_from(list(ServiceType)),
    st.lists(v4 | v6, max_size=2).map(tuple),
    st.booleans(),
    st.none() | texts,
    external_local=st.booleans(),
    internal_local=st.booleans(),
    affinity_timeout=st.none() | st.integers(1, 86400),
    topology=st.booleans(),
)
set_keys = st.builds(
    BackendSetKey,
    st.builds(ObjectKey, st.just("Service"), texts, texts),
    port_names,
    st.sampled_from(list(IPFamily)),
)
frontends = st.builds(
    ServiceFrontend,
    st.builds(ObjectKey, st.just("Service"), texts, texts),
    v4 | v6,
    st.sampled_from(list(IPFamily)),
    protocols,
    service_ports,
    port_names,
    st.sampled_from(list(FrontendKind)),
)
sources = st.builds(ObjectKey, st.sampled_from(("EndpointSlice", "Endpoints", "Service")), texts, texts)
backends = st.builds(
    Backend,
    v4 | v6,
    service_ports,
    conditions,
    st.booleans(),
    st.none() | keys,
    st.none() | texts,
    st.lists(texts, max_size=2).map(tuple),
    st.none() | sources,
)
backend_sets = st.builds(
    BackendSet,
    set_keys,
    protocols,
    st.lists(backends, max_size=3).map(tuple),
    st.lists(sources, max_size=3).map(tuple),
)
requirements = st.one_of(
    st.builds(
        SelectorRequirement,
        texts,
        st.sampled_from((Operator.In, Operator.NotIn)),
        st.lists(texts, max_size=2).map(tuple),
    ),
    st.builds(
        SelectorRequirement, texts, st.sampled_from((Operator.Exists, Operator.DoesNotExist)), st.just(())
    ),
)
selectors = st.builds(LabelSelector, labels, st.lists(requirements, max_size=2).map(tuple))
v4_nets = st.builds(
    lambda a, p: ipaddress.IPv4Network((int(a) >> (32 - p) << (32 - p), p)), v4, st.integers(0, 32)
)
peers = st.one_of(
    st.builds(
        lambda c, e: PolicyPeer(None, None, IPBlock(c, e)), v4_nets, st.lists(v4_nets, max_size=2).map(tuple)
    ),
    st.builds(PolicyPeer, st.none() | selectors, selectors, st.none()),
    st.builds(PolicyPeer, selectors, st.none(), st.none()),
)
api_ports = st.one_of(
    st.builds(PolicyPort, protocols, st.none(), st.none()),
    st.builds(PolicyPort, protocols, st.sampled_from(("http", "dns-tcp", "p8080")), st.none()),
    st.builds(PolicyPort, protocols, service_ports, st.none() | st.just(65535)),
)
api_rules = st.builds(
    PolicyRule, st.lists(peers, max_size=2).map(tuple), st.lists(api_ports, max_size=2).map(tuple)
)
policies = st.builds(
    NetworkPolicy,
    st.builds(ObjectKey, st.just("NetworkPolicy"), texts, texts),
    labels,
    selectors,
    st.lists(st.sampled_from(list(PolicyType)), max_size=2, unique=True).map(tuple),
    st.lists(api_rules, max_size=2).map(tuple),
    st.lists(api_rules, max_size=2).map(tuple),
    st.just(Location("test")),
)
diagnostics = st.builds(
    Diagnostic,
    st.builds(ObjectKey, texts, texts, texts),
    st.text(max_size=12),
    st.sampled_from(("warning", "info", "error")),
)
drawn_irs = st.builds(
    ClusterIR,
    node_facts,
    *(
        st.lists(s, max_size=3).map(tuple)
        for s in (namespaces, pods, services, frontends, backend_sets, policies, diagnostics)
    ),
)


@settings(max_examples=300, deadline=None)
@given(drawn_irs)
def test_drawn_cluster_ir_round_trips(ir: ClusterIR) -> None:
    """Not a valid IR (nothing is sorted or cross-checked: `check_ir` is not the parser's job),
    but every field takes values the printer must quote or mark absent."""
    _round_trip_cluster(ir)


# ---- golden cases ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", GOOD, ids=[c.name for c in GOOD])
def test_golden_case_ir_round_trips(case: Path) -> None:
    result = compile_case(case)
    text = dump(result.ir) + dump_rules(result.lowered.policy)
    parsed = parse(text, str(case))
    assert parsed.cluster == result.ir
    assert parsed.policy == (result.lowered.policy if result.lowered.policy.isolations else None)
    assert dump(parsed.cluster) + (dump_rules(parsed.policy) if parsed.policy else "") == text


# ---- errors ------------------------------------------------------------------------------------
NODE = "node name=- ips=[] gateway=[169.254.1.1] mac=02:00:00:00:00:01 ports={arpProxy=1,host=2,uplink=3}\n"
NS = "namespace a declared labels={}\n"
BAD = [
    (NODE + NODE, "x:2:1: a second node line: there is one node per IR"),
    (NS, "x:1:1: a namespace line before the node line: the cluster IR starts with it"),
    (
        NODE + "pod a/p ipv4=- ipv6=- node=- remote labels={} ports=[]\n" + NS,
        "x:3:1: a namespace line must come before every pod line (docs/ir.md)",
    ),
    (
        "widget a\n",
        "x:1:1: unexpected 'widget'; expected 'attach', 'backends', 'diagnostic', 'frontend', "
        "'hostnetwork', 'isolation', 'k8snode', 'namespace'",
    ),
    (
        NODE + "pod a/p ipv4=- ipv6=10.0.0.1 node=- remote labels={} ports=[]\n",
        "x:2:21: ipv6= must be an IPv6 address, got 10.0.0.1",
    ),
    (
        NODE + "pod a/p ipv4=- ipv6=::ffff:10.0.0.1 node=- remote labels={} ports=[]\n",
        "x:2:21: bad address: must not be an IPv4-mapped IPv6 address, got '::ffff:10.0.0.1' (use 10.0.0.1)",
    ),
    (
        NODE + "backends a/s:-/IPv4 TCP ready=1/1 reject [10.0.0.1:80 down] from=[Service/s]\n",
        "x:2:31: ready=1/1 but 0 of the 1 backends listed are ready",
    ),
    (
        NODE + "backends a/s:-/IPv4 TCP ready=0/1 [10.0.0.1:80 down] from=[Service/s]\n",
        "x:2:31: reject is missing: the set has no backend that takes new connections",
    ),
    (NODE + 'diagnostic warning Pod a/p "\\x"\n', 'x:2:28: bad string "\\x": write it as a JSON string'),
    (
        NODE + "policy a/np types=[Ingress] pods={} ingress=[{peers=* ports=[TCP/a--b]}] egress=[]\n",
        "x:2:66: a named port must not contain consecutive hyphens, got 'a--b'",
    ),
    (
        "isolation ingress a/p addrs=[] policies=[]\n  rule 1 peers=any ports=any\n",
        "x:2:8: rule 1 out of order: this is rule 0",
    ),
    (
        "isolation ingress a/p addrs=[] policies=[]\n  rule 0 peers=any ports=tcp/9-8\n",
        "x:2:30: the range's end must be between 9 and 65535, got 8",
    ),
    ("  rule 0 peers=any ports=any\n", "x:1:3: a rule line must follow an isolation line"),
    (
        NODE + 'tier {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy", '
        '"metadata": {"name": "p"}, "spec": {"priority": 1001, "subject": {"namespaces": {}}}}\n',
        "x:2:6: spec.priority: must be between 0 and 1000, got 1001",
    ),
    (NODE + 'tier {"kind": "Pod"}\n', "x:2:6: not a cluster policy manifest: kind 'Pod'"),
    (NODE + "tier {nope}\n", "x:2:6: a tier line holds one JSON object (the policy's manifest)"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m.split(": ", 1)[1][:40] for _, m in BAD])
def test_bad_text_names_line_column_and_reason(text: str, message: str) -> None:
    with pytest.raises(ManifestErrors) as err:
        parse(text, "x")
    assert str(err.value) == message


def test_every_bad_line_is_reported() -> None:
    text = NODE + "pod a/p ipv4=1.2.3 ipv6=- node=- remote labels={} ports=[]\n" + "# a comment\n\nservice\n"
    with pytest.raises(ManifestErrors) as err:
        parse(text, "x")
    assert [str(e).split(": ", 1)[0] for e in err.value.errors] == ["x:2:14", "x:5:8"]


def test_names_that_are_keywords_or_odd_are_quoted() -> None:
    pod = PodEndpoint(
        ObjectKey("Pod", "local", "a b"), (("in", "-"),), None, None, "any", False, None, None, ()
    )
    gateway = Gateway(ipaddress.IPv4Address("169.254.1.1"), None, "02:00:00:00:00:01")
    ir = ClusterIR(NodeFacts(None, (), gateway, SpecialPorts(1, 2, 3), ()), (), (pod,), (), (), (), (), ())
    assert dump(ir).splitlines()[1] == (
        'pod "local"/"a b" ipv4=- ipv6=- node="any" remote labels={"in"="-"} ports=[]'
    )
    _round_trip_cluster(ir)
