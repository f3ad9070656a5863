"""The front end's entry points: a P4 file in, a resolved Program out (cached by path)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from k8s_offload.p4.ast import Program
from k8s_offload.p4.parse import parse
from k8s_offload.p4.preprocess import preprocess_file, preprocess_text
from k8s_offload.p4.resolve import Resolver
from k8s_offload.resources import P4SRC

DEFAULT_PROGRAM = (P4SRC / "k8s_dp.p4").resolve()
DISPLAY_ROOT = DEFAULT_PROGRAM.parents[1]
"""Locations in the shipped program read `p4src/include/...`, in a checkout and an install alike."""


def load_program(path: Path | str | None = None) -> Program:
    """Parse and resolve a program (default: the shipped p4src/k8s_dp.p4). Cached per file
    and modification time, so repeated callers share one parse."""
    target = Path(path).resolve() if path is not None else DEFAULT_PROGRAM
    return _load(target, _stamp(target))


def parse_program_text(text: str, name: str = "<string>", base_dir: Path | None = None) -> Program:
    """Parse and resolve source held in memory (not cached)."""
    pp = preprocess_text(text, name, base_dir)
    return Resolver(pp).program(parse(pp))


def _stamp(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


@lru_cache(maxsize=8)
def _load(path: Path, _mtime: float) -> Program:
    root = DISPLAY_ROOT if path.is_relative_to(DISPLAY_ROOT) else None
    pp = preprocess_file(path, root)
    return Resolver(pp).program(parse(pp))
