"""Checks shared by all kinds: metadata, labels, protocols, enum-valued fields."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import TypeVar

from k8s_offload.compiler.frontend import validation
from k8s_offload.compiler.frontend.fields import Checker, Raw, at
from k8s_offload.compiler.frontend.limits import MAX_SHOWN_CHARS
from k8s_offload.compiler.frontend.model import IPAddress, Labels, ObjectKey, Protocol

E = TypeVar("E", bound=StrEnum)

DEFAULT_NAMESPACE = "default"
"""kubectl applies this when a namespaced manifest names no namespace."""


def subject_of(kind: str, raw: Raw, namespaced: bool) -> str:
    """`Service shop/web` for messages, readable even when the name itself is invalid."""
    meta = raw.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    ns = meta.get("namespace") if isinstance(meta, Mapping) else None
    name_text = name if isinstance(name, str) and name else "<no name>"
    if not namespaced:
        return f"{kind} {name_text}"
    ns_text = ns if isinstance(ns, str) and ns else DEFAULT_NAMESPACE
    return f"{kind} {ns_text}/{name_text}"


def read_meta(
    c: Checker, raw: Raw, kind: str, *, namespaced: bool, name_rule: Callable[[str], str | None]
) -> tuple[ObjectKey, Labels]:
    meta = c.mapping(raw, "metadata", "")
    name = c.string(meta, "name", "metadata", required=True) or ""
    if name and (reason := name_rule(name)) is not None:
        c.fail("metadata.name", reason)
    namespace = ""
    if namespaced:
        namespace = c.string(meta, "namespace", "metadata") or DEFAULT_NAMESPACE
        if (reason := validation.dns1123_label(namespace)) is not None:
            c.fail("metadata.namespace", reason)
    labels = read_labels(c, meta, "labels", "metadata")
    return ObjectKey(kind, namespace, name), labels


def read_labels(c: Checker, obj: Raw, key: str, path: str) -> Labels:
    """A validated label map (labels, matchLabels, Service selectors) as sorted pairs."""
    labels = c.string_map(obj, key, path)
    for k, v in labels.items():
        if (reason := validation.qualified_name(k)) is not None:
            c.fail(at(path, key), f"key {reason}")
        if (reason := validation.label_value(v)) is not None:
            c.fail(at(at(path, key), k), reason)
    return tuple(sorted(labels.items()))


def read_enum(c: Checker, obj: Raw, key: str, path: str, enum: type[E], default: E | None) -> E | None:
    value = c.string(obj, key, path)
    if value is None or value == "":
        return default
    member: E | None = _members(enum).get(value)
    if member is None:
        c.fail(at(path, key), unsupported(value, (m.value for m in enum)))
        return default
    return member


@functools.cache
def _members(enum: type[E]) -> dict[str, E]:
    """Enum lookup by value is slow (a try/except per call); this is one dict lookup per field."""
    return {m.value: m for m in enum}


def read_choice(c: Checker, obj: Raw, key: str, path: str, choices: Iterable[str]) -> str | None:
    """A string field restricted to a few values that need no enum of their own."""
    value = c.string(obj, key, path)
    if not value:
        return None
    options = tuple(choices)
    if value not in options:
        c.fail(at(path, key), unsupported(value, options))
        return None
    return value


def unsupported(value: str, supported: Iterable[str]) -> str:
    options = ", ".join(f'"{s}"' for s in sorted(supported))
    if len(value) > MAX_SHOWN_CHARS:
        value = f"{value[:MAX_SHOWN_CHARS]}...({len(value)} characters)"
    return f'Unsupported value: "{value}": supported values: {options}'


def read_protocol(c: Checker, obj: Raw, path: str) -> Protocol:
    return read_enum(c, obj, "protocol", path, Protocol, Protocol.TCP) or Protocol.TCP


def read_port(c: Checker, obj: Raw, key: str, path: str, *, required: bool) -> int | None:
    value = c.integer(obj, key, path, required=required)
    if value is not None and (reason := validation.port_number(value)) is not None:
        c.fail(at(path, key), reason)
        return None
    return value


def read_ip(c: Checker, value: str, path: str) -> IPAddress | None:
    parsed = validation.parse_ip(value)
    if isinstance(parsed, str):
        c.fail(path, parsed)
        return None
    return parsed


def check_name(c: Checker, value: str | None, path: str, rule: Callable[[str], str | None]) -> None:
    if value and (reason := rule(value)) is not None:
        c.fail(path, reason)
