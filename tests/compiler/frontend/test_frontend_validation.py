"""Validation errors, one case per rule, with the exact message the user sees.

Rules follow the Kubernetes API reference; each group's test docstring names the page.
"""

from __future__ import annotations

import pytest

from k8s_offload.compiler.errors import ManifestErrors
from k8s_offload.compiler.frontend import load_text

SVC = "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: shop}}\nspec: {}\n"
SLICE = (
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {{name: web-1, namespace: shop, labels: {{kubernetes.io/service-name: web}}}}\n{}\n"
)
POD = "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: shop}}\n{}\n"
NP = (
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: np, namespace: "
    "shop}}\nspec: {}\n"
)
EPS = "apiVersion: v1\nkind: Endpoints\nmetadata: {{name: web, namespace: shop}}\nsubsets: {}\n"

PORTS = "ports: [{port: 80}]"


def errors(text: str) -> list[str]:
    with pytest.raises(ManifestErrors) as exc:
        load_text(text, "m.yaml")
    return [str(e).removeprefix("m.yaml: document 1: ") for e in exc.value.errors]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            "{ports: [{port: 70000}]}",
            ["spec.ports[0].port: must be between 1 and 65535, got 70000"],
            id="port-range",
        ),
        pytest.param(
            "{ports: [{port: 80, protocol: ICMP}]}",
            ['spec.ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'],
            id="protocol",
        ),
        pytest.param(
            "{ports: [{port: 80}, {port: 81}]}",
            ["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"],
            id="names-required-with-several-ports",
        ),
        pytest.param(
            "{ports: [{name: a, port: 80}, {name: a, port: 81}]}",
            ['spec.ports[1].name: Duplicate value: "a"'],
            id="duplicate-port-name",
        ),
        pytest.param(
            "{ports: [{name: a, port: 80}, {name: b, port: 80}]}",
            ["spec.ports[1]: Duplicate value: port 80, protocol TCP"],
            id="duplicate-port-protocol",
        ),
        pytest.param(
            "{ports: [{name: Web, port: 80}]}",
            [
                "spec.ports[0].name: a lowercase RFC 1123 label must consist of lower case alphanumeric "
                "characters or '-', and must start and end with an alphanumeric character, got 'Web'"
            ],
            id="port-name-dns-label",
        ),
        pytest.param(
            "{clusterIP: 10.96.0.300, " + PORTS + "}",
            [
                "spec.clusterIP: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff), got "
                "'10.96.0.300'"
            ],
            id="cluster-ip",
        ),
        pytest.param(
            "{clusterIP: 10.96.0.1, clusterIPs: [10.96.0.2], " + PORTS + "}",
            ["spec.clusterIPs[0]: must be equal to spec.clusterIP (10.96.0.1), got 10.96.0.2"],
            id="cluster-ips-agree",
        ),
        pytest.param(
            "{clusterIPs: [10.96.0.1], ipFamilies: [IPv6], " + PORTS + "}",
            ["spec.clusterIPs[0]: expected an IPv6 address to match spec.ipFamilies[0], got 10.96.0.1"],
            id="family-mismatch",
        ),
        pytest.param(
            "{clusterIPs: [10.96.0.1, 10.96.0.2], " + PORTS + "}",
            ["spec.clusterIPs[1]: may specify no more than one IP for each IP family"],
            id="one-ip-per-family",
        ),
        pytest.param(
            "{clusterIPs: [10.96.0.1, 'fd00::1'], ipFamilyPolicy: SingleStack, " + PORTS + "}",
            [
                "spec.ipFamilyPolicy: must be RequireDualStack or PreferDualStack when multiple IP "
                "families are specified"
            ],
            id="single-stack-with-two-ips",
        ),
        pytest.param(
            "{ipFamilies: [IPv4, IPv4], " + PORTS + "}",
            ['spec.ipFamilies[1]: Duplicate value: "IPv4"'],
            id="duplicate-family",
        ),
        pytest.param(
            "{clusterIPs: [None, 10.96.0.1], " + PORTS + "}",
            ['spec.clusterIPs: must contain only "None" for a headless Service'],
            id="headless-only-none",
        ),
        pytest.param(
            "{ports: [{port: 80, targetPort: 'http--x'}]}",
            ["spec.ports[0].targetPort: must not contain consecutive hyphens, got 'http--x'"],
            id="target-port-name",
        ),
        pytest.param(
            "{ports: [{port: 80, targetPort: '8080'}]}",
            ["spec.ports[0].targetPort: must contain at least one letter (a-z), got '8080'"],
            id="target-port-numeric-string",
        ),
        pytest.param(
            "{ports: [{port: 80, targetPort: 65536}]}",
            ["spec.ports[0].targetPort: must be between 1 and 65535, got 65536"],
            id="target-port-range",
        ),
        pytest.param(
            "{ports: [{port: 80, nodePort: 30080}]}",
            ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
            id="node-port-on-cluster-ip",
        ),
        pytest.param("{clusterIP: 10.96.0.1}", ["spec.ports: Required value"], id="ports-required"),
        pytest.param(
            "{type: ExternalName}", ["spec.externalName: Required value"], id="external-name-required"
        ),
        pytest.param(
            "{type: Foo, " + PORTS + "}",
            [
                'spec.type: Unsupported value: "Foo": supported values: "ClusterIP", "ExternalName", '
                '"LoadBalancer", "NodePort"'
            ],
            id="type",
        ),
        pytest.param(
            "{externalIPs: [1.2.3], " + PORTS + "}",
            [
                "spec.externalIPs[0]: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff), got "
                "'1.2.3'"
            ],
            id="external-ip",
        ),
        pytest.param(
            "{sessionAffinity: ClientIP, sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}, "
            + PORTS
            + "}",
            [
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be greater than 0 and less "
                "than 86400, got 86401"
            ],
            id="affinity-timeout",
        ),
        pytest.param(
            "{sessionAffinityConfig: {clientIP: {timeoutSeconds: 10}}, " + PORTS + "}",
            ["spec.sessionAffinityConfig: must not be set when spec.sessionAffinity is None"],
            id="affinity-config-without-affinity",
        ),
        pytest.param(
            "{externalTrafficPolicy: Global, " + PORTS + "}",
            ['spec.externalTrafficPolicy: Unsupported value: "Global": supported values: "Cluster", "Local"'],
            id="external-traffic-policy",
        ),
        pytest.param(
            "{selector: {app: 'a b'}, " + PORTS + "}",
            [
                "spec.selector.app: a valid label value must be an empty string or consist of alphanumeric "
                "characters, '-', '_' or '.', and must start and end with an alphanumeric character, got "
                "'a b'"
            ],
            id="selector-value",
        ),
        pytest.param("{ports: {port: 80}}", ["spec.ports: must be a list, got object"], id="wrong-type"),
    ],
)
def test_service(spec: str, expected: list[str]) -> None:
    """https://kubernetes.io/docs/reference/kubernetes-api/service-resources/service-v1/#ServiceSpec"""
    assert errors(SVC.format(spec)) == [f"Service shop/web: {e}" for e in expected]


