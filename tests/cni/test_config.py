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
from k8s_offload.cni.config import (
    CniEnv,
    DelegatedIpam,
    StaticIpam,
    parse_cni_args,
    parse_env,
    parse_netconf,
    static_addresses,
)
from k8s_offload.cni.errors import CniError
from k8s_offload.cni.netns import Marker, PodInterface
from k8s_offload.cni.plugin import build_result
from tests.cni.conftest import FACTS_HEAD

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
        (conf(ipam={"type": "../bin/host-local"}), 7),
        (conf(ipam={"type": "static", "addresses": [{"address": "10.0.0.300/32"}]}), 7),
        (conf(name="a b"), 7),
        (b'{"cniVersion": "1.0.0", "cniVersion": "1.1.0"}', 6),
        (b"[" * 100_000, 6),
        (b"\xff\xfe{}", 6),
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
        "ipam-type-path",
        "bad-address",
        "network-name",
        "duplicate-key",
        "deep-nesting",
        "not-utf8",
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
    assert c.ipam == StaticIpam((ip_interface("10.0.0.5/32"),))
    assert parse_netconf(conf(ipam={"type": "host-local", "ranges": []})).ipam == DelegatedIpam("host-local")
    assert parse_netconf(conf()).ipam == StaticIpam(())


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"CNI_COMMAND": "FROB"},
        {**ENV, "CNI_NETNS": ""},
        {**ENV, "CNI_CONTAINERID": "-bad"},
        {**ENV, "CNI_IFNAME": "a-name-that-is-too-long"},
        {**ENV, "CNI_IFNAME": "éééééééé"},  # 8 characters, 16 bytes: over IFNAMSIZ
        {**ENV, "CNI_IFNAME": "eth\u00e0"},  # UTF-8 c3 a0: the kernel's isspace() refuses 0xa0
        {**ENV, "CNI_IFNAME": "eth0\udcff"},  # an undecodable environment byte
        {**ENV, "CNI_IFNAME": "eth:0"},
        {**ENV, "CNI_CONTAINERID": "c" * 181},
        {**ENV, "CNI_NETNS": "relative/ns"},
        {**ENV, "CNI_ARGS": "x" * 20_000},
    ],
    ids=[
        "empty", "command", "netns", "container-id", "ifname", "ifname-bytes", "ifname-a0",
        "ifname-surrogate", "ifname-colon", "container-id-long", "netns-relative", "args-long",
    ],
)  # fmt: skip
def test_bad_environment_is_error_4(env: dict[str, str]) -> None:
    assert code_of(parse_env, env) == 4


def test_multibyte_interface_name_within_15_bytes_is_accepted() -> None:
    assert parse_env({**ENV, "CNI_IFNAME": "netéé"}).ifname == "netéé"  # 7 bytes


def test_del_needs_no_netns_and_args_are_parsed_on_demand() -> None:
    env = parse_env(
        {**ENV, "CNI_COMMAND": "DEL", "CNI_NETNS": "", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=a"}
    )
    assert env.netns == "" and env.args["K8S_POD_NAME"] == "a"
    assert code_of(lambda: env.pod) == 4  # no namespace
    assert parse_cni_args("A=1;B=x=y") == {"A": "1", "B": "x=y"}
    # DEL needs nothing from CNI_ARGS, so unparsable arguments do not stop it (§2 "DEL" is best effort).
    assert parse_env({**ENV, "CNI_COMMAND": "DEL", "CNI_ARGS": "garbage"}).container_id == "c1"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("K8S_POD_NAME", "Web"),
        ("K8S_POD_NAME", "../../etc"),
        ("K8S_POD_NAME", "a" * 300),
        ("K8S_POD_NAME", "web\nkind: Evil"),
        ("K8S_POD_NAMESPACE", "a.b"),  # a namespace is a label, no dots
        ("K8S_POD_NAMESPACE", "x" * 64),
    ],
    ids=["uppercase", "traversal", "300-chars", "newline", "ns-dot", "ns-64"],
)
def test_pod_identity_is_validated_as_kubernetes_names(key: str, value: str) -> None:
    args = {"K8S_POD_NAMESPACE": "shop", "K8S_POD_NAME": "web", key: value}
    env = parse_env({**ENV, "CNI_ARGS": ";".join(f"{k}={v}" for k, v in args.items())})
    with pytest.raises(CniError) as info:
        _ = env.pod
    assert info.value.code == 4 and key in info.value.msg and len(info.value.msg) < 200


def _env(args: dict[str, str]) -> CniEnv:
    return parse_env({**ENV, "CNI_ARGS": ";".join(f"{k}={v}" for k, v in args.items())})


