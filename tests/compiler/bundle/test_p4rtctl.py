"""`--format p4rt-ctl`: IPDK p4rt-ctl command lines (issue 19 item 5).

The expected lines below were written by hand from p4rt-ctl's own usage and parser (IPDK
networking recipe, clients/p4rt-ctl/p4rt-ctl.in): `add-entry SWITCH TABLE "k=v,...,priority=N,
action=A(p,...)"`, `member_id=`/`group_id=` instead of an action for a profile table,
`set-default-entry SWITCH TABLE "A(p,...)"`, `add-action-profile-member SWITCH PROFILE
"action=A(p,...),member_id=N"`, `add-action-profile-group SWITCH PROFILE
"group_id=N,reference_members=(m,...),max_size=M"`. The round trip below splits every line the
way that parser does and compares the result with the bundle, so a line p4rt-ctl would read
differently fails here.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from k8s_offload.compiler.bundle.model import (
    ActionCall,
    Bundle,
    Exact,
    Lpm,
    Optional,
    ProfileGroup,
    ProfileMember,
    Range,
    TableEntry,
    Ternary,
)
from k8s_offload.compiler.bundle.p4rtctl import to_p4rt_ctl
from k8s_offload.compiler.bundle.render import render
from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.passes.pipeline import PassConfig

REPO = Path(__file__).resolve().parents[3]
SHOP = REPO / "examples" / "shop"
P = "K8sIngress."


@pytest.fixture(scope="module")
def schema() -> Schema:
    return default_schema()


def _small_bundle() -> Bundle:
    member = ProfileMember(
        P + "svc_selector", 7, ActionCall(P + "set_backend4", (("addr", 0x0AF40102), ("port", 53)))
    )
    group = ProfileGroup(P + "svc_selector", 9, ((7, 1), (8, 1)), 512)
    entries = (
        TableEntry(
            P + "port_classify.port_class",
            (("meta.ingress_port", Exact(3)),),
            ActionCall(P + "port_classify.set_port_kind", (("kind", 1),)),
        ),
        TableEntry(
            P + "forward.fwd",
            (("meta.dst_addr", Lpm(0xFFFF0AF40000, 112)),),
            ActionCall(P + "forward.to_port", (("port", 2),)),
        ),
        TableEntry(
            P + "egress_policy.eg_port_rules",
            (("meta.eg_set", Exact(5)), ("meta.l4_proto", Exact(6)), ("meta.dport", Range(0x50, 0x5F))),
            ActionCall(P + "egress_policy.eg_set_port_rules", (("rules", 1),)),
            priority=13,
        ),
        TableEntry(
            P + "svc_frontend",
            (
                ("meta.dst_addr", Exact(0xFFFF0A60000A)),
                ("meta.l4_proto", Exact(17)),
                ("meta.dport", Exact(53)),
                ("meta.fe_internal", Exact(0)),
                ("meta.fe_bucket", Exact(0)),
            ),
            group_id=9,
        ),
        TableEntry(
            P + "neigh_steer.neigh_steer",
            (),
            ActionCall(P + "neigh_steer.steer_to_port", (("port", 2),)),
            is_default=True,
        ),
    )
    return Bundle((member,), (group,), entries)


def test_each_kind_of_line(schema: Schema) -> None:
    assert to_p4rt_ctl(schema, _small_bundle(), "br7").splitlines() == [
        "p4rt-ctl add-action-profile-member br7 K8sIngress.svc_selector "
        '"action=K8sIngress.set_backend4(0xaf40102,0x35),member_id=7"',
        "p4rt-ctl add-action-profile-group br7 K8sIngress.svc_selector "
        '"group_id=9,reference_members=(7,8),max_size=512"',
        "p4rt-ctl add-entry br7 K8sIngress.port_classify.port_class "
        '"meta.ingress_port=0x3,action=K8sIngress.port_classify.set_port_kind(0x1)"',
        "p4rt-ctl add-entry br7 K8sIngress.forward.fwd "
        '"meta.dst_addr=0xffff0af40000/112,action=K8sIngress.forward.to_port(0x2)"',
        "p4rt-ctl add-entry br7 K8sIngress.egress_policy.eg_port_rules "
        '"meta.eg_set=0x5,meta.l4_proto=0x6,meta.dport=0x50/0x5f,priority=13,'
        'action=K8sIngress.egress_policy.eg_set_port_rules(0x1)"',
        "p4rt-ctl add-entry br7 K8sIngress.svc_frontend "
        '"meta.dst_addr=0xffff0a60000a,meta.l4_proto=0x11,meta.dport=0x35,meta.fe_internal=0x0,'
        'meta.fe_bucket=0x0,group_id=9"',
        "p4rt-ctl set-default-entry br7 K8sIngress.neigh_steer.neigh_steer "
        '"K8sIngress.neigh_steer.steer_to_port(0x2)"',
    ]


def test_an_action_without_parameters_is_its_bare_name(schema: Schema) -> None:
    # p4rt-ctl's parse_action turns `NAME()` into one empty parameter and fails converting it.
    e = TableEntry(P + "forward.fwd", (), ActionCall(P + "forward.no_route"), is_default=True)
    assert to_p4rt_ctl(schema, Bundle(entries=(e,))) == (
        'p4rt-ctl set-default-entry br0 K8sIngress.forward.fwd "K8sIngress.forward.no_route"\n'
    )


def test_ternary_keys_are_value_and_mask(schema: Schema) -> None:
    # No table of ours has a ternary key; the form is p4rt-ctl's `v/mask` with a hex mask, never
    # all digits (which p4rt-ctl would read as a prefix length).
    e = TableEntry(
        P + "egress_policy.eg_port_rules",
        (("meta.eg_set", Exact(5)), ("meta.dport", Ternary(0x50, 0xFFF0))),
        ActionCall(P + "egress_policy.eg_set_port_rules", (("rules", 1),)),
        priority=2,
    )
    (line,) = to_p4rt_ctl(schema, Bundle(entries=(e,))).splitlines()
    assert '"meta.eg_set=0x5,meta.dport=0x50/0xfff0,priority=2,action=' in line


@pytest.mark.parametrize(
    ("bundle", "message"),
    [
        (
            Bundle(groups=(ProfileGroup(P + "svc_selector", 9, ((7, 2), (8, 1)), 512),)),
            "no member weights \\(7x2\\)",
        ),
        (
            Bundle(members=(ProfileMember(P + "svc_selector", 0, ActionCall(P + "set_backend4")),)),
            "rejects member_id 0",
        ),
        (Bundle(groups=(ProfileGroup(P + "svc_selector", 0, ((7, 1),), 512),)), "rejects group_id 0"),
        (
            Bundle(
                entries=(
                    TableEntry(P + "forward.fwd", (), ActionCall(P + "forward.to_port", (("port", 1),))),
                )
            ),
            "without a key field",
        ),
        (
            Bundle(
                entries=(
                    TableEntry(
                        P + "port_classify.port_class",
                        (("meta.ingress_port", Optional(3)),),
                        ActionCall(P + "port_classify.unknown_port"),
                    ),
                )
            ),
            "no syntax for the optional key",
        ),
        (
            Bundle(
                entries=(
                    TableEntry(P + "svc_frontend", (("meta.dport", Exact(1)),), member_id=3, priority=4),
                )
            ),
            "no priority with a member",
        ),
        (
            Bundle(
                members=(
                    ProfileMember(P + "svc_selector", 7, ActionCall(P + "set_backend4", (("addr", 1),))),
                )
            ),
            "no value for parameter\\(s\\) port",
        ),
    ],
)
def test_what_p4rt_ctl_cannot_say_is_refused(schema: Schema, bundle: Bundle, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        to_p4rt_ctl(schema, bundle)


def _split_flow(flow: str) -> tuple[dict[str, str], str | None, str]:
    """A flow cut as p4rt-ctl's parse_flow / parse_flow_ternary / parse_flow_as cut it."""
    if "group_id" in flow or "member_id" in flow:
        assert "priority" not in flow
        key, ref = re.split(r",(?=(?:group_id|member_id)=)", flow)
        return dict(kv.split("=", 1) for kv in key.split(",")), None, ref
    key, action = flow.split(",action=")
    priority = None
    if "priority" in flow:
        key, priority = key.split(",priority=")
    return dict(kv.split("=", 1) for kv in key.split(",")), priority, action