def test_service_name_is_dns1035_label() -> None:
    """metadata.name of a Service must be an RFC 1035 label (start with a letter)."""
    text = (
        "apiVersion: v1\nkind: Service\nmetadata: {name: 1web, namespace: shop}\nspec: {ports: [{port: "
        "80}]}\n"
    )
    assert errors(text) == [
        "Service shop/1web: metadata.name: a DNS-1035 label must consist of lower case alphanumeric "
        "characters "
        "or '-', start with an alphabetic character, and end with an alphanumeric character, got '1web'"
    ]


def test_load_balancer_ingress_ip_mode_needs_ip() -> None:
    """status.loadBalancer.ingress[].ipMode can only be specified when the ip field is."""
    text = (
        SVC.format("{type: LoadBalancer, " + PORTS + "}")
        + "status: {loadBalancer: {ingress: [{ipMode: VIP}]}}\n"
    )
    assert errors(text) == [
        "Service shop/web: status.loadBalancer.ingress[0].ipMode: may not be specified when `ip` is not"
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param("endpoints: []", ["addressType: Required value"], id="address-type-required"),
        pytest.param(
            "addressType: IP",
            ['addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"'],
            id="address-type",
        ),
        pytest.param(
            "addressType: IPv4\nendpoints: [{addresses: ['fd00::1']}]",
            ["endpoints[0].addresses[0]: must be an IPv4 address, got fd00::1"],
            id="family-of-address",
        ),
        pytest.param(
            "addressType: IPv6\nendpoints: [{addresses: []}]",
            ["endpoints[0].addresses: must contain at least 1 address"],
            id="address-required",
        ),
        pytest.param(
            "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {ready: maybe}}]",
            ["endpoints[0].conditions.ready: must be a boolean, got string"],
            id="condition-type",
        ),
        pytest.param(
            "addressType: IPv4\nports: [{name: HTTP, port: 80}]",
            [
                "ports[0].name: a lowercase RFC 1123 label must consist of lower case alphanumeric "
                "characters or "
                "'-', and must start and end with an alphanumeric character, got 'HTTP'"
            ],
            id="port-name",
        ),
        pytest.param(
            "addressType: IPv4\nports: [{name: a, port: 80}, {name: a, port: 81}]",
            ['ports[1].name: Duplicate value: "a"'],
            id="duplicate-port-name",
        ),
        pytest.param(
            "addressType: IPv4\nports: [{port: 0}]",
            ["ports[0].port: must be between 1 and 65535, got 0"],
            id="port-range",
        ),
        pytest.param(
            "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], nodeName: Node_A}]",
            [
                "endpoints[0].nodeName: a lowercase RFC 1123 subdomain must consist of lower case "
                "alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character, got 'Node_A'"
            ],
            id="node-name",
        ),
    ],
)
def test_endpoint_slice(body: str, expected: list[str]) -> None:
    """https://kubernetes.io/docs/reference/kubernetes-api/service-resources/endpoint-slice-v1/"""
    assert errors(SLICE.format(body)) == [f"EndpointSlice shop/web-1: {e}" for e in expected]