def _static(c: Any, env: CniEnv) -> list[str]:
    assert isinstance(c.ipam, StaticIpam)
    return [str(a) for a in static_addresses(c, env, c.ipam)]


def test_static_pod_address_precedence() -> None:
    ipam = {"type": "static", "addresses": [{"address": "10.0.0.5/24"}]}
    c = parse_netconf(conf(ipam=ipam))
    assert _static(c, _env({})) == ["10.0.0.5/32"]  # always a host prefix: the pod routes via the gateway
    assert _static(c, _env({"IP": "fd00::6/128,10.0.0.6/32"})) == ["10.0.0.6/32", "fd00::6/128"]
    c = parse_netconf(conf(ipam=ipam, runtimeConfig={"ips": ["10.0.0.7/32"]}))
    assert _static(c, _env({"IP": "10.0.0.6/32"})) == ["10.0.0.7/32"]
    assert code_of(_static, parse_netconf(conf()), _env({})) == 7
    assert code_of(_static, parse_netconf(conf()), _env({"IP": "10.0.0.1/32,10.0.0.2/32"})) == 7
    assert code_of(_static, parse_netconf(conf()), _env({"IP": "10.0.0.300"})) == 4


def test_result_format_per_version() -> None:
    want = PodInterface(
        "eth0", (ip_interface("10.0.0.5/32"), ip_interface("fd00::5/128")), IPv4Address("169.254.1.1"),
        IPv6Address("fe80::1"), 1400,
    )  # fmt: skip
    env = _env({})
    mac = "02:00:00:00:00:0a"
    r1 = build_result(parse_netconf(conf()), env, want, mac, None)
    assert r1["interfaces"] == [{"name": "eth0", "mac": mac, "sandbox": "/run/netns/x"}]
    assert r1["ips"][0] == {"address": "10.0.0.5/32", "gateway": "169.254.1.1", "interface": 0}
    assert {"dst": "::/0", "gw": "fe80::1"} in r1["routes"]
    # §5 "ADD Success": 1.1.0 interfaces may carry their MTU; before 1.0.0 each IP names its version.
    r11 = build_result(
        parse_netconf(conf(cniVersion="1.1.0")), env, want, mac, {"nameservers": ["10.0.0.10"]}
    )
    assert r11["interfaces"][0]["mtu"] == 1400 and r11["dns"] == {"nameservers": ["10.0.0.10"]}
    for version in ("0.3.0", "0.3.1", "0.4.0"):
        old = build_result(parse_netconf(conf(cniVersion=version)), env, want, mac, None)
        assert old["cniVersion"] == version and [ip["version"] for ip in old["ips"]] == ["4", "6"]
    # §2 "ADD": a prevResult is passed through with our interface appended.
    prev = {"interfaces": [{"name": "lo0"}], "ips": [{"address": "10.9.9.9/32", "interface": 0}], "dns": {}}
    chained = build_result(parse_netconf(conf(prevResult=prev)), env, want, mac, None)
    assert [i["name"] for i in chained["interfaces"]] == ["lo0", "eth0"]
    assert [(ip["address"], ip["interface"]) for ip in chained["ips"]] == [
        ("10.9.9.9/32", 0), ("10.0.0.5/32", 1), ("fd00::5/128", 1),
    ]  # fmt: skip


def test_marker_round_trip() -> None:
    m = Marker("p4port10", 1500, True, "abc", "eth0")
    assert Marker.decode(m.encode()) == m
    assert m.owned_by("abc", "eth0") and not m.owned_by("abc", "net1") and not m.owned_by("abd", "eth0")
    old = Marker.decode("offload-cni host=p4port10 mtu=1500 up=1 cid=abc")  # before if= was recorded
    assert old is not None and old.ifname is None and old.owned_by("abc", "net1")
    assert Marker.decode("something else") is None and Marker.decode("offload-cni host=x") is None
    assert Marker.decode(None) is None and Marker.decode(b"bytes") is None


def test_version_and_error_json_via_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNI_COMMAND", "VERSION")
    out = io.StringIO()
    assert main([], io.BytesIO(b'{"cniVersion": "0.4.0"}'), out) == 0
    # §2 "VERSION" / §5 "VERSION Success": the input's cniVersion, every version we speak.
    assert json.loads(out.getvalue()) == {
        "cniVersion": "0.4.0",
        "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
    }
    monkeypatch.setenv("CNI_COMMAND", "ADD")  # but no CNI_CONTAINERID etc.
    out = io.StringIO()
    assert main([], io.BytesIO(conf()), out) == 1
    assert json.loads(out.getvalue())["code"] == 4
    code, doc = run({"CNI_COMMAND": "VERSION"}, b"garbage")
    assert code == 0 and doc is not None and doc["cniVersion"] == "1.1.0"
    code, doc = run({**ENV}, conf(cniVersion="9.9.9"))
    assert code == 1 and doc == {
        "cniVersion": "1.1.0",
        "code": 1,
        "msg": "cniVersion '9.9.9' is not supported",
        "details": "supported versions: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0",
    }


