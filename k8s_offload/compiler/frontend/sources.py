"""Turning paths (files, directories, `-`) into raw documents, with List kinds flattened.

Only syntax is checked here; what a document means is the loader's business. Everything read is
bounded (frontend/limits.py, docs/failure-modes.md), and nothing is skipped silently: a directory
that cannot be listed, a file that cannot be read, a device or a FIFO without a writer are errors.

Directories are walked recursively, following symbolic links (each file once, however many links
lead to it). A directory holding `..data` is a volume written by the kubelet's atomic writer (a
ConfigMap, Secret or projected volume): its files are read once, from the timestamped directory
`..data` points to, so a read never mixes two versions of the volume. Names starting with `..` are
the kubelet's own and never read.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from k8s_offload.compiler.errors import Location, ManifestError
from k8s_offload.compiler.frontend.fields import type_name
from k8s_offload.compiler.frontend.limits import MAX_SOURCE_BYTES
from k8s_offload.compiler.frontend.syntax import (
    Document,
    Problem,
    SyntaxFailure,
    load_json,
    load_yaml,
)
from k8s_offload.compiler.frontend.syntax import Path as FieldPath
from k8s_offload.compiler.records import fast_init

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN_NAME = "<stdin>"
VOLUME_DATA = "..data"
"""The kubelet's atomic writer points this symbolic link at the current version of a volume."""
_CHUNK = 1 << 20
_VOLUME_ATTEMPTS = 5


class SourceError(Exception):
    """A path that cannot be read as a manifest source; the message is the reason."""


@fast_init
@dataclass(frozen=True, slots=True)
class RawObject:
    location: Location
    body: Mapping[str, Any]
    problems: tuple[Problem, ...] = ()
    """Syntax-level problems inside this object (duplicate keys, integers out of range), with paths
    relative to it: the object is unusable, and the loader reports them with its name."""


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A manifest file found under a source: `name` is how messages call it, `real` where it is read."""

    name: str
    real: str
    volume: str | None = None
    """For a file of a kubelet volume, the volume's directory: its version must not change while read."""


# ---- reading -------------------------------------------------------------------------------------


def read_path(path: str | Path) -> str:
    """The text of a regular file or a FIFO, bounded and checked; raises SourceError.

    A FIFO is read only when a writer already has it open (otherwise it would block forever);
    devices, sockets and directories are refused, so `/dev/zero` is an error, not a hang.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise SourceError(_os_reason(exc)) from None
    try:
        st = os.fstat(fd)
        mode = st.st_mode
        if stat.S_ISREG(mode) and st.st_size > MAX_SOURCE_BYTES:
            raise SourceError(_too_big())  # known without reading a byte
        if stat.S_ISDIR(mode):
            raise SourceError("is a directory")
        if stat.S_ISFIFO(mode):
            first = _first_fifo_read(fd)
            os.set_blocking(fd, True)
            with os.fdopen(fd, "rb", closefd=False) as stream:
                return decode(first + _read_bounded(stream, MAX_SOURCE_BYTES - len(first), len(first)))
        if not stat.S_ISREG(mode):
            raise SourceError("is not a regular file or a FIFO (a device or a socket)")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as stream:
            return decode(_read_bounded(stream, MAX_SOURCE_BYTES))
    except OSError as exc:
        raise SourceError(_os_reason(exc)) from None
    finally:
        os.close(fd)


def _first_fifo_read(fd: int) -> bytes:
    """Non-blocking: data, or b"" while a writer has yet to write. No writer at all is an error."""
    try:
        data = os.read(fd, _CHUNK)
    except BlockingIOError:
        return b""
    if not data:
        raise SourceError("is a FIFO with no writer: nothing to read")
    _check_chunk(data, 0)
    return data


def read_stdin(stdin: TextIO | None) -> str:
    """`-`: the same bounds and checks as a file (tests pass a StringIO, which has no bytes)."""
    stream = stdin or sys.stdin
    buffer: BinaryIO | None = getattr(stream, "buffer", None)
    if buffer is not None:
        return decode(_read_bounded(buffer, MAX_SOURCE_BYTES))
    text = stream.read(MAX_SOURCE_BYTES + 1)
    if len(text) > MAX_SOURCE_BYTES:
        raise SourceError(_too_big())
    if "\0" in text:
        raise SourceError(f"contains a NUL character at offset {text.index(chr(0))}: not YAML or JSON text")
    return text


def _read_bounded(stream: BinaryIO, limit: int, offset: int = 0) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(_CHUNK, limit - size + 1))
        if not chunk:
            return b"".join(chunks)
        _check_chunk(chunk, offset + size)
        size += len(chunk)
        if size > limit:
            raise SourceError(_too_big())
        chunks.append(chunk)


def _check_chunk(chunk: bytes, offset: int) -> None:
    """NUL is valid in neither YAML nor JSON text; finding it early stops `/dev/zero` on stdin."""
    nul = chunk.find(b"\0")
    if nul >= 0:
        raise SourceError(f"contains a NUL byte at offset {offset + nul}: not YAML or JSON text")


def _too_big() -> str:
    return f"is larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MiB, the limit for one source"


def decode(data: bytes) -> str:
    """UTF-8 (a leading byte order mark is dropped), or SourceError naming the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        raise SourceError(f"is not UTF-8 text: byte 0x{bad} at offset {exc.start}") from None


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "cannot read: too many levels of symbolic links"
    return f"cannot read: {exc.strerror or exc}"


