"""Hostile input from the runtime (hypothesis): whatever arrives, the plugin answers with the spec's
error document and a documented code, never a traceback, and nothing invalid reaches the node facts.

No root needed: every generated invocation fails validation before any netlink request, or names
a network namespace that does not exist.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k8s_offload.cni.cli import run
from k8s_offload.cni.config import parse_env
from k8s_offload.cni.errors import CniError
from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.frontend.nodefacts import parse_node_facts

# docs/cni.md, "Errors": the codes the plugin may return (199, a bug, must never show up).
DOCUMENTED = {1, 3, 4, 5, 6, 7, 11, 50, 51, 100, 101, 102, 103, 104}
NO_NETNS = "/run/netns/k8s-offload-test-does-not-exist"

names = st.one_of(
    st.text(max_size=300),
    st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?", fullmatch=True),
    st.sampled_from(["Web", "../../etc", "a" * 300, "web\nkind: Evil", "web\x00", "wéb", "-web", "web-"]),
)


@settings(max_examples=300, deadline=None)
@given(namespace=names, name=names)
def test_accepted_pod_identity_is_valid_node_facts(namespace: str, name: str) -> None:
    """Either CNI_ARGS is refused (code 4) or the compiler accepts the record it would produce."""
    env = parse_env(
        {
            "CNI_COMMAND": "ADD",
            "CNI_CONTAINERID": "c1",
            "CNI_NETNS": NO_NETNS,
            "CNI_IFNAME": "eth0",
            "CNI_ARGS": f"K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name}",
        }
    )
    try:
        ns, pod = env.pod
    except CniError as exc:
        assert exc.code == 4 and "\n" not in exc.msg and len(exc.msg) < 200
        return
    doc = {
        "apiVersion": "offload.k8s-offload.dev/v1alpha1",
        "kind": "NodeFacts",
        "nodeName": "node-a",
        "gateway": {"ipv4": "169.254.1.1", "mac": "02:00:00:00:00:01"},
        "ports": {"arpProxy": 1, "host": 2, "uplink": 3},
        "pods": [{"namespace": ns, "name": pod, "port": 10, "mac": "02:00:00:00:00:0a", "containerId": "c1"}],
    }
    facts = parse_node_facts(doc, Location("node.yaml"))  # raises if the compiler would reject it
    assert [(p.namespace, p.name) for p in facts.pods] == [(ns, pod)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
fields = st.sampled_from(
    ["cniVersion", "name", "type", "pool", "nodeFacts", "mtu", "gateway", "ipam", "runtimeConfig",
     "prevResult", "dns", "metricsFile", "cni.dev/valid-attachments"]
)  # fmt: skip


def _base(tmp: Path) -> dict[str, Any]:
    return {
        "cniVersion": "1.1.0",
        "name": "offload",
        "type": "offload-cni",
        "pool": [{"interface": "t8hostile0", "port": 10}],
        "nodeFacts": str(tmp / "node.yaml"),
    }


def _check_reply(code: int, doc: dict[str, Any] | None) -> None:
    assert code in (0, 1)
    if code == 1:
        assert doc is not None and set(doc) <= {"cniVersion", "code", "msg", "details"}
        assert doc["code"] in DOCUMENTED, doc
        assert isinstance(doc["msg"], str) and "\n" not in doc["msg"] and len(doc["msg"]) < 400
        json.dumps(doc)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    command=st.sampled_from(["ADD", "CHECK", "STATUS", "VERSION", "", "add", "FROB"]),
    changes=st.dictionaries(fields, json_values, max_size=3),
    args=st.text(max_size=60),
    ifname=st.text(max_size=20),
)
def test_mutated_config_and_environment_get_a_documented_error(
    command: str, changes: dict[str, Any], args: str, ifname: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        conf = {**_base(Path(tmp)), **changes}
        environ = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": "c1",
            "CNI_NETNS": NO_NETNS,
            "CNI_IFNAME": ifname,
            "CNI_ARGS": args,
            "CNI_PATH": tmp,
        }
        code, doc = run(environ, json.dumps(conf).encode())
        _check_reply(code, doc)


@settings(max_examples=200, deadline=None)
@given(stdin=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_stdin_gets_a_documented_error(stdin: bytes) -> None:
    for command in ("ADD", "DEL", "CHECK", "GC", "STATUS"):
        environ = {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": "c1",
            "CNI_NETNS": NO_NETNS,
            "CNI_IFNAME": "eth0",
        }
        code, doc = run(environ, stdin)
        _check_reply(code, doc)
        assert code == 1  # none of these can be a valid configuration


def test_deeply_nested_stdin_for_every_command() -> None:
    for depth_bomb in (b"[" * 200_000, b'{"a":' * 100_000, b'{"cniVersion": "1.0.0", "x": ' + b"[" * 100_000):
        for command in ("ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"):
            environ = {
                "CNI_COMMAND": command,
                "CNI_CONTAINERID": "c1",
                "CNI_NETNS": NO_NETNS,
                "CNI_IFNAME": "e",
            }
            code, doc = run(environ, depth_bomb)
            _check_reply(code, doc)
            assert (code == 0) == (command == "VERSION")
