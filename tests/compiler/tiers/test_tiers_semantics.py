"""Three-tier policy decisions through the compiled pipeline and our interpreter, frame by frame.

The rules are those of the SIG Network Policy API (kubernetes-sigs/network-policy-api):
apis/v1alpha1/adminnetworkpolicy_types.go (AdminNetworkPolicySpec.Priority, the rule actions
Allow/Deny/Pass, "rules in written order"), baselineadminnetworkpolicy_types.go, and
apis/v1alpha2/clusternetworkpolicy_types.go (ClusterNetworkPolicySpec.Tier: "Admin tier ->
NetworkPolicy tier -> Baseline tier", then the default allow).
"""

from __future__ import annotations

import pytest

from k8s_offload.compiler.bundle.schema import BundleError
from tests.compiler.tiers.harness import (
    Cluster,
    anp,
    banp,
    base,
    cnp,
    netpol,
    node_facts,
    ns_subject,
    pod_peer,
)

ALL_NS = {"namespaces": {}}


def test_admin_deny_cuts_a_connection_networkpolicy_allows() -> None:
    """Deny: "No further NetworkPolicy rules will be processed" (the guardrail of issue 20)."""
    np = netpol("y", "allow-all", None, ["Ingress"], ingress=[{}])
    assert Cluster([*base(), np]).allowed("x/a", "y/a")
    guard = anp(
        "sre-guardrails",
        10,
        ns_subject("a"),
        egress=[
            {"name": "dns", "action": "Allow", "to": [{"networks": ["8.8.8.8/32"]}]},
            {"name": "no-y", "action": "Deny", "to": [{"namespaces": {"matchLabels": {"team": "b"}}}]},
        ],
    )
    c = Cluster([*base(), np, guard])
    v = c.probe("x/a", "y/a")
    assert not v.allowed
    assert v.reason.startswith("by AdminNetworkPolicy sre-guardrails rule 2 (egress)")
    assert c.allowed("y/a", "x/a")  # the subject is namespace x's pods only


def test_admin_allow_overrides_networkpolicy_deny() -> None:
    deny_all = netpol("y", "deny-all", None, ["Ingress"])
    assert not Cluster([*base(), deny_all]).allowed("x/a", "y/a")
    allow = anp(
        "allow-x",
        5,
        ns_subject("b"),
        ingress=[{"action": "Allow", "from": [{"namespaces": {"matchLabels": {"team": "a"}}}]}],
    )
    c = Cluster([*base(), deny_all, allow])
    assert c.allowed("x/a", "y/a")
    assert not c.allowed("y/b", "y/a")  # not matched by the admin rule: NetworkPolicy denies


def test_pass_hands_over_to_networkpolicy_and_stops_the_tier() -> None:
    """Pass skips the tier's remaining rules (a later Deny does not apply)."""
    np_deny = netpol("y", "deny-all", None, ["Ingress"])
    np_allow = netpol("y", "allow-all", None, ["Ingress"], ingress=[{}])
    rules = {
        "ingress": [
            {"action": "Pass", "from": [pod_peer("a", "a")]},
            {"action": "Deny", "from": [ALL_NS]},
        ]
    }
    policy = anp("pass-then-deny", 1, ns_subject("b"), **rules)
    assert Cluster([*base(), policy, np_allow]).allowed("x/a", "y/a")
    assert not Cluster([*base(), policy, np_allow]).allowed("x/b", "y/a")  # rule 2 denies
    v = Cluster([*base(), policy, np_deny]).probe("x/a", "y/a")
    assert not v.allowed and "NetworkPolicy" in " ".join(str(n) for n in v.decided_by)


def test_pass_without_networkpolicy_goes_to_baseline() -> None:
    passing = anp("pass", 1, ns_subject("b"), ingress=[{"action": "Pass", "from": [ALL_NS]}])
    baseline = banp(ns_subject("b"), ingress=[{"action": "Deny", "from": [ALL_NS]}])
    c = Cluster([*base(), passing, baseline])
    v = c.probe("x/a", "y/a")
    assert not v.allowed
    assert v.reason.startswith("by BaselineAdminNetworkPolicy default rule 1 (ingress)")


