"""Errors the compiler reports to the user.

Input problems are collected rather than raised one at a time, so a user fixing a manifest sees every
problem of a run at once; the CLI prints them and exits 2.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class CompilerError(Exception):
    """Base class so the CLI can catch everything it should report instead of a traceback."""


@dataclass(frozen=True, slots=True)
class Location:
    """Where an object came from: the file (or `<stdin>`), the 1-based document, the List item."""

    source: str
    document: int | None = None
    item: int | None = None

    def __str__(self) -> str:
        text = self.source
        if self.document is not None:
            text += f": document {self.document}"
        if self.item is not None:
            text += f": items[{self.item}]"
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
            parts.append(self.subject)
        if self.path:
            parts.append(self.path)
        parts.append(self.reason)
        return ": ".join(parts)


class ManifestErrors(CompilerError):
    """All the input errors of one run; raised once, after everything was checked."""

    def __init__(self, errors: Iterable[ManifestError]) -> None:
        self.errors: tuple[ManifestError, ...] = tuple(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class IRVerificationError(CompilerError):
    """A broken IR invariant: a compiler bug (or a hand-built IR), never a user input problem."""

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[str, ...] = tuple(problems)
        """One line per broken invariant, each starting with the node, e.g. `pods[3] (Pod a/b): ...`."""