@pytest.mark.parametrize(
    ("command", "version"),
    [("CHECK", "0.3.1"), ("CHECK", "0.3.0"), ("STATUS", "1.0.0"), ("GC", "1.0.0"), ("GC", "0.4.0")],
)
def test_command_newer_than_config_version_is_error_1(command: str, version: str, tmp_path: Path) -> None:
    """§2: CHECK exists since 0.4.0, STATUS and GC since 1.1.0; an older config cannot ask for them."""
    env = {**ENV, "CNI_COMMAND": command}
    code, doc = run(env, conf(cniVersion=version, nodeFacts=str(tmp_path / "node.yaml")))
    assert code == 1 and doc is not None and doc["code"] == 1 and doc["cniVersion"] == version
    assert not (tmp_path / "node.yaml").exists()


def test_invalid_pod_name_touches_nothing(tmp_path: Path) -> None:
    facts = tmp_path / "node.yaml"
    env = {**ENV, "CNI_ARGS": "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=../../etc;IP=10.0.0.5"}
    code, doc = run(env, conf(nodeFacts=str(facts)))
    assert code == 1 and doc is not None and doc["code"] == 4
    assert not facts.exists() and not list(tmp_path.iterdir())


def test_bad_log_settings_do_not_break_the_protocol(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CNI_COMMAND", "VERSION")
    monkeypatch.setenv("OFFLOAD_CNI_LOG", str(tmp_path))  # a directory: cannot be opened as a log
    monkeypatch.setenv("OFFLOAD_CNI_LOG_LEVEL", "LOUD")
    out = io.StringIO()
    assert main([], io.BytesIO(b"{}"), out) == 0
    assert json.loads(out.getvalue())["cniVersion"] == "1.1.0"
    monkeypatch.setenv("OFFLOAD_CNI_LOG", "/nonexistent/dir/cni.log")
    monkeypatch.setenv("CNI_COMMAND", "ADD")
    out = io.StringIO()
    assert main([], io.BytesIO(b"[" * 50_000), out) == 1
    assert json.loads(out.getvalue())["code"] == 4  # CNI_CONTAINERID etc. are checked first


def test_oversized_stdin_is_error_6(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNI_COMMAND", "ADD")
    out = io.StringIO()
    assert main([], io.BytesIO(b" " * (2 << 20)), out) == 1
    assert json.loads(out.getvalue())["code"] == 6


# -- node facts file ----------------------------------------------------------------------------------

FACTS = (
    FACTS_HEAD
    + """\
pods:
  - {namespace: static, name: operator-made, port: 20, mac: "02:00:00:00:00:14"}
"""
)


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


ALIAS_BOMB = b"a: &a [x, x, x, x, x, x, x, x, x]\n" + b"".join(
    f"{b}: &{b} [*{a}, *{a}, *{a}, *{a}]\n".encode() for a, b in zip("abcdefghi", "bcdefghij", strict=True)
)


@pytest.mark.parametrize(
    "content",
    [
        b"\xff\xfe\x00garbage",
        b"a: " + b"[" * 20_000,
        b"pods: {a: 1}",
        b"- a list",
        b"key: [unclosed",
        b"kind: NodeFacts\nkind: NodeFacts\n",
        ALIAS_BOMB,
        b"a: 1\n---\nb: 2\n",
    ],
    ids=[
        "not-utf8",
        "deep",
        "pods-not-list",
        "not-mapping",
        "bad-yaml",
        "duplicate-key",
        "alias-bomb",
        "two-docs",
    ],
)
def test_broken_facts_file_is_error_101(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "node.yaml"
    path.write_bytes(content)
    with pytest.raises(CniError) as info, nodefacts.locked(path) as facts:
        _ = facts.pods
    assert info.value.code == 101
    assert path.read_bytes() == content


def test_symlinked_facts_file_is_written_through(tmp_path: Path) -> None:
    real = tmp_path / "real" / "node.yaml"
    real.parent.mkdir()
    real.write_text(FACTS)
    real.chmod(0o640)
    link = tmp_path / "node.yaml"
    link.symlink_to(real)
    with nodefacts.locked(link) as facts:
        facts.pods.append({"namespace": "a", "name": "b", "port": 10, "mac": "02:00:00:00:00:0b"})
        facts.save()
    assert link.is_symlink() and link.resolve() == real
    assert [p["name"] for p in yaml.safe_load(real.read_text())["pods"]] == ["operator-made", "b"]
    assert real.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in real.parent.iterdir()) == ["node.yaml"]
