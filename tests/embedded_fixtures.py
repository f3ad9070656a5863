"""Shared fixtures: an embedded target on an ephemeral loopback port, clients, the shop bundle."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.contract import default_schema, read_p4info
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.loader.entities import Item, Key, bundle_items, device_items
from k8s_offload.p4rt.client import P4RuntimeClient
from k8s_offload.target.server import EmbeddedTarget

REPO = Path(__file__).resolve().parents[1]
SHOP = REPO / "examples" / "shop" / "cluster"
NODE = REPO / "examples" / "shop" / "node.yaml"
P4RT_SHELL_ELECTION_ID = 1 << 64  # p4runtime-shell's default --election-id (high=1, low=0)


@pytest.fixture(scope="session")
def p4info() -> Any:
    return read_p4info()


@pytest.fixture(scope="session")
def schema() -> Schema:
    return default_schema()


@pytest.fixture(scope="session")
def shop_bundle(schema: Schema) -> Bundle:
    return compile_sources([SHOP], NODE, schema=schema).lowered.bundle


@pytest.fixture
def shop_dir(tmp_path: Path) -> Path:
    """A private, editable copy of the shop manifests."""
    out = tmp_path / "shop"
    out.mkdir()
    for f in SHOP.glob("*.yaml"):
        shutil.copy(f, out / f.name)
    return out


@pytest.fixture
def switch() -> Iterator[EmbeddedTarget]:
    with EmbeddedTarget() as sw:
        yield sw


@pytest.fixture
def coe_switch() -> Iterator[EmbeddedTarget]:
    """A target that, like bmv2/Stratum/infrap4d, only offers CONTINUE_ON_ERROR."""
    with EmbeddedTarget(continue_on_error_only=True) as sw:
        yield sw


def connect(address: str, election_id: int = 1, p4info: Any = None) -> P4RuntimeClient:
    client = P4RuntimeClient(address, election_id=election_id, timeout=5.0)
    client.connect()
    if p4info is not None and client.is_primary and client.get_pipeline() is None:
        client.set_pipeline(p4info)
    return client


def device_state(client: P4RuntimeClient, p4info: Any) -> dict[Key, Item]:
    return device_items(client.read_all(p4info))


def desired(schema: Schema, bundle: Bundle) -> dict[Key, Item]:
    return bundle_items(schema, bundle)


def until(cond: Any, timeout: float = 10.0) -> bool:
    """Poll `cond` until it holds (True) or `timeout` seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False
