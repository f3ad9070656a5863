"""P4Info of k8s_dp.p4 against expectations read off the P4 source, and the committed copy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format, text_format

from k8s_offload.cli.main import main, serialize_p4info
from k8s_offload.p4 import parse_program_text
from k8s_offload.p4.p4info import build_p4info, load_p4info
from k8s_offload.p4rt.proto import p4info

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "p4src" / "build" / "k8s_dp.p4info.txtpb"


@pytest.fixture(scope="module")
def info() -> Any:
    return load_p4info()


def by_name(items: Any, name: str) -> Any:
    matches = [i for i in items if i.preamble.name == name]
    assert len(matches) == 1, name
    return matches[0]


def test_package_and_counts(info: Any) -> None:
    assert info.pkg_info.arch == "v1model"
    assert len(info.tables) == 18 + 2 * 7  # + eg_peer_host, in_peer_host; issue 20: 7 tier tables a direction
    assert len(info.actions) == 36 + 2 * 12
    assert [p.preamble.name for p in info.action_profiles] == ["K8sIngress.svc_selector"]


def test_tier_decision_tables(info: Any) -> None:
    """The admin and baseline tables: (tier set, matched rule bits) ternary, first rule by priority.
    Ids in stages 0x10 (egress tiers) and 0x11 (ingress tiers): 0x0e and 0x0f are the PNA
    program's (branch pna, k8s_dp_pna.p4)."""
    for name, table_id in (
        ("egress_policy.eg_admin", 0x02001006),
        ("ingress_policy.in_baseline", 0x02001107),
    ):
        t = by_name(info.tables, f"K8sIngress.{name}")
        assert t.preamble.id == table_id
        prefix = name.split(".")[1][:2]
        assert [(f.name, f.bitwidth, f.match_type) for f in t.match_fields] == [
            (f"meta.{prefix}_tier_set", 16, p4info.MatchField.EXACT),
            (f"meta.{prefix}_tier_hits", 64, p4info.MatchField.TERNARY),
        ]


def test_port_class_table(info: Any) -> None:
    t = by_name(info.tables, "K8sIngress.port_classify.port_class")
    assert t.preamble.id == 0x02000101
    assert t.preamble.alias == "port_class"
    assert [(f.id, f.name, f.bitwidth, f.match_type) for f in t.match_fields] == [
        (1, "meta.ingress_port", 9, p4info.MatchField.EXACT)
    ]
    assert [(r.id, r.scope, list(r.annotations)) for r in t.action_refs] == [
        (0x01000101, p4info.ActionRef.TABLE_AND_DEFAULT, []),
        (0x01000102, p4info.ActionRef.DEFAULT_ONLY, ["@defaultonly"]),
    ]
    assert t.size == 512
    assert not t.const_default_action_id
    assert t.initial_default_action.action_id == 0x01000102


def test_range_lpm_and_multi_field_keys(info: Any) -> None:
    ports = by_name(info.tables, "K8sIngress.egress_policy.eg_port_rules")
    assert [(f.name, f.bitwidth, f.match_type) for f in ports.match_fields] == [
        ("meta.eg_set", 16, p4info.MatchField.EXACT),
        ("meta.l4_proto", 8, p4info.MatchField.EXACT),
        ("meta.dport", 16, p4info.MatchField.RANGE),
    ]
    fwd = by_name(info.tables, "K8sIngress.forward.fwd")
    assert (fwd.match_fields[0].name, fwd.match_fields[0].bitwidth) == ("meta.dst_addr", 128)
    assert fwd.match_fields[0].match_type == p4info.MatchField.LPM
    assert fwd.size == 131072


def test_peer_host_tables_share_the_class_actions(info: Any) -> None:
    """The exact host tables answer before the LPM with the same action (p4src/README.md)."""
    for control, prefix, key, cid in (("egress", "eg", "dst_addr", 8), ("ingress", "in", "src_addr", 9)):
        t = by_name(info.tables, f"K8sIngress.{control}_policy.{prefix}_peer_host")
        assert t.preamble.id == 0x02000005 | cid << 8
        assert [(f.name, f.bitwidth, f.match_type) for f in t.match_fields] == [
            (f"meta.{key}", 128, p4info.MatchField.EXACT)
        ]
        lpm = by_name(info.tables, f"K8sIngress.{control}_policy.{prefix}_peer_class")
        assert [(r.id, r.scope) for r in t.action_refs] == [(r.id, r.scope) for r in lpm.action_refs]
        assert t.size == 131072


