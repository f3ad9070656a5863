"""NetworkPolicy cases the upstream e2e truth tables do not cover, traced at packet level.

Same cluster as the conformance suite (tests/policy/conformance/model.py: namespaces x, y, z; pods
a, b, c; x/a is 10.244.1.10 and fd00:244:1::a, y/a 10.244.2.10, z/a 10.244.3.10; Services
s-<ns>-<pod>), single probes instead of matrices. Each case cites the API text it checks
(NetworkPolicySpec, NetworkPolicyPort, IPBlock in networking/v1 types.go; the concept page).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import yaml
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from k8s_offload.analysis.trace import Probe, Tracer
from k8s_offload.cli.main import main
from k8s_offload.compiler.frontend.model import Protocol
from tests.policy.conformance.model import (
    Obj,
    Topology,
    cluster_objects,
    manifests,
    node_facts,
    pod_ip,
    tracer_for,
)

ONE_NODE = Topology(4, False)
THREE_NODES = Topology(4, True)


def policies(text: str) -> list[Obj]:
    """A YAML list of NetworkPolicy metadata + spec; apiVersion and kind are added."""
    return [
        {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **p}
        for p in yaml.safe_load(text) or []
    ]


def build(
    text: str = "",
    topology: Topology = ONE_NODE,
    edit: Callable[[list[Obj]], None] | None = None,
    extra: Sequence[Obj] = (),
) -> Tracer:
    objects = cluster_objects(topology)
    if edit is not None:
        edit(objects)
    return tracer_for(manifests([*objects, *extra, *policies(text)]), node_facts(topology))


def ok(tracer: Tracer, src: str, dst: str, port: int, protocol: str = "TCP", family: int = 4) -> bool:
    """`dst`: NS/POD (its address of `family`), svc:NS/NAME or an IP address."""
    target = dst if dst.startswith("svc:") or "/" not in dst else pod_ip(dst, family)
    return tracer.run(Probe(src, target, port, Protocol(protocol))).allowed


def pod(objects: list[Obj], ref: str) -> Obj:
    ns, name = ref.split("/")
    return next(
        o
        for o in objects
        if o["kind"] == "Pod" and o["metadata"]["namespace"] == ns and o["metadata"]["name"] == name
    )


# -- policyTypes inference (NetworkPolicySpec.policyTypes) -----------------------------------------


def test_egress_rules_without_policy_types_also_isolate_ingress() -> None:
    """policyTypes omitted: Ingress always, plus Egress when there are egress rules; so an
    egress-only policy denies all ingress of the pods it selects."""
    tr = build(
        """
        - metadata: {name: a-to-b, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: a}}
            egress: [{to: [{podSelector: {matchLabels: {pod: b}}}]}]
        """
    )
    assert ok(tr, "x/a", "x/b", 80) and not ok(tr, "x/a", "x/c", 80)
    assert not ok(tr, "y/a", "x/a", 80) and not ok(tr, "x/b", "x/a", 80)
    assert ok(tr, "y/a", "x/b", 80)  # not selected


def test_explicit_egress_policy_type_leaves_ingress_open() -> None:
    tr = build(
        """
        - metadata: {name: a-to-b, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Egress]
            egress: [{to: [{podSelector: {matchLabels: {pod: b}}}]}]
        """
    )
    assert ok(tr, "y/a", "x/a", 80) and ok(tr, "x/a", "x/b", 80) and not ok(tr, "x/a", "y/a", 80)


def test_empty_egress_list_does_not_add_egress() -> None:
    """`egress: []` is no egress rule: policyTypes defaults to [Ingress] only."""
    tr = build(
        """
        - metadata: {name: empty-egress, namespace: x}
          spec: {podSelector: {matchLabels: {pod: a}}, egress: []}
        """
    )
    assert ok(tr, "x/a", "y/a", 80) and ok(tr, "x/a", "x/b", 81, "UDP")
    assert not ok(tr, "y/a", "x/a", 80)


def test_egress_policy_type_without_rules_denies_all_egress() -> None:
    tr = build(
        """
        - metadata: {name: no-egress, namespace: x}
          spec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress]}
        """
    )
    assert not any(
        ok(tr, "x/a", dst, 80, proto) for dst in ("x/b", "y/a") for proto in ("TCP", "UDP", "SCTP")
    )
    assert ok(tr, "y/a", "x/a", 80)


# -- ports: endPort, protocols, named ports (NetworkPolicyPort) ------------------------------------


def test_end_port_range_is_inclusive_and_per_protocol() -> None:
    tr = build(
        """
        - metadata: {name: range, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Ingress, Egress]
            ingress: [{ports: [{port: 80, endPort: 82}]}]
            egress: [{ports: [{protocol: UDP, port: 1000, endPort: 2000}]}]
        """
    )
    assert [ok(tr, "y/a", "x/a", p) for p in (79, 80, 81, 82, 83)] == [False, True, True, True, False]
    assert not ok(tr, "y/a", "x/a", 81, "UDP") and not ok(tr, "y/a", "x/a", 81, "SCTP")
    assert [ok(tr, "x/a", "y/a", p, "UDP") for p in (999, 1000, 1500, 2000, 2001)] == [
        False,
        True,
        True,
        True,
        False,
    ]
    assert not ok(tr, "x/a", "y/a", 1500, "TCP")


def test_sctp_only_egress_opens_neither_tcp_nor_udp() -> None:
    tr = build(
        """
        - metadata: {name: sctp-only, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Egress]
            egress: [{ports: [{protocol: SCTP, port: 80}]}]
        """
    )
    assert ok(tr, "x/a", "y/a", 80, "SCTP") and ok(tr, "x/a", "svc:y/s-y-a", 80, "SCTP")
    assert not ok(tr, "x/a", "y/a", 80, "TCP") and not ok(tr, "x/a", "y/a", 80, "UDP")
    assert not ok(tr, "x/a", "y/a", 81, "SCTP")


def _web_ports(objects: list[Obj]) -> None:
    """`web` is TCP 80 on y/a, TCP 81 on y/b, UDP 80 on y/c (so no TCP `web` there)."""
    for ref, number, proto in (("y/a", 80, "TCP"), ("y/b", 81, "TCP"), ("y/c", 80, "UDP")):
        spec = pod(objects, ref)["spec"]
        spec["containers"].append(
            {"name": "web", "ports": [{"name": "web", "containerPort": number, "protocol": proto}]}
        )


def test_named_egress_port_resolves_on_each_destination_pod() -> None:
    tr = build(
        """
        - metadata: {name: to-web, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Egress]
            egress: [{ports: [{port: web}]}]
        """,
        edit=_web_ports,
    )
    assert ok(tr, "x/a", "y/a", 80) and not ok(tr, "x/a", "y/a", 81)
    assert ok(tr, "x/a", "y/b", 81) and not ok(tr, "x/a", "y/b", 80)
    assert not ok(tr, "x/a", "y/c", 80) and not ok(tr, "x/a", "y/c", 80, "UDP")  # rule is TCP
    assert ok(tr, "x/a", "svc:y/s-y-b", 81) and not ok(tr, "x/a", "svc:y/s-y-a", 81)
    assert not ok(tr, "x/a", "z/a", 80)


def test_named_ingress_port_resolves_on_each_receiving_pod() -> None:
    tr = build(
        """
        - metadata: {name: web-in, namespace: y}
          spec:
            podSelector: {}
            policyTypes: [Ingress]
            ingress: [{ports: [{port: web}, {port: web, protocol: UDP}]}]
        """,
        edit=_web_ports,
    )
    assert ok(tr, "x/a", "y/a", 80) and not ok(tr, "x/a", "y/a", 81)
    assert ok(tr, "x/a", "y/b", 81) and not ok(tr, "x/a", "y/b", 80)
    assert ok(tr, "x/a", "y/c", 80, "UDP") and not ok(tr, "x/a", "y/c", 80, "TCP")


# -- ipBlock (IPBlock: cidr minus except; applies to pod addresses too) ----------------------------


def test_address_in_one_peers_except_is_allowed_by_another_peer() -> None:
    tr = build(
        """
        - metadata: {name: two-peers, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Egress]
            egress:
              - to:
                  - ipBlock: {cidr: 10.244.0.0/16, except: [10.244.2.0/24, 10.244.3.10/32]}
                  - podSelector: {matchLabels: {pod: b}}
                    namespaceSelector: {matchLabels: {ns: y}}
        """
    )
    assert ok(tr, "x/a", "y/b", 80)  # excepted by the block, selected by the second peer
    assert not ok(tr, "x/a", "y/a", 80) and not ok(tr, "x/a", "z/a", 80)
    assert ok(tr, "x/a", "z/b", 80) and ok(tr, "x/a", "x/b", 80)


def test_address_in_one_policys_except_is_allowed_by_another_policy() -> None:
    """Both policies exist (upstream replaces the first); the union allows the excepted pod."""
    tr = build(
        """
        - metadata: {name: wide-except, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Egress]
            egress: [{to: [{ipBlock: {cidr: 0.0.0.0/4, except: [10.244.1.11/32]}}]}]
        - metadata: {name: just-x-b, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Egress]
            egress: [{to: [{ipBlock: {cidr: 10.244.1.11/32}}], ports: [{port: 81}]}]
        """
    )
    assert ok(tr, "x/a", "x/b", 81) and not ok(tr, "x/a", "x/b", 80)
    assert ok(tr, "x/a", "x/c", 80) and ok(tr, "x/a", "y/a", 80)


def test_ingress_ip_block_matches_pod_sources() -> None:
    tr = build(
        """
        - metadata: {name: from-y-b, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Ingress]
            ingress: [{from: [{ipBlock: {cidr: 10.244.2.0/24, except: [10.244.2.10/32]}}]}]
        """
    )
    assert ok(tr, "y/b", "x/a", 80) and ok(tr, "y/c", "svc:x/s-x-a", 81, "UDP")
    assert not ok(tr, "y/a", "x/a", 80) and not ok(tr, "z/b", "x/a", 80) and not ok(tr, "x/b", "x/a", 80)


def test_empty_namespace_selector_is_every_pod_but_no_outside_address() -> None:
    tr = build(
        """
        - metadata: {name: pods-only, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Egress]
            egress: [{to: [{namespaceSelector: {}}]}]
        - metadata: {name: outside, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: b}}
            policyTypes: [Egress]
            egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0}}]}]
        """
    )
    assert ok(tr, "x/a", "z/c", 80) and not ok(tr, "x/a", "192.0.2.10", 80)
    assert ok(tr, "x/b", "192.0.2.10", 80) and ok(tr, "x/b", "z/c", 80)


# -- IPv6 and dual-stack pods ----------------------------------------------------------------------


def test_ip_blocks_match_their_own_family_only() -> None:
    tr = build(
        """
        - metadata: {name: v6-from-y, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Ingress]
            ingress: [{from: [{ipBlock: {cidr: "fd00:244:2::/64"}}]}]
        - metadata: {name: v4-from-z, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: b}}
            policyTypes: [Ingress]
            ingress: [{from: [{ipBlock: {cidr: 10.244.3.0/24}}]}]
        """,
        Topology(6, False),
    )
    assert ok(tr, "y/a", "x/a", 80, family=6) and not ok(tr, "y/a", "x/a", 80, family=4)
    assert ok(tr, "z/a", "x/b", 80, family=4) and not ok(tr, "z/a", "x/b", 80, family=6)
    assert ok(tr, "y/b", "svc:x/s-x-a", 80)  # the Services are IPv6 in this variant


def test_selectors_cover_both_addresses_of_a_dual_stack_pod() -> None:
    tr = build(
        """
        - metadata: {name: b-only, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Ingress, Egress]
            ingress: [{from: [{podSelector: {matchLabels: {pod: b}}}]}]
            egress: [{to: [{namespaceSelector: {matchLabels: {ns: z}}}]}]
        """,
        Topology(6, True),
    )
    for family in (4, 6):
        assert ok(tr, "x/b", "x/a", 80, family=family) and not ok(tr, "x/c", "x/a", 80, family=family)
        assert ok(tr, "x/a", "z/b", 81, "SCTP", family) and not ok(tr, "x/a", "y/b", 81, "SCTP", family)


# -- Services: policy sees the backend and its target port (after DNAT) ----------------------------

WEB_SERVICE: list[Obj] = yaml.safe_load(
    """
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: x}
  spec:
    clusterIP: 10.96.9.9
    clusterIPs: [10.96.9.9]
    ipFamilies: [IPv4]
    selector: {pod: a}
    ports:
      - {name: http, port: 8080, targetPort: 80}
      - {name: alt, port: 9090, targetPort: serve-81-tcp}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: web-1, namespace: x, labels: {kubernetes.io/service-name: web}}
  addressType: IPv4
  ports: [{name: http, port: 80, protocol: TCP}, {name: alt, port: 81, protocol: TCP}]
  endpoints:
    - addresses: [10.244.1.10]
      conditions: {ready: true}
      targetRef: {kind: Pod, namespace: x, name: a}
