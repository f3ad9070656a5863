"""`--format p4rt-ctl`: IPDK's command lines, read back the way the tool reads them.

The reader below follows clients/p4rt-ctl/p4rt-ctl.in of ipdk-io/networking-recipe (commit
cd584d4a): `add-entry` flows split at `,action=` (or at `,member_id=` / `,group_id=`), the key at
`,priority=`, each `field=a/b` read as a pair encoded by the field's P4Info match kind, values as
hex (`0x`) or decimal, encoded at the field's full width; action parameters by position in P4Info
order; `add-action-profile-group` as `group_id=N,reference_members=(..),max_size=K`. What it
builds must be, entity for entity, the Updates our `p4rt-bin` form holds for the same bundle.

The v1model program's port keys are ranges, which the tool cannot program (it sets a priority only
when a ternary key is present); the dpdk profile's ranges are prefix-aligned blocks, so the
round trip uses the P4Info with those keys made ternary (the form a DPDK program declares) and
each aligned range as its value/mask.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from k8s_offload.compiler.bundle.model import Bundle, ProfileGroup, ProfileMember, Range, TableEntry, Ternary
from k8s_offload.compiler.bundle.p4rt import write_request
from k8s_offload.compiler.bundle.p4rtctl import to_p4rt_ctl
from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.passes.pipeline import PassConfig
from k8s_offload.p4rt.proto import p4info as p4i
from k8s_offload.p4rt.proto import p4runtime as p4r

REPO = Path(__file__).resolve().parents[3]
SHOP = REPO / "examples" / "shop"


def _ternary_ports() -> Schema:
    info: Any = p4i.P4Info()
    info.CopyFrom(default_schema().p4info)
    for table in info.tables:
        for m in table.match_fields:
            if m.match_type == p4i.MatchField.RANGE:
                m.match_type = p4i.MatchField.TERNARY
    return Schema(info)


def _as_ternary(e: TableEntry, widths: dict[str, int]) -> TableEntry:
    match = []
    for name, m in e.match:
        if isinstance(m, Range):
            size = m.high - m.low + 1
            assert size & (size - 1) == 0 and m.low % size == 0, "a dpdk-profile range is one aligned block"
            m = Ternary(m.low, ((1 << widths[name]) - 1) ^ (size - 1))
        match.append((name, m))
    return replace(e, match=tuple(match))


@pytest.fixture(scope="module")
def shop() -> tuple[Schema, Bundle]:
    result = compile_sources(
        [SHOP / "cluster"], SHOP / "node.yaml", passes=PassConfig.parse(None, False, "dpdk")
    )
    schema = _ternary_ports()
    b = result.lowered.bundle
    widths = {t.name: {f.name: f.bitwidth for f in t.fields} for t in schema.tables()}
    entries = tuple(_as_ternary(e, widths[e.table]) for e in b.entries)
    assert entries != b.entries  # the shop's policies have port ranges
    return schema, replace(b, entries=entries)


# -- the reader ---------------------------------------------------------------------------------


def _num(text: str) -> int:
    return int(text, 16) if text.startswith("0x") else int(text)


def _action(info: Any, text: str) -> Any:
    name, _, rest = text.partition("(")
    action = next(a for a in info.actions if a.preamble.name == name)
    values = [_num(v) for v in rest.rstrip(")").split(",")] if rest else []
    assert len(values) == len(action.params), text
    call = p4r.Action(action_id=action.preamble.id)
    for p, v in zip(action.params, values, strict=True):
        call.params.add(param_id=p.id, value=v.to_bytes((p.bitwidth + 7) // 8, "big"))
    return call


def _read(info: Any, text: str) -> list[Any]:
    """Entities, in order, from the command lines (comments and blank lines skipped)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        argv = shlex.split(line, comments=True)
        assert argv[0] == "p4rt-ctl" and argv[2] == "br-test", line
        cmd, obj, flow = argv[1], argv[3], argv[4]
        if cmd == "add-action-profile-member":
            prof = next(p for p in info.action_profiles if p.preamble.name == obj)
            act, mid = flow.split(",member_id=")
            member = p4r.ActionProfileMember(action_profile_id=prof.preamble.id, member_id=int(mid))
            member.action.CopyFrom(_action(info, act.removeprefix("action=")))
            out.append(p4r.Entity(action_profile_member=member))
            continue
        if cmd == "add-action-profile-group":
            prof = next(p for p in info.action_profiles if p.preamble.name == obj)
            m = re.fullmatch(r"group_id=(\d+),reference_members=\(([\d,]*)\),max_size=(\d+)", flow)
            assert m, flow
            group = p4r.ActionProfileGroup(
                action_profile_id=prof.preamble.id, group_id=int(m[1]), max_size=int(m[3])
            )
            for mid in m[2].split(","):
                group.members.add(member_id=int(mid), weight=1)
            out.append(p4r.Entity(action_profile_group=group))
            continue
        table = next(t for t in info.tables if t.preamble.name == obj)
        te = p4r.TableEntry(table_id=table.preamble.id)
        if cmd == "set-default-entry":
            te.is_default_action = True
            te.action.action.CopyFrom(_action(info, flow))
            out.append(p4r.Entity(table_entry=te))
            continue
        assert cmd == "add-entry", line
        for sep, field in (
            (",member_id=", "action_profile_member_id"),
            (",group_id=", "action_profile_group_id"),
        ):
            if sep in flow:
                key, ref = flow.split(sep)
                assert "priority" not in flow  # the tool refuses a priority here
                setattr(te.action, field, int(ref))
                break
        else:
            key, act = flow.split(",action=")
            te.action.action.CopyFrom(_action(info, act))
            if ",priority=" in key:
                key, prio = key.split(",priority=")
                te.priority = int(prio)
        for part in key.split(","):
            name, value = part.split("=")
            f = next(f for f in table.match_fields if f.name == name)
            size = (f.bitwidth + 7) // 8
            fm = te.match.add(field_id=f.id)
            a, _, b = value.partition("/")
            if f.match_type == p4i.MatchField.EXACT:
                fm.exact.value = _num(a).to_bytes(size, "big")
            elif f.match_type == p4i.MatchField.LPM:
                fm.lpm.value, fm.lpm.prefix_len = _num(a).to_bytes(size, "big"), _num(b)
            elif f.match_type == p4i.MatchField.TERNARY:
                fm.ternary.value, fm.ternary.mask = (
                    _num(a).to_bytes(size, "big"),
                    _num(b).to_bytes(size, "big"),
                )
            else:
                raise AssertionError(f"kind {f.match_type} in {line}")
        out.append(p4r.Entity(table_entry=te))
    return out