def test_selector_table_and_profile(info: Any) -> None:
    t = by_name(info.tables, "K8sIngress.svc_frontend")
    assert t.preamble.id == 0x02000501
    # Selector keys hash; the frontend, fe_internal and the split bucket (docs/passes.md, ECMP
    # packing) are match fields. meta.l4_proto is both: only its exact use reaches P4Info.
    assert [(f.id, f.name, f.bitwidth) for f in t.match_fields] == [
        (1, "meta.dst_addr", 128),
        (2, "meta.l4_proto", 8),
        (3, "meta.dport", 16),
        (4, "meta.fe_internal", 1),
        (5, "meta.fe_bucket", 8),
    ]
    assert t.implementation_id == 0x11000001
    assert t.size == 65536
    profile = by_name(info.action_profiles, "K8sIngress.svc_selector")
    assert profile.preamble.id == 0x11000001
    assert profile.with_selector
    assert (profile.size, profile.max_group_size) == (131072, 512)
    assert list(profile.table_ids) == [0x02000501]
    assert list(profile.preamble.annotations) == []


def test_actions_and_params(info: Any) -> None:
    a = by_name(info.actions, "K8sIngress.forward.to_pod")
    assert a.preamble.id == 0x01000A01
    assert [(p.id, p.name, p.bitwidth) for p in a.params] == [
        (1, "port", 9),
        (2, "pod_mac", 48),
        (3, "gateway_mac", 48),
    ]
    member4 = by_name(info.actions, "K8sIngress.set_backend4")
    assert [(p.name, p.bitwidth) for p in member4.params] == [("addr", 32), ("port", 16)]
    member6 = by_name(info.actions, "K8sIngress.set_backend6")
    assert [(p.name, p.bitwidth) for p in member6.params] == [("addr", 128), ("port", 16)]


def test_service_extension_tables(info: Any) -> None:
    """Issue 9's tables keep the stage numbering: 0x05 frontends, 0x0c affinity, 0x0d NAT source."""
    internal = by_name(info.tables, "K8sIngress.service_frontend.svc_frontend_internal")
    assert internal.preamble.id == 0x02000502
    assert [m.name for m in internal.match_fields] == ["meta.dst_addr", "meta.l4_proto", "meta.dport"]
    assert [r.id for r in internal.action_refs] == [0x01000506, 0x01000507]
    options = by_name(info.tables, "K8sIngress.service_frontend.svc_options")
    assert options.preamble.id == 0x02000503
    assert [m.name for m in options.match_fields] == [
        "meta.dst_addr",
        "meta.l4_proto",
        "meta.dport",
        "meta.fe_internal",
    ]
    assert [r.id for r in options.action_refs] == [0x01000508, 0x01000502, 0x01000505, 0x01000509]
    set_options = by_name(info.actions, "K8sIngress.service_frontend.set_options")
    assert [(p.name, p.bitwidth) for p in set_options.params] == [
        ("masq", 1),
        ("split", 8),
        ("aff_id", 24),
        ("aff_timeout", 32),
    ]
    check = by_name(info.tables, "K8sIngress.affinity_check.aff_backend")
    assert check.preamble.id == 0x02000C02
    assert [(m.name, m.bitwidth) for m in check.match_fields] == [
        ("meta.aff_id", 24),
        ("meta.be_addr", 128),
        ("meta.be_port", 16),
    ]
    src = by_name(info.tables, "K8sIngress.nat_source.nat_source")
    assert src.preamble.id == 0x02000D01
    assert [(m.name, m.match_type) for m in src.match_fields] == [("meta.dst_addr", p4info.MatchField.LPM)]
    set_src = by_name(info.actions, "K8sIngress.nat_source.set_nat_source")
    assert (set_src.preamble.id, [(p.name, p.bitwidth) for p in set_src.params]) == (
        0x01000D01,
        [("addr", 128)],
    )


