"""Validation of the parts of a write that name P4 objects: match keys and action calls.

Each check raises the canonical code of the P4Runtime spec, sections "Match Format" and "Action
Specification" (unknown ids: NOT_FOUND; malformed values: INVALID_ARGUMENT; an action used
outside its @tableonly/@defaultonly scope: PERMISSION_DENIED).
"""

from __future__ import annotations

from typing import Any

from k8s_offload.p4rt.proto import code_pb2, p4info
from k8s_offload.target.bytestrings import decode
from k8s_offload.target.errors import P4RuntimeError
from k8s_offload.target.match import KeyPart
from k8s_offload.target.p4info_index import EXACT, LPM, OPTIONAL, RANGE, TERNARY, P4InfoIndex, TableInfo

__all__ = ["ActionCall", "parse_action", "parse_match"]

ActionCall = tuple[int, tuple[int, ...]]
INVALID_ARGUMENT = code_pb2.INVALID_ARGUMENT

_ONEOF_KIND = {"exact": EXACT, "lpm": LPM, "ternary": TERNARY, "range": RANGE, "optional": OPTIONAL}


def parse_match(table: TableInfo, matches: Any) -> tuple[KeyPart, ...]:
    """The normalized key of a TableEntry's `match` (omitted fields become don't-care)."""
    given: dict[int, Any] = {}
    for fm in matches:
        if fm.field_id in given:
            raise P4RuntimeError(
                INVALID_ARGUMENT, f"table {table.name!r}: match field {fm.field_id} given twice"
            )
        given[fm.field_id] = fm
    known = {k.id for k in table.keys}
    for fid in given:
        if fid not in known:
            raise P4RuntimeError(code_pb2.NOT_FOUND, f"table {table.name!r}: no match field with id {fid}")
    key: list[KeyPart] = []
    for kf in table.keys:
        what = f"table {table.name!r} match field {kf.name!r}"
        full = (1 << kf.bitwidth) - 1
        fm = given.get(kf.id)
        if fm is None:
            if kf.kind == EXACT:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: exact field missing (it has no don't care)")
            key.append((0, full) if kf.kind == RANGE else (0, 0))
            continue
        oneof = fm.WhichOneof("field_match_type")
        if _ONEOF_KIND.get(oneof or "") != kf.kind:
            raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: is {kf.kind}, got a {oneof or 'empty'} match")
        if kf.kind == EXACT:
            key.append(decode(fm.exact.value, kf.bitwidth, what))
        elif kf.kind == LPM:
            plen = fm.lpm.prefix_len
            if not 0 <= plen <= kf.bitwidth:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: prefix_len {plen} outside 0..{kf.bitwidth}")
            if plen == 0:
                raise P4RuntimeError(
                    INVALID_ARGUMENT, f"{what}: a /0 prefix is don't care and must be omitted"
                )
            value = decode(fm.lpm.value, kf.bitwidth, what)
            if value & ((1 << (kf.bitwidth - plen)) - 1):
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: value has bits set beyond prefix /{plen}")
            key.append((value, plen))
        elif kf.kind == TERNARY:
            value = decode(fm.ternary.value, kf.bitwidth, what)
            mask = decode(fm.ternary.mask, kf.bitwidth, what + " mask")
            if mask == 0:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: mask 0 is don't care and must be omitted")
            if value & ~mask:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: value has bits outside the mask")
            key.append((value, mask))
        elif kf.kind == RANGE:
            low = decode(fm.range.low, kf.bitwidth, what + " low")
            high = decode(fm.range.high, kf.bitwidth, what + " high")
            if low > high:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: low {low} > high {high}")
            if low == 0 and high == full:
                raise P4RuntimeError(
                    INVALID_ARGUMENT, f"{what}: the full range is don't care and must be omitted"
                )
            key.append((low, high))
        else:
            key.append((decode(fm.optional.value, kf.bitwidth, what), full))
    return tuple(key)


def parse_action(
    index: P4InfoIndex, allowed: dict[int, int], action: Any, where: str, *, as_default: bool
) -> ActionCall:
    """(action id, args in P4Info param order) of a `p4.v1.Action`, checked against a table's set."""
    aid = action.action_id
    info = index.actions.get(aid)
    if info is None:
        raise P4RuntimeError(code_pb2.NOT_FOUND, f"{where}: no action with id {aid}")
    if aid not in allowed:
        raise P4RuntimeError(INVALID_ARGUMENT, f"{where}: action {info.name!r} is not in its action set")
    scope = allowed[aid]
    if scope == p4info.ActionRef.DEFAULT_ONLY and not as_default:
        raise P4RuntimeError(code_pb2.PERMISSION_DENIED, f"{where}: action {info.name!r} is @defaultonly")
    if scope == p4info.ActionRef.TABLE_ONLY and as_default:
        raise P4RuntimeError(
            code_pb2.PERMISSION_DENIED, f"{where}: action {info.name!r} is @tableonly, not a default action"
        )
    values: dict[int, int] = {}
    for param in action.params:
        spec = info.params.get(param.param_id)
        if spec is None:
            raise P4RuntimeError(
                INVALID_ARGUMENT, f"{where}: action {info.name!r} has no parameter with id {param.param_id}"
            )
        if param.param_id in values:
            raise P4RuntimeError(
                INVALID_ARGUMENT, f"{where}: action {info.name!r} param {spec[0]!r} given twice"
            )
        values[param.param_id] = decode(
            param.value, spec[1], f"{where}: action {info.name!r} param {spec[0]!r}"
        )
    missing = [name for pid, (name, _) in info.params.items() if pid not in values]
    if missing:
        raise P4RuntimeError(INVALID_ARGUMENT, f"{where}: action {info.name!r} missing params {missing}")
    return aid, tuple(values[pid] for pid in info.params)
