"""Compiled golden bundles and mutations of them, for the verifier tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import cache
from pathlib import Path

from k8s_offload.compiler.bundle.model import Bundle, Lpm, Match, Range, TableEntry
from k8s_offload.compiler.driver import CompileResult, compile_sources
from k8s_offload.compiler.passes.pipeline import NO_OPT, PassConfig

GOLDEN = Path(__file__).resolve().parents[2] / "compiler" / "golden"
GOOD_CASES = sorted(
    p.name
    for p in GOLDEN.iterdir()
    if p.is_dir() and (p / "expected.txt").exists() and not p.name.startswith(("bad-", "duplicate-", "_"))
)


@cache
def compiled(case: str, optimized: bool = False) -> CompileResult:
    """Passes off unless `optimized`: most planted bugs edit entries of the unoptimized bundle."""
    d = GOLDEN / case
    node = d / "node.yaml"
    sources = sorted(str(p) for p in d.glob("*.yaml") if p.name != "node.yaml")
    return compile_sources(
        sources, node if node.exists() else None, passes=PassConfig() if optimized else NO_OPT
    )


def short(table: str) -> str:
    return table.rsplit(".", 1)[-1]


def find(bundle: Bundle, table: str, pred: Callable[[TableEntry], bool] = lambda e: True) -> TableEntry:
    for e in bundle.entries:
        if short(e.table) == table and not e.is_default and pred(e):
            return e
    raise LookupError(f"no {table} entry matches")


def replace_entry(bundle: Bundle, old: TableEntry, *new: TableEntry) -> Bundle:
    entries = list(bundle.entries)
    i = entries.index(old)
    entries[i : i + 1] = new
    return dataclasses.replace(bundle, entries=tuple(entries))


def add_entries(bundle: Bundle, *new: TableEntry) -> Bundle:
    return dataclasses.replace(bundle, entries=(*bundle.entries, *new))


def with_match(e: TableEntry, field: str, m: Lpm | Range) -> TableEntry:
    match = tuple((n, m if short(n) == field else old) for n, old in e.match)
    return dataclasses.replace(e, match=match)


def match_of(e: TableEntry, field: str) -> Match:
    return next(m for n, m in e.match if short(n) == field)


def with_params(e: TableEntry, **params: int) -> TableEntry:
    assert e.action is not None
    new = tuple((k, params.get(k, v)) for k, v in e.action.params)
    return dataclasses.replace(e, action=dataclasses.replace(e.action, params=new))