def test_counter_registers_packet_io(info: Any) -> None:
    (counter,) = info.counters
    assert (counter.preamble.name, counter.preamble.id) == ("K8sIngress.drop_reasons", 0x12000001)
    assert counter.spec.unit == p4info.CounterSpec.BOTH and counter.size == 16
    regs = {r.preamble.name: r for r in info.registers}
    assert regs["K8sIngress.ct_tag"].type_spec.bitstring.bit.bitwidth == 32
    assert regs["K8sIngress.ct_value"].type_spec.bitstring.bit.bitwidth == 64
    assert regs["K8sIngress.ct_value"].preamble.id == 0x16000002
    assert {r.size for r in regs.values()} == {65536}
    # Issue 9: masquerade addresses in the flow cache, and the session-affinity memory; issue 21:
    # the NAT address of a flow (its backend, or its frontend for a reply) and of a remembered backend.
    assert [(n, r.preamble.id, r.type_spec.bitstring.bit.bitwidth) for n, r in sorted(regs.items())] == [
        ("K8sIngress.aff_addr", 0x16000007, 128),
        ("K8sIngress.aff_tag", 0x16000004, 32),
        ("K8sIngress.aff_value", 0x16000005, 64),
        ("K8sIngress.ct_addr", 0x16000003, 128),
        ("K8sIngress.ct_nat", 0x16000006, 128),
        ("K8sIngress.ct_tag", 0x16000001, 32),
        ("K8sIngress.ct_value", 0x16000002, 64),
    ]
    pin = by_name(info.controller_packet_metadata, "packet_in")
    assert pin.preamble.id == 0x04000001
    assert [(m.id, m.name, m.bitwidth) for m in pin.metadata] == [(1, "ingress_port", 9), (2, "_pad", 7)]
    assert list(pin.preamble.annotations) == ['@controller_header("packet_in")']
    assert by_name(info.controller_packet_metadata, "packet_out").preamble.id == 0x04000002


def test_hash_ids_aliases_and_id_prefix_check() -> None:
    source = (REPO / "tests" / "p4" / "data" / "noids.p4").read_text()
    info = build_p4info(parse_program_text(source, "noids.p4"))
    names = {a.preamble.name: a for a in info.actions}
    # p4c: prefix 0x01 | jenkins("I.drop") & 0xffffff, etc.; both controls have 'drop'.
    assert names["I.drop"].preamble.alias == "I.drop"
    assert names["E.drop"].preamble.alias == "E.drop"
    assert names["I.fwd"].preamble.alias == "fwd"
    assert all(a.preamble.id >> 24 == 0x01 for a in info.actions)
    bad = source.replace("@id(5) table", "@id(0x01000005) table")
    with pytest.raises(Exception, match="wrong 8-bit prefix"):
        build_p4info(parse_program_text(bad, "noids.p4"))


def test_committed_p4info_is_fresh() -> None:
    expected = serialize_p4info(load_p4info(), "text").decode()
    assert COMMITTED.read_text() == expected, "p4src/build/k8s_dp.p4info.txtpb is stale: run `make p4info`"


