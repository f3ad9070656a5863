"""P4Info for a v1model program, as p4c 1.2.4 (v1.2.4.17) writes it.

Conventions followed (from p4c's control-plane/ sources):
* names: the top-level control type plus the instance path of nested controls, as left by
  the inliner (`K8sIngress.port_classify.port_class`); aliases are the shortest dotted suffix
  unique among ALL symbols of the program (one suffix set across resource types);
* ids: `@id(v)` gets the 8-bit resource prefix OR-ed in (a prefix already present must be
  the right one); objects without @id get `prefix << 24 | jenkins_one_at_a_time(name) &
  0xffffff`, resource types in prefix order, names sorted bytewise, linear probing on
  collision, after every @id has been reserved;
* order: blocks of V1Switch in parameter order, each control's locals in declaration order
  with nested control instances laid out where they are declared;
* match fields and action parameters are numbered 1..n over ALL key elements / parameters
  (selector keys take a number but are not match fields); annotations except @name/@id
  are copied verbatim.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from k8s_offload.p4.ast import (
    Action,
    ActionProfileInstance,
    Annotation,
    BitsType,
    BoolType,
    Constant,
    Control,
    ControlInstance,
    CounterInstance,
    DirectCounterInstance,
    ExternInstance,
    Program,
    RegisterInstance,
    Table,
    control_plane_name,
    find_annotation,
    type_width,
)
from k8s_offload.p4.errors import P4FrontendError
from k8s_offload.p4.program import load_program
from k8s_offload.p4rt.proto import p4info

ACTION = 0x01
TABLE = 0x02
CONTROLLER_HEADER = 0x04
ACTION_PROFILE = 0x11
COUNTER = 0x12
DIRECT_COUNTER = 0x13
METER = 0x14
DIRECT_METER = 0x15
REGISTER = 0x16
DIGEST = 0x17

V1MODEL_DEFAULT_TABLE_SIZE = 1024
_HIDDEN_ANNOTATIONS = frozenset({"name", "id", "brief", "description", "pkginfo"})
_PROFILE_ANNOTATIONS = frozenset({"max_group_size", "selector_size_semantics", "max_member_weight"})
_COUNTER_UNITS = {"packets": "PACKETS", "bytes": "BYTES", "packets_and_bytes": "BOTH"}


def jenkins_one_at_a_time(data: bytes) -> int:
    """Bob Jenkins' one-at-a-time hash (32-bit), which p4c uses for ids of unannotated objects."""
    h = 0
    for byte in data:
        h = (h + byte) & 0xFFFFFFFF
        h = (h + (h << 10)) & 0xFFFFFFFF
        h ^= h >> 6
    h = (h + (h << 3)) & 0xFFFFFFFF
    h ^= h >> 11
    return (h + (h << 15)) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class _Local:
    """A control-plane object with its fully qualified name and declaring control."""

    name: str
    node: Action | Table | ExternInstance
    control: Control
    path: str


def flatten_controls(program: Program) -> Iterator[_Local]:
    """Actions, tables and externs of the pipeline's controls, named and ordered as after p4c's
    inlining: nested instances' locals appear where the instance is declared."""
    controls = {c.name for c in program.controls}
    for block in program.main.args:
        if block in controls:
            yield from _flatten(program, program.control(block), block)


def _flatten(program: Program, control: Control, path: str) -> Iterator[_Local]:
    for local in control.locals:
        if isinstance(local, Action | Table | ExternInstance):
            yield _Local(control_plane_name(path, local.name, local.annotations), local, control, path)
        elif isinstance(local, ControlInstance):
            yield from _flatten(program, program.control(local.control), f"{path}.{local.name}")


