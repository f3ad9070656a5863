"""The static shim (k8s_offload/cni/shim.c) and `offload-cni serve` without network namespaces:
what the shim answers when the server is not there, the wire protocol both ways, the server's
socket handling. ADD/CHECK/DEL/STATUS/GC through the shim, with host-local on the node, are
tests/cni/test_chain.py's (each test there runs through the shim too, as root)."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k8s_offload.cni.config import SUPPORTED_VERSIONS
from k8s_offload.cni.server import PROTOCOL
from tests.netns_util import REPO


def shim(binary: Path, sock: Path, env: dict[str, str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    """The shim as a runtime runs it: only its CNI_* and a PATH with no python at all."""
    full = {"PATH": "/nonexistent", "OFFLOAD_CNI_SOCKET": str(sock), **env}
    return subprocess.run([str(binary)], input=stdin, env=full, capture_output=True, timeout=60, check=False)


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    sock = tmp_path / "cni.sock"
    log = (tmp_path / "server.log").open("wb")
    extra = getattr(request, "param", [])
    proc = subprocess.Popen(
        [sys.executable, "-m", "k8s_offload.cni", "serve", "--socket", str(sock), *extra],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not sock.exists():
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
        time.sleep(0.05)
    yield sock, proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)


def test_version_through_the_shim(cni_shim: Path, server: tuple[Path, subprocess.Popen[bytes]]) -> None:
    sock, _ = server
    run = shim(cni_shim, sock, {"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "1.0.0"}')
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"cniVersion": "1.0.0", "supportedVersions": list(SUPPORTED_VERSIONS)}


def test_errors_come_back_as_the_plugins_own(
    cni_shim: Path, server: tuple[Path, subprocess.Popen[bytes]]
) -> None:
    """Exit code, error document and diagnostics as the plugin run directly gives them."""
    sock, _ = server
    run = shim(
        cni_shim, sock, {"CNI_COMMAND": "ADD"}, b'{"cniVersion": "1.0.0", "name": "x", "type": "offload-cni"}'
    )
    doc = json.loads(run.stdout)
    assert run.returncode == 1 and doc["code"] == 4 and doc["cniVersion"] == "1.0.0"
    assert b"missing environment variables" in run.stderr  # the server's log line, relayed
    big = b'{"cniVersion": "1.0.0", "x": "' + b"a" * (1 << 20) + b'"}'
    run = shim(cni_shim, sock, {"CNI_COMMAND": "ADD"}, big)
    assert run.returncode == 1 and json.loads(run.stdout)["code"] == 6  # larger than 1 MiB


@pytest.mark.parametrize(("command", "code"), [("ADD", 11), ("DEL", 11), ("STATUS", 50)])
def test_no_server_is_try_again_later_or_not_available(
    cni_shim: Path, tmp_path: Path, command: str, code: int
) -> None:
    """§5: an error document and exit 1; 11 "try again later" (the DaemonSet pod is starting),
    and for STATUS 50 "the plugin is not available". In the configuration's cniVersion."""
    run = shim(
        cni_shim, tmp_path / "none.sock", {"CNI_COMMAND": command}, b'{"cniVersion": "0.4.0", "name": "n"}'
    )
    doc = json.loads(run.stdout)
    assert run.returncode == 1 and doc["code"] == code and doc["cniVersion"] == "0.4.0", doc
    assert doc["msg"] == "offload-cni server is not running on this node" and "none.sock" in doc["details"]


def _frame(tag: bytes, payload: bytes) -> bytes:
    return tag + struct.pack(">I", len(payload)) + payload


def test_a_broken_client_costs_one_process_and_the_server_goes_on(
    cni_shim: Path, server: tuple[Path, subprocess.Popen[bytes]]
) -> None:
    sock, proc = server
    for junk in (b"GET / HTTP/1.1\r\n\r\n", _frame(b"H", b"offload-cni-shim/999"), _frame(b"H", PROTOCOL)):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(sock))
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(30)
            assert s.recv(100) == b""  # dropped without an answer
    assert proc.poll() is None
    run = shim(cni_shim, sock, {"CNI_COMMAND": "VERSION"}, b"{}")
    assert run.returncode == 0 and json.loads(run.stdout)["cniVersion"] == "1.1.0"


