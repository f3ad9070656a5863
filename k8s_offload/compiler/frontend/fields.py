"""Typed access to one raw (YAML/JSON) object that records problems instead of raising.

Every getter returns a usable default after recording an error, so one pass over an object finds all
of its problems; the caller checks `Checker.ok` before trusting the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8s_offload.compiler.errors import Location, ManifestError
from k8s_offload.compiler.frontend.limits import MAX_SHOWN_CHARS

Raw = Mapping[str, Any]


def at(path: str, key: str | int) -> str:
    """Field path in the API server's notation: `spec.ports[0].port`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def type_name(value: object) -> str:
    """JSON type names, since users write YAML/JSON and not Python."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def shown(value: object) -> str:
    """An input value for a message, never longer than about MAX_SHOWN_CHARS: strings quoted like
    repr() (cut, with their length, when long), big integers cut, containers by type and size.

    Never str() or repr() of an input container: with YAML aliases it can stand for billions of nodes.
    """
    if isinstance(value, str):
        if len(value) <= MAX_SHOWN_CHARS:
            return repr(value)
        return f"{value[:MAX_SHOWN_CHARS]!r}... ({len(value)} characters)"
    if isinstance(value, bool) or value is None:
        return type_name(value) if value is None else str(value).lower()
    if isinstance(value, int):
        if abs(value) < 10**MAX_SHOWN_CHARS:
            return str(value)
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Mapping | list):
        noun = "entry" if len(value) == 1 else "entries"
        return f"{type_name(value)} of {len(value)} {noun}"
    return type_name(value)


class Checker:
    """Error sink for one object; it knows how to word a location so checks only give path and reason."""

    __slots__ = ("_errors", "errors_before", "location", "subject")

    def __init__(self, location: Location, subject: str, errors: list[ManifestError]) -> None:
        self.location = location
        self.subject = subject
        self._errors = errors
        self.errors_before = len(errors)

    @property
    def ok(self) -> bool:
        """True while this object recorded no error (errors of earlier objects do not count)."""
        return len(self._errors) == self.errors_before

    def fail(self, path: str, reason: str) -> None:
        self._errors.append(ManifestError(self.location, self.subject, path, reason))

    def _typed(self, obj: Raw, key: str, path: str, kind: type | tuple[type, ...], name: str) -> Any:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            self.fail(at(path, key), f"must be {name}, got boolean")
            return None
        if not isinstance(value, kind):
            self.fail(at(path, key), f"must be {name}, got {type_name(value)}")
            return None
        return value

    def string(self, obj: Raw, key: str, path: str, *, required: bool = False) -> str | None:
        raw = obj.get(key)
        if type(raw) is str and raw:  # fast path: most fields are present and well-typed
            return raw
        value: str | None = self._typed(obj, key, path, str, "a string")
        if required and not value:
            if key not in obj or obj.get(key) in (None, ""):
                self.fail(at(path, key), "Required value")
            return None
        return value

    def integer(self, obj: Raw, key: str, path: str, *, required: bool = False) -> int | None:
        raw = obj.get(key)
        if type(raw) is int:
            return raw
        value: int | None = self._typed(obj, key, path, int, "an integer")
        if required and value is None and obj.get(key) is None:
            self.fail(at(path, key), "Required value")
        return value

    def boolean(self, obj: Raw, key: str, path: str) -> bool | None:
        value = obj.get(key)
        if value is None or type(value) is bool:
            return bool(value) if value is not None else None
        self.fail(at(path, key), f"must be a boolean, got {type_name(value)}")
        return None

    def mapping(self, obj: Raw, key: str, path: str) -> Raw:
        raw = obj.get(key)
        if type(raw) is dict:
            return raw
        value: Raw | None = self._typed(obj, key, path, Mapping, "an object")
        return value if value is not None else {}

    def items(self, obj: Raw, key: str, path: str) -> list[Any]:
        raw = obj.get(key)
        if type(raw) is list:
            return raw
        value: list[Any] | None = self._typed(obj, key, path, list, "a list")
        return value if value is not None else []

    def objects(self, obj: Raw, key: str, path: str) -> list[tuple[str, Raw]]:
        """A list of objects, each with its own path; non-objects are reported and left out."""
        out: list[tuple[str, Raw]] = []
        for i, item in enumerate(self.items(obj, key, path)):
            item_path = at(at(path, key), i)
            if isinstance(item, Mapping):
                out.append((item_path, item))
            else:
                self.fail(item_path, f"must be an object, got {type_name(item)}")
        return out

    def strings(self, obj: Raw, key: str, path: str) -> list[tuple[str, str]]:
        """A list of strings, each with its own path; non-strings are reported and left out."""
        out: list[tuple[str, str]] = []
        for i, item in enumerate(self.items(obj, key, path)):
            item_path = at(at(path, key), i)
            if isinstance(item, str):
                out.append((item_path, item))
            else:
                self.fail(item_path, f"must be a string, got {type_name(item)}")
        return out

    def string_map(self, obj: Raw, key: str, path: str) -> dict[str, str]:
        """A map of strings to strings (labels, selectors)."""
        out: dict[str, str] = {}
        for k, v in self.mapping(obj, key, path).items():
            if not isinstance(v, str):
                self.fail(at(at(path, key), str(k)), f"must be a string, got {type_name(v)}")
                continue
            out[str(k)] = v
        return out
