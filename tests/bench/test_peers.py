"""The peer models of bench/peers.py on tiny clusters whose flows, map entries and rules are counted
by hand here, from the designs the module cites (one comment per count)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.peers import (
    antrea_policy,
    antrea_services,
    calico_policy,
    cilium_policy,
    cilium_services,
    compare,
    iptables_services,
    node_families,
    policy_views,
)
from bench.synth import node_facts
from k8s_offload.compiler.driver import CompileResult, compile_sources
from k8s_offload.compiler.ir.model import ClusterIR

Doc = dict[str, Any]


def _pod(name: str, ip: str, node: str, labels: dict[str, str], ports: list[Doc] | None = None) -> Doc:
    container: Doc = {"name": "main", "image": "x"}
    if ports:
        container["ports"] = ports
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": labels},
        "spec": {"nodeName": node, "containers": [container]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }


def _service(**spec: Any) -> Doc:
    spec.setdefault("clusterIP", "10.96.0.10")
    spec.setdefault("clusterIPs", ["10.96.0.10"])
    spec.setdefault("selector", {"app": "web"})
    spec.setdefault("ports", [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}])
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": spec,
    }


def _slice(*endpoints: tuple[str, str, bool]) -> Doc:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "endpoints": [
            {"addresses": [ip], "nodeName": node, "conditions": {"ready": ready, "serving": ready}}
            for ip, node, ready in endpoints
        ],
    }


def _policy(name: str, **spec: Any) -> Doc:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    }


def _compile(tmp_path: Path, docs: list[Doc], local: list[str]) -> CompileResult:
    """Node node-a holds the pods named in `local` (device ports 16, 17, ...)."""
    manifests = tmp_path / "cluster.yaml"
    manifests.write_text("\n---\n".join(json.dumps(d) for d in docs) + "\n")
    node = node_facts(
        "node-a",
        [
            {"namespace": "shop", "name": n, "port": 16 + i, "mac": f"02:00:00:00:01:{i:02x}"}
            for i, n in enumerate(local)
        ],
    )
    (tmp_path / "node.yaml").write_text(json.dumps(node))
    return compile_sources([manifests], tmp_path / "node.yaml")


WEB = [
    _pod("web-0", "10.0.0.2", "node-a", {"app": "web"}),
    _pod("web-1", "10.0.1.2", "node-b", {"app": "web"}),
]


def _ir(tmp_path: Path, *docs: Doc, local: tuple[str, ...] = ("web-0",)) -> ClusterIR:
    return _compile(tmp_path, [*WEB, *docs], list(local)).ir


# --- Services: one Service, two endpoints (10.0.0.2 on this node, 10.0.1.2 on another) ------------


def test_services_clusterip_two_endpoints(tmp_path: Path) -> None:
    ir = _ir(tmp_path, _service(), _slice(("10.0.0.2", "node-a", True), ("10.0.1.2", "node-b", True)))
    a = antrea_services(ir)
    # One select group with a bucket per endpoint; one ServiceLB flow (VIP:80); an EndpointDNAT flow
    # per endpoint; a hairpin SNAT flow for the local endpoint.
    assert (a["groups"], a["buckets"], a["service_lb_flows"]) == (1, 2, 1)
    assert (a["endpoint_dnat_flows"], a["hairpin_flows"], a["affinity_learn_flows"]) == (2, 1, 0)
    assert a["flows_and_groups"] == 1 + 2 + 1 + 1
    c = cilium_services(ir)
    # Master slot + 2 backend slots, 2 backends, 1 reverse NAT.
    assert (c["service_masters"], c["service_slots"], c["backends"], c["reverse_nat"]) == (1, 2, 2, 1)
    assert c["entries"] == 6
    k = iptables_services(ir)
    # KUBE-SERVICES jump, masquerade in KUBE-SVC, 2 probability jumps, 2 KUBE-SEP chains of 2 rules.
    assert k == {
        "KUBE-SEP": 4,
        "KUBE-SERVICES": 1,
        "KUBE-SVC endpoint jumps": 2,
        "KUBE-SVC/SVL masquerade": 1,
        "rules": 8,
    }


def test_services_not_ready_endpoint_installs_nothing(tmp_path: Path) -> None:
    ir = _ir(
        tmp_path,
        _service(),
        _slice(("10.0.0.2", "node-a", True), ("10.0.1.2", "node-b", True), ("10.0.2.2", "node-c", False)),
    )
    assert antrea_services(ir)["flows_and_groups"] == 5
    assert cilium_services(ir)["entries"] == 6
    assert iptables_services(ir)["rules"] == 8


def test_services_session_affinity(tmp_path: Path) -> None:
    svc = _service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    ir = _ir(tmp_path, svc, _slice(("10.0.0.2", "node-a", True), ("10.0.1.2", "node-b", True)))
    # Antrea: one learn flow per frontend; Cilium: an affinity-match entry per backend of the
    # frontend; kube-proxy: a `recent --rcheck` rule per endpoint in KUBE-SVC.
    assert antrea_services(ir)["affinity_learn_flows"] == 1
    assert antrea_services(ir)["flows_and_groups"] == 6
    assert cilium_services(ir)["affinity_match"] == 2
    assert cilium_services(ir)["entries"] == 8
    assert iptables_services(ir)["KUBE-SVC endpoint jumps"] == 4
    assert iptables_services(ir)["rules"] == 10


def test_services_without_endpoints(tmp_path: Path) -> None:
    ir = _ir(tmp_path, _service())
    # Antrea: the group exists with its one no-endpoint bucket, and the ServiceLB flow.
    a = antrea_services(ir)
    assert (a["groups"], a["buckets"], a["service_lb_flows"], a["flows_and_groups"]) == (1, 1, 1, 2)
    # Cilium: a master with no slots and the reverse NAT.
    assert cilium_services(ir)["entries"] == 2
    # kube-proxy: one filter REJECT rule.
    assert iptables_services(ir) == {"filter": 1, "rules": 1}


def test_services_nodeport(tmp_path: Path) -> None:
    svc = _service(
        type="NodePort",
        ports=[{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}],
    )
    ir = _ir(tmp_path, svc, _slice(("10.0.0.2", "node-a", True), ("10.0.1.2", "node-b", True)))
    # Antrea: ServiceLB flows for the cluster IP and the node port; group, 2 DNAT, 1 hairpin.
    assert antrea_services(ir)["flows_and_groups"] == 2 + 1 + 2 + 1
    # Cilium: frontends cluster IP, node IP:30080 and the 0.0.0.0 surrogate, each 1 + 2 slots
    # and a reverse NAT; 2 backends.
    assert cilium_services(ir)["entries"] == 3 * 3 + 3 + 2
    # kube-proxy: cluster IP jump, KUBE-NODEPORTS jump, masquerade, KUBE-EXT masquerade + jump,
    # 2 endpoint jumps, 2 x 2 KUBE-SEP.
    assert iptables_services(ir)["rules"] == 1 + 1 + 1 + 2 + 2 + 4


def test_services_nodeport_external_traffic_policy_local(tmp_path: Path) -> None:
    svc = _service(
        type="NodePort",
        externalTrafficPolicy="Local",
        ports=[{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}],
    )
    ir = _ir(tmp_path, svc, _slice(("10.0.0.2", "node-a", True), ("10.0.1.2", "node-b", True)))
    a = antrea_services(ir)
    # Antrea: a cluster group (2 buckets) and a local group (1); ServiceLB flows for the cluster
    # IP, the node port and the node port's local-client short-circuit.
    assert (a["groups"], a["buckets"], a["service_lb_flows"]) == (2, 3, 3)
    assert a["flows_and_groups"] == 3 + 2 + 1 + 2
    c = cilium_services(ir)
    # Cluster IP: one scope, 1 + 2; node IP and surrogate: two scopes each, (1 + 1) + (1 + 2).
    assert (c["service_masters"], c["service_slots"]) == (1 + 2 + 2, 2 + 3 + 3)
    assert c["entries"] == 5 + 8 + 2 + 3
    k = iptables_services(ir)
    # KUBE-EXT: pod short-circuit, LOCAL masquerade, LOCAL route, jump to KUBE-SVL; KUBE-SVL has
    # the local endpoint; KUBE-SEP for both endpoints.
    assert k["KUBE-EXT"] == 4
    assert k["KUBE-SVL endpoint jumps"] == 1
    assert k["rules"] == 1 + 1 + 1 + 4 + 2 + 1 + 4


# --- NetworkPolicy ---------------------------------------------------------------------------------

CLIENTS = [
    _pod("client-0", "10.0.1.4", "node-b", {"app": "client"}),
    _pod("client-1", "10.0.2.4", "node-c", {"app": "client"}),
]


def _models(ir: ClusterIR) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    views = policy_views(ir)
    local = [p for p in ir.pods if p.local and p.ips]
    cluster = [p for p in ir.pods if p.ips]
    return (
        antrea_policy(views, node_families(local), cluster),
        cilium_policy(views, local, cluster),
        calico_policy(views, local, cluster),
    )


def test_policy_two_peers_one_port(tmp_path: Path) -> None:
    pol = _policy(
        "web-in",
        podSelector={"matchLabels": {"app": "web"}},
        policyTypes=["Ingress"],
        ingress=[
            {
                "from": [
                    {"podSelector": {"matchLabels": {"app": "client"}}},
                    {"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}},
                ],
                "ports": [{"protocol": "TCP", "port": 80}],
            }
        ],
    )
    antrea, cilium, calico = _models(_ir(tmp_path, *CLIENTS, pol))
    # Antrea, IngressRule: source clause 2 client IPs + 8 networks of 192.168.0.0/16 minus
    # 192.168.1.0/24 (/24, /23, /22, /21, /20, /19, /18, /17); destination clause web-0's port;
    # service clause tcp/80; one conj_id flow and 2 metric flows; one default-drop flow.
    assert antrea["ingress_clause_flows"] == 10 + 1 + 1
    assert (antrea["ingress_of_rules"], antrea["ingress_action_flows"], antrea["ingress_metric_flows"]) == (
        1,
        1,
        2,
    )
    assert antrea["ingress_default_drop_flows"] == 1
    assert antrea["egress_of_rules"] == 0
    assert antrea["flows"] == 16
    # Cilium, web-0's map: ingress, the clients' identity and 8 CIDR identities on tcp/80; egress
    # not isolated: one allow-all entry.
    assert (cilium["entries"], cilium["max_per_endpoint"], cilium["endpoints_over_limit"]) == (10, 10, 0)
    # Calico: cali-pi- has a rule per peer: the selector rule (match + return) and the ipBlock rule
    # (negated block: reset + 1 except, then match + return), trailing return stripped: 5;
    # cali-po- is an empty placeholder: 1. web-0's chains: 9 fixed rules each way, plus tier start,
    # jump + return, end-of-tier drop for ingress. One IP set, the two clients.
    assert calico["policy_chain_rules"] == 6
    assert calico["endpoint_chain_rules"] == 9 + 4 + 9
    assert calico["rules"] == 28
    assert (calico["ipsets"], calico["ipset_members"]) == (1, 2)


def test_policy_egress_named_port_two_numbers(tmp_path: Path) -> None:
    dbs = [
        _pod("db-0", "10.0.1.3", "node-b", {"app": "db"}, [{"name": "pg", "containerPort": 5432}]),
        _pod("db-1", "10.0.1.5", "node-b", {"app": "db"}, [{"name": "pg", "containerPort": 5433}]),
    ]
    pol = _policy(
        "web-out",
        podSelector={"matchLabels": {"app": "web"}},
        policyTypes=["Egress"],
        egress=[{"to": [{"podSelector": {"matchLabels": {"app": "db"}}}], "ports": [{"port": "pg"}]}],
    )
    antrea, cilium, calico = _models(_ir(tmp_path, *dbs, pol))
    # Antrea, EgressRule: OF rules for db-0 (tcp/5432), db-1 (tcp/5433) and the rule with the
    # unresolved named port (no destination, no port: matches nothing). Clauses: web-0's source
    # address, 2 destinations, 2 ports. 3 conj_id + 6 metric flows, 1 default-drop flow.
    assert antrea["egress_of_rules"] == 3
    assert antrea["egress_clause_flows"] == 1 + 2 + 2
    assert antrea["flows"] == 5 + 3 + 6 + 1
    # Cilium: egress, the db identity on both numbers any pod gives "pg"; ingress allow-all.
    assert cilium["entries"] == 2 + 1
    # Calico: one rule (named port only: no block), match + return, return stripped: 1; ingress
    # placeholder 1. Endpoint chains 9 + 9 + 4. The named port's (IP, port) set of the db pods
    # replaces the selector's set.
    assert calico["policy_chain_rules"] == 2
    assert calico["rules"] == 2 + 22
    assert (calico["ipsets"], calico["ipset_members"]) == (1, 2)


def test_policy_default_deny_two_local_pods(tmp_path: Path) -> None:
    other = _pod("web-2", "10.0.0.3", "node-a", {"app": "other"})
    pol = _policy("deny", podSelector={}, policyTypes=["Ingress"])
    antrea, cilium, calico = _models(_ir(tmp_path, other, pol, local=("web-0", "web-2")))
    # Antrea: the deny-all rule: destination clause with both ports, 1 conj_id + 2 metric flows,
    # 2 default-drop flows.
    assert antrea["flows"] == 2 + 1 + 2 + 2
    # Cilium: ingress isolated with nothing allowed (no entry); egress allow-all per endpoint.
    assert cilium["entries"] == 2
    # Calico: two placeholder policy chains; per pod 9 + 4 ingress, 9 egress.
    assert calico["rules"] == 2 + 2 * 22
    assert calico["ipsets"] == 0


def test_policy_not_on_this_node_installs_nothing(tmp_path: Path) -> None:
    pol = _policy(
        "clients", podSelector={"matchLabels": {"app": "client"}}, policyTypes=["Ingress", "Egress"]
    )
    ir = _ir(tmp_path, *CLIENTS, pol)
    assert policy_views(ir) == []
    antrea, cilium, calico = _models(ir)
    assert antrea["flows"] == 0
    assert cilium["entries"] == 2  # web-0: allow-all both ways
    assert calico["rules"] == 18  # web-0's endpoint chains only


def test_compare_ratios_use_our_bundle(tmp_path: Path) -> None:
    result = _compile(
        tmp_path,
        [*WEB, _service(), _slice(("10.0.0.2", "node-a", True), ("10.0.1.2", "node-b", True))],
        ["web-0"],
    )
    row = compare(result)
    us = row["us"]
    assert us["service_entities"] == us["service_entries"] + us["members"] + us["groups"]
    assert us["service_entities"] > 0
    assert row["ratio_services"]["antrea"] == pytest.approx(us["service_entities"] / 5, abs=1e-3)
    assert row["ratio_services"]["cilium"] == pytest.approx(us["service_entities"] / 6, abs=1e-3)
    assert row["ratio_services"]["iptables"] == pytest.approx(us["service_entities"] / 8, abs=1e-3)


def test_policy_three_policies_one_selector(tmp_path: Path) -> None:
    pols = [
        _policy(f"deny-{i}", podSelector={"matchLabels": {"app": "web"}}, policyTypes=["Ingress"])
        for i in range(3)
    ]
    antrea, cilium, calico = _models(_ir(tmp_path, *pols))
    # Antrea: three deny-all rules share web-0's destination clause flow and its drop flow; each
    # has its conj_id flow and 2 metric flows.
    assert antrea["flows"] == 1 + 3 * 3 + 1
    assert cilium["entries"] == 1
    # Calico: 3 x 2 placeholder policy chains. web-0's ingress chain jumps once to the group of
    # the three policies (same selector): tier start, jump, return, end-of-tier drop; the group
    # chain has a jump per policy. Without policy groups: a jump and a return per policy.
    assert calico["policy_chain_rules"] == 6
    assert calico["endpoint_chain_rules"] == (9 + 4 + 3) + 9
    assert calico["rules_without_policy_groups"] == 6 + (9 + 1 + 6 + 1) + 9