"""
)


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        pytest.param("[{port: 80}]", (True, False), id="target-port"),
        pytest.param("[{port: 8080}, {port: 9090}]", (False, False), id="service-ports-mean-nothing"),
        pytest.param("[{port: serve-81-tcp}]", (False, True), id="named-target-port"),
    ],
)
def test_ingress_ports_are_the_services_target_ports(ports: str, expected: tuple[bool, bool]) -> None:
    tr = build(
        f"""
        - metadata: {{name: ports, namespace: x}}
          spec:
            podSelector: {{matchLabels: {{pod: a}}}}
            policyTypes: [Ingress]
            ingress: [{{ports: {ports}}}]
        """,
        extra=WEB_SERVICE,
    )
    assert (ok(tr, "y/a", "svc:x/web", 8080), ok(tr, "y/a", "svc:x/web", 9090)) == expected
    verdict = tr.run(Probe("y/a", "svc:x/web", 8080, Protocol.TCP))
    assert verdict.backend == ("x/a" if expected[0] else None)  # set once the request is delivered


def test_egress_ip_block_sees_the_backend_not_the_cluster_ip() -> None:
    tr = build(
        """
        - metadata: {name: to-vip, namespace: y}
          spec:
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Egress]
            egress: [{to: [{ipBlock: {cidr: 10.96.9.9/32}}]}]
        - metadata: {name: to-backend, namespace: y}
          spec:
            podSelector: {matchLabels: {pod: b}}
            policyTypes: [Egress]
            egress: [{to: [{ipBlock: {cidr: 10.244.1.10/32}}], ports: [{port: 80}]}]
        """,
        extra=WEB_SERVICE,
    )
    assert not ok(tr, "y/a", "svc:x/web", 8080)
    assert ok(tr, "y/b", "svc:x/web", 8080) and not ok(tr, "y/b", "svc:x/web", 9090)


# -- stateful: replies and node traffic ------------------------------------------------------------


@pytest.mark.parametrize("topology", [ONE_NODE, THREE_NODES], ids=lambda t: t.id)
@pytest.mark.parametrize("protocol", ["TCP", "UDP", "SCTP"])
def test_replies_of_allowed_connections_pass_an_isolated_receiver(topology: Topology, protocol: str) -> None:
    """x/a denies all ingress, y/a all egress: x/a -> y/a is allowed by both, so its reply enters
    x/a and leaves y/a; new connections the other way are denied."""
    tr = build(
        """
        - metadata: {name: no-ingress, namespace: x}
          spec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Ingress]}
        - metadata: {name: no-egress, namespace: y}
          spec: {podSelector: {matchLabels: {pod: a}}, policyTypes: [Egress]}
        """,
        topology,
    )
    verdict = tr.run(Probe("x/a", pod_ip("y/a", 4), 80, Protocol(protocol)))
    assert verdict.allowed, verdict.reason
    assert [h.direction for h in verdict.path][-1] == "reply" and verdict.path[-1].delivered_to == "x/a"
    assert ok(tr, "x/a", "svc:y/s-y-a", 81, protocol)
    assert not ok(tr, "y/a", "x/a", 80, protocol)
    assert not ok(tr, "y/b", "x/a", 80, protocol) and not ok(tr, "y/a", "x/b", 80, protocol)


def test_node_traffic_enters_an_ingress_isolated_pod() -> None:
    """Concept page: an ingress-isolated pod still accepts connections from its own node (the
    host port); a pod of another node is denied, and the pod's reply reaches the host."""
    tr = build(
        """
        - metadata: {name: deny-ingress, namespace: x}
          spec: {podSelector: {}, policyTypes: [Ingress]}
        """,
        THREE_NODES,
    )
    node = tr.main.ir.node
    x_a = next(p for p in tr.main.ir.pods if p.key.ref == "x/a")
    assert x_a.local and x_a.port is not None and x_a.mac is not None
    gateway = node.gateway.mac
    syn = Ether(src="02:00:00:00:00:fe", dst=gateway) / IP(src="192.168.10.11", dst=pod_ip("x/a", 4))
    tr.clock += 1000
    request = tr.main.sim.process(
        node.ports.host, bytes(syn / TCP(sport=40000, dport=80, flags="S")), tr.clock
    )
    assert request.egress_port == x_a.port
    synack = Ether(src=x_a.mac, dst=gateway) / IP(src=pod_ip("x/a", 4), dst="192.168.10.11")
    tr.clock += 1000
    reply = tr.main.sim.process(x_a.port, bytes(synack / TCP(sport=80, dport=40000, flags="SA")), tr.clock)
    assert reply.egress_port == node.ports.host
    assert not ok(tr, "y/a", "x/a", 80) and not ok(tr, "x/b", "x/a", 80)


