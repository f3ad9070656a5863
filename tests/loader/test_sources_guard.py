"""Sources that must not lose data silently (issue 17 item 4): the deletion guard, kubelet volumes,
unreadable paths, and hostile files that must not stall the loop."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from k8s_offload.loader.daemon import Loader, LoaderConfig
from k8s_offload.loader.sources import SourceWatcher, fingerprint
from k8s_offload.target.server import EmbeddedTarget
from tests.compiler.frontend.test_frontend_bounds import bomb, configmap_volume, deny_listing
from tests.embedded_fixtures import NODE, SHOP


def _loader(target: str, sources: list[str | Path], **kw: Any) -> Loader:
    return Loader(LoaderConfig(sources=sources, node=NODE, target=target, poll_interval=0.05, **kw))


def _synced(loader: Loader) -> None:
    loader.step()  # compile + connect
    loader.step()  # sync
    assert loader.in_sync


def _touch(d: Path) -> None:
    time.sleep(0.01)  # a new mtime_ns on file systems with coarse timestamps
    for f in d.iterdir():
        os.utime(f)


def test_briefly_empty_directory_deletes_nothing(switch: EmbeddedTarget, shop_dir: Path) -> None:
    loader = _loader(switch.address, [shop_dir])
    try:
        _synced(loader)
        good = dict(loader.desired or {})
        writes = switch.servicer.write_count
        backup = shop_dir.parent / "backup"
        shutil.move(shop_dir, backup)
        shop_dir.mkdir()  # a sync tool caught between emptying and refilling the directory
        loader.step()
        assert loader.desired == good
        assert loader.metrics.get("offload_deletion_guard_holds_total") == 1
        shop_dir.rmdir()
        shutil.move(backup, shop_dir)  # refilled before the second read
        loader.step()
        loader.step()
        assert loader.desired == good and loader.matches()
        assert switch.servicer.write_count == writes
    finally:
        loader.close()


def test_a_second_identical_read_confirms_the_deletion(switch: EmbeddedTarget, shop_dir: Path) -> None:
    loader = _loader(switch.address, [shop_dir])
    try:
        _synced(loader)
        before = len(loader.desired or {})
        for f in shop_dir.iterdir():
            f.unlink()
        loader.step()  # first read: held
        assert len(loader.desired or {}) == before
        loader.step()  # the second read, although no file changed since: confirmed
        assert len(loader.desired or {}) < before / 2
        loader.step()
        assert loader.matches()
        assert loader.metrics.get("offload_deletion_guard_holds_total") == 1
    finally:
        loader.close()


def test_small_deletions_and_a_disabled_guard_apply_at_once(switch: EmbeddedTarget, shop_dir: Path) -> None:
    loader = _loader(switch.address, [shop_dir])
    try:
        _synced(loader)
        before = len(loader.desired or {})
        (shop_dir / "networkpolicies.yaml").unlink()
        loader.step()
        assert len(loader.desired or {}) < before
        assert loader.metrics.get("offload_deletion_guard_holds_total") == 0
    finally:
        loader.close()
    loader = _loader(switch.address, [shop_dir], max_delete_share=1.0)
    try:
        _synced(loader)
        for f in shop_dir.iterdir():
            f.unlink()
        loader.step()
        assert len(loader.desired or {}) < before / 2
        assert loader.metrics.get("offload_deletion_guard_holds_total") == 0
    finally:
        loader.close()


def test_configmap_volume_swap_is_seen_and_read_once(tmp_path: Path) -> None:
    files = {f.name: f.read_text() for f in SHOP.glob("*.yaml")}
    configmap_volume(tmp_path, "v1", files)
    watcher = SourceWatcher([tmp_path])
    assert watcher.changed()
    assert not watcher.changed()
    assert [entry[0] for entry in fingerprint([tmp_path])] == [str(tmp_path / n) for n in sorted(files)]
    configmap_volume(tmp_path, "v2", files)  # same content, new version: a change to reread
    assert watcher.changed()


def test_unreadable_directory_is_a_compile_error_not_an_empty_source(
    switch: EmbeddedTarget, shop_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = _loader(switch.address, [shop_dir.parent])
    try:
        _synced(loader)
        good = dict(loader.desired or {})
        deny_listing(monkeypatch, shop_dir)
        _touch(shop_dir)
        loader.step()
        assert loader.compile_error is not None and "cannot list directory" in loader.compile_error
        assert loader.desired == good
    finally:
        loader.close()


def test_alias_bomb_in_a_watched_directory_fails_fast(switch: EmbeddedTarget, shop_dir: Path) -> None:
    """The red team's 590-byte file froze the loop (and /healthz) for 42 s; now it is a compile
    error like any other, and the loop goes on (no time asserted: the harness timeout is the bound)."""
    loader = _loader(switch.address, [shop_dir])
    try:
        _synced(loader)
        good = dict(loader.desired or {})
        (shop_dir / "bomb.yaml").write_text(bomb())
        loader.step()
        assert loader.compile_error is not None and "excessive aliasing" in loader.compile_error
        assert loader.desired == good and loader.metrics.healthy()
    finally:
        loader.close()


def test_a_directory_becoming_unreadable_is_a_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "a.yaml").write_text("kind: Namespace\n")
    watcher = SourceWatcher([tmp_path])
    assert watcher.changed()
    deny_listing(monkeypatch, sub)
    assert watcher.changed()  # the loader recompiles and reports it, instead of dropping sub/
    assert not watcher.changed()
    monkeypatch.undo()
    assert watcher.changed()


def _restart_over_emptied_sources(
    switch: EmbeddedTarget, shop_dir: Path, **kw: Any
) -> tuple[Loader, int, int]:
    """A loader synced the shop, then stops; its sources are emptied (all but the node facts) and
    a new loader starts: it has no compiled state of its own, only the device's."""
    first = _loader(switch.address, [shop_dir])
    try:
        _synced(first)
        held = len(first.syncer.read_device()) if first.syncer else 0
    finally:
        first.close()
    for f in shop_dir.iterdir():
        f.unlink()
    return _loader(switch.address, [shop_dir], **kw), held, switch.servicer.write_count