def test_networkpolicy_isolation_hides_the_baseline() -> None:
    """ "v1.NetworkPolicy always makes a final decision for selected pods": isolated and allowed is
    allowed whatever the baseline says; isolated and not allowed is denied by NetworkPolicy."""
    baseline = banp(ns_subject("b"), ingress=[{"action": "Deny", "from": [ALL_NS]}])
    allow_x = netpol(
        "y",
        "from-x",
        "a",
        ["Ingress"],
        ingress=[{"from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}],
    )
    c = Cluster([*base(), baseline, allow_x])
    assert c.allowed("x/a", "y/a")  # isolated and allowed
    assert not c.allowed("y/b", "y/a")  # isolated, not allowed
    assert not c.allowed("x/a", "y/b")  # not isolated: the baseline denies
    baseline_allow = banp(ns_subject("b"), ingress=[{"action": "Allow", "from": [ALL_NS]}])
    assert not Cluster([*base(), baseline_allow, allow_x]).allowed("y/b", "y/a")


def test_priority_lower_value_first_and_rule_order() -> None:
    allow = anp("allow", 1, ns_subject("b"), ingress=[{"action": "Allow", "from": [ALL_NS]}])
    deny = anp("deny", 2, ns_subject("b"), ingress=[{"action": "Deny", "from": [ALL_NS]}])
    assert Cluster([*base(), allow, deny]).allowed("x/a", "y/a")
    deny_first = anp("deny", 0, ns_subject("b"), ingress=[{"action": "Deny", "from": [ALL_NS]}])
    assert not Cluster([*base(), allow, deny_first]).allowed("x/a", "y/a")
    ordered = anp(
        "ordered",
        3,
        ns_subject("b"),
        ingress=[
            {"action": "Deny", "from": [pod_peer("a", "a")], "ports": [{"portNumber": {"port": 80}}]},
            {"action": "Allow", "from": [ALL_NS]},
        ],
    )
    c = Cluster([*base(), ordered, netpol("y", "deny", None, ["Ingress"])])
    assert not c.allowed("x/a", "y/a", 80)
    assert c.allowed("x/a", "y/a", 81)
    assert c.allowed("x/b", "y/a", 80)


def test_equal_priority_is_deterministic_and_warned() -> None:
    """ "the implementation can apply any of the matching policies": we apply the policy whose name
    sorts first, and say so."""
    a_deny = anp("a-deny", 4, ns_subject("b"), ingress=[{"action": "Deny", "from": [ALL_NS]}])
    b_allow = anp("b-allow", 4, ns_subject("b"), ingress=[{"action": "Allow", "from": [ALL_NS]}])
    c = Cluster([*base(), b_allow, a_deny])
    assert not c.allowed("x/a", "y/a")
    warned = [w for w in c.warnings() if "same tier and priority" in w]
    assert warned == [
        "warning: AdminNetworkPolicy a-deny: AdminNetworkPolicy b-allow has the same tier and priority (4) "
        "and selects the same pods with rules of other actions for the same traffic; the API lets either "
        "apply: AdminNetworkPolicy a-deny is applied first (equal priorities are ordered by name, then kind)"
    ]
    same = anp("b-deny", 4, ns_subject("b"), ingress=[{"action": "Deny", "from": [ALL_NS]}])
    assert not [w for w in Cluster([*base(), a_deny, same]).warnings() if "same tier" in w]


def test_port_number_range_and_named_port_per_pod() -> None:
    """namedPort resolves on the receiving pod: x/a names 8080 "web", x/b names 9090."""
    rules = {
        "ingress": [
            {
                "action": "Deny",
                "from": [ALL_NS],
                "ports": [{"portRange": {"protocol": "UDP", "start": 5000, "end": 5010}}],
            },
            {"action": "Deny", "from": [ALL_NS], "ports": [{"namedPort": "web"}]},
        ]
    }
    c = Cluster([*base(), anp("ports", 1, ns_subject("a"), **rules)])
    assert not c.allowed("y/a", "x/a", 5005, "UDP")
    assert c.allowed("y/a", "x/a", 5005, "TCP")
    assert c.allowed("y/a", "x/a", 5011, "UDP")
    assert not c.allowed("y/a", "x/a", 8080)
    assert c.allowed("y/a", "x/a", 9090)
    assert not c.allowed("y/a", "x/b", 9090)
    assert c.allowed("y/a", "x/b", 8080)


def test_egress_named_port_on_destination_pods() -> None:
    rule = {"action": "Deny", "to": [ALL_NS], "ports": [{"namedPort": "web"}]}
    c = Cluster([*base(), anp("named", 1, ns_subject("a"), egress=[rule])])
    assert not c.allowed("x/a", "y/a", 8080)
    assert c.allowed("x/a", "y/b", 8080)
    assert not c.allowed("x/a", "y/b", 9090)


@pytest.mark.parametrize(
    ("network", "blocked"), [("10.0.2.0/24", "10.0.2.1"), ("fd00::200/120", "fd00::201")]
)
def test_networks_v4_and_v6(network: str, blocked: str) -> None:
    rule = {"action": "Deny", "to": [{"networks": [network]}]}
    c = Cluster([*base(), anp("nets", 1, ns_subject("a"), egress=[rule])])
    assert not c.allowed("x/a", blocked)
    other = "10.0.1.2" if ":" not in blocked else "fd00::102"
    assert c.allowed("x/a", other)


def test_nodes_peer_matches_node_addresses() -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-b", "labels": {"role": "infra"}},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "192.168.7.2"},
                {"type": "Hostname", "address": "node-b"},
            ]
        },
    }
    rule = {"action": "Deny", "to": [{"nodes": {"matchLabels": {"role": "infra"}}}]}
    c = Cluster([*base(), node, anp("nodes", 1, ns_subject("a"), egress=[rule])])
    assert not c.allowed("x/a", "192.168.7.2")
    assert c.allowed("x/a", "192.168.7.3")
    relabelled = {**node, "metadata": {"name": "node-b", "labels": {"role": "worker"}}}
    assert Cluster([*base(), relabelled, anp("nodes", 1, ns_subject("a"), egress=[rule])]).allowed(
        "x/a", "192.168.7.2"
    )


