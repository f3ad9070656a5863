"""Unit tests of the CNI plugin's parsing, node facts editing and result format (no root needed)."""

from __future__ import annotations

import io
import json
import threading
from ipaddress import IPv4Address, IPv6Address, ip_interface
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s_offload.cni import nodefacts
from k8s_offload.cni.cli import main, run
from k8s_offload.cni.config import CniEnv, parse_cni_args, parse_env, parse_netconf, pod_addresses
from k8s_offload.cni.errors import CniError
from k8s_offload.cni.netns import Marker, PodInterface
from k8s_offload.cni.plugin import build_result

BASE: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "name": "offload",
    "type": "offload-cni",
    "pool": [{"interface": "p4port10", "port": 10}],
    "nodeFacts": "/etc/k8s-offload/node.yaml",
}
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0"}


def conf(**changes: Any) -> bytes:
    return json.dumps({**BASE, **changes}).encode()


def code_of(fn: Any, *args: Any) -> int:
    with pytest.raises(CniError) as info:
        fn(*args)
    return info.value.code


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{not json", 6),
        (b"[]", 6),
        (conf(cniVersion="0.2.0"), 1),
        (conf(type="bridge"), 7),
        (conf(pool=[]), 7),
        (conf(pool=[{"interface": "p4port10", "port": 510}]), 7),
        (conf(pool=[{"interface": "a", "port": 10}, {"interface": "b", "port": 10}]), 7),
        (conf(nodeFacts="relative.yaml"), 7),
        (conf(mtu=20), 7),
        (conf(gateway={"ipv4": "fe80::1"}), 7),
        (conf(ipam={"type": "host-local"}), 2),
        (conf(ipam={"type": "static", "addresses": [{"address": "10.0.0.300/32"}]}), 7),
    ],
    ids=[
        "json",
        "not-object",
        "version",
        "type",
        "empty-pool",
        "cpu-port",
        "duplicate-port",
        "relative-facts",
        "mtu",
        "gateway-family",
        "ipam-type",
        "bad-address",
    ],
)
def test_bad_network_config_gets_spec_error_code(data: bytes, code: int) -> None:
    assert code_of(parse_netconf, data) == code


def test_valid_config_parses() -> None:
    c = parse_netconf(
        conf(
            mtu=1400,
            gateway={"ipv4": "169.254.1.1"},
            ipam={"type": "static", "addresses": [{"address": "10.0.0.5"}]},
        )
    )
    assert c.cni_version == "1.0.0" and c.mtu == 1400
    assert [(p.interface, p.port) for p in c.pool] == [("p4port10", 10)]
    assert str(c.gateway4) == "169.254.1.1" and c.gateway6 is None
    assert [str(a) for a in c.ipam_addresses] == ["10.0.0.5/32"]


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"CNI_COMMAND": "FROB"},
        {**ENV, "CNI_NETNS": ""},
        {**ENV, "CNI_CONTAINERID": "-bad"},
        {**ENV, "CNI_IFNAME": "a-name-that-is-too-long"},
        {**ENV, "CNI_ARGS": "novalue"},
    ],
    ids=["empty", "command", "netns", "container-id", "ifname", "args"],
)
def test_bad_environment_is_error_4(env: dict[str, str]) -> None:
    assert code_of(parse_env, env) == 4


def test_del_needs_no_netns_and_args_are_parsed() -> None:
    env = parse_env(
        {**ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": "", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=a"}
    )
    assert env.netns == "" and env.args["K8S_POD_NAME"] == "a" and env.pod is None
    assert parse_cni_args("A=1;B=x=y") == {"A": "1", "B": "x=y"}


def _env(args: dict[str, str]) -> CniEnv:
    return parse_env({**ENV, "CNI_ARGS": ";".join(f"{k}={v}" for k, v in args.items())})


def test_pod_address_precedence() -> None:
    ipam = {"type": "static", "addresses": [{"address": "10.0.0.5/32"}]}
    c = parse_netconf(conf(ipam=ipam))
    assert [str(a) for a in pod_addresses(c, _env({}))] == ["10.0.0.5/32"]
    assert [str(a) for a in pod_addresses(c, _env({"IP": "fd00::6/128,10.0.0.6/32"}))] == [
        "10.0.0.6/32",
        "fd00::6/128",
    ]
    c = parse_netconf(conf(ipam=ipam, runtimeConfig={"ips": ["10.0.0.7/32"]}))
    assert [str(a) for a in pod_addresses(c, _env({"IP": "10.0.0.6/32"}))] == ["10.0.0.7/32"]
    assert code_of(pod_addresses, parse_netconf(conf()), _env({})) == 7
    assert code_of(pod_addresses, parse_netconf(conf()), _env({"IP": "10.0.0.1/32,10.0.0.2/32"})) == 7