def _value(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(text)


def _params(action: str) -> tuple[str, list[int]]:
    name, paren, rest = action.partition("(")
    args = rest.removesuffix(")")
    assert not paren or args, f"{action}: p4rt-ctl fails on empty parentheses"
    return name, [_value(a) for a in args.split(",")] if args else []


def test_shop_on_dpdk_round_trips_through_p4rt_ctls_grammar(schema: Schema) -> None:
    """Every line of the shop example (dpdk profile), read back with p4rt-ctl's splitting rules
    and its match kinds from P4Info, gives the bundle's entities, in the bundle's order."""
    result = compile_sources([SHOP / "cluster"], SHOP / "node.yaml", passes=PassConfig(profile="dpdk"))
    bundle = result.lowered.bundle
    lines = render(schema, bundle, "p4rt-ctl").decode().splitlines()
    assert len(lines) == len(bundle.members) + len(bundle.groups) + len(bundle.entries)
    it = iter(lines)
    seen: set[str] = set()
    for m in bundle.members:
        tool, cmd, bridge, profile, flow = shlex.split(next(it))
        assert (tool, cmd, bridge, profile) == ("p4rt-ctl", "add-action-profile-member", "br0", m.profile)
        action, member_id = flow.split(",member_id=")
        name, args = _params(action.removeprefix("action="))
        assert (name, int(member_id)) == (m.action.name, m.member_id)
        assert args == [v for _, v in m.action.params]
    for g in bundle.groups:
        tool, cmd, bridge, profile, flow = shlex.split(next(it))
        assert cmd == "add-action-profile-group"
        found = re.fullmatch(r"group_id=(\d+),reference_members=\(([\d,]+)\),max_size=(\d+)", flow)
        assert found is not None, flow
        assert int(found[1]) == g.group_id and int(found[3]) == g.max_size
        assert [int(x) for x in found[2].split(",")] == [mid for mid, _ in g.members]
    for e in bundle.entries:
        words = shlex.split(next(it))
        assert words[3] == e.table
        if e.is_default:
            assert words[1] == "set-default-entry" and e.action is not None
            assert _params(words[4]) == (e.action.name, [v for _, v in e.action.params])
            continue
        assert words[1] == "add-entry"
        keys, priority, rest = _split_flow(words[4])
        info = schema.table(e.table)
        assert list(keys) == [f for f, _ in e.match]
        for field, m in e.match:
            value, _, second = keys[field].partition("/")
            kind = info.field(field).kind
            seen.add(kind)
            if kind == "exact":
                assert m == Exact(_value(value)) and not second
            elif kind == "lpm":
                assert second.isdigit() and m == Lpm(_value(value), int(second))
            elif kind == "range":
                assert not second.isdigit() and m == Range(_value(value), _value(second))
            else:
                assert kind == "ternary" and m == Ternary(_value(value), _value(second))
        assert (int(priority) if priority else 0) == e.priority
        if e.action is not None:
            assert _params(rest) == (e.action.name, [v for _, v in e.action.params])
        elif e.member_id is not None:
            assert rest == f"member_id={e.member_id}"
            seen.add("member ref")
        else:
            assert rest == f"group_id={e.group_id}"
            seen.add("group ref")
        if e.priority:
            seen.add("priority")
    assert next(it, None) is None
    assert {"exact", "lpm", "range", "group ref", "priority"} <= seen, seen
    assert render(schema, bundle, "p4rt-ctl") == "\n".join(lines).encode() + b"\n"  # deterministic


def test_the_command_line_writes_p4rt_ctl_with_the_bridge_asked_for(tmp_path: Path) -> None:
    out = tmp_path / "cmds.sh"
    cmd = [sys.executable, "-m", "k8s_offload.cli.main", str(SHOP / "cluster"), "--node"]
    cmd += [str(SHOP / "node.yaml"), "--target-profile", "dpdk", "--format", "p4rt-ctl"]
    cmd += ["--bridge", "br9", "-q", "-o", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr
    lines = out.read_text().splitlines()
    assert lines and all(line.startswith("p4rt-ctl ") and line.split()[2] == "br9" for line in lines)
