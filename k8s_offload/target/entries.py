"""Validation of the parts of a write that name P4 objects: match keys and action calls.

Each check raises the canonical code of the P4Runtime spec, sections "Match Format" and "Action
Specification" (unknown ids: NOT_FOUND; malformed values: INVALID_ARGUMENT; an action used
outside its @tableonly/@defaultonly scope: PERMISSION_DENIED).
"""

from __future__ import annotations

from typing import Any

from k8s_offload.p4rt.proto import code_pb2, p4info
from k8s_offload.target.bytestrings import decode, is_canonical, value_of
from k8s_offload.target.errors import P4RuntimeError
from k8s_offload.target.match import KeyPart
from k8s_offload.target.p4info_index import (
    EXACT,
    LPM,
    OPTIONAL,
    RANGE,
    TERNARY,
    ActionInfo,
    KeyField,
    P4InfoIndex,
    TableInfo,
)

__all__ = ["ActionCall", "parse_action", "parse_match"]

ActionCall = tuple[int, tuple[int, ...]]
INVALID_ARGUMENT = code_pb2.INVALID_ARGUMENT

DEFAULT_ONLY = p4info.ActionRef.DEFAULT_ONLY
TABLE_ONLY = p4info.ActionRef.TABLE_ONLY

_ONEOF_KIND = {"exact": EXACT, "lpm": LPM, "ternary": TERNARY, "range": RANGE, "optional": OPTIONAL}


def parse_match(table: TableInfo, matches: Any) -> tuple[tuple[KeyPart, ...], bool]:
    """The normalized key of a TableEntry's `match` (omitted fields become don't-care), and whether
    `matches` is already in the form a read answers (fields in key order, shortest bytestrings)."""
    keys = table.keys
    fms = list(matches)
    # Usually every field is given, in key order: nothing repeated, unknown or missing then.
    complete = len(fms) == len(keys)
    if complete:
        for fm, kf in zip(fms, keys, strict=True):
            if fm.field_id != kf.id:
                complete = False
                break
    if complete:
        canon = True
    else:
        given: dict[int, Any] = {}
        positions = table.positions
        last = -1
        canon = True  # the fields given are in key order
        for fm in fms:
            fid = fm.field_id
            if fid in given:
                raise P4RuntimeError(INVALID_ARGUMENT, f"table {table.name!r}: match field {fid} given twice")
            given[fid] = fm
            pos = positions.get(fid, -1)
            canon = canon and pos > last
            last = pos
        for fid in given:
            if fid not in positions:
                raise P4RuntimeError(
                    code_pb2.NOT_FOUND, f"table {table.name!r}: no match field with id {fid}"
                )
    key: list[KeyPart] = []
    for i, kf in enumerate(keys):
        fm = fms[i] if complete else given.get(kf.id)
        kind = kf.kind
        if fm is None:
            if kind == EXACT:
                what = table.key_what[i]
                raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: exact field missing (it has no don't care)")
            key.append((0, (1 << kf.bitwidth) - 1) if kind == RANGE else (0, 0))
            continue
        oneof = fm.WhichOneof("field_match_type")
        if oneof == "exact" and kind == EXACT:
            raw = fm.exact.value
            value = value_of(raw, kf.bitwidth)
            key.append(decode(raw, kf.bitwidth, table.key_what[i]) if value is None else value)
            canon = canon and (len(raw) == 1 or raw[0] != 0)  # is_canonical, inline: every write
            continue
        part, canonical = _match_part(kf, table.key_what[i], fm, oneof)
        key.append(part)
        canon = canon and canonical
    return tuple(key), canon


def _match_part(kf: KeyField, what: str, fm: Any, oneof: str | None) -> tuple[KeyPart, bool]:
    """One given field of a key, and whether it is in canonical form."""
    kind = kf.kind
    if _ONEOF_KIND.get(oneof or "") != kind:
        raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: is {kind}, got a {oneof or 'empty'} match")
    if kind == EXACT:
        raw = fm.exact.value
        return decode(raw, kf.bitwidth, what), is_canonical(raw)
    if kind == LPM:
        lpm = fm.lpm
        plen = lpm.prefix_len
        if not 0 <= plen <= kf.bitwidth:
            raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: prefix_len {plen} outside 0..{kf.bitwidth}")
        if plen == 0:
            raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: a /0 prefix is don't care and must be omitted")
        raw = lpm.value
        value = decode(raw, kf.bitwidth, what)
        if value & ((1 << (kf.bitwidth - plen)) - 1):
            raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: value has bits set beyond prefix /{plen}")
        return (value, plen), is_canonical(raw)
    if kind == TERNARY:
        tern = fm.ternary
        raw, raw_mask = tern.value, tern.mask
        value = decode(raw, kf.bitwidth, what)
        mask = decode(raw_mask, kf.bitwidth, what + " mask")
        if mask == 0:
            raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: mask 0 is don't care and must be omitted")
        if value & ~mask:
            raise P4RuntimeError(INVALID_ARGUMENT, f"{what}: value has bits outside the mask")
        return (value, mask), is_canonical(raw) and is_canonical(raw_mask)
    if kind == RANGE:
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
        return (low, high), is_canonical(raw) and is_canonical(raw_high)
    raw = fm.optional.value
    return (decode(raw, kf.bitwidth, what), (1 << kf.bitwidth) - 1), is_canonical(raw)


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
    given = list(action.params)
    if len(given) == len(info.params):
        # Usually every parameter is given, in P4Info order. A parameter out of that order goes
        # to the general checks, which then find those before it as they were found here.
        args: list[int] = []
        canon = True
        for param, (pid, name, width) in zip(given, info.param_specs, strict=True):
            if param.param_id != pid:
                break
            raw = param.value
            value = value_of(raw, width)
            if value is None:
                value = decode(raw, width, f"{where}: action {info.name!r} param {name!r}")  # raises
            args.append(value)
            canon = canon and (len(raw) == 1 or raw[0] != 0)  # is_canonical, inline: every write
        else:
            return (aid, tuple(args)), canon
    return _parse_params(info, given, where), False


def _parse_params(info: ActionInfo, given: list[Any], where: str) -> ActionCall:
    """Parameters given out of order, or with one repeated, unknown or missing."""
    values: dict[int, int] = {}
    for param in given:
        pid = param.param_id
        spec = info.params.get(pid)
        if spec is None:
            raise P4RuntimeError(
                INVALID_ARGUMENT, f"{where}: action {info.name!r} has no parameter with id {pid}"
            )
        if pid in values:
            raise P4RuntimeError(
                INVALID_ARGUMENT, f"{where}: action {info.name!r} param {spec[0]!r} given twice"
            )
        values[pid] = decode(param.value, spec[1], f"{where}: action {info.name!r} param {spec[0]!r}")
    missing = [name for pid, (name, _) in info.params.items() if pid not in values]
    if missing:
        raise P4RuntimeError(INVALID_ARGUMENT, f"{where}: action {info.name!r} missing params {missing}")
    return info.id, tuple(values[pid] for pid in info.params)
