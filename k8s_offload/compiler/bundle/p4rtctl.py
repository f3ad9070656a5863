"""The `p4rt-ctl` form of a bundle: the command lines IPDK's networking recipe uses to program
infrap4d (clients/p4rt-ctl/p4rt-ctl.in of ipdk-io/networking-recipe), one per entity, in the
bundle's dependency order (members, groups, then table entries), so the file replays as a shell
script against a bridge whose pipeline is already set (`p4rt-ctl set-pipe`).

What the tool accepts, and therefore what is written here:
- names are the P4Info full names (`p4rt-ctl` looks tables and action parameters up by full name
  only); values are hexadecimal (`0x..`), which the tool encodes at the field's full width
  whatever the field (dotted IPv4 text would be four bytes, wrong for our 128-bit keys);
- exact `field=V`, LPM `field=V/LEN`, ternary `field=V/MASK`, range `field=LOW/HIGH` (the
  tool reads any `a/b` as a pair and encodes it by the field's match kind), then `priority=N`
  for entries that have one, then `action=NAME(P1,...)` with every parameter, in P4Info order,
  or `member_id=N` / `group_id=N` for tables with an action profile;
- `add-action-profile-member BR PROFILE "action=NAME(..),member_id=N"`,
  `add-action-profile-group BR PROFILE "group_id=N,reference_members=(a,b),max_size=K"` and
  `set-default-entry BR TABLE "NAME(..)"`.

What the tool cannot express is refused (exit 1, naming the entity and its Kubernetes objects)
rather than written wrong: an entry with no key fields (the tool requires one), `optional` keys,
a range key in an entry without a ternary one (the tool sets the priority only when a ternary
field is present, and a range entry without priority is invalid, P4Runtime §9.1), a priority
with a member or group (the tool rejects it), weighted group members, and id 0.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator

from k8s_offload.compiler.bundle.model import (
    ActionCall,
    Bundle,
    Exact,
    Lpm,
    Optional,
    ProfileGroup,
    ProfileMember,
    Range,
    TableEntry,
    Ternary,
)
from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.compiler.errors import one_line

DEFAULT_BRIDGE = "br0"


def _origin(origin: tuple[str, ...]) -> str:
    """The objects behind an entity, as a shell comment."""
    return f"  # {one_line(', '.join(origin))}" if origin else ""


def _where(kind: str, name: str, origin: tuple[str, ...]) -> str:
    return f"p4rt-ctl cannot express this {kind} of {name} (from {', '.join(origin) or 'no object'})"


def _action(schema: Schema, call: ActionCall, where: str) -> str:
    """`NAME(P1,...)` with every parameter in P4Info order (the tool takes them by position)."""
    act = schema.action(call.name)
    given = dict(call.params)
    missing = [p.name for p in act.params if p.name not in given]
    if missing:
        raise BundleError(f"{where}: action {act.name} lacks parameters {', '.join(missing)}")
    if not act.params:
        return act.name  # `NAME()` would hand the tool one empty parameter
    return f"{act.name}({','.join(f'0x{given[p.name]:x}' for p in act.params)})"


def _member(schema: Schema, m: ProfileMember, br: str) -> str:
    where = _where("member", m.profile, m.origin)
    if m.member_id == 0:
        raise BundleError(f"{where}: member id 0")
    prof = schema.profile(m.profile)
    flow = f"action={_action(schema, m.action, where)},member_id={m.member_id}"
    return f'add-action-profile-member {br} {prof.name} "{flow}"{_origin(m.origin)}'


def _group(schema: Schema, g: ProfileGroup, br: str) -> str:
    where = _where("group", g.profile, g.origin)
    if g.group_id == 0:
        raise BundleError(f"{where}: group id 0")
    weighted = [mid for mid, w in g.members if w != 1]
    if weighted:
        raise BundleError(f"{where}: members {weighted} have weights (the tool sends weight 1)")
    prof = schema.profile(g.profile)
    members = ",".join(str(mid) for mid, _ in g.members)
    flow = f"group_id={g.group_id},reference_members=({members}),max_size={g.max_size}"
    return f'add-action-profile-group {br} {prof.name} "{flow}"{_origin(g.origin)}'


def _entry(schema: Schema, e: TableEntry, br: str) -> str:
    info = schema.table(e.table)
    where = _where("entry", info.name, e.origin)
    if e.is_default:
        if e.action is None:
            raise BundleError(f"{where}: a default entry without an action")
        return f'set-default-entry {br} {info.name} "{_action(schema, e.action, where)}"{_origin(e.origin)}'
    if not e.match:
        raise BundleError(f"{where}: an entry with every key field don't-care (the tool needs a key)")
    parts: list[str] = []
    ternary = False
    ranged = False
    for name, m in e.match:
        f = info.field(name)
        if type(m) is Exact:
            parts.append(f"{f.name}=0x{m.value:x}")
        elif type(m) is Lpm:
            parts.append(f"{f.name}=0x{m.value:x}/{m.prefix_len}")
        elif type(m) is Ternary:
            ternary = True
            parts.append(f"{f.name}=0x{m.value:x}/0x{m.mask:x}")
        elif type(m) is Range:
            ranged = True
            parts.append(f"{f.name}=0x{m.low:x}/0x{m.high:x}")
        else:
            assert isinstance(m, Optional)
            raise BundleError(f"{where}: key {f.name} is optional (the tool has no optional match)")
    if ranged and not ternary:
        raise BundleError(
            f"{where}: a range key without a ternary one (the tool would drop the priority); "
            "compile for a program whose ranges are ternary keys"
        )
    if e.priority:
        if e.action is None:
            raise BundleError(f"{where}: a priority with a member or group (the tool rejects it)")
        parts.append(f"priority={e.priority}")
    if e.action is not None:
        parts.append(f"action={_action(schema, e.action, where)}")
    elif e.member_id is not None:
        parts.append(f"member_id={e.member_id}")
    else:
        parts.append(f"group_id={e.group_id}")
    return f'add-entry {br} {info.name} "{",".join(parts)}"{_origin(e.origin)}'


def _lines(schema: Schema, bundle: Bundle, br: str) -> Iterator[str]:
    for m in bundle.members:
        yield _member(schema, m, br)
    for g in bundle.groups:
        yield _group(schema, g, br)
    for e in bundle.entries:
        yield _entry(schema, e, br)


def to_p4rt_ctl(schema: Schema, bundle: Bundle, bridge: str = DEFAULT_BRIDGE) -> str:
    """The bundle as `p4rt-ctl` command lines for `bridge`; raises BundleError (naming the entity
    and its objects) for what the tool cannot express."""
    head = "# k8s-offload bundle as p4rt-ctl commands: run after `p4rt-ctl set-pipe`, in this order\n"
    return head + "".join(f"p4rt-ctl {line}\n" for line in _lines(schema, bundle, shlex.quote(bridge)))