# Hairpin (a pod to itself, also through its Service) is undefined for NetworkPolicy upstream
# (kubernetes#95879), so no verdict is asserted here; that it works at all is a Service property,
# tested in tests/packets/test_services_beyond_clusterip.py.


def test_policy_update_closes_new_connections_only_in_the_new_state() -> None:
    """Two compiles, one per state (A9): deny then allow, the same probe flips."""
    deny = """
        - metadata: {name: p, namespace: x}
          spec: {podSelector: {}, policyTypes: [Ingress]}
    """
    allow = """
        - metadata: {name: p, namespace: x}
          spec: {podSelector: {}, policyTypes: [Ingress], ingress: [{from: [{podSelector: {}}]}]}
    """
    assert not ok(build(deny), "x/b", "x/a", 80)
    assert ok(build(allow), "x/b", "x/a", 80) and not ok(build(allow), "y/b", "x/a", 80)


def test_non_canonical_cidr_means_its_network() -> None:
    """The API server accepts a cidr with host bits set (a warning, not an error, unless the
    StrictIPCIDRValidation gate is on) and the address is masked: 10.244.1.10/16 is 10.244.0.0/16."""
    tr = build(
        """
        - metadata: {name: sloppy, namespace: x}
          spec:
            podSelector: {matchLabels: {pod: a}}
            policyTypes: [Egress]
            egress: [{to: [{ipBlock: {cidr: 10.244.1.10/16, except: [10.244.3.0/24]}}]}]
        """
    )
    assert ok(tr, "x/a", "y/a", 80) and ok(tr, "x/a", "x/b", 80) and not ok(tr, "x/a", "z/a", 80)


