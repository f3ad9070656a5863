"""p4c-bm2-ss compiles p4src/k8s_dp.p4 unchanged, and our front end's P4Info equals p4c's."""

from __future__ import annotations

import difflib
from typing import Any

from google.protobuf import text_format

from k8s_offload.compiler.contract import read_p4info
from k8s_offload.p4.p4info import load_p4info
from tests.bmv2.conftest import Build


def _text(info: Any) -> list[str]:
    return str(text_format.MessageToString(info)).splitlines()


def test_p4c_compiles_the_program_with_the_one_known_warning(p4c_build: Build) -> None:
    warnings = [line for line in p4c_build.stderr.splitlines() if "warning" in line]
    # p4c gives every table without default_action `default_action = NoAction` and the bmv2
    # backend then warns that a table with an action selector cannot hold it; we rely on none.
    assert len(warnings) == 1, p4c_build.stderr
    assert "default_action for K8sIngress.svc_frontend (due to action profiles)" in warnings[0]


def test_our_p4info_equals_p4cs(p4c_build: Build) -> None:
    """Names, ids, aliases, widths, match kinds, annotations (@format, @defaultonly, @noWarn),
    pkg_info, controller headers, externs: identical. The one difference is p4c's: p4c 1.2.4.8 does
    not write `initial_default_action` (a P4Runtime 1.4 field, docs/p4-frontend.md)."""
    ours = load_p4info()
    assert ours == read_p4info()  # the committed contract is our front end's output
    stripped = type(ours)()
    stripped.CopyFrom(ours)
    for table in stripped.tables:
        assert table.HasField("initial_default_action") or table.implementation_id
        table.ClearField("initial_default_action")
    assert not any(t.HasField("initial_default_action") for t in p4c_build.p4info.tables)
    diff = "\n".join(
        difflib.unified_diff(_text(p4c_build.p4info), _text(stripped), "p4c", "ours", lineterm="")
    )
    assert stripped == p4c_build.p4info, diff
