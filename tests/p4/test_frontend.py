"""The front end on our program and on broken programs (errors carry the original location)."""

from __future__ import annotations

from pathlib import Path

import pytest

from k8s_offload.p4 import P4FrontendError, load_program, parse_program_text
from k8s_offload.p4.ast import Assign, BitsType, Constant, Member, RegisterInstance, Switch
from k8s_offload.p4.p4info import jenkins_one_at_a_time

REPO = Path(__file__).resolve().parents[2]

GOOD = """#include <core.p4>
#include <v1model.p4>
header h_t { bit<8> a; bit<8> b; }
struct hs_t { h_t h; }
struct m_t { bit<8> x; bool f; }
parser P(packet_in pk, out hs_t hdr, inout m_t m, inout standard_metadata_t sm) {
    state start { pk.extract(hdr.h); transition accept; }
}
control V(inout hs_t hdr, inout m_t m) { apply { } }
control I(inout hs_t hdr, inout m_t m, inout standard_metadata_t sm) {
    action a1(bit<8> v) { m.x = v; }
    action a2() { }
    table t { key = { hdr.h.a : exact; } actions = { a1; a2; } default_action = a2(); }
    apply {
BODY
    }
}
control E(inout hs_t hdr, inout m_t m, inout standard_metadata_t sm) { apply { } }
control C(inout hs_t hdr, inout m_t m) { apply { } }
control D(packet_out pk, in hs_t hdr) { apply { pk.emit(hdr.h); } }
V1Switch(P(), V(), I(), E(), C(), D()) main;
"""


def program_with(body: str) -> str:
    return GOOD.replace("BODY", body)


def test_our_program_parses() -> None:
    """Structure of our program as the front end sees it (speed is measured in bench/, not here)."""
    program = parse_program_text((REPO / "p4src" / "k8s_dp.p4").read_text(), "k8s_dp.p4", REPO / "p4src")
    pipe = program.v1_pipeline()
    assert (pipe.parser.name, pipe.ingress.name, pipe.deparser.name) == (
        "K8sParser",
        "K8sIngress",
        "K8sDeparser",
    )
    assert len(pipe.parser.states) == 12
    all_tables = [t for c in program.controls for t in c.tables]
    all_actions = [a for c in program.controls for a in c.actions]
    # Issue 21: svc_frontend (the selector table), svc_frontend_internal, svc_options, aff_backend;
    # no svc_backend, backend_nat, rev_nat, svc_split, svc_affinity. Exact peer tables *_peer_host.
    # Issue 20: per direction the tier tables *_tier_pod, *_tier_peer_host, *_tier_peer_class,
    # *_tier_peer_rules, *_tier_port_rules, *_admin, *_baseline (7) and their 12 actions.
    assert len(all_tables) == 18 + 2 * 7
    assert len(all_actions) == 36 + 2 * 12
    assert len(program.headers) == 13  # + icmp_error_t, ipv6_words_t (arch.p4, used on PNA only)
    assert [i.name for i in pipe.ingress.instances][:2] == ["port_classify", "flow_key"]


def test_model_details() -> None:
    program = load_program()
    ingress = program.control("K8sIngress")
    ct_value = ingress.extern("ct_value")
    assert isinstance(ct_value, RegisterInstance)
    assert (ct_value.element_width, ct_value.size) == (64, 65536)
    table = ingress.table("svc_frontend")
    assert [k.match_kind for k in table.keys] == ["exact"] * 5 + ["selector"] * 3
    assert table.match_keys[0].name == "meta.dst_addr" and table.match_keys[0].width == 128
    assert table.match_keys[3].name == "meta.fe_internal" and table.match_keys[3].width == 1
    assert table.implementation == "svc_selector"
    # No default_action: NoAction is added as @defaultonly and localized first in the control (p4c).
    assert table.default_action is not None and table.default_action.action == "NoAction"
    assert table.actions[-1].action == "NoAction" and table.actions[-1].scope == "DEFAULT_ONLY"
    assert ingress.locals[0] is ingress.action("NoAction") and not ingress.action("NoAction").body.stmts
    # `meta.fe_internal = 0;` sizes the literal to the field.
    (stmt,) = program.control("ServiceFrontend").action("not_internal").body.stmts
    assert isinstance(stmt, Assign) and isinstance(stmt.rhs, Constant)
    assert stmt.rhs.type == BitsType(1)
    assert isinstance(stmt.lhs, Member) and stmt.lhs.member == "fe_internal"
    const = program.constant("CPU_PORT").value
    assert isinstance(const, Constant) and (const.value, const.type) == (510, BitsType(9))
    assert [c.path for c in program.instantiated_controls()][:3] == [
        "K8sVerifyChecksum",
        "K8sIngress",
        "K8sIngress.port_classify",
    ]


def test_switch_and_hit() -> None:
    body = "if (t.apply().hit) { m.f = true; } switch (t.apply().action_run) { a1: { } default: { } }"
    program = parse_program_text(program_with(body), "x.p4")
    stmts = program.control("I").body.stmts
    assert isinstance(stmts[1], Switch) and stmts[1].cases[0].labels == ("a1",)


def loc_of(source: str) -> str:
    with pytest.raises(P4FrontendError) as info:
        parse_program_text(source, "bad.p4")
    return str(info.value)


def test_missing_semicolon() -> None:
    msg = loc_of(program_with("        m.x = 8w1\n        m.f = true;"))
    assert msg.startswith("bad.p4:15:18: syntax error: missing ';'"), msg


def test_unknown_type() -> None:
    msg = loc_of(GOOD.replace("struct m_t { bit<8> x;", "struct m_t { foo_t x;").replace("BODY", ""))
    assert msg == "bad.p4:5:14: unknown type 'foo_t'"


def test_unknown_field() -> None:
    msg = loc_of(program_with("        m.y = 1;"))
    assert msg == "bad.p4:15:11: unknown field 'y' of struct m_t"


def test_wrong_width() -> None:
    msg = loc_of(program_with("        m.x = 16w1;"))
    assert msg == "bad.p4:15:15: width mismatch in assignment: expected bit<8>, got bit<16>"


def test_literal_too_wide() -> None:
    msg = loc_of(program_with("        m.x = 256;"))
    assert msg == "bad.p4:15:15: assignment: value 256 does not fit in bit<8>"


def test_unsupported_construct() -> None:
    msg = loc_of(GOOD.replace("BODY", "") + "extern Foo { }\n")
    assert msg.startswith("bad.p4:22:1: unsupported construct: 'extern'"), msg


def test_unknown_name() -> None:
    assert loc_of(program_with("        m.x = nope;")) == "bad.p4:15:15: unknown name 'nope'"


def test_error_in_included_file_has_original_location(tmp_path: Path) -> None:
    (tmp_path / "inc.p4").write_text("#ifndef X\n#define X\nconst bit<8> K = 300;\n#endif\n")
    source = '#include "inc.p4"\n' + GOOD.replace("BODY", "")
    with pytest.raises(P4FrontendError) as info:
        parse_program_text(source, "main.p4", tmp_path)
    assert str(info.value).endswith("inc.p4:3:18: constant initializer: value 300 does not fit in bit<8>")


def test_jenkins_hash_matches_p4c_noaction_id() -> None:
    # NoAction is 21257015 in p4c's v1model test outputs: 0x01 prefix, hash of the name.
    assert (0x01 << 24) | (jenkins_one_at_a_time(b"NoAction") & 0xFFFFFF) == 21257015
