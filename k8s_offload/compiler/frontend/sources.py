"""Turning paths (files, directories, `-`) into raw documents, with List kinds flattened.

Only syntax is checked here; what a document means is the loader's business.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from k8s_offload.compiler.errors import Location, ManifestError
from k8s_offload.compiler.frontend.fields import type_name

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN_NAME = "<stdin>"

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml when available: the pure-Python loader is several times slower on 100k pods."""


@dataclass(frozen=True, slots=True)
class RawObject:
    location: Location
    body: Mapping[str, Any]


def expand_paths(sources: Sequence[str | Path], errors: list[ManifestError]) -> list[str | Path]:
    """Directories become their manifest files, recursively and in sorted order; `-` stays stdin."""
    out: list[str | Path] = []
    for source in sources:
        if str(source) == "-":
            out.append("-")
            continue
        path = Path(source)
        if path.is_dir():
            files = (p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file())
            out.extend(sorted(files))
        elif path.exists():
            out.append(path)
        else:
            errors.append(ManifestError(Location(str(source)), "", "", "no such file or directory"))
    return out


def read_objects(
    sources: Sequence[str | Path], errors: list[ManifestError], stdin: TextIO | None = None
) -> Iterator[RawObject]:
    for source in expand_paths(sources, errors):
        if source == "-":
            text = (stdin or sys.stdin).read()
            yield from parse_text(text, STDIN_NAME, errors)
            continue
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(ManifestError(Location(str(source)), "", "", f"cannot read: {exc}"))
            continue
        yield from parse_text(text, str(source), errors, as_json=Path(source).suffix == ".json")


def parse_text(
    text: str, source: str, errors: list[ManifestError], *, as_json: bool = False
) -> Iterator[RawObject]:
    """Documents of one file or stream; a syntax error ends that file but not the run."""
    for index, document in enumerate(_documents(text, source, errors, as_json), start=1):
        if document is None:
            continue
        yield from _flatten(Location(source, index), document, errors)


def _documents(text: str, source: str, errors: list[ManifestError], as_json: bool) -> Iterator[object]:
    if as_json:
        try:
            yield json.loads(text)
        except json.JSONDecodeError as exc:
            reason = f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
            errors.append(ManifestError(Location(source), "", "", reason))
        return
    try:
        yield from yaml.load_all(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        errors.append(ManifestError(Location(source), "", "", f"{where}invalid YAML: {problem}"))


def _flatten(location: Location, document: object, errors: list[ManifestError]) -> Iterator[RawObject]:
    """`kind: List` and typed lists (`PodList`, as kubectl prints them) become their items."""
    if not isinstance(document, Mapping):
        errors.append(ManifestError(location, "", "", f"must be an object, got {type_name(document)}"))
        return
    kind = document.get("kind")
    items = document.get("items")
    if not (isinstance(kind, str) and kind.endswith("List") and "items" in document):
        yield RawObject(location, document)
        return
    if items is None:
        return
    if not isinstance(items, list):
        errors.append(ManifestError(location, kind, "items", f"must be a list, got {type_name(items)}"))
        return
    item_kind = kind.removesuffix("List")
    for i, item in enumerate(items):
        item_location = Location(location.source, location.document, i)
        if not isinstance(item, Mapping):
            errors.append(ManifestError(item_location, "", "", f"must be an object, got {type_name(item)}"))
            continue
        if item_kind and "kind" not in item:
            # The API server omits kind/apiVersion on items of typed lists; they are the list's.
            item = {**item, "kind": item_kind, "apiVersion": document.get("apiVersion")}
        yield RawObject(item_location, item)