@pytest.mark.parametrize(
    ("subsets", "expected"),
    [
        pytest.param(
            "[{addresses: [{ip: 10.0.0.256}], ports: [{port: 80}]}]",
            [
                "subsets[0].addresses[0].ip: must be a valid IP address, (e.g. 10.9.8.7 or "
                "2001:db8::ffff), got '10.0.0.256'"
            ],
            id="ip",
        ),
        pytest.param(
            "[{notReadyAddresses: [{}], ports: [{name: a}]}]",
            [
                "subsets[0].notReadyAddresses[0].ip: Required value",
                "subsets[0].ports[0].port: Required value",
            ],
            id="required",
        ),
        pytest.param(
            "[{addresses: [{ip: 10.0.0.1}], ports: [{port: 80}, {port: 81}]}]",
            ["subsets[0].ports[0].name: Required value", "subsets[0].ports[1].name: Required value"],
            id="names-with-several-ports",
        ),
    ],
)
def test_legacy_endpoints(subsets: str, expected: list[str]) -> None:
    """https://kubernetes.io/docs/reference/kubernetes-api/service-resources/endpoints-v1/"""
    assert errors(EPS.format(subsets)) == [f"Endpoints shop/web: {e}" for e in expected]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "status: {podIPs: [{ip: 10.0.0.1}, {ip: 10.0.0.2}]}",
            ["status.podIPs[1]: may specify no more than one IP for each IP family"],
            id="one-ip-per-family",
        ),
        pytest.param(
            "status: {podIP: 10.0.0.1, podIPs: [{ip: 10.0.0.2}]}",
            ["status.podIPs[0].ip: must be the same as status.podIP (10.0.0.1), got 10.0.0.2"],
            id="pod-ip-agrees",
        ),
        pytest.param(
            "status: {podIPs: [{ip: 'fe80::1%eth0'}]}",
            ["status.podIPs[0].ip: must be a valid IP address without a zone, got 'fe80::1%eth0'"],
            id="zone",
        ),
        pytest.param(
            "spec: {containers: [{name: c, ports: [{name: web}]}]}",
            ["spec.containers[0].ports[0].containerPort: Required value"],
            id="container-port-required",
        ),
        pytest.param(
            "spec: {containers: [{name: c, ports: [{name: web, containerPort: 80}, {name: web, "
            "containerPort: 81}]}]}",
            ['spec.containers[0].ports[1].name: Duplicate value: "web"'],
            id="duplicate-port-name",
        ),
        pytest.param(
            "spec: {containers: [{name: c, ports: [{name: very-long-name-x, containerPort: 80}]}]}",
            ["spec.containers[0].ports[0].name: must be no more than 15 characters, got 'very-long-name-x'"],
            id="iana-length",
        ),
        pytest.param(
            "spec: {containers: [{name: c, ports: [{name: -web, containerPort: 80}]}]}",
            [
                "spec.containers[0].ports[0].name: must contain only lowercase alphanumeric characters "
                "or '-' and "
                "must start and end with an alphanumeric character, got '-web'"
            ],
            id="iana-edge-hyphen",
        ),
    ],
)
def test_pod(body: str, expected: list[str]) -> None:
    """https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/"""
    assert errors(POD.format(body)) == [f"Pod shop/p: {e}" for e in expected]


