"""A P4Runtime client not written here (finsy) reads back what the loader wrote: exactly the bundle.

finsy 0.30 pins protobuf < 7 and this project runs on protobuf 7, so finsy lives in its own
virtualenv, `.venv-finsy` at the repository root, built once (under a file lock) on first use and
reused while its stamp matches. `make finsy-venv` builds the same thing.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
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
from tests.embedded_fixtures import NODE, REPO, SHOP, connect, desired

FINSY = "finsy==0.30.0"
VENV = REPO / ".venv-finsy"
SCRIPT = Path(__file__).with_name("finsy_readback.py")


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


@pytest.fixture(scope="session")
def finsy_python() -> Path:
    """The interpreter of a virtualenv holding finsy; built (python -m venv, pip install) if missing."""
    stamp = VENV / f".stamp-{FINSY}"
    with open(REPO / ".venv-finsy.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            shutil.rmtree(VENV, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
            pip = [str(_python(VENV)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, FINSY], check=True, timeout=900)
            stamp.touch()
    return _python(VENV)


def _finsy_read(python: Path, address: str, election_id: int) -> dict[str, Any]:
    out = subprocess.run(
        [str(python), str(SCRIPT), address, "--election-id", str(election_id)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


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
