"""Validation of the parts of a write that name P4 objects: match keys and action calls.

Each check raises the canonical code of the P4Runtime spec, sections "Match Format" and "Action
Specification" (unknown ids: NOT_FOUND; malformed values: INVALID_ARGUMENT; an action used
outside its @tableonly/@defaultonly scope: PERMISSION_DENIED).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from k8s_offload.p4rt.proto import code_pb2, p4info
from k8s_offload.target.bytestrings import decode, is_canonical
from k8s_offload.target.errors import P4RuntimeError
from k8s_offload.target.match import KeyPart
from k8s_offload.target.p4info_index import EXACT, LPM, OPTIONAL, RANGE, TERNARY, P4InfoIndex, TableInfo

__all__ = ["ActionCall", "parse_action", "parse_match"]

ActionCall = tuple[int, tuple[int, ...]]
INVALID_ARGUMENT = code_pb2.INVALID_ARGUMENT

DEFAULT_ONLY = p4info.ActionRef.DEFAULT_ONLY
TABLE_ONLY = p4info.ActionRef.TABLE_ONLY

_ONEOF_KIND = {"exact": EXACT, "lpm": LPM, "ternary": TERNARY, "range": RANGE, "optional": OPTIONAL}


def parse_match(table: TableInfo, matches: Any) -> tuple[tuple[KeyPart, ...], bool]:
    """The normalized key of a TableEntry's `match` (omitted fields become don't-care), and whether
    `matches` is already in the form a read answers (fields in key order, shortest bytestrings)."""
    given: dict[int, Any] = {}
    positions = table.positions
    ordered = True
    last = -1
    for fm in matches:
        fid = fm.field_id
        if fid in given:
            raise P4RuntimeError(INVALID_ARGUMENT, f"table {table.name!r}: match field {fid} given twice")
        given[fid] = fm
        pos = positions.get(fid, -1)
        ordered = ordered and pos > last
        last = pos
    if len(given) > len(positions) or not ordered:
        for fid in given:
            if fid not in positions:
                raise P4RuntimeError(
                    code_pb2.NOT_FOUND, f"table {table.name!r}: no match field with id {fid}"
                )
    key: list[KeyPart] = []
    canon = ordered
    for kf, what in zip(table.keys, table.key_what, strict=True):
        fm = given.get(kf.id)
        kind = kf.kind
        if fm is None:
            if kind == EXACT:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: exact field missing (it has no don't care)")
            key.append((0, (1 << kf.bitwidth) - 1) if kind == RANGE else (0, 0))
            continue
        oneof = fm.WhichOneof("field_match_type")
        if _ONEOF_KIND.get(oneof or "") != kind:
            raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: is {kind}, got a {oneof or 'empty'} match")
        if kind == EXACT:
            raw = fm.exact.value
            key.append(decode(raw, kf.bitwidth, what))
            canon = canon and is_canonical(raw)
        elif kind == LPM:
            lpm = fm.lpm
            plen = lpm.prefix_len
            if not 0 <= plen <= kf.bitwidth:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: prefix_len {plen} outside 0..{kf.bitwidth}")
            if plen == 0:
                raise P4RuntimeError(
                    INVALID_ARGUMENT, f"{what}: a /0 prefix is don't care and must be omitted"
                )
            raw = lpm.value
            value = decode(raw, kf.bitwidth, what)
            if value & ((1 << (kf.bitwidth - plen)) - 1):
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: value has bits set beyond prefix /{plen}")
            key.append((value, plen))
            canon = canon and is_canonical(raw)
        elif kind == TERNARY:
            tern = fm.ternary
            raw, raw_mask = tern.value, tern.mask
            value = decode(raw, kf.bitwidth, what)
            mask = decode(raw_mask, kf.bitwidth, what + " mask")
            if mask == 0:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: mask 0 is don't care and must be omitted")
            if value & ~mask:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: value has bits outside the mask")
            key.append((value, mask))
            canon = canon and is_canonical(raw) and is_canonical(raw_mask)
        elif kind == RANGE:
            rng = fm.range
            raw, raw_high = rng.low, rng.high
            low = decode(raw, kf.bitwidth, what + " low")
            high = decode(raw_high, kf.bitwidth, what + " high")
            if low > high:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: low {low} > high {high}")
            if low == 0 and high == (1 << kf.bitwidth) - 1:
                raise P4RuntimeError(
                    INVALID_ARGUMENT, f"{what}: the full range is don't care and must be omitted"
                )
            key.append((low, high))
            canon = canon and is_canonical(raw) and is_canonical(raw_high)
        else:
            raw = fm.optional.value
            key.append((decode(raw, kf.bitwidth, what), (1 << kf.bitwidth) - 1))
            canon = canon and is_canonical(raw)
    return tuple(key), canon


def _param_what(where: str, action: str, param: str) -> Callable[[], str]:
    """How a rejected parameter is named, formatted only if it is rejected."""
    return lambda: f"{where}: action {action!r} param {param!r}"


def parse_action(
    index: P4InfoIndex, allowed: dict[int, int], action: Any, where: str, *, as_default: bool
) -> tuple[ActionCall, bool]:
    """(action id, args in P4Info param order) of a `p4.v1.Action`, checked against a table's set,
    and whether `action` is already in the form a read answers (params in P4Info order, shortest
    bytestrings)."""
    aid = action.action_id
    info = index.actions.get(aid)
    if info is None:
        raise P4RuntimeError(code_pb2.NOT_FOUND, f"{where}: no action with id {aid}")
    scope = allowed.get(aid)
    if scope is None:
        raise P4RuntimeError(INVALID_ARGUMENT, f"{where}: action {info.name!r} is not in its action set")
    if scope == DEFAULT_ONLY and not as_default:
        raise P4RuntimeError(code_pb2.PERMISSION_DENIED, f"{where}: action {info.name!r} is @defaultonly")
    if scope == TABLE_ONLY and as_default:
        raise P4RuntimeError(
            code_pb2.PERMISSION_DENIED, f"{where}: action {info.name!r} is @tableonly, not a default action"
        )
    values: dict[int, int] = {}
    canon = True
    specs = info.params
    for param in action.params:
        pid = param.param_id
        spec = specs.get(pid)
        if spec is None:
            raise P4RuntimeError(
                INVALID_ARGUMENT, f"{where}: action {info.name!r} has no parameter with id {pid}"
            )
        if pid in values:
            raise P4RuntimeError(
                INVALID_ARGUMENT, f"{where}: action {info.name!r} param {spec[0]!r} given twice"
            )
        raw = param.value
        values[pid] = decode(raw, spec[1], _param_what(where, info.name, spec[0]))
        canon = canon and is_canonical(raw)
    if len(values) != len(specs):
        missing = [name for pid, (name, _) in specs.items() if pid not in values]
        raise P4RuntimeError(INVALID_ARGUMENT, f"{where}: action {info.name!r} missing params {missing}")
    return (aid, tuple(map(values.__getitem__, info.param_ids))), canon and tuple(values) == info.param_ids
