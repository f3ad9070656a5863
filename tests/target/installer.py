"""Write entries into a Interpreter by table/action/field names, through the P4Runtime path."""

from __future__ import annotations

from typing import Any

from k8s_offload.p4rt.proto import p4runtime
from k8s_offload.target.interpreter import Interpreter

Match = int | tuple[int, int]


class Installer:
    def __init__(self, sim: Interpreter) -> None:
        self.sim = sim
        self.index = sim.state.index

    def _write(self, kind: str, **entity: Any) -> None:
        update = p4runtime.Update(type=getattr(p4runtime.Update, kind), entity=p4runtime.Entity(**entity))
        self.sim.state.apply(update)

    def _action(self, out: Any, action: str, params: dict[str, int]) -> None:
        aid = self.index.id_of(action)
        out.action_id = aid
        for pid, (name, width) in self.index.actions[aid].params.items():
            out.params.add(param_id=pid, value=params[name].to_bytes((width + 7) // 8, "big"))

    def entry(
        self, table: str, keys: dict[str, Match], action: str | None = None, priority: int = 0, **params: int
    ) -> Any:
        tid = self.index.id_of(table)
        info = self.index.tables[tid]
        te = p4runtime.TableEntry(table_id=tid, priority=priority)
        for kf in info.keys:
            if kf.name not in keys:
                continue
            value = keys[kf.name]
            fm = te.match.add(field_id=kf.id)
            nbytes = (kf.bitwidth + 7) // 8
            if kf.kind == "exact":
                assert isinstance(value, int)
                fm.exact.value = value.to_bytes(nbytes, "big")
            elif kf.kind == "lpm":
                assert isinstance(value, tuple)
                fm.lpm.value, fm.lpm.prefix_len = value[0].to_bytes(nbytes, "big"), value[1]
            elif kf.kind == "range":
                assert isinstance(value, tuple)
                fm.range.low, fm.range.high = (v.to_bytes(nbytes, "big") for v in value)
            else:
                raise NotImplementedError(kf.kind)
        if action is not None:
            self._action(te.action.action, action, params)
        return te

    def insert(
        self, table: str, keys: dict[str, Match], action: str, priority: int = 0, **params: int
    ) -> None:
        self._write("INSERT", table_entry=self.entry(table, keys, action, priority, **params))

    def insert_group_entry(self, table: str, keys: dict[str, Match], group_id: int) -> None:
        te = self.entry(table, keys)
        te.action.action_profile_group_id = group_id
        self._write("INSERT", table_entry=te)

    def member(self, profile: str, member_id: int, action: str, **params: int) -> None:
        m = p4runtime.ActionProfileMember(action_profile_id=self.index.id_of(profile), member_id=member_id)
        self._action(m.action, action, params)
        self._write("INSERT", action_profile_member=m)

    def group(self, profile: str, group_id: int, members: list[int], kind: str = "INSERT") -> None:
        g = p4runtime.ActionProfileGroup(
            action_profile_id=self.index.id_of(profile), group_id=group_id, max_size=8
        )
        for mid in members:
            g.members.add(member_id=mid, weight=1)
        self._write(kind, action_profile_group=g)