@pytest.mark.parametrize("fmt", ["text", "json", "binary"])
def test_cli_formats_round_trip(fmt: str, tmp_path: Path) -> None:
    out = tmp_path / f"p4info.{fmt}"
    assert main(["p4info", "--format", fmt, "-o", str(out)]) == 0
    parsed = p4info.P4Info()
    if fmt == "text":
        text_format.Parse(out.read_text(), parsed)
    elif fmt == "json":
        json.loads(out.read_text())
        json_format.Parse(out.read_text(), parsed)
    else:
        parsed.ParseFromString(out.read_bytes())
    assert parsed == load_p4info()


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.p4"
    bad.write_text("const bit<8> X = 1\n")
    assert main(["p4info", "--program", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "bad.p4:1:19: syntax error: missing ';'" in captured.err
    assert main(["p4info", "--format", "yaml"]) == 2
    assert main(["--version"]) == 0


def test_identity_and_address_formats(info: Any) -> None:
    """@pkginfo on main and @format on address keys and parameters, as p4c copies them (P4Runtime
    spec "PkgInfo Message" and "@format annotation"), so generic clients show addresses."""
    assert (info.pkg_info.name, info.pkg_info.version) == ("k8s_dp", "1.2.0")
    fwd = by_name(info.tables, "K8sIngress.forward.fwd")
    assert list(fwd.match_fields[0].annotations) == ["@format(IPV6_ADDRESS)"]
    member4 = by_name(info.actions, "K8sIngress.set_backend4")
    assert [list(p.annotations) for p in member4.params] == [["@format(IPV4_ADDRESS)"], []]
    to_pod = by_name(info.actions, "K8sIngress.forward.to_pod")
    mac = ["@format(MAC_ADDRESS)"]
    assert [list(p.annotations) for p in to_pod.params] == [[], mac, mac]


def test_selector_table_gets_noaction_like_p4c(info: Any) -> None:
    """svc_frontend declares no default_action: p4c's CreateBuiltins adds `@defaultonly NoAction`,
    whose P4Info name is the global `NoAction` (id from the jenkins hash, first in the list)."""
    table = by_name(info.tables, "K8sIngress.svc_frontend")
    assert [(r.id, list(r.annotations)) for r in table.action_refs][-1] == (21257015, ["@defaultonly"])
    assert info.actions[0].preamble.name == "NoAction" and info.actions[0].preamble.id == 21257015
    assert list(info.actions[0].preamble.annotations) == ['@noWarn("unused")']


def _program(main_annotations: str, table: str = "default_action = a2();") -> str:
    return f"""#include <core.p4>
#include <v1model.p4>
header h_t {{ bit<8> a; }}
struct hs_t {{ h_t h; }}
struct m_t {{ bit<8> x; }}
parser P(packet_in pk, out hs_t hdr, inout m_t m, inout standard_metadata_t sm) {{
    state start {{ pk.extract(hdr.h); transition accept; }}
}}
control V(inout hs_t hdr, inout m_t m) {{ apply {{ }} }}
control I(inout hs_t hdr, inout m_t m, inout standard_metadata_t sm) {{
    action a2() {{ }}
    table t {{ key = {{ hdr.h.a : exact; }} actions = {{ a2; }} {table} }}
    apply {{ t.apply(); if (sm.parser_error == error.PacketTooShort) {{ m.x = 1; }} }}
}}
control E(inout hs_t hdr, inout m_t m, inout standard_metadata_t sm) {{ apply {{ }} }}
control C(inout hs_t hdr, inout m_t m) {{ apply {{ }} }}
control D(packet_out pk, in hs_t hdr) {{ apply {{ pk.emit(hdr.h); }} }}
{main_annotations}
V1Switch(P(), V(), I(), E(), C(), D()) main;
"""


def test_pkginfo_keys_and_errors() -> None:
    text = '@pkginfo(name="x", version="2", organization="o", contact="c", url="u")'
    got = build_p4info(parse_program_text(_program(text), "p.p4")).pkg_info
    assert (got.name, got.version, got.organization, got.contact, got.url, got.arch) == (
        "x", "2", "o", "c", "u", "v1model",
    )  # fmt: skip
    with pytest.raises(Exception, match="unknown key 'colour'"):
        build_p4info(parse_program_text(_program('@pkginfo(colour="red")'), "p.p4"))
    with pytest.raises(Exception, match='key="value"'):
        build_p4info(parse_program_text(_program("@pkginfo(name=1)"), "p.p4"))


def test_table_without_default_action_and_explicit_noaction() -> None:
    info = build_p4info(parse_program_text(_program("", table=""), "p.p4"))
    (table,) = info.tables
    assert [a.preamble.name for a in info.actions] == ["NoAction", "I.a2"]
    assert table.initial_default_action.action_id == info.actions[0].preamble.id
    listed = _program("", table="default_action = NoAction();").replace("{ a2; }", "{ a2; NoAction; }")
    info = build_p4info(parse_program_text(listed, "p.p4"))
    assert [a.preamble.name for a in info.actions] == ["NoAction", "I.a2"]
    assert [r.scope for r in info.tables[0].action_refs] == [p4info.ActionRef.TABLE_AND_DEFAULT] * 2