class SymbolTable:
    """Ids and aliases for every control-plane symbol, computed the way p4c does."""

    def __init__(self) -> None:
        self._ids: dict[tuple[int, str], int | None] = {}
        self._assigned: set[int] = set()
        self._suffix_counts: dict[tuple[str, ...], int] = {}
        self._symbols: set[str] = set()

    def add(self, prefix: int, name: str, annotations: tuple[Annotation, ...]) -> None:
        key = (prefix, name)
        if key in self._ids:
            return
        self._ids[key] = self._external_id(prefix, name, annotations)
        if name not in self._symbols:
            self._symbols.add(name)
            parts = tuple(name.split("."))
            for n in range(1, len(parts) + 1):
                suffix = parts[-n:]
                self._suffix_counts[suffix] = self._suffix_counts.get(suffix, 0) + 1

    def _external_id(self, prefix: int, name: str, annotations: tuple[Annotation, ...]) -> int | None:
        annotation = find_annotation(annotations, "id")
        if annotation is None:
            return None
        if len(annotation.args) != 1 or not isinstance(annotation.args[0], int) or annotation.args[0] < 0:
            raise P4FrontendError(annotation.loc, f"{name}: @id should be an unsigned integer")
        value = annotation.args[0]
        if value > 0xFFFFFFFF:
            raise P4FrontendError(annotation.loc, f"{name}: @id should be an unsigned integer")
        if value >> 24 not in (0, prefix):
            raise P4FrontendError(
                annotation.loc,
                f"{name}: @id has the wrong 8-bit prefix: 0x{value >> 24:02x}, expected 0x{prefix:02x}",
            )
        value |= prefix << 24
        if value in self._assigned:
            raise P4FrontendError(annotation.loc, f"@id {value} is assigned to multiple declarations")
        self._assigned.add(value)
        return value

    def compute_ids(self) -> None:
        """Hash-based ids for symbols without @id, per resource type in prefix order."""
        for prefix in sorted({p for p, _ in self._ids}):
            pending = sorted(
                (n for p, n in self._ids if p == prefix and self._ids[(p, n)] is None), key=str.encode
            )
            for name in pending:
                source = jenkins_one_at_a_time(name.encode())
                value = source
                while (candidate := (prefix << 24) | (value & 0xFFFFFF)) in self._assigned:
                    value = (value + 1) & 0xFFFFFFFF
                    if value == source:
                        raise P4FrontendError(None, f"no available id to represent {name} in P4Runtime")
                self._assigned.add(candidate)
                self._ids[(prefix, name)] = candidate

    def id(self, prefix: int, name: str) -> int:
        value = self._ids[(prefix, name)]
        assert value is not None, "compute_ids() not called"
        return value

    def alias(self, name: str) -> str:
        parts = tuple(name.split("."))
        for n in range(1, len(parts) + 1):
            if self._suffix_counts.get(parts[-n:], 0) < 2:
                return ".".join(parts[-n:])
        return name


def _annotation_strings(annotations: tuple[Annotation, ...], skip: frozenset[str] = frozenset()) -> list[str]:
    out = []
    for a in annotations:
        if a.name in _HIDDEN_ANNOTATIONS or a.name in skip:
            continue
        out.append(f"@{a.name}" if a.body is None else f"@{a.name}({a.body.strip()})")
    return out


def _preamble(msg: Any, symbols: SymbolTable, prefix: int, name: str, annotations: tuple[Annotation, ...],
              skip: frozenset[str] = frozenset()) -> None:  # fmt: skip
    msg.preamble.id = symbols.id(prefix, name)
    msg.preamble.name = name
    msg.preamble.alias = symbols.alias(name)
    msg.preamble.annotations.extend(_annotation_strings(annotations, skip))


def _field_ids(items: list[tuple[str, tuple[Annotation, ...]]]) -> list[int]:
    """p4c's FieldIdAllocator: @id values first, then 1, 2, ... skipping taken ones, where
    position i takes number i+1 unless that is taken."""
    ids: list[int | None] = []
    taken: set[int] = set()
    for _name, annos in items:
        a = find_annotation(annos, "id")
        value = a.args[0] if a is not None and a.args and isinstance(a.args[0], int) else None
        ids.append(value)
        if value is not None:
            taken.add(value)
    index = 1
    out: list[int] = []
    for value in ids:
        if value is not None:
            index += 1
            out.append(value)
            continue
        while index in taken:
            index += 1
        taken.add(index)
        out.append(index)
    return out