def test_a_restart_over_emptied_sources_keeps_the_device_until_a_second_read(
    switch: EmbeddedTarget, shop_dir: Path
) -> None:
    """The guard's first comparison after a start is with the device (docs/failure-modes.md):
    without it a loader restarted while its directory is caught empty wipes every entry."""
    loader, held, writes = _restart_over_emptied_sources(switch, shop_dir)
    try:
        loader.step()  # compile + connect
        loader.step()  # the first sync: held, nothing written
        assert not loader.in_sync and loader.last_result is not None and loader.last_result.held
        assert loader.metrics.get("offload_deletion_guard_holds_total") == 1
        assert switch.servicer.write_count == writes
        assert loader.syncer is not None and len(loader.syncer.read_device()) == held
        loader.step()  # the sources read again, still empty: confirmed and applied
        assert loader.in_sync and loader.matches()
        assert len(loader.syncer.read_device()) < held / 2
    finally:
        loader.close()


def test_a_restart_whose_sources_come_back_writes_nothing(switch: EmbeddedTarget, shop_dir: Path) -> None:
    loader, held, writes = _restart_over_emptied_sources(switch, shop_dir)
    try:
        loader.step()
        loader.step()  # held
        for f in SHOP.glob("*.yaml"):
            shutil.copy(f, shop_dir / f.name)  # refilled before the second read
        loader.step()
        assert loader.in_sync and loader.matches()
        assert switch.servicer.write_count == writes
        assert loader.syncer is not None and len(loader.syncer.read_device()) == held
    finally:
        loader.close()


def test_run_once_confirms_by_reading_the_sources_again(switch: EmbeddedTarget, shop_dir: Path) -> None:
    loader, _, _ = _restart_over_emptied_sources(switch, shop_dir)
    assert loader.run_once() == 0  # an explicit one-shot: the second read is its own
    assert loader.metrics.get("offload_deletion_guard_holds_total") == 1


def test_a_disabled_guard_lets_the_first_sync_delete(switch: EmbeddedTarget, shop_dir: Path) -> None:
    loader, held, _ = _restart_over_emptied_sources(switch, shop_dir, max_delete_share=1.0)
    try:
        _synced(loader)
        assert loader.metrics.get("offload_deletion_guard_holds_total") == 0
        assert loader.syncer is not None and len(loader.syncer.read_device()) < held / 2
    finally:
        loader.close()
