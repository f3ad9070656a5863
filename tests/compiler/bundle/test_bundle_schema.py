"""P4Info-checked entry construction: the precomputed per-table checks of `Schema.entry` and
`Schema.member` against the one-check-at-a-time path they fall back to. On the real P4Info, for
every table and many good and bad arguments, both give the same entry or the same error."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from k8s_offload.compiler.bundle.model import Exact, Lpm, Match, Optional, Range, Ternary
from k8s_offload.compiler.bundle.schema import BundleError, FieldInfo, Schema, TableInfo
from k8s_offload.compiler.contract import default_schema
from k8s_offload.p4rt.proto import p4info as p4i


def _with_ternary_and_optional() -> Schema:
    """The program's P4Info with its LPM keys made ternary and one exact key optional, since the
    program itself has neither kind."""
    info: Any = p4i.P4Info()
    info.CopyFrom(default_schema().p4info)
    changed_exact = False
    for table in info.tables:
        for m in table.match_fields:
            if m.match_type == p4i.MatchField.LPM:
                m.match_type = p4i.MatchField.TERNARY
            elif m.match_type == p4i.MatchField.EXACT and not changed_exact and len(table.match_fields) > 1:
                m.match_type = p4i.MatchField.OPTIONAL
                changed_exact = True
    return Schema(info)


@pytest.fixture(scope="module", params=["program", "ternary-optional"])
def schema(request: pytest.FixtureRequest) -> Schema:
    return default_schema() if request.param == "program" else _with_ternary_and_optional()


def _outcome(build: Callable[..., object], *args: Any, **kwargs: Any) -> tuple[str, object]:
    try:
        return ("ok", build(*args, **kwargs))
    except BundleError as err:
        return ("BundleError", str(err))
    except Exception as err:  # the checked path's own failures (e.g. a None value) must match too
        return (type(err).__name__, "")


def _matches(f: FieldInfo) -> list[Match]:
    w = f.bitwidth
    top = (1 << w) - 1
    good: dict[int, list[Match]] = {
        p4i.MatchField.EXACT: [Exact(0), Exact(top)],
        p4i.MatchField.OPTIONAL: [Optional(1), Optional(top)],
        p4i.MatchField.LPM: [Lpm(1 << (w - 1), 1), Lpm(top, w), Lpm(top & ~1, w - 1)],
        p4i.MatchField.TERNARY: [Ternary(1, 1), Ternary(0, top)],
        p4i.MatchField.RANGE: [Range(1, 2), Range(0, top - 1), Range(5, 5)],
    }
    bad: list[Match] = [
        Exact(1 << w),
        Exact(-1),
        Exact(True),
        Optional(1 << w),
        Lpm(1, 0),
        Lpm(top, w + 1),
        Lpm(1, 1),
        Lpm(1 << w, w),
        Ternary(1, 0),
        Ternary(0, 0),
        Ternary(3, 1),
        Ternary(1 << w, (1 << (w + 1)) - 1),
        Range(0, top),
        Range(3, 2),
        Range(0, 1 << w),
        Range(-1, 2),
    ]
    return [*good.get(f.match_type, []), *bad]


def _valid(f: FieldInfo) -> Match:
    return _matches(f)[0]


def _match_variants(info: TableInfo) -> Iterator[dict[str, Match]]:
    base = {f.name: _valid(f) for f in info.fields}
    yield base
    yield {f.name.rsplit(".", 1)[-1]: m for f, m in zip(info.fields, base.values(), strict=True)}
    yield {}
    yield {**base, "no_such_field": Exact(1)}
    for f in info.fields:
        yield {k: v for k, v in base.items() if k != f.name}
        yield {**base, f.name.rsplit(".", 1)[-1]: base[f.name]}  # given twice under two names
        for m in _matches(f):
            yield {**base, f.name: m}


def _action_variants(schema: Schema, info: TableInfo) -> Iterator[tuple[str | None, Any]]:
    for name, ref in info.actions.items():
        act = ref.action
        params = {p.name: (1 << p.bitwidth) - 1 for p in act.params}
        yield name, params
        yield act.alias, params
        yield name, {**params, "extra": 1}
        for p in act.params:
            yield name, {k: v for k, v in params.items() if k != p.name}
            yield name, {**params, p.name: 1 << p.bitwidth}
            yield name, {**params, p.name: True}
            yield name, {**params, p.name: None}
        if not act.params:
            yield name, None
    yield "no_such_action", {}
    other = next(a for a in schema.p4info.actions if a.preamble.name not in info.actions)
    yield other.preamble.name, {}
    yield None, None


def _calls(schema: Schema, info: TableInfo) -> Iterator[tuple[dict[str, Match], dict[str, Any]]]:
    prio = 1 if info.needs_priority else 0
    if info.profile is not None:
        indirect: dict[str, Any] = {"member_id": 7}
    else:
        act = next(r.action for r in info.actions.values() if r.scope != p4i.ActionRef.DEFAULT_ONLY)
        indirect = {"action": act.name, "params": {p.name: 1 for p in act.params}}
    for match in _match_variants(info):
        yield match, {**indirect, "priority": prio}
    base = {f.name: _valid(f) for f in info.fields}
    for (action, params), member, group, priority in itertools.product(
        _action_variants(schema, info), (None, 7), (None, 9), (0, 1, -1)
    ):
        yield (
            base,
            {
                "action": action,
                "params": params,
                "member_id": member,
                "group_id": group,
                "priority": priority,
            },
        )


def test_entry_fast_path_agrees_with_checked_path(schema: Schema) -> None:
    compared = ok = 0
    for info in schema.tables():
        for match, kwargs in _calls(schema, info):
            fast = _outcome(schema.entry, info.name, match, origin=("o",), **kwargs)
            checked = _outcome(
                schema._checked_entry,
                info.name,
                match,
                kwargs.get("action"),
                kwargs.get("params"),
                kwargs.get("member_id"),
                kwargs.get("group_id"),
                kwargs.get("priority", 0),
                ("o",),
            )
            assert fast == checked, f"{info.alias} {match} {kwargs}"
            compared += 1
            ok += fast[0] == "ok"
    assert compared > 1000 and ok > 50


def test_unknown_table_message(schema: Schema) -> None:
    with pytest.raises(BundleError, match="the P4 program has no table 'nope'"):
        schema.entry("nope", {}, "x")


def test_member_fast_path_agrees_with_checked_path(schema: Schema) -> None:
    compared = ok = 0
    for prof in schema.p4info.action_profiles:
        profile = prof.preamble.name
        for a in schema.p4info.actions:
            params = {p.name: 1 for p in a.params}
            for given in (params, {**params, "extra": 1}, {}, {k: 1 << 64 for k in params}):
                fast = _outcome(schema.member, profile, 5, a.preamble.name, given, ("o",))
                schema._member_actions.clear()
                checked = _outcome(_checked_member, schema, profile, a.preamble.name, given)
                assert fast == checked, f"{profile} {a.preamble.name} {given}"
                compared += 1
                ok += fast[0] == "ok"
    assert compared > 10 and ok > 0


def _checked_member(schema: Schema, profile: str, action: str, params: dict[str, int]) -> object:
    """`member` with its precomputed checks defeated, so only the checked path runs."""
    schema._member_actions[(profile, action)] = ()
    try:
        return schema.member(profile, 5, action, params, ("o",))
    finally:
        schema._member_actions.clear()


def test_exact_entry_agrees_with_entry(schema: Schema) -> None:
    """`exact_entry` (one shape checked once, then values) builds what `entry` builds and raises
    what it raises, for every table and action, with fitting, too wide, negative and non-int values."""
    compared = ok = 0
    for info in schema.tables():
        keys = tuple(f.name.rsplit(".", 1)[-1] for f in info.fields)
        for ref in info.actions.values():
            act = ref.action
            names = tuple(p.name for p in act.params)
            good_keys = tuple(1 for _ in keys)
            good_params = tuple((1 << p.bitwidth) - 1 for p in act.params)
            variants: list[tuple[tuple[str, ...], tuple[str, ...], tuple[Any, ...], tuple[Any, ...]]] = [
                (keys, names, good_keys, good_params),
                (tuple(reversed(keys)), tuple(reversed(names)), good_keys, tuple(reversed(good_params))),
                (keys[:-1], names, good_keys[:-1], good_params),
                (keys, (*names, "extra"), good_keys, (*good_params, 1)),
            ]
            for i in range(len(keys)):
                for bad in (-1, 1 << 130, True, None):
                    variants.append(
                        (keys, names, tuple(bad if j == i else 1 for j in range(len(keys))), good_params)
                    )
            for i in range(len(names)):
                for bad in (-1, 1 << act.params[i].bitwidth, True):
                    wrong = tuple(bad if j == i else v for j, v in enumerate(good_params))
                    variants.append((keys, names, good_keys, wrong))
            for k, n, kv, pv in variants:
                fast = _outcome(schema.exact_entry, info.name, k, act.name, n, kv, pv, ("o",))
                full = _outcome(
                    schema.entry,
                    info.name,
                    {a: Exact(v) for a, v in zip(k, kv, strict=True)},
                    act.name,
                    dict(zip(n, pv, strict=True)),
                    origin=("o",),
                )
                assert fast == full, f"{info.alias} {act.alias} {k} {kv} {pv}"
                compared += 1
                ok += fast[0] == "ok"
    assert compared > 100 and ok > 5