# ---- finding files -------------------------------------------------------------------------------


def expand_paths(sources: Sequence[str | Path], errors: list[ManifestError]) -> list[SourceFile | str]:
    """Each source as its files: `-` stays stdin, a directory becomes its manifest files (sorted)."""
    out: list[SourceFile | str] = []
    for source in sources:
        name = str(source)
        if name == "-":
            out.append("-")
            continue
        try:
            is_dir = os.path.isdir(name)
        except (OSError, ValueError) as exc:
            errors.append(ManifestError(Location(name), "", "", f"cannot read: {exc}"))
            continue
        if is_dir:
            out.extend(walk(name, errors))
        elif os.path.lexists(name):
            out.append(SourceFile(name, name))
        else:
            errors.append(ManifestError(Location(name), "", "", "no such file or directory"))
    return out


def walk(root: str, errors: list[ManifestError]) -> list[SourceFile]:
    """The manifest files under `root`, sorted by path; problems on the way are errors."""
    found: list[SourceFile] = []
    seen_files: set[tuple[int, int]] = set()
    seen_dirs: set[tuple[int, int]] = set()
    todo: list[tuple[str, str, str | None]] = [(root, root, None)]  # name, real path, volume
    while todo:
        name, real, volume = todo.pop()
        try:
            st = os.stat(real)
        except OSError as exc:
            errors.append(ManifestError(Location(name), "", "", _os_reason(exc)))
            continue
        ident = (st.st_dev, st.st_ino)
        if ident in seen_dirs:
            continue  # reached again through a symbolic link: walked once
        seen_dirs.add(ident)
        try:
            with os.scandir(real) as it:
                entries = sorted(e.name for e in it)
        except OSError as exc:
            errors.append(
                ManifestError(Location(name), "", "", f"cannot list directory: {exc.strerror or exc}")
            )
            continue
        if volume is None and VOLUME_DATA in entries:
            target = _volume_target(real, name, errors)
            if target is not None:
                todo.append((name, os.path.join(real, target), name))
            continue
        for entry in entries:
            if entry.startswith(".."):
                continue  # the kubelet's atomic-writer bookkeeping
            child_name, child_real = os.path.join(name, entry), os.path.join(real, entry)
            try:
                st = os.stat(child_real)
            except OSError as exc:
                if entry.endswith(MANIFEST_SUFFIXES) or exc.errno == errno.ELOOP:
                    errors.append(ManifestError(Location(child_name), "", "", _os_reason(exc)))
                continue
            if stat.S_ISDIR(st.st_mode):
                todo.append((child_name, child_real, volume))
            elif not entry.endswith(MANIFEST_SUFFIXES):
                continue
            elif not stat.S_ISREG(st.st_mode):
                reason = "is not a regular file (a FIFO, device or socket in a directory is not read)"
                errors.append(ManifestError(Location(child_name), "", "", reason))
            elif (st.st_dev, st.st_ino) not in seen_files:
                seen_files.add((st.st_dev, st.st_ino))
                found.append(SourceFile(child_name, child_real, volume))
    return sorted(found, key=lambda f: Path(f.name).parts)


def _volume_target(real: str, name: str, errors: list[ManifestError]) -> str | None:
    try:
        target = os.readlink(os.path.join(real, VOLUME_DATA))
    except OSError as exc:
        errors.append(ManifestError(Location(os.path.join(name, VOLUME_DATA)), "", "", _os_reason(exc)))
        return None
    if os.path.isabs(target) or os.sep in target.strip(os.sep):
        reason = f"points outside its volume ({target}); a kubelet volume's ..data names a sibling"
        errors.append(ManifestError(Location(os.path.join(name, VOLUME_DATA)), "", "", reason))
        return None
    return target


def volume_version(volume: str) -> str | None:
    """Where a kubelet volume's `..data` points now (its version), None if it cannot be read."""
    try:
        return os.readlink(os.path.join(volume, VOLUME_DATA))
    except OSError:
        return None


# ---- documents -----------------------------------------------------------------------------------


def read_objects(
    sources: Sequence[str | Path], errors: list[ManifestError], stdin: TextIO | None = None
) -> Iterator[RawObject]:
    for source in sources:
        if str(source) == "-":
            try:
                text = read_stdin(stdin)
            except SourceError as exc:
                errors.append(ManifestError(Location(STDIN_NAME), "", "", str(exc)))
                continue
            yield from parse_text(text, STDIN_NAME, errors)
            continue
        local: list[ManifestError] = []
        files = _read_files(str(source), local)
        errors.extend(local)
        for name, text in files:
            yield from parse_text(text, name, errors, as_json=name.endswith(".json"))


