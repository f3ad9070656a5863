"""Errors the compiler reports to the user.

Input problems are collected rather than raised one at a time, so a user fixing a manifest sees every
problem of a run at once; the CLI prints them and exits 2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from k8s_offload.compiler.records import fast_init

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
MAX_PART_CHARS = 400
"""A message part (file name, object, field path, reason) longer than this is cut: input-derived
text must neither flood the terminal nor hide the parts after it."""


def one_line(text: str, limit: int = MAX_PART_CHARS) -> str:
    """`text` on one line: control characters and line separators escaped (a file name holding a
    newline stays one line of output), cut to `limit` characters with the number left out."""
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return _UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _ESCAPES:
        return _ESCAPES[char]
    return f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}"


class CompilerError(Exception):
    """Base class so the CLI can catch everything it should report instead of a traceback."""


@fast_init
@dataclass(frozen=True, slots=True)
class Location:
    """Where an object came from: the file (or `<stdin>`), the 1-based document, the List item."""

    source: str
    document: int | None = None
    item: int | None = None
    nested: tuple[int, ...] = ()
    """Indexes in Lists nested in the item (kubectl flattens those too): `items[2].items[0]`."""

    def __str__(self) -> str:
        text = one_line(self.source)
        if self.document is not None:
            text += f": document {self.document}"
        if self.item is not None:
            text += f": items[{self.item}]" + "".join(f".items[{i}]" for i in self.nested)
        return text


class ManifestError(CompilerError):
    """One invalid field of one input object, worded like the API server would word it."""

    def __init__(self, location: Location, subject: str, path: str, reason: str) -> None:
        self.location = location
        self.subject = subject
        self.path = path
        self.reason = reason
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [str(self.location)]
        if self.subject:
            parts.append(one_line(self.subject))
        if self.path:
            parts.append(one_line(self.path))
        parts.append(one_line(self.reason))
        return ": ".join(parts)


class TooManyErrors(CompilerError):
    """Raised by ErrorList when it is full: the run stops reading and reports what it has."""


class ErrorList(list[ManifestError]):
    """The problems of one run, at most `limit` of them (frontend/limits.py MAX_ERRORS)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def append(self, error: ManifestError) -> None:
        if len(self) >= self.limit:
            raise TooManyErrors(f"stopped after {self.limit} problems")
        super().append(error)


class ManifestErrors(CompilerError):
    """All the input errors of one run; raised once, after everything was checked (or after the
    error limit stopped the run: `stopped` is then true and the last line says so)."""

    def __init__(self, errors: Iterable[ManifestError], *, stopped: bool = False) -> None:
        self.errors: tuple[ManifestError, ...] = tuple(errors)
        self.stopped = stopped
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [str(e) for e in self.errors]
        if self.stopped:
            lines.append(f"stopped after {len(self.errors)} problems; fix these and run again for the rest")
        return "\n".join(lines)


class IRVerificationError(CompilerError):
    """A broken IR invariant: a compiler bug (or a hand-built IR), never a user input problem."""

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems)
        """One line per broken invariant, each starting with the node, e.g. `pods[3] (Pod a/b): ...`."""
