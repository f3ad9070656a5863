"""``offload-cni install`` (as an init container runs it) and the plugin's metrics textfile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from k8s_offload.cni import metrics
from k8s_offload.safefile import atomic_write

CONFLIST: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "name": "offload",
    "plugins": [
        {
            "type": "offload-cni",
            "pool": [{"interface": "p4port10", "port": 10}],
            "nodeFacts": "/etc/k8s-offload/node.yaml",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]]},
        },
        {"type": "tuning", "sysctl": {"net.core.somaxconn": "500"}},
    ],
}


def install(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed console script, as the DaemonSet's init container does."""
    script = Path(sys.executable).parent / "offload-cni"
    return subprocess.run(
        [str(script), "install", *args], capture_output=True, text=True, cwd=tmp, timeout=60, check=False
    )


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path, Path]:
    bin_dir, conf_dir = tmp_path / "opt-cni-bin", tmp_path / "etc-cni-net.d"
    bin_dir.mkdir()
    conf_dir.mkdir()
    conflist = tmp_path / "10-offload.conflist"
    conflist.write_text(json.dumps(CONFLIST))
    return bin_dir, conf_dir, conflist


def test_install_copies_plugin_and_conflist(dirs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bin_dir, conf_dir, conflist = dirs
    args = ["--bin-dir", str(bin_dir), "--conf-dir", str(conf_dir), "--conflist", str(conflist)]
    proc = install(tmp_path, *args)
    assert proc.returncode == 0, proc.stderr
    plugin = bin_dir / "offload-cni"
    assert proc.stdout.splitlines() == [
        f"installed {plugin}",
        f"installed {conf_dir / '10-offload.conflist'}",
    ]
    assert plugin.read_bytes() == (Path(sys.executable).parent / "offload-cni").read_bytes()
    assert plugin.stat().st_mode & 0o777 == 0o755
    assert json.loads((conf_dir / "10-offload.conflist").read_text()) == CONFLIST
    assert sorted(p.name for p in bin_dir.iterdir()) == ["offload-cni"]  # no temporary files left
    # The installed plugin is the plugin: it answers VERSION.
    out = subprocess.run(
        [str(plugin)], input=b'{"cniVersion": "1.0.0"}', capture_output=True, env={"CNI_COMMAND": "VERSION"}
    )
    assert json.loads(out.stdout)["supportedVersions"][-1] == "1.1.0"
    # Run again (a restarted pod): nothing is rewritten, so the runtime has nothing to reload.
    before = plugin.stat().st_ino, (conf_dir / "10-offload.conflist").stat().st_ino
    proc = install(tmp_path, *args)
    assert proc.returncode == 0 and proc.stdout.startswith("unchanged ")
    assert (plugin.stat().st_ino, (conf_dir / "10-offload.conflist").stat().st_ino) == before


def test_install_without_conflist_installs_only_the_plugin(
    dirs: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    bin_dir, conf_dir, _ = dirs
    proc = install(tmp_path, "--bin-dir", str(bin_dir), "--conf-dir", str(conf_dir))
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in bin_dir.iterdir()] == ["offload-cni"] and not list(conf_dir.iterdir())


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["plugins"].pop(0), "no plugin of type offload-cni"),
        (lambda c: c.update(cniVersion="2.0.0"), "cniVersion must be one of"),
        (lambda c: c["plugins"][0].update(pool=[]), "plugins[0]: pool: required"),
        (lambda c: c["plugins"][0].update(nodeFacts="rel.yaml"), "plugins[0]: nodeFacts"),
        (lambda c: c.update(plugins={}), "plugins must be a non-empty list"),
    ],
)
def test_invalid_conflist_is_refused_before_anything_is_written(
    dirs: tuple[Path, Path, Path], tmp_path: Path, mutate: Any, message: str
) -> None:
    bin_dir, conf_dir, conflist = dirs
    bad = json.loads(json.dumps(CONFLIST))
    mutate(bad)
    conflist.write_text(json.dumps(bad))
    proc = install(
        tmp_path, "--bin-dir", str(bin_dir), "--conf-dir", str(conf_dir), "--conflist", str(conflist)
    )
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not list(bin_dir.iterdir()) and not list(conf_dir.iterdir())