def test_the_socket_is_private_and_one_server_holds_it(
    server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    sock, proc = server
    assert sock.stat().st_mode & 0o777 == 0o600
    second = subprocess.run(
        [sys.executable, "-m", "k8s_offload.cni", "serve", "--socket", str(sock)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert second.returncode == 2 and "another offload-cni server is listening" in second.stderr
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not sock.exists()  # removed on the way out


def test_a_stale_socket_is_replaced(tmp_path: Path, cni_shim: Path) -> None:
    sock = tmp_path / "cni.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock))  # bound, never listening: what a killed server leaves
    proc = subprocess.Popen(
        [sys.executable, "-m", "k8s_offload.cni", "serve", "--socket", str(sock)], cwd=REPO
    )
    try:
        deadline = time.monotonic() + 30
        while shim(cni_shim, sock, {"CNI_COMMAND": "VERSION"}, b"{}").returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _status_conf(tmp_path: Path, ipam_type: str) -> dict[str, Any]:
    """A 1.1.0 configuration whose STATUS reaches the delegated IPAM plugin `ipam_type`: valid
    node facts and a pool port that is present (lo)."""
    facts = tmp_path / "node.yaml"
    facts.write_text("apiVersion: offload.k8s-offload.dev/v1alpha1\nkind: NodeFacts\nnodeName: n\n"
                     "gateway: {ipv4: 169.254.1.1, mac: '02:00:00:00:00:01'}\n"
                     "ports: {arpProxy: 1, host: 2, uplink: 3}\npods: []\n")  # fmt: skip
    return {"cniVersion": "1.1.0", "name": "n", "type": "offload-cni", "nodeFacts": str(facts),
            "pool": [{"interface": "lo", "port": 10}], "ipam": {"type": ipam_type}}  # fmt: skip


def test_a_delegate_runs_where_the_shim_runs(
    cni_shim: Path, server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """§4 through the shim: the IPAM plugin is looked up in CNI_PATH and run by the shim (its
    parent process is the shim) with the plugin's environment and the complete configuration on
    stdin; its error document comes back unchanged (as STATUS reports it: code 50)."""
    sock, _ = server
    bin_dir = tmp_path / "node-bin"
    bin_dir.mkdir()
    record = tmp_path / "ipam-call"
    ipam = bin_dir / "failing-ipam"
    ipam.write_text(
        "#!/bin/sh\n"
        f'{{ echo "$CNI_COMMAND"; echo "$PPID"; /bin/cat; }} > {record}\n'
        'echo \'{"cniVersion": "1.1.0", "code": 50, "msg": "allocator offline"}\'\nexit 1\n'
    )
    ipam.chmod(0o755)
    conf = _status_conf(tmp_path, "failing-ipam")
    env = {
        "PATH": "/nonexistent",
        "OFFLOAD_CNI_SOCKET": str(sock),
        "CNI_COMMAND": "STATUS",
        "CNI_PATH": str(bin_dir),
    }
    proc = subprocess.Popen([str(cni_shim)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, _ = proc.communicate(json.dumps(conf).encode(), timeout=60)
    doc = json.loads(out)
    assert proc.returncode == 1 and doc["code"] == 50 and "allocator offline" in doc["msg"], doc
    command, parent, stdin = record.read_text().split("\n", 2)
    assert command == "STATUS" and int(parent) == proc.pid and json.loads(stdin) == conf

    missing = {**conf, "ipam": {"type": "no-such-ipam"}}
    run = shim(
        cni_shim, sock, {"CNI_COMMAND": "STATUS", "CNI_PATH": str(bin_dir)}, json.dumps(missing).encode()
    )
    doc = json.loads(run.stdout)
    assert doc["code"] == 50 and "IPAM plugin 'no-such-ipam' not found in CNI_PATH" in doc["msg"], doc


@pytest.mark.parametrize("server", [["--ipam-timeout", "1"]], indirect=True)
@pytest.mark.parametrize(
    "script", ["exec /bin/sleep 30", "exec >&-; exec /bin/sleep 30"], ids=["hangs", "closes-stdout-hangs"]
)
def test_a_hung_delegate_is_killed_at_the_time_limit(
    cni_shim: Path, server: tuple[Path, subprocess.Popen[bytes]], tmp_path: Path, script: str
) -> None:
    """The shim kills a delegate that outlives --ipam-timeout, also one that closed its stdout
    first, and reports it (104, here inside STATUS's 50); the delegate is gone afterwards."""
    sock, _ = server
    bin_dir = tmp_path / "node-bin"
    bin_dir.mkdir()
    pid_file = tmp_path / "ipam.pid"
    (bin_dir / "hung-ipam").write_text(f"#!/bin/sh\necho $$ > {pid_file}\n{script}\n")
    (bin_dir / "hung-ipam").chmod(0o755)
    conf = _status_conf(tmp_path, "hung-ipam")
    run = shim(cni_shim, sock, {"CNI_COMMAND": "STATUS", "CNI_PATH": str(bin_dir)}, json.dumps(conf).encode())
    doc = json.loads(run.stdout)
    assert doc["code"] == 50 and "IPAM plugin hung-ipam STATUS did not finish in 1 s" in doc["msg"], doc
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