# -- validation at the command line (object, field path, reason; exit 2, nothing on stdout) --------
# The rules of the API server's ValidateNetworkPolicy; message texts are tested one per rule in
# tests/compiler/frontend/test_frontend_validation.py, here both commands refuse the object as a whole.

INVALID = [
    (
        "except-outside-cidr",
        "ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]",
        "spec.ingress[0].from[0].ipBlock.except[0]: must be a strict subset of `cidr` 10.0.0.0/16, "
        "got 10.1.0.0/24",
    ),
    (
        "except-equals-cidr",
        "egress: [{to: [{ipBlock: {cidr: 'fd00::/64', except: ['fd00::/64']}}]}]",
        "spec.egress[0].to[0].ipBlock.except[0]: must be a strict subset of `cidr` fd00::/64, got fd00::/64",
    ),
    (
        "except-other-family",
        "egress: [{to: [{ipBlock: {cidr: 'fd00::/64', except: [10.0.0.0/8]}}]}]",
        "spec.egress[0].to[0].ipBlock.except[0]: must be of the same IP family as cidr fd00::/64, "
        "got 10.0.0.0/8",
    ),
    (
        "cidr-invalid",
        "ingress: [{from: [{ipBlock: {cidr: 10.0.0.0}}]}]",
        "spec.ingress[0].from[0].ipBlock.cidr: must be a valid CIDR value, "
        "(e.g. 10.9.8.0/24 or 2001:db8::/64), got '10.0.0.0'",
    ),
    (
        "cidr-missing",
        "ingress: [{from: [{ipBlock: {}}]}]",
        "spec.ingress[0].from[0].ipBlock.cidr: Required value",
    ),
    (
        "ipblock-and-pod-selector",
        "egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]",
        "spec.egress[0].to[0]: may not specify both ipBlock and another peer",
    ),
    ("empty-peer", "egress: [{to: [{}]}]", "spec.egress[0].to[0]: Required value: must specify a peer"),
    (
        "endport-without-port",
        "egress: [{ports: [{endPort: 90}]}]",
        "spec.egress[0].ports[0].port: must be specified when endPort is specified",
    ),
    (
        "endport-with-named-port",
        "ingress: [{ports: [{port: web, endPort: 90}]}]",
        "spec.ingress[0].ports[0].endPort: may not be specified when `port` is non-numeric",
    ),
    (
        "endport-below-port",
        "ingress: [{ports: [{port: 90, endPort: 89}]}]",
        "spec.ingress[0].ports[0].endPort: must be greater than or equal to `port` (90), got 89",
    ),
    (
        "endport-out-of-range",
        "egress: [{ports: [{port: 80, endPort: 65536}]}]",
        "spec.egress[0].ports[0].endPort: must be between 1 and 65535, got 65536",
    ),
    (
        "port-out-of-range",
        "ingress: [{ports: [{port: 0}]}]",
        "spec.ingress[0].ports[0].port: must be between 1 and 65535, got 0",
    ),
    (
        "protocol-lowercase",
        "ingress: [{ports: [{protocol: tcp}]}]",
        'spec.ingress[0].ports[0].protocol: Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP"',
    ),
    (
        "protocol-icmp",
        "egress: [{ports: [{protocol: ICMP, port: 1}]}]",
        'spec.egress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
    ),
    (
        "port-name-underscore",
        "ingress: [{ports: [{port: web_1}]}]",
        "spec.ingress[0].ports[0].port: must contain only lowercase alphanumeric characters or '-' and must "
        "start and end with an alphanumeric character, got 'web_1'",
    ),
    (
        "port-name-uppercase",
        "ingress: [{ports: [{port: Web}]}]",
        "spec.ingress[0].ports[0].port: must contain only lowercase alphanumeric characters or '-' and must "
        "start and end with an alphanumeric character, got 'Web'",
    ),
    (
        "port-name-double-hyphen",
        "ingress: [{ports: [{port: web--a}]}]",
        "spec.ingress[0].ports[0].port: must not contain consecutive hyphens, got 'web--a'",
    ),
    (
        "port-name-too-long",
        "ingress: [{ports: [{port: abcdefghijklmnop}]}]",
        "spec.ingress[0].ports[0].port: must be no more than 15 characters, got 'abcdefghijklmnop'",
    ),
    (
        "port-name-no-letter",
        "egress: [{ports: [{port: '8080'}]}]",
        "spec.egress[0].ports[0].port: must contain at least one letter (a-z), got '8080'",
    ),
    (
        "in-without-values",
        "ingress: [{from: [{namespaceSelector: {matchExpressions: [{key: ns, operator: In, values: []}]}}]}]",
        "spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].values: must be specified when "
        "`operator` is 'In' or 'NotIn'",
    ),
    (
        "exists-with-values",
        "egress: [{to: [{podSelector: {matchExpressions: [{key: pod, operator: Exists, values: [a]}]}}]}]",
        "spec.egress[0].to[0].podSelector.matchExpressions[0].values: may not be specified when "
        "`operator` is 'Exists' or 'DoesNotExist'",
    ),
    (
        "unknown-operator",
        "ingress: [{from: [{podSelector: {matchExpressions: [{key: pod, operator: Equals}]}}]}]",
        'spec.ingress[0].from[0].podSelector.matchExpressions[0].operator: Unsupported value: "Equals": '
        'supported values: "DoesNotExist", "Exists", "In", "NotIn"',
    ),
    (
        "label-value",
        "ingress: [{from: [{podSelector: {matchLabels: {pod: 'a b'}}}]}]",
        "spec.ingress[0].from[0].podSelector.matchLabels.pod: a valid label value must be an empty string or "
        "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character, got 'a b'",
    ),
    (
        "duplicate-policy-types",
        "policyTypes: [Egress, Egress]",
        'spec.policyTypes[1]: Duplicate value: "Egress"',
    ),
    (
        "policy-type-case",
        "policyTypes: [ingress]",
        'spec.policyTypes[0]: Unsupported value: "ingress": supported values: "Egress", "Ingress"',
    ),
]

