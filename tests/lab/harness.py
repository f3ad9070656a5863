"""What the lab tests share: a running lab, curl from its pods, manifest changes that wait for the
loaders."""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s_offload.lab import cli
from k8s_offload.lab.core import Lab, LabState, ns_run

BODY = re.compile(r"pod=(\S+) port=(\d+) client=(\S+) cport=(\d+)")


class Running:
    def __init__(self, lab: Lab, state: LabState) -> None:
        self.lab, self.state = lab, state
        self.manifests = Path(state.state_dir) / "cluster"

    def curl(self, pod: str, url: str, max_time: float = 5.0) -> tuple[int, str]:
        """Exit code and `<body>\\n<remote ip>` of one curl from a pod's namespace."""
        proc = ns_run(
            self.state.pod(pod).netns,
            "curl", "-sS", "--max-time", str(max_time), "-w", "\\n%{remote_ip}", url,
            check=False, timeout=max_time + 10,
        )  # fmt: skip
        return proc.returncode, proc.stdout

    def get(self, pod: str, url: str) -> tuple[str, str, str, str]:
        """(remote ip, serving pod, client address it saw, client port) of a successful curl."""
        code, out = self.curl(pod, url)
        assert code == 0, f"curl {url} from {pod} failed ({code}): {out}"
        body, _, remote = out.rpartition("\n")
        m = BODY.search(body)
        assert m, body
        return remote, m[1], m[3], m[4]

    def change(self, name: str, text: str | None) -> None:
        """Write (or with None delete) a manifest file and wait until the loader synced it."""
        since = time.time()
        path = self.manifests / name
        if text is None:
            path.unlink()
        else:  # atomically: the loader must never compile a half-written file
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(path)
        self.lab.wait_synced(self.state, since)


@contextlib.contextmanager
def lab_up(tmp_path_factory: pytest.TempPathFactory, *up_args: str) -> Iterator[Running]:
    """`offload-lab up` under a fresh name and state directory, torn down at the end whatever
    happens (the tests' last step checks that `down` leaves nothing)."""
    name = f"t{secrets.token_hex(3)}"
    state_dir = tmp_path_factory.mktemp("lab") / "state"
    the_lab = Lab(name, state_dir)
    try:
        assert cli.main(["up", "--name", name, "--state-dir", str(state_dir), *up_args]) == 0
        state = the_lab.load()
        assert state is not None and state.ready
        yield Running(the_lab, state)
    finally:
        the_lab.down()


def flush_flow_caches(request: pytest.FixtureRequest) -> None:
    """Each test starts with every device's flow cache empty: entries of closed connections live
    about 2 h in the pipeline (no FIN/RST tracking), and a later Service flow whose reply slot
    collides with one is not reverse-NATed (p4src/README.md, "Limits"), which would make the
    tests flaky. For an autouse fixture of a module whose lab fixture is `lab`."""
    if "lab" in request.fixturenames and request.node.name != "test_down_leaves_nothing":
        running: Running = request.getfixturevalue("lab")
        running.lab.flush_flows(running.state)
