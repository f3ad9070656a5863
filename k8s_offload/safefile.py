"""Replace a file atomically and safely: readers see the old or the new content, never a mix.

The new content goes to a temporary file created with O_CREAT|O_EXCL (``tempfile.mkstemp``: a
random name that cannot be a planted symlink or an existing file) in the destination's own
directory, is flushed to disk, and is renamed over the destination; the directory is synced so
the rename survives a crash. ``rename`` never follows a symlink at the destination: it replaces
the link itself. Callers that want a symlinked path written *through* (the link kept, its target
replaced) ask for ``follow_symlinks``; a daemon writing status files for others to read does not,
so that a link planted in a shared directory cannot redirect a root-owned write.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def atomic_write(
    path: Path, data: bytes, *, mode: int = 0o644, follow_symlinks: bool = False, keep_mode: bool = True
) -> Path:
    """Replace ``path`` with ``data``; returns the path actually replaced. Raises OSError.

    The new file gets the permission bits of the file it replaces when ``keep_mode`` (else ``mode``).
    """
    target = Path(os.path.realpath(path)) if follow_symlinks else path
    try:
        current = os.stat(target, follow_symlinks=False)
    except FileNotFoundError:
        current = None
    if current is not None and keep_mode and not stat.S_ISLNK(current.st_mode):
        mode = current.st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target