def _read_files(source: str, errors: list[ManifestError]) -> list[tuple[str, str]]:
    """The text of every file of one source. A kubelet volume swapped while it was read (a file
    gone, or `..data` moved on) is read again, so all files of a volume come from one version."""
    for _ in range(_VOLUME_ATTEMPTS):
        attempt: list[ManifestError] = []
        files = expand_paths([source], attempt)
        versions = {
            f.volume: volume_version(f.volume) for f in files if isinstance(f, SourceFile) and f.volume
        }
        texts: list[tuple[str, str]] = []
        swapped = False
        for f in files:
            assert isinstance(f, SourceFile)
            try:
                texts.append((f.name, read_path(f.real)))
            except SourceError as exc:
                if f.volume is not None and volume_version(f.volume) != versions[f.volume]:
                    swapped = True
                    break
                attempt.append(ManifestError(Location(f.name), "", "", str(exc)))
        if not swapped and all(volume_version(v) == version for v, version in versions.items()):
            errors.extend(attempt)
            return texts
    errors.append(ManifestError(Location(source), "", "", "a kubelet volume kept changing while it was read"))
    return []


def parse_text(
    text: str, source: str, errors: list[ManifestError], *, as_json: bool = False
) -> Iterator[RawObject]:
    """Documents of one file or stream; a syntax error ends that file but not the run."""
    try:
        documents: Iterator[Document] = iter([load_json(text)]) if as_json else load_yaml(text)
        for document in documents:
            if document.value is None and not document.problems:
                continue
            yield from _flatten(Location(source, document.index), document, errors)
    except SyntaxFailure as exc:
        location = Location(source, exc.document if not as_json else None)
        errors.append(ManifestError(location, "", exc.problem.field_path, exc.problem.with_position()))


def _flatten(location: Location, document: Document, errors: list[ManifestError]) -> Iterator[RawObject]:
    """A document's objects: Lists (a document with `items`, as kubectl decodes them) become their
    items, Lists nested in items too (kubectl's FlattenListVisitor). Items of a top-level List
    that have neither kind nor apiVersion take the List's, minus `List` (the API server omits them)."""
    body = document.value
    problems = document.problems
    if not isinstance(body, Mapping):
        errors.append(ManifestError(location, "", "", f"must be an object, got {type_name(body)}"))
        return
    if "items" not in body:
        yield RawObject(location, body, tuple(problems))
        return
    items = body.get("items")
    own = [
        p for p in problems if not (len(p.path) >= 2 and p.path[0] == "items" and isinstance(p.path[1], int))
    ]
    for p in own:
        errors.append(ManifestError(location, "", p.field_path, p.with_position()))
    if items is None:
        return
    if not isinstance(items, list):
        errors.append(
            ManifestError(location, _kind_text(body), "items", f"must be a list, got {type_name(items)}")
        )
        return
    kind = body.get("kind")
    item_kind = kind.removesuffix("List") if isinstance(kind, str) else ""
    api_version = body.get("apiVersion")
    source, index = location.source, location.document
    nested: list[tuple[Location, list[Any], FieldPath]] = []  # kubectl's order: breadth first
    for i, item in enumerate(items):
        if isinstance(item, dict) and not item.get("kind") and not item.get("apiVersion"):
            item = {**item, "kind": item_kind, "apiVersion": api_version}
        if type(item) is dict and not problems and type(item.get("items")) is not list:
            yield RawObject(Location(source, index, i), item)  # the common case, kept fast
            continue
        raw = _item(Location(source, index, i), item, ("items", i), problems, errors, nested)
        if raw is not None:
            yield raw
    for list_location, inner_items, path in nested:
        for j, inner in enumerate(inner_items):
            inner_location = Location(source, index, list_location.item, (*list_location.nested, j))
            raw = _item(inner_location, inner, (*path, "items", j), problems, errors, nested)
            if raw is not None:
                yield raw


def _item(
    location: Location,
    item: Any,
    path: FieldPath,
    problems: list[Problem],
    errors: list[ManifestError],
    nested: list[tuple[Location, list[Any], FieldPath]],
) -> RawObject | None:
    """One List item: an object, or a List whose items are queued in `nested`."""
    mine = [_relative(p, path) for p in problems if p.path[: len(path)] == path] if problems else []
    if not isinstance(item, Mapping):
        errors.append(ManifestError(location, "", "", f"must be an object, got {type_name(item)}"))
        return None
    inner = item.get("items")
    if not isinstance(inner, list):
        return RawObject(location, item, tuple(mine))
    for p in mine:
        if not (len(p.path) >= 2 and p.path[0] == "items" and isinstance(p.path[1], int)):
            errors.append(ManifestError(location, "", p.field_path, p.with_position()))
    nested.append((location, inner, path))
    return None


def _relative(problem: Problem, prefix: tuple[str | int, ...]) -> Problem:
    return Problem(problem.path[len(prefix) :], problem.reason, problem.line, problem.column)


def _kind_text(body: Mapping[str, Any]) -> str:
    kind = body.get("kind")
    return kind if isinstance(kind, str) else ""
