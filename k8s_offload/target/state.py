"""The target's runtime state, written and read as P4Runtime entities and checked like PI does.

This is what the embedded P4Runtime server will sit on: `apply(update)` either changes state or
raises `P4RuntimeError` with the spec's canonical code and leaves state unchanged; `read(entity)`
answers wildcard reads with entities in canonical (shortest bytestring) form. The interpreter
reads the same objects directly (`tables`, `profiles`, `counters`, `registers`) on its fast path.
`begin()` opens a transaction that `rollback()` undoes exactly (handles included) and `commit()`
keeps: what ROLLBACK_ON_ERROR and DATAPLANE_ATOMIC batches need.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from k8s_offload.p4rt.proto import code_pb2, p4runtime
from k8s_offload.p4rt.wire import entity_field
from k8s_offload.target.bytestrings import canonical, decode
from k8s_offload.target.entries import ActionCall, parse_action, parse_match
from k8s_offload.target.errors import P4RuntimeError
from k8s_offload.target.handles import HandleAllocator
from k8s_offload.target.journal import Journal
from k8s_offload.target.match import Entry, KeyPart, MatchEngine, make_engine
from k8s_offload.target.p4info_index import EXACT, LPM, OPTIONAL, RANGE, P4InfoIndex, TableInfo
from k8s_offload.target.profiles import ProfileStore

__all__ = ["TableState", "TargetState"]

INVALID_ARGUMENT = code_pb2.INVALID_ARGUMENT
INSERT = p4runtime.Update.INSERT
MODIFY = p4runtime.Update.MODIFY
DELETE = p4runtime.Update.DELETE


@dataclass(slots=True)
class TableState:
    """One table: its engine, its default action (current and as compiled) and its profile, if any."""

    info: TableInfo
    engine: MatchEngine
    default: ActionCall
    initial_default: ActionCall
    profile: ProfileStore | None
    handles: HandleAllocator


class TargetState:
    """Tables, action profiles, counters and registers of one device running one P4Info."""

    def __init__(self, info: Any, defaults: dict[int, ActionCall] | None = None) -> None:
        """`defaults` supplies default actions the P4Info lacks (table id -> (action id, args))."""
        self.index = P4InfoIndex(info)
        self.journal = journal = Journal()
        self.profiles = {pid: ProfileStore(p, journal) for pid, p in self.index.profiles.items()}
        self.tables: dict[int, TableState] = {}
        for tid, table in self.index.tables.items():
            profile = self.profiles.get(table.implementation_id) if table.implementation_id else None
            # An indirect table holds no default action (as bmv2: PI reads it back without one).
            default = (0, ()) if profile else (defaults or {}).get(tid) or table.initial_default or (0, ())
            self.tables[tid] = TableState(
                table, make_engine(table.keys), default, default, profile, HandleAllocator(journal)
            )
        self.counters: dict[int, tuple[list[int], list[int]]] = {
            cid: ([0] * size, [0] * size) for cid, (_, size, _) in self.index.counters.items()
        }
        self.registers: dict[int, list[int]] = {
            rid: [0] * size for rid, (_, size, _) in self.index.registers.items()
        }

    # ---- transactions -------------------------------------------------------------------------

    def begin(self) -> None:
        """Start recording undo actions; one transaction at a time."""
        self.journal.begin()

    def commit(self) -> None:
        """Keep everything applied since `begin()`."""
        self.journal.commit()

    def rollback(self) -> None:
        """Return to the state at `begin()`, entry and member handles included."""
        self.journal.rollback()

    # ---- writes -------------------------------------------------------------------------------

    def write(self, updates: Iterable[Any]) -> list[P4RuntimeError | None]:
        """Apply updates one by one (CONTINUE_ON_ERROR, the spec's default); per-update outcome."""
        results: list[P4RuntimeError | None] = []
        for update in updates:
            try:
                self.apply(update)
                results.append(None)
            except P4RuntimeError as err:
                results.append(err)
        return results

    def apply(self, update: Any) -> None:
        """Apply one `p4.v1.Update`, or raise P4RuntimeError and change nothing."""
        kind = update.type
        if kind not in (INSERT, MODIFY, DELETE):
            raise P4RuntimeError(INVALID_ARGUMENT, f"update type {kind} is not INSERT, MODIFY or DELETE")
        entity = update.entity
        which = entity.WhichOneof("entity")
        if which == "table_entry":
            self._write_table_entry(kind, entity.table_entry)
        elif which == "action_profile_member":
            self._write_member(kind, entity.action_profile_member)
        elif which == "action_profile_group":
            msg = entity.action_profile_group
            self._profile(msg.action_profile_id).write_group(kind, msg)
        elif which == "counter_entry":
            self._write_counter(kind, entity.counter_entry)
        elif which == "register_entry":
            self._write_register(kind, entity.register_entry)
        else:
            raise P4RuntimeError(
                code_pb2.UNIMPLEMENTED, f"writing {which or 'an empty entity'} is not supported"
            )

    def _table(self, table_id: int) -> TableState:
        table = self.tables.get(table_id)
        if table is None:
            raise P4RuntimeError(code_pb2.NOT_FOUND, f"no table with id {table_id}")
        return table

    def _profile(self, profile_id: int) -> ProfileStore:
        profile = self.profiles.get(profile_id)
        if profile is None:
            raise P4RuntimeError(code_pb2.NOT_FOUND, f"no action profile with id {profile_id}")
        return profile

    def _write_member(self, kind: int, msg: Any) -> None:
        profile = self._profile(msg.action_profile_id)
        action = None
        if kind != DELETE and msg.HasField("action"):
            allowed = self.index.profile_actions[profile.info.id]
            where = f"action profile {profile.info.name!r} member {msg.member_id}"
            action, _ = parse_action(self.index, allowed, msg.action, where, as_default=False)
        profile.write_member(kind, msg, action)

    def _write_table_entry(self, kind: int, msg: Any) -> None:
        table = self.tables.get(msg.table_id)
        if table is None:
            raise P4RuntimeError(code_pb2.NOT_FOUND, f"no table with id {msg.table_id}")
        info = table.info
        if msg.is_const:
            raise P4RuntimeError(INVALID_ARGUMENT, f"table {info.name!r}: is_const must be false in writes")
        if msg.is_default_action:
            self._write_default(kind, table, msg)
            return
        if not info.keys:
            raise P4RuntimeError(
                INVALID_ARGUMENT, f"table {info.name!r} is keyless: only its default entry exists"
            )
        key, canonical_match = parse_match(info, msg.match)
        priority = msg.priority
        if info.needs_priority:
            if priority <= 0:
                raise P4RuntimeError(
                    INVALID_ARGUMENT,
                    f"table {info.name!r}: priority must be > 0 (ternary, range or optional key)",
                )
        elif priority != 0:
            raise P4RuntimeError(
                INVALID_ARGUMENT, f"table {info.name!r}: priority must be 0 (no ternary key)"
            )
        engine = table.engine
        journal = self.journal
        existing = engine.find(key, priority)
        if kind == DELETE:
            if existing is None:
                raise P4RuntimeError(code_pb2.NOT_FOUND, f"table {info.name!r}: no such entry to delete")
            self._release_refs(table, existing)
            engine.remove(existing)
            table.handles.release(existing.handle)
            if journal.active:
                journal.record(self._restore_entry, table, existing)
            return
        if existing is not None:
            if kind == INSERT:
                raise P4RuntimeError(code_pb2.ALREADY_EXISTS, f"table {info.name!r}: entry already exists")
        elif kind == MODIFY:
            raise P4RuntimeError(code_pb2.NOT_FOUND, f"table {info.name!r}: no such entry to modify")
        if not msg.HasField("action"):
            if kind == INSERT:
                raise P4RuntimeError(INVALID_ARGUMENT, f"table {info.name!r}: INSERT needs an action")
            assert existing is not None
            if journal.active:
                journal.record(setattr, existing, "raw", existing.raw)
            stored = p4runtime.TableEntry.FromString(existing.raw)
            stored.metadata = msg.metadata
            stored.controller_metadata = msg.controller_metadata
            existing.raw = stored.SerializeToString()
            return
        (action_id, args, member_id, group_id), canonical_action = self._table_action(table, msg.action)
        if existing is None and info.size and engine.count >= info.size:
            raise P4RuntimeError(
                code_pb2.RESOURCE_EXHAUSTED, f"table {info.name!r} is full ({info.size} entries)"
            )
        if canonical_match and canonical_action and not _has_unkept_fields(msg):
            msg.DiscardUnknownFields()  # all else of it is what a read answers: no need to rebuild
            raw = msg.SerializeToString()
        else:
            raw = self._canonical_entry(table, key, msg, args).SerializeToString()
        if existing is None:
            entry = Entry(key, priority, table.handles.allocate(), action_id, args, member_id, group_id, raw)
            if table.profile is not None:
                self._take_refs(table, entry)
            engine.add(entry)
            if journal.active:
                journal.record(self._drop_entry, table, entry)
            return
        self._release_refs(table, existing)
        if journal.active:
            old = (existing.action_id, existing.args, existing.member_id, existing.group_id, existing.raw)
            journal.record(self._restore_action, table, existing, old)
        existing.action_id, existing.args, existing.member_id, existing.group_id = (
            action_id,
            args,
            member_id,
            group_id,
        )
        existing.raw = raw
        self._take_refs(table, existing)

    def _restore_entry(self, table: TableState, entry: Entry) -> None:
        table.engine.add(entry)
        self._take_refs(table, entry)

    def _drop_entry(self, table: TableState, entry: Entry) -> None:
        self._release_refs(table, entry)
        table.engine.remove(entry)

    def _restore_action(self, table: TableState, entry: Entry, old: tuple[Any, ...]) -> None:
        self._release_refs(table, entry)
        entry.action_id, entry.args, entry.member_id, entry.group_id, entry.raw = old
        self._take_refs(table, entry)

    def _table_action(
        self, table: TableState, action: Any
    ) -> tuple[tuple[int, tuple[int, ...], int, int], bool]:
        """(action id, args, member id, group id) of a TableAction, checked against the table kind,
        and whether the action is in the form a read answers."""
        info = table.info
        which = action.WhichOneof("type")
        where = info.where
        if which == "action":
            if table.profile is not None:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{where} is indirect: give a member or group id")
            (aid, args), canon = parse_action(
                self.index, info.actions, action.action, where, as_default=False
            )
            return (aid, args, 0, 0), canon
        if which in ("action_profile_member_id", "action_profile_group_id"):
            profile = table.profile
            if profile is None:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{where} is direct: give an action, not a {which}")
            if which == "action_profile_member_id":
                mid = action.action_profile_member_id
                if mid not in profile.members:
                    raise P4RuntimeError(code_pb2.NOT_FOUND, f"{where}: member {mid} does not exist")
                return (0, (), mid, 0), True
            gid = action.action_profile_group_id
            if not profile.info.with_selector:
                raise P4RuntimeError(INVALID_ARGUMENT, f"{where}: profile has no selector, no groups")
            if gid not in profile.groups:
                raise P4RuntimeError(code_pb2.NOT_FOUND, f"{where}: group {gid} does not exist")
            if not profile.groups[gid].member_ids:
                # bmv2 refuses this too (EMPTY_GRP; PI answers UNKNOWN). The spec leaves what a
                # packet does on an empty group to the target ("Constraints on action selector
                # programming"); bmv2 makes it a hit that runs no action.
                raise P4RuntimeError(code_pb2.FAILED_PRECONDITION, f"{where}: group {gid} is empty")
            return (0, (), 0, gid), True
        if which == "action_profile_action_set":
            raise P4RuntimeError(code_pb2.UNIMPLEMENTED, f"{where}: one-shot action selector programming")
        raise P4RuntimeError(INVALID_ARGUMENT, f"{where}: empty action")

    def _take_refs(self, table: TableState, entry: Entry) -> None:
        if table.profile is None:
            return
        if entry.member_id:
            table.profile.members[entry.member_id].table_refs += 1
        if entry.group_id:
            table.profile.groups[entry.group_id].table_refs += 1

    def _release_refs(self, table: TableState, entry: Entry) -> None:
        if table.profile is None:
            return
        if entry.member_id:
            table.profile.members[entry.member_id].table_refs -= 1
        if entry.group_id:
            table.profile.groups[entry.group_id].table_refs -= 1

    def _write_default(self, kind: int, table: TableState, msg: Any) -> None:
        info = table.info
        where = f"table {info.name!r} default entry"
        if kind != MODIFY:
            raise P4RuntimeError(INVALID_ARGUMENT, f"{where}: only MODIFY is allowed (it always exists)")
        if len(msg.match) or msg.priority:
            raise P4RuntimeError(INVALID_ARGUMENT, f"{where}: match must be empty and priority 0")
        if info.const_default:
            raise P4RuntimeError(code_pb2.PERMISSION_DENIED, f"{where} is const")
        if table.profile is not None:
            raise P4RuntimeError(INVALID_ARGUMENT, f"{where}: the default of an indirect table cannot change")
        if not msg.HasField("action"):
            new = table.initial_default
        elif msg.action.WhichOneof("type") != "action":
            raise P4RuntimeError(INVALID_ARGUMENT, f"{where}: a direct table's default needs an action")
        else:
            new, _ = parse_action(self.index, info.actions, msg.action.action, where, as_default=True)
        old = table.default
        table.default = new
        self.journal.record(setattr, table, "default", old)

    def _write_counter(self, kind: int, msg: Any) -> None:
        if msg.counter_id not in self.counters:
            raise P4RuntimeError(code_pb2.NOT_FOUND, f"no counter with id {msg.counter_id}")
        name = self.index.counters[msg.counter_id][0]
        if kind != MODIFY:
            raise P4RuntimeError(INVALID_ARGUMENT, f"counter {name!r}: only MODIFY is allowed")
        packets, octets = self.counters[msg.counter_id]
        cells = self._indices(msg, len(packets), f"counter {name!r}")
        if self.journal.active:
            self.journal.record(_restorer(packets, cells.start, packets[cells.start : cells.stop]))
            self.journal.record(_restorer(octets, cells.start, octets[cells.start : cells.stop]))
        for i in cells:
            packets[i] = msg.data.packet_count
            octets[i] = msg.data.byte_count

    def _write_register(self, kind: int, msg: Any) -> None:
        if msg.register_id not in self.registers:
            raise P4RuntimeError(code_pb2.NOT_FOUND, f"no register with id {msg.register_id}")
        name, _, width = self.index.registers[msg.register_id]
        if kind != MODIFY:
            raise P4RuntimeError(INVALID_ARGUMENT, f"register {name!r}: only MODIFY is allowed")
        if msg.data.WhichOneof("data") != "bitstring":
            raise P4RuntimeError(INVALID_ARGUMENT, f"register {name!r}: data must be a bitstring")
        value = decode(msg.data.bitstring, width, f"register {name!r} data")
        cells = self.registers[msg.register_id]
        where = self._indices(msg, len(cells), f"register {name!r}")
        if self.journal.active:
            self.journal.record(_restorer(cells, where.start, cells[where.start : where.stop]))
        for i in where:
            cells[i] = value

    @staticmethod
    def _indices(msg: Any, size: int, what: str) -> range:
        if not msg.HasField("index"):
            return range(size)
        i = msg.index.index
        if not 0 <= i < size:
            raise P4RuntimeError(code_pb2.OUT_OF_RANGE, f"{what}: index {i} outside 0..{size - 1}")
        return range(i, i + 1)

    def _canonical_entry(
        self, table: TableState, key: tuple[KeyPart, ...], msg: Any, args: tuple[int, ...]
    ) -> Any:
        """The entry as reads answer it, built from its parsed key and action arguments."""
        out = p4runtime.TableEntry(table_id=table.info.id, priority=msg.priority)
        out.metadata = msg.metadata
        out.controller_metadata = msg.controller_metadata
        for kf, part in zip(table.info.keys, key, strict=True):
            if kf.kind == EXACT:
                out.match.add(field_id=kf.id).exact.value = canonical(part)
            elif kf.kind == LPM:
                if part[1]:
                    fm = out.match.add(field_id=kf.id)
                    fm.lpm.value, fm.lpm.prefix_len = canonical(part[0]), part[1]
            elif kf.kind == RANGE:
                if part != (0, (1 << kf.bitwidth) - 1):
                    fm = out.match.add(field_id=kf.id)
                    fm.range.low, fm.range.high = canonical(part[0]), canonical(part[1])
            elif kf.kind == OPTIONAL:
                if part[1]:
                    out.match.add(field_id=kf.id).optional.value = canonical(part[0])
            elif part[1]:
                fm = out.match.add(field_id=kf.id)
                fm.ternary.value, fm.ternary.mask = canonical(part[0]), canonical(part[1])
        action = msg.action
        which = action.WhichOneof("type")
        if which == "action":
            self._fill_action(out.action.action, action.action.action_id, args)
        elif which == "action_profile_member_id":
            out.action.action_profile_member_id = action.action_profile_member_id
        else:
            out.action.action_profile_group_id = action.action_profile_group_id
        return out

    def _fill_action(self, out: Any, action_id: int, args: tuple[int, ...]) -> None:
        out.action_id = action_id
        for pid, value in zip(self.index.actions[action_id].param_ids, args, strict=True):
            out.params.add(param_id=pid, value=canonical(value))

    # ---- reads --------------------------------------------------------------------------------

    def read(self, entity: Any) -> list[Any]:
        """Entities matching one read request (spec §"Read RPC"); 0 ids and unset fields are
        wildcards (§"Wildcard Reads"). Kinds this program has none of (meters, direct resources,
        PRE sessions, value sets, digests, externs) read as empty, or NOT_FOUND for a given id."""
        return [p4runtime.Entity.FromString(e) for e in self.read_encoded(entity)]

    def read_encoded(self, entity: Any) -> list[bytes]:
        """`read`, each Entity serialized (the server frames them into responses, `p4rt.wire`)."""
        name, found = self.select(entity)
        return [entity_field(name, raw) for raw in found]

    def select(self, entity: Any) -> tuple[str, list[bytes]]:
        """What `read` answers: the Entity field the results go in, and each result serialized."""
        which = entity.WhichOneof("entity")
        if which == "table_entry":
            return which, list(self._read_table_entries(entity.table_entry))
        if which == "action_profile_member":
            f = entity.action_profile_member
            return which, [
                m.raw
                for p in self._profiles_for(f.action_profile_id)
                for m in sorted(p.members.values(), key=lambda m: m.id)
                if f.member_id in (0, m.id)
            ]
        if which == "action_profile_group":
            g = entity.action_profile_group
            return which, [
                grp.raw
                for p in self._profiles_for(g.action_profile_id)
                for grp in sorted(p.groups.values(), key=lambda grp: grp.id)
                if g.group_id in (0, grp.id)
            ]
        if which == "counter_entry":
            return which, [c.SerializeToString() for c in self._read_counters(entity.counter_entry)]
        if which == "register_entry":
            return which, [r.SerializeToString() for r in self._read_registers(entity.register_entry)]
        if which is None:
            raise P4RuntimeError(INVALID_ARGUMENT, "the entity oneof is not set (Wildcard Reads)")
        self._none_of(which, getattr(entity, which))
        return which, []

    def _none_of(self, which: str, f: Any) -> None:
        """A read of a kind this state holds nothing of: an id names something that does not exist."""
        if which in ("direct_counter_entry", "direct_meter_entry"):
            tid = f.table_entry.table_id
            if tid:
                name = self._table(tid).info.name
                kind = "counter" if which == "direct_counter_entry" else "meter"
                raise P4RuntimeError(code_pb2.NOT_FOUND, f"table {name!r} has no direct {kind}")
            return
        if which == "packet_replication_engine_entry":
            kind = f.WhichOneof("type")
            if kind is None:
                raise P4RuntimeError(INVALID_ARGUMENT, "packet_replication_engine_entry: type not set")
            ident = f.multicast_group_entry.multicast_group_id if kind == "multicast_group_entry" else 0
            ident = ident or (f.clone_session_entry.session_id if kind == "clone_session_entry" else 0)
            if ident:
                raise P4RuntimeError(code_pb2.NOT_FOUND, f"no {kind} {ident}")
            return
        ids = {
            "meter_entry": "meter_id",
            "value_set_entry": "value_set_id",
            "digest_entry": "digest_id",
            "extern_entry": "extern_type_id",
        }
        field_name = ids.get(which)
        if field_name is None:
            raise P4RuntimeError(code_pb2.UNIMPLEMENTED, f"reading {which} is not supported")
        if getattr(f, field_name):
            raise P4RuntimeError(code_pb2.NOT_FOUND, f"no {which} with {field_name} {getattr(f, field_name)}")

    def _profiles_for(self, profile_id: int) -> list[ProfileStore]:
        return list(self.profiles.values()) if profile_id == 0 else [self._profile(profile_id)]

    def _read_table_entries(self, f: Any) -> Iterator[bytes]:
        """Spec §"TableEntry" / "Wildcard Reads": table_id, match, action (a direct action's id),
        priority, controller_metadata, metadata and is_default_action filter; table_id 0 reads
        every table and allows no other filter; the direct-resource flags need a table with that
        resource, which no table here has."""
        action_id = self._action_filter(f)
        if f.table_id == 0:
            if len(f.match) or action_id or f.priority or f.controller_metadata or f.metadata:
                raise P4RuntimeError(
                    INVALID_ARGUMENT, "table_id 0 reads every table: no other filter allowed"
                )
            if f.is_default_action:
                raise P4RuntimeError(INVALID_ARGUMENT, "a default entry read needs a table_id")
        tables = list(self.tables.values()) if f.table_id == 0 else [self._table(f.table_id)]
        for flag in ("counter_data", "meter_config", "meter_counter_data", "time_since_last_hit"):
            if f.HasField(flag):
                where = f"table {tables[0].info.name!r}" if f.table_id else "no table"
                raise P4RuntimeError(INVALID_ARGUMENT, f"{flag} asked for, but {where} has that resource")
        # No filter but the table: every entry, without testing each.
        plain = not (len(f.match) or f.priority or action_id or f.controller_metadata or f.metadata)
        for table in tables:
            if f.is_default_action:
                if len(f.match) or f.priority:
                    raise P4RuntimeError(INVALID_ARGUMENT, "a default entry read takes no match or priority")
                out = p4runtime.TableEntry(table_id=table.info.id, is_default_action=True)
                if table.default[0]:
                    self._fill_action(out.action.action, table.default[0], table.default[1])
                if action_id in (0, table.default[0]):
                    yield out.SerializeToString()
                continue
            if plain:
                yield from (e.raw for e in sorted(table.engine.entries(), key=_handle))
                continue
            key = parse_match(table.info, f.match)[0] if len(f.match) else None
            if key is not None and (f.priority or not table.info.needs_priority):
                found = table.engine.find(key, f.priority)  # the key identifies one entry
                candidates = [found] if found is not None else []
            else:
                candidates = sorted(table.engine.entries(), key=_handle)
            for entry in candidates:
                if (
                    (key is None or entry.key == key)
                    and f.priority in (0, entry.priority)
                    and action_id in (0, entry.action_id)
                    and _metadata_matches(f, entry.raw)
                ):
                    yield entry.raw

    @staticmethod
    def _action_filter(f: Any) -> int:
        """The action id to filter on (0: none). Only a direct action's id filters (same section)."""
        if not f.HasField("action"):
            return 0
        kind = f.action.WhichOneof("type")
        if kind is None:
            return 0
        if kind != "action":
            raise P4RuntimeError(INVALID_ARGUMENT, f"reads cannot filter on {kind} (only on a direct action)")
        return int(f.action.action.action_id)

    def _read_counters(self, f: Any) -> Iterator[Any]:
        ids = sorted(self.counters) if f.counter_id == 0 else [f.counter_id]
        for cid in ids:
            if cid not in self.counters:
                raise P4RuntimeError(code_pb2.NOT_FOUND, f"no counter with id {cid}")
            packets, octets = self.counters[cid]
            for i in self._indices(f, len(packets), f"counter {cid}"):
                entry = p4runtime.CounterEntry(counter_id=cid)
                entry.index.index = i
                entry.data.packet_count, entry.data.byte_count = packets[i], octets[i]
                yield entry

    def _read_registers(self, f: Any) -> Iterator[Any]:
        ids = sorted(self.registers) if f.register_id == 0 else [f.register_id]
        for rid in ids:
            if rid not in self.registers:
                raise P4RuntimeError(code_pb2.NOT_FOUND, f"no register with id {rid}")
            cells = self.registers[rid]
            for i in self._indices(f, len(cells), f"register {rid}"):
                entry = p4runtime.RegisterEntry(register_id=rid)
                entry.index.index = i
                entry.data.bitstring = canonical(cells[i])
                yield entry


def _metadata_matches(f: Any, raw: bytes) -> bool:
    """A read filter's controller_metadata and metadata (unset: any) against a stored entry."""
    if not f.controller_metadata and not f.metadata:
        return True
    stored = p4runtime.TableEntry.FromString(raw)
    return f.controller_metadata in (0, stored.controller_metadata) and f.metadata in (b"", stored.metadata)


def _handle(entry: Entry) -> int:
    return entry.handle


def _restorer(cells: list[int], start: int, old: list[int]) -> Any:
    def restore() -> None:
        cells[start : start + len(old)] = old

    return restore


_READ_FIELDS = ("table_id", "match", "action", "priority", "metadata", "controller_metadata")
# The TableEntry fields a read never answers (those of resources no table here has), as
# (name, is a message): set in a write, they make the stored entry be rebuilt without them.
# is_const and is_default_action are false by then (checked first).
_UNKEPT = tuple(
    (f.name, f.message_type is not None)
    for f in p4runtime.TableEntry.DESCRIPTOR.fields
    if f.name not in (*_READ_FIELDS, "is_const", "is_default_action")
)


def _has_unkept_fields(msg: Any) -> bool:
    for name, is_message in _UNKEPT:  # noqa: SIM110 (a loop, not a generator: one per write)
        if msg.HasField(name) if is_message else getattr(msg, name):
            return True
    return False
