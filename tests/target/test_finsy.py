"""P4Runtime clients not written here (finsy, p4runtime-shell) against the embedded target.

finsy reads back what the loader wrote (exactly the bundle), arbitrates as primary and backup,
and its `Switch.delete_all()` leaves nothing; p4runtime-shell's wildcard reads of every table,
profile, counter, multicast group and clone session succeed and find the bundle. Each client
lives in its own virtualenv (tests/target/third_party.py).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.loader.cli import main as loader_main
from k8s_offload.loader.entities import device_items, entity_value
from k8s_offload.p4rt.proto import p4runtime as p4r
from k8s_offload.target.server import EmbeddedTarget
from tests.embedded_fixtures import NODE, SHOP, connect, desired, device_state
from tests.target.third_party import FINSY, P4SH, run_json, venv_python


@pytest.fixture(scope="session")
def finsy_python() -> Path:
    return venv_python(".venv-finsy", FINSY)


@pytest.fixture(scope="session")
def p4sh_python() -> Path:
    return venv_python(".venv-p4sh", P4SH)


def _finsy_read(python: Path, address: str, election_id: int, *extra: str) -> dict[str, Any]:
    return run_json(python, "finsy_readback.py", address, "--election-id", str(election_id), *extra)


def _entities(result: dict[str, Any]) -> list[Any]:
    return [json_format.ParseDict(e["entity"], p4r.Entity()) for e in result["entities"]]


def test_finsy_reads_exactly_the_compiled_bundle(
    finsy_python: Path, switch: EmbeddedTarget, p4info: Any, schema: Schema, shop_bundle: Bundle
) -> None:
    assert loader_main(["--once", "--target", switch.address, "--node", str(NODE), str(SHOP)]) == 0
    result = _finsy_read(finsy_python, switch.address, election_id=10)
    assert result["primary"] and result["api_version"] == "1.6.0"

    got = device_items(_entities(result))
    want = desired(schema, shop_bundle)
    # Every table has a default entry; those the bundle does not set must hold the program's own.
    initial = {t.preamble.id: t for t in p4info.tables}
    extra = {k for k in got if k not in want}
    assert all(k[0] == "default" and k[1] in initial for k in extra), sorted(extra)
    assert set(want) <= set(got)
    for key, item in want.items():
        assert entity_value(got[key].entity) == entity_value(item.entity), key
    # finsy decoded each entity against the device's P4Info: the names it found are the bundle's
    alias = {t.preamble.name: t.preamble.alias for t in p4info.tables}
    names = {e["name"] for e in result["entities"] if e["kind"] == "table_entry"}
    assert {alias[e.table] for e in shop_bundle.entries} <= names
    count = len(shop_bundle.entries) + len(shop_bundle.members) + len(shop_bundle.groups)
    assert len(want) == count


def test_finsy_is_a_backup_while_the_loader_is_primary(
    finsy_python: Path, switch: EmbeddedTarget, p4info: Any
) -> None:
    """Arbitration interoperates: a lower election id is told ALREADY_EXISTS and may still read."""
    loader = connect(switch.address, election_id=20, p4info=p4info)
    try:
        result = _finsy_read(finsy_python, switch.address, election_id=10)
        assert not result["primary"]
        assert loader.is_primary
        assert all(e["kind"] == "table_entry" for e in result["entities"])  # only the defaults
        assert {e["name"] for e in result["entities"]} == {t.preamble.alias for t in p4info.tables}
    finally:
        loader.close()


def test_finsy_recovers_from_an_election_id_in_use(
    finsy_python: Path, switch: EmbeddedTarget, p4info: Any
) -> None:
    """Our INVALID_ARGUMENT for a used election id is one finsy understands: it retries lower."""
    loader = connect(switch.address, election_id=10, p4info=p4info)
    try:
        result = _finsy_read(finsy_python, switch.address, election_id=10)
        assert not result["primary"] and loader.is_primary
    finally:
        loader.close()


def _load_shop(switch: EmbeddedTarget) -> None:
    assert loader_main(["--once", "--target", switch.address, "--node", str(NODE), str(SHOP)]) == 0


def test_finsy_delete_all_leaves_nothing(
    finsy_python: Path, switch: EmbeddedTarget, p4info: Any, shop_bundle: Bundle
) -> None:
    """delete_all reads table entries, multicast groups and clone sessions in one request (the
    last two must read as empty, not UNIMPLEMENTED), deletes, resets defaults, deletes profiles."""
    _load_shop(switch)
    result = _finsy_read(finsy_python, switch.address, 10, "--delete-all")
    assert result["primary"]
    assert [e for e in result["entities"] if e["kind"] != "table_entry"] == []
    reader = connect(switch.address, election_id=100)
    try:
        left = device_state(reader, p4info)
    finally:
        reader.close()
    assert {k for k in left if k[0] != "default"} == set()
    initial = {t.preamble.id: t for t in p4info.tables}
    for key, item in left.items():  # every default back to the program's initial default
        want = initial[key[1]].initial_default_action
        assert item.entity.table_entry.action.action.action_id == want.action_id, key


def test_p4runtime_shell_wildcard_reads(
    p4sh_python: Path, switch: EmbeddedTarget, p4info: Any, schema: Schema, shop_bundle: Bundle
) -> None:
    """Wildcard reads per table, profile and counter, and of multicast groups and clone sessions
    (none: read as empty), find exactly the bundle's entries."""
    _load_shop(switch)
    result = run_json(p4sh_python, "p4sh_readback.py", switch.address, "--election-id", "10")
    assert result["errors"] == []
    kinds = Counter(e["kind"] for e in result["entities"])
    assert kinds["action_profile_member"] == len(shop_bundle.members)
    assert kinds["action_profile_group"] == len(shop_bundle.groups)
    assert kinds["default_entry"] == sum(1 for t in p4info.tables if not t.implementation_id)
    assert kinds["counter_entry"] == sum(c.size for c in p4info.counters)
    assert kinds["multicast_group_entry"] == kinds["clone_session_entry"] == 0
    entries = [e["entity"] for e in result["entities"] if e["kind"] == "table_entry"]
    got = device_items(p4r.Entity(table_entry=json_format.ParseDict(te, p4r.TableEntry())) for te in entries)
    want = {k: v for k, v in desired(schema, shop_bundle).items() if k[0] == "table"}
    assert set(got) == set(want)
    for key, item in want.items():
        assert entity_value(got[key].entity) == entity_value(item.entity), key