def test_host_network_pods_are_neither_subjects_nor_pod_peers() -> None:
    """ "host-networked pods are not included in subject selection" and in namespaces/pods peers."""
    rule = {"action": "Deny", "to": [ALL_NS]}
    c = Cluster(
        [
            *base(host_network=("y/b",)),
            anp("all", 1, ns_subject("b"), egress=[rule]),
            anp("to", 2, ns_subject("a"), egress=[rule]),
        ]
    )
    subjects = {(pt.pod.ref, pt.direction.value) for pt in c.result.lowered.tiers}
    assert ("y/a", "Egress") in subjects and ("y/b", "Egress") not in subjects
    (xa,) = [pt for pt in c.result.lowered.tiers if pt.pod.ref == "x/a"]
    peers = xa.tier_set.entries[0].rule.peers
    assert peers is not None
    import ipaddress

    assert ipaddress.ip_address("10.0.2.1") in peers and ipaddress.ip_address("10.0.2.2") not in peers


def test_both_sides_of_one_connection() -> None:
    """A connection needs the client's egress and the server's ingress: each tier stack decides its side."""
    egress_allow = anp("out", 1, ns_subject("a"), egress=[{"action": "Allow", "to": [ALL_NS]}])
    ingress_deny = banp(ns_subject("b"), ingress=[{"action": "Deny", "from": [ALL_NS]}])
    v = Cluster([*base(), egress_allow, ingress_deny]).probe("x/a", "y/a")
    assert not v.allowed and "BaselineAdminNetworkPolicy default rule 1 (ingress)" in v.reason


def test_cluster_network_policy_tiers_and_protocols() -> None:
    admin = cnp(
        "admin",
        "Admin",
        1,
        ns_subject("b"),
        ingress=[
            {
                "action": "Accept",
                "from": [ALL_NS],
                "protocols": [{"tcp": {"destinationPort": {"number": 80}}}],
            },
            {
                "action": "Pass",
                "from": [ALL_NS],
                "protocols": [{"udp": {"destinationPort": {"range": {"start": 50, "end": 60}}}}],
            },
        ],
    )
    baseline = cnp("base", "Baseline", 1, ns_subject("b"), ingress=[{"action": "Deny", "from": [ALL_NS]}])
    c = Cluster([*base(), admin, baseline, netpol("y", "deny", "b", ["Ingress"])])
    assert c.allowed("x/a", "y/b", 80)  # Accept beats the NetworkPolicy
    assert not c.allowed("x/a", "y/a", 55, "UDP")  # Pass, no NetworkPolicy: baseline denies
    v = c.probe("x/a", "y/a", 81)
    assert not v.allowed and v.reason.startswith("by ClusterNetworkPolicy base rule 1 (ingress)")


