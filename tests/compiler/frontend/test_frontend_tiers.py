"""Cluster policy tiers and Nodes: parsing and validation, one case per CRD rule.

Rules are those of kubernetes-sigs/network-policy-api: apis/v1alpha1 (adminnetworkpolicy_types.go,
baselineadminnetworkpolicy_types.go, shared_types.go; the v0.1.x CRDs) and apis/v1alpha2
(clusternetworkpolicy_types.go), and for Nodes core/v1 NodeStatus.addresses.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest

from k8s_offload.compiler.errors import ManifestErrors
from k8s_offload.compiler.frontend import load_text
from k8s_offload.compiler.frontend.model import Protocol
from k8s_offload.compiler.frontend.tiers import PeerKind, Tier, TierAction, TierPort

ANP = (
    "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\n"
    "metadata: {{name: sre}}\nspec: {}\n"
)
BANP = (
    "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\n"
    "metadata: {{name: {}}}\nspec: {}\n"
)
CNP = (
    "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"
    "metadata: {{name: cnp}}\nspec: {}\n"
)
SUBJECT = "subject: {namespaces: {}}"


def errors(text: str) -> list[str]:
    with pytest.raises(ManifestErrors) as exc:
        load_text(text, "m.yaml")
    return [str(e).removeprefix("m.yaml: document 1: ") for e in exc.value.errors]


def test_admin_network_policy_parsed() -> None:
    spec = (
        "{priority: 7, subject: {pods: {namespaceSelector: {matchLabels: {t: a}}, podSelector: {}}},"
        " egress: [{name: dns, action: Allow, to: [{networks: [8.8.8.8/32, '2001:db8::/64']}],"
        " ports: [{portNumber: {protocol: UDP, port: 53}}, {portRange: {start: 8000, end: 8100}},"
        " {portNumber: {port: 443}}]},"
        " {action: Pass, to: [{nodes: {matchLabels: {role: w}}}]}],"
        " ingress: [{action: Deny, from: [{namespaces: {}}]}]}"
    )
    (pol,) = load_text(ANP.format(spec)).cluster_policies
    assert (pol.key.kind, pol.key.namespace, pol.key.name) == ("AdminNetworkPolicy", "", "sre")
    assert pol.tier is Tier.Admin and pol.priority == 7
    assert pol.subject.namespaces.match_labels == (("t", "a"),) and pol.subject.pods is not None
    dns, passing = pol.egress
    assert (dns.index, dns.name, dns.action) == (0, "dns", TierAction.Allow)
    assert dns.peers[0].networks == (
        ipaddress.ip_network("8.8.8.8/32"),
        ipaddress.ip_network("2001:db8::/64"),
    )
    # Written order is kept; protocol defaults to TCP (kubebuilder:default=TCP).
    assert dns.ports == (
        TierPort(Protocol.UDP, 53, 53),
        TierPort(Protocol.TCP, 8000, 8100),
        TierPort(Protocol.TCP, 443, 443),
    )
    assert passing.action is TierAction.Pass and passing.ports is None
    assert passing.peers[0].kind is PeerKind.nodes
    assert pol.ingress[0].peers[0].kind is PeerKind.namespaces


def test_cluster_network_policy_parsed() -> None:
    spec = (
        "{tier: Baseline, priority: 3, subject: {pods: {podSelector: {matchLabels: {a: b}}}},"
        " ingress: [{action: Accept, from: [{pods: {podSelector: {}}}],"
        " protocols: [{tcp: {destinationPort: {number: 80}}},"
        " {sctp: {destinationPort: {range: {start: 10, end: 20}}}}, {destinationNamedPort: web}]}]}"
    )
    (pol,) = load_text(CNP.format(spec)).cluster_policies
    assert pol.key.kind == "ClusterNetworkPolicy" and pol.tier is Tier.Baseline and pol.priority == 3
    (rule,) = pol.ingress
    # v1alpha2 Accept is v1alpha1 Allow; a NamespacedPod without namespaceSelector selects every namespace.
    assert rule.action is TierAction.Allow
    sel = rule.peers[0].selector
    assert sel is not None and sel.namespaces.empty
    assert rule.ports == (
        TierPort(Protocol.TCP, 80, 80),
        TierPort(Protocol.SCTP, 10, 20),
        TierPort(None, 0, 0, "web"),
    )


def test_node_addresses() -> None:
    text = (
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {role: w}}\n"
        "status: {addresses: [{type: Hostname, address: n1}, {type: InternalIP, address: 10.1.0.5},"
        " {type: ExternalIP, address: '2001:db8::5'}, {type: InternalDNS, address: n1.local}]}\n"
    )
    (node,) = load_text(text).nodes
    assert node.labels == (("role", "w"),)
    assert node.addresses == (ipaddress.ip_address("10.1.0.5"), ipaddress.ip_address("2001:db8::5"))
    bad = (
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\n"
        "status: {addresses: [{type: InternalIP, address: x}]}\n"
    )
    assert errors(bad) == [
        "Node n1: status.addresses[0].address: must be a valid IP address, (e.g. 10.9.8.7 or "
        "2001:db8::ffff), got 'x'"
    ]


RULES_101 = "[" + ", ".join(["{action: Deny, from: [{namespaces: {}}]}"] * 101) + "]"
PEERS_101 = "[" + ", ".join(["{namespaces: {}}"] * 101) + "]"
NETS_26 = "[" + ", ".join(f"10.0.{i}.0/24" for i in range(26)) + "]"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            "{subject: {namespaces: {}}}", ["spec.priority: Required value"], id="priority-required"
        ),
        pytest.param(
            f"{{priority: 1001, {SUBJECT}}}",
            ["spec.priority: must be between 0 and 1000, got 1001"],
            id="priority-max",
        ),
        pytest.param(
            f"{{priority: -1, {SUBJECT}}}",
            ["spec.priority: must be between 0 and 1000, got -1"],
            id="priority-min",
        ),
        pytest.param("{priority: 1}", ["spec.subject: Required value"], id="subject-required"),
        pytest.param(
            "{priority: 1, subject: {namespaces: {}, pods: {namespaceSelector: {}, podSelector: {}}}}",
            ["spec.subject: must specify exactly one of `namespaces`, `pods`, got `namespaces`, `pods`"],
            id="subject-max-properties",
        ),
        pytest.param(
            "{priority: 1, subject: {pods: {podSelector: {}}}}",
            ["spec.subject.pods.namespaceSelector: Required value"],
            id="namespaced-pod-needs-namespace-selector-v1alpha1",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, ingress: {RULES_101}}}",
            ["spec.ingress: Too many: 101: must have at most 100 items"],
            id="rules-max-100",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, ingress: [{{action: Allow, from: {PEERS_101}}}]}}",
            ["spec.ingress[0].from: Too many: 101: must have at most 100 items"],
            id="peers-max-100",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, ingress: [{{action: Allow, from: []}}]}}",
            ["spec.ingress[0].from: Invalid value: 0: must have at least 1 items"],
            id="peers-min-1",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, ingress: [{{action: Allow}}]}}",
            [
                "spec.ingress[0].from: Required value",
                "spec.ingress[0].from: Invalid value: 0: must have at least 1 items",
            ],
            id="peers-required",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, ingress: [{{action: Accept, from: [{{namespaces: {{}}}}]}}]}}",
            [
                'spec.ingress[0].action: Unsupported value: "Accept": supported values: '
                '"Allow", "Deny", "Pass"'
            ],
            id="action-enum",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, ingress: [{{name: {'x' * 101}, action: Deny, "
            "from: [{namespaces: {}}]}]}",
            ["spec.ingress[0].name: Too long: may not be more than 100 bytes, got 101"],
            id="rule-name-max-100",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, ingress: [{{action: Deny, from: [{{nodes: {{}}}}]}}]}}",
            ["spec.ingress[0].from[0]: must specify exactly one of `namespaces`, `pods`, got none"],
            id="ingress-has-no-nodes-peer",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, egress: [{{action: Deny, to: [{{networks: {NETS_26}}}]}}]}}",
            ["spec.egress[0].to[0].networks: Too many: 26: must have at most 25 items"],
            id="networks-max-25",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, egress: [{{action: Deny, "
            "to: [{networks: [10.0.0.0/8, 10.0.0.0/8]}]}]}",
            ['spec.egress[0].to[0].networks[1]: Duplicate value: "10.0.0.0/8"'],
            id="networks-set",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, egress: [{{action: Deny, to: [{{networks: [10.0.0.300/8]}}]}}]}}",
            [
                "spec.egress[0].to[0].networks[0]: Invalid CIDR format provided: must be a valid CIDR value, "
                "(e.g. 10.9.8.0/24 or 2001:db8::/64), got '10.0.0.300/8'"
            ],
            id="networks-cidr",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, egress: [{{action: Allow, to: [{{domainNames: ['-bad']}}]}}]}}",
            [
                'spec.egress[0].to[0].domainNames[0]: Invalid value: "-bad": must be a domain name, '
                "optionally prefixed by `*.`"
            ],
            id="domain-name-pattern",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, egress: [{{action: Allow, to: [{{networks: [10.0.0.0/8]}}], "
            "ports: [{namedPort: http}]}]}",
            [
                "spec.egress[0]: Invalid value: nodes/networks/domainNames peer cannot be set with named "
                "ports since there are no named ports for nodes/networks/domainNames"
            ],
            id="named-port-with-networks",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, ingress: [{{action: Allow, from: [{{namespaces: {{}}}}], "
            "ports: [{portNumber: {port: 80}, namedPort: http}]}]}",
            [
                "spec.ingress[0].ports[0]: must specify exactly one of `portNumber`, `namedPort`, "
                "`portRange`,"
                " got `portNumber`, `namedPort`"
            ],
            id="port-one-of",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, ingress: [{{action: Allow, from: [{{namespaces: {{}}}}], "
            "ports: [{portNumber: {port: 0}}]}]}",
            ["spec.ingress[0].ports[0].portNumber.port: must be between 1 and 65535, got 0"],
            id="port-number-min",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, ingress: [{{action: Allow, from: [{{namespaces: {{}}}}], "
            "ports: [{portNumber: {port: 80, protocol: ICMP}}]}]}",
            [
                'spec.ingress[0].ports[0].portNumber.protocol: Unsupported value: "ICMP": supported values: '
                '"SCTP", "TCP", "UDP"'
            ],
            id="port-protocol",
        ),
        pytest.param(
            f"{{priority: 1, {SUBJECT}, ingress: [{{action: Allow, from: [{{namespaces: {{}}}}], "
            "ports: []}]}",
            ["spec.ingress[0].ports: Invalid value: 0: must have at least 1 items"],
            id="ports-min-1",
        ),
    ],
)
def test_admin_network_policy_invalid(spec: str, expected: list[str]) -> None:
    assert errors(ANP.format(spec)) == [f"AdminNetworkPolicy sre: {e}" for e in expected]


def test_baseline_singleton_and_actions() -> None:
    """BANP: the CEL rule self.metadata.name == 'default'; actions Allow | Deny only; no domainNames."""
    assert errors(BANP.format("other", f"{{{SUBJECT}}}")) == [
        'BaselineAdminNetworkPolicy other: metadata.name: Invalid value: "other": Only one baseline admin '
        'network policy with metadata.name="default" can be created in the cluster'
    ]
    spec = f"{{{SUBJECT}, ingress: [{{action: Pass, from: [{{namespaces: {{}}}}]}}]}}"
    assert errors(BANP.format("default", spec)) == [
        'BaselineAdminNetworkPolicy default: spec.ingress[0].action: Unsupported value: "Pass": supported '
        'values: "Allow", "Deny"'
    ]
    spec = f"{{{SUBJECT}, egress: [{{action: Allow, to: [{{domainNames: [a.io]}}]}}]}}"
    assert errors(BANP.format("default", spec)) == [
        "BaselineAdminNetworkPolicy default: spec.egress[0].to[0]: must specify exactly one of `namespaces`, "
        "`pods`, `nodes`, `networks`, got none"
    ]
    (pol,) = load_text(BANP.format("default", f"{{{SUBJECT}}}")).cluster_policies
    assert pol.tier is Tier.Baseline


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(f"{{priority: 1, {SUBJECT}}}", ["spec.tier: Required value"], id="tier-required"),
        pytest.param(
            f"{{tier: NetworkPolicy, priority: 1, {SUBJECT}}}",
            ['spec.tier: Unsupported value: "NetworkPolicy": supported values: "Admin", "Baseline"'],
            id="tier-enum",
        ),
        pytest.param(
            f"{{tier: Admin, priority: 1, {SUBJECT}, ingress: [{{action: Allow, "
            "from: [{namespaces: {}}]}]}",
            [
                'spec.ingress[0].action: Unsupported value: "Allow": supported values: '
                '"Accept", "Deny", "Pass"'
            ],
            id="action-enum",
        ),
        pytest.param(
            f"{{tier: Admin, priority: 1, {SUBJECT}, ingress: "
            + "["
            + ", ".join(["{action: Deny, from: [{namespaces: {}}]}"] * 26)
            + "]}",
            ["spec.ingress: Too many: 26: must have at most 25 items"],
            id="rules-max-25",
        ),
        pytest.param(
            f"{{tier: Admin, priority: 1, {SUBJECT}, ingress: [{{action: Deny, from: [{{namespaces: {{}}}}], "
            "protocols: [{tcp: {}}]}]}",
            ["spec.ingress[0].protocols[0].tcp.destinationPort: Required value"],
            id="tcp-min-properties",
        ),
        pytest.param(
            f"{{tier: Admin, priority: 1, {SUBJECT}, ingress: [{{action: Deny, from: [{{namespaces: {{}}}}], "
            "protocols: [{udp: {destinationPort: {range: {start: 90, end: 90}}}}]}]}",
            [
                "spec.ingress[0].protocols[0].udp.destinationPort.range: Invalid value: Start port must "
                "be less than End port, got start 90, end 90"
            ],
            id="range-start-less-than-end",
        ),
        pytest.param(
            f"{{tier: Admin, priority: 1, {SUBJECT}, ingress: [{{action: Deny, from: [{{namespaces: {{}}}}], "
            "protocols: [{tcp: {destinationPort: {number: 80}}, udp: {destinationPort: {number: 80}}}]}]}",
            [
                "spec.ingress[0].protocols[0]: must specify exactly one of `tcp`, `udp`, `sctp`, "
                "`destinationNamedPort`, got `tcp`, `udp`"
            ],
            id="protocol-one-of",
        ),
        pytest.param(
            f"{{tier: Admin, priority: 1, {SUBJECT}, egress: [{{action: Deny, to: [{{nodes: {{}}}}], "
            "protocols: [{destinationNamedPort: http}]}]}",
            [
                "spec.egress[0]: Invalid value: nodes/networks/domainNames peer cannot be set with named "
                "ports since there are no named ports for nodes/networks/domainNames"
            ],
            id="named-port-with-nodes",
        ),
    ],
)
def test_cluster_network_policy_invalid(spec: str, expected: list[str]) -> None:
    assert errors(CNP.format(spec)) == [f"ClusterNetworkPolicy cnp: {e}" for e in expected]


def test_v1alpha1_port_range_start_after_end_matches_nothing() -> None:
    """The v1alpha1 CRD has no start < end rule (shared_types.go PortRange): accepted, empty."""
    spec = (
        f"{{priority: 1, {SUBJECT}, ingress: [{{action: Deny, from: [{{namespaces: {{}}}}],"
        " ports: [{portRange: {protocol: UDP, start: 90, end: 80}}]}]}"
    )
    (pol,) = load_text(ANP.format(spec)).cluster_policies
    assert pol.ingress[0].ports == (TierPort(Protocol.UDP, 90, 80),)


def test_wrong_api_version() -> None:
    text = ANP.format(f"{{priority: 1, {SUBJECT}}}").replace("v1alpha1", "v1alpha2")
    assert errors(text) == [
        'AdminNetworkPolicy sre: apiVersion: Unsupported value: "policy.networking.k8s.io/v1alpha2": '
        'supported values: "policy.networking.k8s.io/v1alpha1"'
    ]


def test_cli_exit_2_names_object_path_and_reason(tmp_path: Path) -> None:
    path = tmp_path / "anp.yaml"
    path.write_text(ANP.format(f"{{priority: 2000, {SUBJECT}}}"))
    run = subprocess.run(
        [sys.executable, "-m", "k8s_offload.cli.main", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert run.stdout == ""
    assert "AdminNetworkPolicy sre: spec.priority: must be between 0 and 1000, got 2000" in run.stderr