NP_DOC = (
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
    "metadata: {{name: {name}, namespace: x}}\nspec: {spec}\n"
)
TRACE_ARGS = ["--from", "x/a", "--to", "x/b", "--port", "80"]


def run_cli(command: str, path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    argv = [str(path)] if command == "compile" else ["trace", str(path), *TRACE_ARGS]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", ["compile", "trace"])
@pytest.mark.parametrize(("fragment", "error"), [pytest.param(f, e, id=i) for i, f, e in INVALID])
def test_invalid_policy_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, fragment: str, error: str
) -> None:
    path = tmp_path / "np.yaml"
    path.write_text(NP_DOC.format(name="np", spec=f"{{podSelector: {{}}, {fragment}}}"))
    assert run_cli(command, path, capsys) == (2, "", f"{path}: document 1: NetworkPolicy x/np: {error}\n")


@pytest.mark.parametrize("command", ["compile", "trace"])
def test_every_invalid_policy_is_reported_with_its_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """All problems at once, each naming its document and object; a valid policy between them."""
    path = tmp_path / "np.yaml"
    path.write_text(
        "---\n".join(
            [
                NP_DOC.format(name="no-selector", spec="{policyTypes: [Ingress]}"),
                NP_DOC.format(
                    name="fine", spec="{podSelector: {}, ingress: [{ports: [{port: 80, endPort: 80}]}]}"
                ),
                NP_DOC.format(
                    name="two-errors",
                    spec="{podSelector: {}, egress: [{ports: [{port: 9, endPort: 8}]}], "
                    "ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/8]}}]}]}",
                ),
            ]
        )
    )
    code, out, err = run_cli(command, path, capsys)
    assert (code, out) == (2, "")
    assert sorted(err.splitlines()) == sorted(
        [
            f"{path}: document 1: NetworkPolicy x/no-selector: spec.podSelector: Required value",
            f"{path}: document 3: NetworkPolicy x/two-errors: spec.egress[0].ports[0].endPort: "
            "must be greater than or equal to `port` (9), got 8",
            f"{path}: document 3: NetworkPolicy x/two-errors: spec.ingress[0].from[0].ipBlock.except[0]: "
            "must be a strict subset of `cidr` 10.0.0.0/8, got 11.0.0.0/8",
        ]
    )
