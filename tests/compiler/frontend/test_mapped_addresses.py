"""IPv4-mapped IPv6 addresses are refused wherever an IP is read (Kubernetes 1.33 IP validation);
the pipeline keys IPv4 in ::ffff:0:0/96, so accepting them would alias IPv4 entries."""

from __future__ import annotations

import pytest

from k8s_offload.compiler.errors import ManifestErrors
from k8s_offload.compiler.frontend.loader import load_text

POD = """
apiVersion: v1
kind: Pod
metadata: {name: p, namespace: default}
spec: {nodeName: n, containers: [{name: c, image: x}]}
status: {phase: Running, podIPs: [{ip: "::ffff:10.0.0.1"}]}
"""


def test_mapped_pod_ip_is_rejected_with_field_path() -> None:
    with pytest.raises(ManifestErrors) as info:
        load_text(POD, "pod.yaml")
    text = str(info.value)
    assert "Pod default/p: status.podIPs[0].ip: must not be an IPv4-mapped IPv6 address" in text
    assert "(use 10.0.0.1)" in text
