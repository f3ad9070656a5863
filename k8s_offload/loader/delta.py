"""Bundle deltas as device plans: write only what changed, without reading the device first.

The full sync (`sync.py`) reads every entity back and diffs; at 100k entities that alone takes
seconds. When the device is known to hold the previous desired state (the last sync or delta
push succeeded), the plan for a delta is the plan between the changed keys' old and new items:
`make_plan` restricted to them equals `make_plan` over everything, since unchanged keys give no
update and the ordering only relates entities that are both written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from k8s_offload.compiler.bundle.model import Bundle, ProfileGroup, ProfileMember, TableEntry
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.loader.entities import Item, Key, bundle_items, same
from k8s_offload.loader.plan import Plan, References, _plain_plan, _replaced, phased
from k8s_offload.loader.transition import Facts, transition_states


def items_of(schema: Schema, entities: Iterable[Any]) -> dict[Key, Item]:
    """Bundle model entities (members, groups, entries in any mix) as keyed P4Runtime items."""
    ents = list(entities)
    bundle = Bundle(
        members=tuple(e for e in ents if isinstance(e, ProfileMember)),
        groups=tuple(e for e in ents if isinstance(e, ProfileGroup)),
        entries=tuple(e for e in ents if isinstance(e, TableEntry)),
    )
    return bundle_items(schema, bundle)


def apply_delta(
    schema: Schema, desired: dict[Key, Item], added: Iterable[Any], removed: Iterable[Any]
) -> tuple[dict[Key, Item], dict[Key, Item]]:
    """Update `desired` in place; returns (new, old) items of the keys that changed."""
    gone = items_of(schema, removed)
    new = items_of(schema, added)
    old = {k: desired[k] for k in (*gone, *new) if k in desired}
    for k in gone:
        if k not in new:
            desired.pop(k, None)
    desired.update(new)
    return new, old


def delta_plan(
    schema: Schema,
    new: Mapping[Key, Item],
    old: Mapping[Key, Item],
    context: tuple[Facts, Mapping[Key, Item]] | None = None,
) -> Plan | None:
    """The ordered updates taking the device from `old` to `new` on just these keys, or None when
    an entity must be replaced (a group's max_size changed): its unchanged referrers must be
    withdrawn too, which only a full sync sees. `context`: the parsed policy stages and every
    entity of the desired state after the change, which a change moving peer classes or reusing
    a rule-set id needs (`transition.py`); without it such a change is None too."""
    refs = References(schema, [*new.values(), *old.values()])
    if _replaced(new, old, refs):
        return None
    changed = [k for k, it in new.items() if k not in old or not same(it, old[k])]
    changed += [k for k in old if k not in new]
    if context is None:
        if any(Facts(schema).stage_of(k) is not None for k in changed):
            return None
        return _plain_plan(schema, new, old, refs)
    facts, desired = context
    states = transition_states(schema, facts, desired, old, changed)
    return _plain_plan(schema, new, old, refs) if states is None else phased(schema, states)