def test_result_format_per_version() -> None:
    want = PodInterface(
        "eth0", (ip_interface("10.0.0.5/32"), ip_interface("fd00::5/128")), IPv4Address("169.254.1.1"),
        IPv6Address("fe80::1"), 1400,
    )  # fmt: skip
    env = _env({})
    r1 = build_result(parse_netconf(conf()), env, want, "02:00:00:00:00:0a")
    assert r1["interfaces"] == [{"name": "eth0", "mac": "02:00:00:00:00:0a", "sandbox": "/run/netns/x"}]
    assert r1["ips"][0] == {"address": "10.0.0.5/32", "gateway": "169.254.1.1", "interface": 0}
    assert {"dst": "::/0", "gw": "fe80::1"} in r1["routes"]
    r04 = build_result(parse_netconf(conf(cniVersion="0.4.0")), env, want, "02:00:00:00:00:0a")
    assert r04["cniVersion"] == "0.4.0" and [ip["version"] for ip in r04["ips"]] == ["4", "6"]


def test_marker_round_trip() -> None:
    m = Marker("p4port10", 1500, True, "abc")
    assert Marker.decode(m.encode()) == m
    assert Marker.decode("something else") is None and Marker.decode("offload-cni host=x") is None


def test_version_and_error_json_via_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNI_COMMAND", "VERSION")
    out = io.StringIO()
    assert main(io.BytesIO(b'{"cniVersion": "1.0.0"}'), out) == 0
    assert json.loads(out.getvalue())["supportedVersions"] == ["0.4.0", "1.0.0"]
    monkeypatch.setenv("CNI_COMMAND", "ADD")  # but no CNI_CONTAINERID etc.
    out = io.StringIO()
    assert main(io.BytesIO(conf()), out) == 1
    assert json.loads(out.getvalue())["code"] == 4
    code, doc = run({"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "1.0.0"}')
    assert code == 0 and doc is not None and "1.0.0" in doc["supportedVersions"]
    code, doc = run({**ENV}, conf(cniVersion="9.9.9"))
    assert code == 1 and doc == {
        "cniVersion": "9.9.9",
        "code": 1,
        "msg": "cniVersion '9.9.9' is not supported",
        "details": "supported versions: 0.4.0, 1.0.0",
    }


# -- node facts file ----------------------------------------------------------------------------------

FACTS = """\
apiVersion: offload.k8s-offload.dev/v1alpha1
kind: NodeFacts
nodeName: node-a
nodeIPs: [192.168.10.11]
gateway: {ipv4: 169.254.1.1, ipv6: "fe80::1", mac: "02:00:00:00:00:01"}
ports: {arpProxy: 1, host: 2, uplink: 3}
pods:
  - {namespace: static, name: operator-made, port: 20, mac: "02:00:00:00:00:14"}
"""


def test_facts_edit_keeps_other_content(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(FACTS)
    with nodefacts.locked(path) as facts:
        assert facts.used_ports() == {20} and facts.special_ports() == {
            1: "ports.arpProxy",
            2: "ports.host",
            3: "ports.uplink",
        }
        facts.pods.append({"namespace": "a", "name": "b", "port": 10, "mac": "12:34:56:12:34:56"})
        facts.save()
    data = yaml.safe_load(path.read_text())
    before = yaml.safe_load(FACTS)
    assert {k: v for k, v in data.items() if k != "pods"} == {k: v for k, v in before.items() if k != "pods"}
    assert data["pods"][0] == before["pods"][0]
    assert data["pods"][1]["mac"] == "12:34:56:12:34:56"  # stays a string, not a YAML 1.1 sexagesimal int
    assert not list(tmp_path.glob(".node.yaml.*"))  # no temporary files left behind


def test_facts_lock_is_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text(FACTS)
    entered = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with nodefacts.locked(path):
            entered.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert entered.wait(5)
        assert code_of(lambda: nodefacts.locked(path, timeout=0.2).__enter__()) == 11
    finally:
        release.set()
        t.join()
    with nodefacts.locked(path, timeout=0.2) as facts:  # free again
        assert facts.pods


def test_missing_facts_file_starts_a_document(tmp_path: Path) -> None:
    with nodefacts.locked(tmp_path / "new" / "node.yaml") as facts:
        assert facts.pods == [] and facts.data["kind"] == "NodeFacts"