def test_install_usage_errors(dirs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    bin_dir, conf_dir, conflist = dirs
    assert install(tmp_path, "--bin-dir", str(bin_dir)).returncode == 2  # --conf-dir is required
    proc = install(tmp_path, "--bin-dir", str(tmp_path / "missing"), "--conf-dir", str(conf_dir))
    assert proc.returncode == 2 and "not a directory" in proc.stderr
    conflist.write_bytes(b"\xff not json")
    proc = install(
        tmp_path, "--bin-dir", str(bin_dir), "--conf-dir", str(conf_dir), "--conflist", str(conflist)
    )
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr


# -- safe file replacement ----------------------------------------------------------------------------


def test_atomic_write_replaces_a_planted_symlink_instead_of_following_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    status = tmp_path / "status.json"
    status.symlink_to(victim)
    atomic_write(status, b"{}")
    assert victim.read_text() == "precious"
    assert not status.is_symlink() and status.read_bytes() == b"{}"


def test_atomic_write_through_symlink_when_asked(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text("old")
    link = tmp_path / "link"
    link.symlink_to(real)
    assert atomic_write(link, b"new", follow_symlinks=True) == real
    assert link.is_symlink() and real.read_text() == "new"


def test_atomic_write_temp_names_are_not_predictable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A link planted at any name the old code would have used (pid-based) is never written through."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    for name in (f".status.json.{os.getpid()}.tmp", ".status.json.tmp", "status.json.tmp"):
        (tmp_path / name).symlink_to(victim)
    atomic_write(tmp_path / "status.json", b"{}")
    assert victim.read_text() == "precious" and (tmp_path / "status.json").read_bytes() == b"{}"


# -- metrics textfile ---------------------------------------------------------------------------------


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_file_accumulates_counters_and_keeps_last_results(tmp_path: Path) -> None:
    path = tmp_path / "offload-cni.prom"
    metrics.record(
        path, metrics.Operation("ADD", 0, 1000.0, 0.25, {"assigned": 1, "available": 2, "unavailable": 0})
    )
    metrics.record(path, metrics.Operation("ADD", 100, 1001.0, 0.5, None))
    metrics.record(path, metrics.Operation("DEL", 0, 1002.0, 0.125, None))
    got = samples(path)
    assert got[("offload_cni_operations_total", (("command", "ADD"), ("result", "success")))] == 1
    assert got[("offload_cni_operations_total", (("command", "ADD"), ("result", "error")))] == 1
    assert (
        got[("offload_cni_operations_total", (("command", "GC"), ("result", "error")))] == 0
    )  # from the start
    assert got[("offload_cni_last_operation_error_code", (("command", "ADD"),))] == 100
    assert got[("offload_cni_last_operation_timestamp_seconds", (("command", "DEL"),))] == 1002.0
    assert got[("offload_cni_last_operation_duration_seconds", (("command", "ADD"),))] == 0.5
    assert got[("offload_cni_pool_ports", (("state", "available"),))] == 2  # kept from the last look
    assert "# TYPE offload_cni_operations_total counter" in path.read_text()


def test_metrics_file_survives_garbage_and_concurrent_writers(tmp_path: Path) -> None:
    path = tmp_path / "offload-cni.prom"
    path.write_bytes(b"\xff\xfe garbage {{{")
    metrics.record(path, metrics.Operation("CHECK", 0, 1.0, 0.1, None))
    assert samples(path)[("offload_cni_operations_total", (("command", "CHECK"), ("result", "success")))] == 1

    def writer() -> None:
        for _ in range(20):
            metrics.record(path, metrics.Operation("ADD", 0, 2.0, 0.1, None))

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert samples(path)[("offload_cni_operations_total", (("command", "ADD"), ("result", "success")))] == 80


def test_metrics_file_in_a_missing_directory_does_not_fail_the_operation(tmp_path: Path) -> None:
    metrics.record(tmp_path / "no" / "such" / "dir.prom", metrics.Operation("ADD", 0, 1.0, 0.1, None))


def test_version_runs_from_any_directory() -> None:
    """The console script works outside the checkout (no repository-relative imports)."""
    script = Path(sys.executable).parent / "offload-cni"
    proc = subprocess.run(
        [str(script)], input=b"{}", capture_output=True, env={"CNI_COMMAND": "VERSION"}, cwd="/", check=False
    )
    assert proc.returncode == 0 and json.loads(proc.stdout)["cniVersion"] == "1.1.0"
