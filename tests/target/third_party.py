"""Virtualenvs for P4Runtime clients not written here, which pin a protobuf older than ours.

finsy 0.30 pins protobuf < 7 and p4runtime-shell 0.0.6 pins protobuf < 3.21; this project runs
on protobuf 7. Each lives in its own virtualenv at the repository root (`.venv-finsy`,
`.venv-p4sh`), built once under a file lock on first use (python -m venv, pip install from the
package registry) and reused while its stamp names the same requirement. `make finsy-venv` and
`make p4sh-venv` build the same.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.embedded_fixtures import REPO

FINSY = "finsy==0.30.0"
P4SH = "p4runtime-shell==0.0.6"
HERE = Path(__file__).parent


def venv_python(name: str, requirement: str) -> Path:
    """The interpreter of `REPO/name` holding `requirement`; built if missing or stale."""
    venv = REPO / name
    stamp = venv / f".stamp-{requirement}"
    with open(REPO / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
            pip = [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ]
            subprocess.run([*pip, requirement], check=True, timeout=900)
            stamp.touch()
    return venv / "bin" / "python"


def run_json(python: Path, script: str, *args: str) -> dict[str, Any]:
    """Run HERE/script under `python`; its stdout is one JSON object."""
    out = subprocess.run(
        [str(python), str(HERE / script), *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result