def test_labels() -> None:
    """https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set"""
    text = (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {'a/b/c': x, ok: "
        + "v" * 64
        + "}}\n"
    )
    assert errors(text) == [
        "Namespace shop: metadata.labels: key prefix part must be a lowercase RFC 1123 subdomain, got "
        "'a/b/c'",
        f"Namespace shop: metadata.labels.ok: must be no more than 63 characters, got '{'v' * 64}'",
    ]


def test_namespace_name_is_dns_label() -> None:
    assert errors("apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}\n") == [
        "Namespace a.b: metadata.name: a lowercase RFC 1123 label must consist of lower case alphanumeric "
        "characters or '-', and must start and end with an alphanumeric character, got 'a.b'"
    ]


PEER = "{{podSelector: {{}}, ingress: [{{from: [{}]}}]}}"
PORT = "{{podSelector: {{}}, ingress: [{{ports: [{}]}}]}}"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("{}", ["spec.podSelector: Required value"], id="pod-selector-required"),
        pytest.param(
            "{podSelector: {matchExpressions: [{key: app, operator: In}]}}",
            [
                "spec.podSelector.matchExpressions[0].values: must be specified when `operator` is 'In' "
                "or 'NotIn'"
            ],
            id="in-needs-values",
        ),
        pytest.param(
            "{podSelector: {matchExpressions: [{key: app, operator: NotIn, values: []}]}}",
            [
                "spec.podSelector.matchExpressions[0].values: must be specified when `operator` is 'In' "
                "or 'NotIn'"
            ],
            id="notin-needs-values",
        ),
        pytest.param(
            "{podSelector: {matchExpressions: [{key: app, operator: DoesNotExist, values: [a]}]}}",
            [
                "spec.podSelector.matchExpressions[0].values: may not be specified when `operator` is "
                "'Exists' "
                "or 'DoesNotExist'"
            ],
            id="doesnotexist-forbids-values",
        ),
        pytest.param(
            "{podSelector: {matchExpressions: [{key: app, operator: Has}]}}",
            [
                'spec.podSelector.matchExpressions[0].operator: Unsupported value: "Has": supported values: '
                '"DoesNotExist", "Exists", "In", "NotIn"'
            ],
            id="operator",
        ),
        pytest.param(
            "{podSelector: {matchLabels: {'-a': b}}}",
            [
                "spec.podSelector.matchLabels: key name part must consist of alphanumeric characters, "
                "'-', '_' or "
                "'.', and must start and end with an alphanumeric character, got '-a'"
            ],
            id="match-labels-key",
        ),
        pytest.param(
            PEER.format("{ipBlock: {cidr: 10.0.0.0/33}}"),
            [
                "spec.ingress[0].from[0].ipBlock.cidr: must be a valid CIDR value, (e.g. 10.9.8.0/24 or "
                "2001:db8::/64), got '10.0.0.0/33'"
            ],
            id="cidr",
        ),
        pytest.param(
            PEER.format(
                "{ipBlock: {cidr: 10.0.0.0/8, except: [10.0.0.0/8, 11.0.0.0/16, 'fd00::/64', 10.1.0.0]}}"
            ),
            [
                "spec.ingress[0].from[0].ipBlock.except[0]: must be a strict subset of `cidr` "
                "10.0.0.0/8, got 10.0.0.0/8",
                "spec.ingress[0].from[0].ipBlock.except[1]: must be a strict subset of `cidr` "
                "10.0.0.0/8, got 11.0.0.0/16",
                "spec.ingress[0].from[0].ipBlock.except[2]: must be of the same IP family as cidr "
                "10.0.0.0/8, "
                "got fd00::/64",
                "spec.ingress[0].from[0].ipBlock.except[3]: must be a valid CIDR value, (e.g. 10.9.8.0/24 or "
                "2001:db8::/64), got '10.1.0.0'",
            ],
            id="except",
        ),
        pytest.param(
            PEER.format("{ipBlock: {cidr: 10.0.0.0/8}, namespaceSelector: {}}"),
            ["spec.ingress[0].from[0]: may not specify both ipBlock and another peer"],
            id="ipblock-and-selector",
        ),
        pytest.param(
            PEER.format("{}"),
            ["spec.ingress[0].from[0]: Required value: must specify a peer"],
            id="empty-peer",
        ),
        pytest.param(
            PORT.format("{protocol: ICMP}"),
            [
                'spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", '
                '"TCP", "UDP"'
            ],
            id="protocol",
        ),
        pytest.param(
            PORT.format("{port: 0}"),
            ["spec.ingress[0].ports[0].port: must be between 1 and 65535, got 0"],
            id="port-range",
        ),
        pytest.param(
            PORT.format("{port: '123'}"),
            ["spec.ingress[0].ports[0].port: must contain at least one letter (a-z), got '123'"],
            id="port-name-letter",
        ),
        pytest.param(
            PORT.format("{port: http, endPort: 90}"),
            ["spec.ingress[0].ports[0].endPort: may not be specified when `port` is non-numeric"],
            id="endport-with-name",
        ),
        pytest.param(
            PORT.format("{port: 100, endPort: 90}"),
            ["spec.ingress[0].ports[0].endPort: must be greater than or equal to `port` (100), got 90"],
            id="endport-below-port",
        ),
        pytest.param(
            PORT.format("{endPort: 90}"),
            ["spec.ingress[0].ports[0].port: must be specified when endPort is specified"],
            id="endport-without-port",
        ),
        pytest.param(
            "{podSelector: {}, policyTypes: [Ingress, Ingress, Foo]}",
            [
                "spec.policyTypes: may not specify more than two policyTypes, got 3",
                'spec.policyTypes[1]: Duplicate value: "Ingress"',
                'spec.policyTypes[2]: Unsupported value: "Foo": supported values: "Egress", "Ingress"',
            ],
            id="policy-types",
        ),
    ],
)
def test_network_policy(spec: str, expected: list[str]) -> None:
    """https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/network-policy-v1/ and
    https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/label-selector/"""
    assert errors(NP.format(spec)) == [f"NetworkPolicy shop/np: {e}" for e in expected]