def _bytes(value: int, width: int) -> bytes:
    return value.to_bytes((width + 7) // 8, "big")


def build_p4info(program: Program) -> Any:
    """The `p4.config.v1.P4Info` message for `program` (a V1Switch program)."""
    locals_ = list(flatten_controls(program))
    controller_headers = [h for h in program.headers if find_annotation(h.annotations, "controller_header")]

    symbols = SymbolTable()
    for local in locals_:
        node = local.node
        if isinstance(node, Action):
            symbols.add(ACTION, local.name, node.annotations)
        elif isinstance(node, Table):
            symbols.add(TABLE, local.name, node.annotations)
        elif isinstance(node, RegisterInstance):
            symbols.add(REGISTER, local.name, node.annotations)
        elif isinstance(node, CounterInstance):
            symbols.add(COUNTER, local.name, node.annotations)
        elif isinstance(node, DirectCounterInstance):
            symbols.add(DIRECT_COUNTER, local.name, node.annotations)
        elif isinstance(node, ActionProfileInstance):
            symbols.add(ACTION_PROFILE, local.name, node.annotations)
    for header in controller_headers:
        symbols.add(CONTROLLER_HEADER, header.name, header.annotations)
    symbols.compute_ids()

    info = p4info.P4Info()
    _pkg_info(info.pkg_info, program)
    action_names: set[str] = set()
    profile_tables: dict[str, list[int]] = {}
    direct_tables: dict[str, int] = {}
    for local in locals_:
        node = local.node
        if isinstance(node, Table):
            table_id = symbols.id(TABLE, local.name)
            if node.implementation:
                profile_tables.setdefault(f"{local.path}.{node.implementation}", []).append(table_id)
            if node.counters:
                direct_tables[f"{local.path}.{node.counters}"] = table_id
    for local in locals_:
        node = local.node
        if isinstance(node, Action) and local.name not in action_names:
            action_names.add(local.name)
            _add_action(info, symbols, local.name, node)
        elif isinstance(node, Table):
            _add_table(info, symbols, local, node)
        elif isinstance(node, ExternInstance):
            _add_extern(info, symbols, local.name, node, profile_tables, direct_tables)
    for header in controller_headers:
        _add_controller_header(info, symbols, header)
    info.type_info.SetInParent()
    return info


_PKGINFO_KEYS = ("name", "version", "organization", "contact", "url")
_PKGINFO_PAIR = re.compile(r'\s*([A-Za-z_]\w*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _pkg_info(msg: Any, program: Program) -> None:
    """`pkg_info` from `@pkginfo(key="value", ...)` on the main package (P4Runtime spec, "PkgInfo
    Message"); p4c writes `arch` itself and the rest from the annotation's key-value pairs."""
    msg.arch = "v1model"
    annotation = find_annotation(program.main.annotations, "pkginfo")
    if annotation is None or not (annotation.body or "").strip():
        return
    body, pos = annotation.body or "", 0
    while pos < len(body):
        match = _PKGINFO_PAIR.match(body, pos)
        if match is None or match.end() == pos:
            raise P4FrontendError(annotation.loc, f'@pkginfo: expected key="value" pairs, got {body!r}')
        key, value = match.group(1), match.group(2)
        if key not in _PKGINFO_KEYS:
            known = ", ".join(_PKGINFO_KEYS)
            raise P4FrontendError(annotation.loc, f"@pkginfo: unknown key {key!r} (one of {known})")
        setattr(msg, key, value)
        pos = match.end()


def _add_action(info: Any, symbols: SymbolTable, name: str, action: Action) -> None:
    msg = info.actions.add()
    _preamble(msg, symbols, ACTION, name, action.annotations)
    params = action.control_plane_params
    for param, pid in zip(params, _field_ids([(p.name, p.annotations) for p in params]), strict=True):
        out = msg.params.add()
        out.id = pid
        out.name = param.name
        out.annotations.extend(_annotation_strings(param.annotations))
        out.bitwidth = type_width(param.type)


def _add_table(info: Any, symbols: SymbolTable, local: _Local, table: Table) -> None:
    msg = info.tables.add()
    _preamble(msg, symbols, TABLE, local.name, table.annotations)
    ids = _field_ids([(k.name, k.annotations) for k in table.keys])
    for key, kid in zip(table.keys, ids, strict=True):
        if key.match_kind == "selector":
            continue
        field = msg.match_fields.add()
        field.id = kid
        field.name = key.name
        field.annotations.extend(_annotation_strings(key.annotations))
        field.bitwidth = key.width
        field.match_type = getattr(p4info.MatchField, key.match_kind.upper())

    def action_name(name: str) -> str:
        return control_plane_name(local.path, name, local.control.action(name).annotations)

    for ref in table.actions:
        out = msg.action_refs.add()
        out.id = symbols.id(ACTION, action_name(ref.action))
        out.scope = getattr(p4info.ActionRef, ref.scope)
        out.annotations.extend(_annotation_strings(ref.annotations))
    default = table.default_action
    if default is not None:
        action_id = symbols.id(ACTION, action_name(default.action))
        if default.is_const:
            msg.const_default_action_id = action_id
        msg.initial_default_action.action_id = action_id
        params = local.control.action(default.action).control_plane_params
        param_ids = _field_ids([(p.name, p.annotations) for p in params])
        for param, pid, arg in zip(params, param_ids, default.args, strict=True):
            out = msg.initial_default_action.arguments.add()
            out.param_id = pid
            if isinstance(arg, Constant) and isinstance(param.type, BitsType):
                out.value = _bytes(arg.value, param.type.width)
            elif isinstance(param.type, BoolType) and hasattr(arg, "value"):
                out.value = _bytes(int(bool(getattr(arg, "value", 0))), 1)
    if table.implementation:
        msg.implementation_id = symbols.id(ACTION_PROFILE, f"{local.path}.{table.implementation}")
    if table.counters:
        msg.direct_resource_ids.append(symbols.id(DIRECT_COUNTER, f"{local.path}.{table.counters}"))
    msg.size = table.size if table.size else V1MODEL_DEFAULT_TABLE_SIZE


def _add_extern(info: Any, symbols: SymbolTable, name: str, node: ExternInstance,
                profile_tables: dict[str, list[int]], direct_tables: dict[str, int]) -> None:  # fmt: skip
    if isinstance(node, RegisterInstance):
        msg = info.registers.add()
        _preamble(msg, symbols, REGISTER, name, node.annotations)
        msg.type_spec.bitstring.bit.bitwidth = node.element_width
        msg.size = node.size
    elif isinstance(node, CounterInstance):
        msg = info.counters.add()
        _preamble(msg, symbols, COUNTER, name, node.annotations)
        msg.spec.unit = getattr(p4info.CounterSpec, _COUNTER_UNITS[node.unit])
        msg.size = node.size
    elif isinstance(node, DirectCounterInstance):
        msg = info.direct_counters.add()
        _preamble(msg, symbols, DIRECT_COUNTER, name, node.annotations)
        msg.spec.unit = getattr(p4info.CounterSpec, _COUNTER_UNITS[node.unit])
        if name in direct_tables:
            msg.direct_table_id = direct_tables[name]
    elif isinstance(node, ActionProfileInstance):
        msg = info.action_profiles.add()
        _preamble(msg, symbols, ACTION_PROFILE, name, node.annotations, _PROFILE_ANNOTATIONS)
        msg.table_ids.extend(profile_tables.get(name, []))
        msg.with_selector = node.with_selector
        msg.size = node.size
        if node.with_selector and node.max_group_size:
            msg.max_group_size = node.max_group_size
        semantics = find_annotation(node.annotations, "selector_size_semantics")
        if node.with_selector and semantics is not None and semantics.args:
            kind = str(semantics.args[0]).lower()
            if kind == "sum_of_weights":
                msg.sum_of_weights.SetInParent()
            elif kind == "sum_of_members":
                msg.sum_of_members.SetInParent()


def _add_controller_header(info: Any, symbols: SymbolTable, header: Any) -> None:
    annotation = find_annotation(header.annotations, "controller_header")
    assert annotation is not None
    if len(annotation.args) != 1 or not isinstance(annotation.args[0], str):
        raise P4FrontendError(annotation.loc, "@controller_header needs one string argument")
    msg = info.controller_packet_metadata.add()
    msg.preamble.id = symbols.id(CONTROLLER_HEADER, header.name)
    msg.preamble.name = annotation.args[0]
    msg.preamble.alias = annotation.args[0]
    msg.preamble.annotations.extend(_annotation_strings(header.annotations))
    fields = header.fields
    for f, fid in zip(fields, _field_ids([(f.name, f.annotations) for f in fields]), strict=True):
        out = msg.metadata.add()
        out.id = fid
        out.name = f.name
        out.annotations.extend(_annotation_strings(f.annotations))
        out.bitwidth = type_width(f.type)


@lru_cache(maxsize=8)
def _cached(path: Path | None) -> bytes:
    return bytes(build_p4info(load_program(path)).SerializeToString(deterministic=True))


def load_p4info(path: Path | str | None = None) -> Any:
    """P4Info of the program at `path` (default: the repo's k8s_dp.p4), built once per
    process; each call returns a fresh copy the caller may modify."""
    msg = p4info.P4Info()
    msg.ParseFromString(_cached(Path(path).resolve() if path is not None else None))
    return msg