def test_domain_names_fail_closed() -> None:
    """Allow/Accept: the domainNames peer matches nothing; a Deny rule with one denies everything."""
    allow = anp(
        "names",
        1,
        ns_subject("a"),
        egress=[
            {"action": "Allow", "to": [{"domainNames": ["kubernetes.io"]}]},
            {"action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}]},
        ],
    )
    c = Cluster([*base(), allow])
    assert not c.allowed("x/a", "y/a")
    assert sum("domainNames" in w for w in c.warnings()) == 1
    deny = anp(
        "names", 1, ns_subject("a"), egress=[{"action": "Deny", "to": [{"domainNames": ["*.example.com"]}]}]
    )
    assert not Cluster([*base(), deny]).allowed("x/a", "y/a", 443)


def test_more_rules_than_bits_is_a_capacity_error() -> None:
    rules = [
        {"action": "Deny", "from": [ALL_NS], "ports": [{"portNumber": {"port": 1000 + i}}]} for i in range(65)
    ]
    with pytest.raises(
        BundleError, match="cluster policy tiers give 65 resolved rules; the pipeline holds 64"
    ):
        Cluster([*base(), anp("many", 1, ns_subject("b"), ingress=rules)])


def test_host_network_pods_in_trace_use_the_host_port_and_node_address() -> None:
    """A host-network pod sends and receives on the node's host port with the node's address: a
    `nodes` peer matches it, a `namespaces` peer does not, and no tier applies to its own traffic."""
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "node-a", "labels": {"role": "w"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.2.2"}]},
    }
    by_namespace = anp(
        "ns",
        1,
        ns_subject("a"),
        egress=[
            {
                "action": "Deny",
                "to": [{"namespaces": {"matchLabels": {"team": "b"}}}],
                "ports": [{"portNumber": {"port": 80}}],
            }
        ],
    )
    by_node = anp(
        "node",
        2,
        ns_subject("a"),
        egress=[
            {
                "action": "Deny",
                "to": [{"nodes": {"matchLabels": {"role": "w"}}}],
                "ports": [{"portNumber": {"port": 81}}],
            }
        ],
    )
    quiet = banp(ns_subject("b"), egress=[{"action": "Deny", "to": [ALL_NS]}])
    facts = node_facts(("10.0.2.2",), ("x/a", "x/b", "y/a"))
    c = Cluster([*base(host_network=("y/b",)), node, by_namespace, by_node, quiet], facts)
    assert c.allowed("x/a", "y/b", 80)  # not a namespaces peer
    v = c.probe("x/a", "y/b", 81)
    assert not v.allowed and v.reason.startswith("by AdminNetworkPolicy node rule 1 (egress)")
    assert not c.allowed("x/a", "y/a", 80)
    out = c.probe("y/b", "x/a", 80)  # never a subject: the baseline's egress deny does not apply
    assert out.allowed and out.path[0].ingress_port == c.result.ir.node.ports.host
    assert not c.allowed("y/a", "x/a", 80)


def test_host_network_pod_of_another_node_is_reached_through_that_nodes_host_port() -> None:
    """As upstream's node-peer conformance tests probe it: a client on the compiled node to the
    InternalIP of another node, where a host-network pod listens; allowed, the request crosses
    the uplink into the other node's pipeline and out of its host port; a `nodes` peer denies it."""
    nodes = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"role": role}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
        }
        for name, role, ip in (("node-a", "w", "192.168.10.11"), ("node-b", "infra", "192.168.10.12"))
    ]
    centaur = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "centaur", "namespace": "y", "labels": {"app": "centaur"}},
        "spec": {"nodeName": "node-b", "hostNetwork": True, "containers": [{"name": "c"}]},
        "status": {"phase": "Running", "podIPs": [{"ip": "192.168.10.12"}]},
    }
    facts = node_facts(("192.168.10.11",), ("x/a", "x/b", "y/a", "y/b"))
    objects = [*base(), *nodes, centaur]
    c = Cluster(objects, facts)
    v = c.probe("x/a", "192.168.10.12", 34345)
    assert v.allowed, v.reason
    assert [h.node for h in v.path] == ["node-a", "node-b", "node-b", "node-a"]
    assert v.path[1].delivered_to == "y/centaur" or v.path[1].egress_port == 2
    deny = anp(
        "infra",
        1,
        ns_subject("a"),
        egress=[{"action": "Deny", "to": [{"nodes": {"matchLabels": {"role": "infra"}}}]}],
    )
    v = Cluster([*objects, deny], facts).probe("x/a", "192.168.10.12", 34345)
    assert not v.allowed and v.reason.startswith("by AdminNetworkPolicy infra rule 1 (egress)")
    back = c.probe("y/centaur", "x/a", 80)
    assert back.allowed, back.reason


def test_dump_after_resolve_tiers(capsys: pytest.CaptureFixture[str]) -> None:
    """`--dump-after resolve_tiers`: each pod's tier rules in evaluation order, bit by bit."""
    from pathlib import Path

    from k8s_offload.cli.main import main

    case = Path(__file__).resolve().parents[1] / "golden" / "tiers"
    code = main(
        [
            str(case / "manifests.yaml"),
            "--node",
            str(case / "node.yaml"),
            "--dump-after",
            "resolve_tiers",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0
    lines = err.splitlines()
    start = lines.index("tiers egress prod/client addrs=[10.244.0.20,fd00:244::20]")
    assert lines[start + 1] == (
        "  bit 0 admin Allow AdminNetworkPolicy sre-guardrails rule 1 (egress): "
        "peers=10.96.0.10/32,fd00:96::10/128 ports=udp/53"
    )
    assert lines[start + 3].startswith("  bit 2 admin Pass AdminNetworkPolicy sre-guardrails rule 3 (egress)")