def _canonical(entity: Any) -> Any:
    """Bytes as numbers (the tool writes full width, we the shortest form) and match fields by id."""
    e = p4r.Entity()
    e.CopyFrom(entity)

    def strip(b: bytes) -> bytes:
        return int.from_bytes(b, "big").to_bytes(
            max(1, (int.from_bytes(b, "big").bit_length() + 7) // 8), "big"
        )

    def action(a: Any) -> None:
        for p in a.params:
            p.value = strip(p.value)

    which = e.WhichOneof("entity")
    if which == "table_entry":
        te = e.table_entry
        for fm in te.match:
            kind = fm.WhichOneof("field_match_type")
            part = getattr(fm, kind)
            for attr in ("value", "mask"):
                if hasattr(part, attr):
                    setattr(part, attr, strip(getattr(part, attr)))
        ordered = sorted(te.match, key=lambda fm: fm.field_id)
        del te.match[:]
        te.match.extend(ordered)
        if te.action.HasField("action"):
            action(te.action.action)
    elif which == "action_profile_member":
        action(e.action_profile_member.action)
    return e.SerializeToString(deterministic=True)


# -- tests --------------------------------------------------------------------------------------


def test_round_trip_equals_the_p4runtime_form(shop: tuple[Schema, Bundle]) -> None:
    schema, bundle = shop
    text = to_p4rt_ctl(schema, bundle, "br-test")
    read = _read(schema.p4info, text)
    want = [u.entity for u in write_request(schema, bundle).updates]
    assert len(read) == len(want) == len(bundle.members) + len(bundle.groups) + len(bundle.entries)
    assert [_canonical(e) for e in read] == [_canonical(e) for e in want]
    kinds = {line.split()[1] for line in text.splitlines() if not line.startswith("#")}
    assert kinds == {
        "add-entry",
        "add-action-profile-member",
        "add-action-profile-group",
        "set-default-entry",
    }
    assert any("priority=" in line for line in text.splitlines())  # the ternary port entries


def test_lines_name_their_objects_and_replay_in_dependency_order(shop: tuple[Schema, Bundle]) -> None:
    schema, bundle = shop
    lines = [ln for ln in to_p4rt_ctl(schema, bundle).splitlines() if not ln.startswith("#")]
    cmds = [ln.split()[1] for ln in lines]
    first_entry = cmds.index("add-entry")
    assert all(c.startswith("add-action-profile") for c in cmds[:first_entry])
    assert cmds.index("add-action-profile-group") > max(
        i for i, c in enumerate(cmds) if c == "add-action-profile-member"
    )
    assert all(ln.split()[2] == "br0" for ln in lines)  # the default bridge
    assert any(ln.endswith("Service shop/frontend") and "  # " in ln for ln in lines)


def test_bridge_is_quoted_for_the_shell(shop: tuple[Schema, Bundle]) -> None:
    schema, bundle = shop
    line = to_p4rt_ctl(schema, bundle, "br 0;rm").splitlines()[1]
    assert shlex.split(line)[2] == "br 0;rm"


def test_what_the_tool_cannot_express_is_refused(shop: tuple[Schema, Bundle]) -> None:
    schema, bundle = shop
    port = next(e for e in bundle.entries if any(isinstance(m, Ternary) for _, m in e.match))
    cases: list[tuple[Bundle, str]] = []
    group = bundle.groups[0]
    weighted = ProfileGroup(
        group.profile, group.group_id, ((group.members[0][0], 3),), group.max_size, ("Service a/b",)
    )
    cases.append((Bundle(groups=(weighted,)), "have weights"))
    member = bundle.members[0]
    cases.append(
        (Bundle(members=(ProfileMember(member.profile, 0, member.action, ("Service a/b",)),)), "member id 0")
    )
    entry = next(e for e in bundle.entries if e.match and not e.priority and e.action is not None)
    cases.append((Bundle(entries=(replace(entry, match=()),)), "every key field don't-care"))
    # a range key in a table without ternary keys: the program's own P4Info
    program = default_schema()
    v1_port = replace(
        port,
        match=tuple((n, Range(m.value, m.value) if isinstance(m, Ternary) else m) for n, m in port.match),
    )
    for b, why in cases:
        with pytest.raises(BundleError, match=why) as err:
            to_p4rt_ctl(schema, b)
        assert "p4rt-ctl cannot express" in str(err.value)
    with pytest.raises(BundleError, match="range key without a ternary one") as err:
        to_p4rt_ctl(program, Bundle(entries=(v1_port,)))
    assert "NetworkPolicy shop/" in str(err.value)


def test_cli_refuses_a_bundle_with_range_keys_naming_the_policy() -> None:
    """On the v1model program's P4Info (port keys are ranges) the shop cannot be written as
    p4rt-ctl lines: exit 1, one line naming the table and the NetworkPolicy, nothing on stdout."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "k8s_offload.cli.main",
            str(SHOP / "cluster"),
            "--node",
            str(SHOP / "node.yaml"),
            "--target-profile",
            "dpdk",
            "--format",
            "p4rt-ctl",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert re.search(
        r"p4rt-ctl cannot express this entry of \S+_port_rules \(from NetworkPolicy shop/", proc.stderr
    )
