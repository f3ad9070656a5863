"""Manifest sources watched by polling: a change is any added, removed or rewritten file.

Polling is enough for a node agent reloading at most every second, needs no inotify, and works the
same for files, directories and mounted ConfigMaps. The files are found exactly as the compiler
finds them (frontend/sources.py: `..data` volumes, symbolic links, unreadable directories), so a
kubelet volume swap (`..data` pointing at a new timestamped directory) is a change, and so is a
directory becoming readable or unreadable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from k8s_offload.compiler.errors import ManifestError
from k8s_offload.compiler.frontend.sources import SourceFile, expand_paths

Fingerprint = tuple[tuple[object, ...], ...]


def fingerprint(paths: Sequence[str | Path]) -> Fingerprint:
    """(name, real path, inode, mtime_ns, size) of every manifest file under `paths`, and the
    problems met finding them; a missing path is one of those problems."""
    errors: list[ManifestError] = []
    out: list[tuple[object, ...]] = []
    for f in expand_paths(paths, errors):
        if not isinstance(f, SourceFile):
            continue  # stdin is read once, never watched
        try:
            st = os.stat(f.real)
        except OSError as exc:
            out.append((f.name, f.real, str(exc)))
            continue
        out.append((f.name, f.real, st.st_ino, st.st_mtime_ns, st.st_size))
    out.extend((str(e),) for e in errors)
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
