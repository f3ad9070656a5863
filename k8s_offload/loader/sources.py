"""Manifest sources watched by polling: a change is any added, removed or rewritten file.

Polling mtimes is enough for a node agent reloading at most every second, needs no inotify, and
works the same for files, directories and mounted ConfigMaps (whose symlink swap changes mtimes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

Fingerprint = tuple[tuple[str, int, int], ...]


def fingerprint(paths: Sequence[str | Path]) -> Fingerprint:
    """(path, mtime_ns, size) of every manifest file under `paths`; missing paths count as empty."""
    out: list[tuple[str, int, int]] = []
    for raw in paths:
        path = Path(raw)
        files = (
            sorted(p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES) if path.is_dir() else [path]
        )
        for f in files:
            try:
                st = os.stat(f)
            except OSError:
                continue
            out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


class SourceWatcher:
    def __init__(self, paths: Sequence[str | Path], node: str | Path | None = None) -> None:
        self.paths = list(paths)
        self.node = node
        self._last: Fingerprint | None = None

    def _current(self) -> Fingerprint:
        return fingerprint([*self.paths, *([self.node] if self.node else [])])

    def changed(self) -> bool:
        """True on the first call and whenever the files differ from the previous call's."""
        now = self._current()
        if now == self._last:
            return False
        self._last = now
        return True
