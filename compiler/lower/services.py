"""Service load balancing: frontends, backend groups, members, DNAT and reverse NAT entries.

Ids (see ids.py): a backend id per distinct (address, target port), which is also its member id
(one member per distinct backend action, shared by every group); a group per distinct set of usable
backends, named after the first backend-set key that uses it so that a set whose endpoints change
keeps its group id; a frontend id per (VIP, protocol, port).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.bundle.model import Exact, ProfileGroup, ProfileMember, TableEntry
from compiler.bundle.schema import Schema
from compiler.bundle.values import PROTOCOL_NUMBERS, mapped
from compiler.frontend.model import ObjectKey, Protocol
from compiler.ir.nodes import Backend, BackendSet, BackendSetKey, ClusterIR, Diagnostic, ServiceFrontend
from compiler.lower.ids import stable_ids

ID_BITS = 24
SELECTOR = "svc_selector"


@dataclass
class ServiceLowering:
    members: list[ProfileMember] = field(default_factory=list)
    groups: list[ProfileGroup] = field(default_factory=list)
    entries: list[TableEntry] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def _backend_ident(b: Backend) -> str:
    return f"{b.address}|{b.port}"


def _frontend_ident(fe: ServiceFrontend) -> str:
    return f"{fe.vip}|{fe.protocol.value}|{fe.port}"


def _sources(bset: BackendSet | None, fe: ServiceFrontend) -> tuple[str, ...]:
    keys: tuple[ObjectKey, ...] = bset.sources if bset is not None else (fe.service,)
    return tuple(str(k) for k in keys)


def usable_backends(bset: BackendSet) -> tuple[Backend, ...]:
    """Backends that take new connections, as kube-proxy's CategorizeEndpoints picks them: the
    ready ones, or, when none is ready anywhere, the serving and terminating ones (KEP-1669)."""
    ready = bset.ready
    if ready:
        return ready
    return tuple(b for b in bset.backends if b.conditions.serving and b.conditions.terminating)


def _sctp_translates(fe: ServiceFrontend, bset: BackendSet) -> bool:
    return fe.protocol is Protocol.SCTP and any(b.port != fe.port for b in bset.backends)


def lower_services(ir: ClusterIR, schema: Schema) -> ServiceLowering:
    out = ServiceLowering()
    sets = {s.key: s for s in ir.backend_sets}
    profile = schema.profile(SELECTOR)
    max_group = profile.max_group_size or profile.size

    # Frontends we can offload, and why not for the others.
    offloaded: list[tuple[ServiceFrontend, BackendSet | None]] = []
    for fe in ir.frontends:
        bset = sets.get(fe.backend_set)
        problem = offload_problem(fe, bset, max_group)
        if problem is not None:
            out.diagnostics.append(problem)
            continue
        offloaded.append((fe, bset))

    used_sets = {bset.key: bset for _, bset in offloaded if bset is not None}
    backends: dict[str, Backend] = {}
    for bset in used_sets.values():
        for b in bset.backends:
            backends.setdefault(_backend_ident(b), b)
    be_ids = stable_ids(backends, ID_BITS)
    fe_ids = stable_ids((_frontend_ident(fe) for fe, _ in offloaded), ID_BITS)

    # Groups: one per distinct set of usable backends, named by the first set key using it.
    group_of_members: dict[tuple[int, ...], str] = {}
    group_origin: dict[str, set[str]] = {}
    set_group: dict[BackendSetKey, str] = {}
    for set_key in sorted(used_sets):
        bset = used_sets[set_key]
        members = tuple(sorted(be_ids[_backend_ident(b)] for b in usable_backends(bset)))
        if not members:
            continue
        name = group_of_members.setdefault(members, str(set_key))
        set_group[set_key] = name
        group_origin.setdefault(name, set()).update(str(k) for k in bset.sources)
    group_ids = stable_ids(group_of_members.values(), 32)

    # Members and DNAT entries for every backend a flow may still use (ready or draining).
    member_origin: dict[str, set[str]] = {}
    for bset in used_sets.values():
        for b in bset.backends:
            member_origin.setdefault(_backend_ident(b), set()).update(str(k) for k in bset.sources)
    for ident in sorted(backends, key=lambda i: be_ids[i]):
        member, nat = backend_entities(
            schema, backends[ident], be_ids[ident], tuple(sorted(member_origin[ident]))
        )
        out.members.append(member)
        out.entries.append(nat)
    for members, name in sorted(group_of_members.items(), key=lambda kv: group_ids[kv[1]]):
        gid = group_ids[name]
        out.groups.append(
            schema.group(
                SELECTOR,
                gid,
                tuple((m, 1) for m in members),
                max_group,
                tuple(sorted(group_origin[name])),
            )
        )

    for fe, bset in offloaded:
        group = group_ids[set_group[bset.key]] if bset is not None and bset.key in set_group else None
        out.entries.extend(frontend_entries(schema, fe, bset, fe_ids[_frontend_ident(fe)], group))
    return out


def offload_problem(fe: ServiceFrontend, bset: BackendSet | None, max_group: int) -> Diagnostic | None:
    """Why a frontend cannot be offloaded, or None; depends on the frontend and its set only."""
    if bset is not None and _sctp_translates(fe, bset):
        return Diagnostic(
            fe.service,
            f"SCTP port {fe.port} on {fe.vip}: target port differs from the service port, and "
            "v1model cannot recompute SCTP's CRC32c; left to the host",
        )
    usable = usable_backends(bset) if bset is not None else ()
    if len(usable) > max_group:
        return Diagnostic(
            fe.service,
            f"{fe.vip} {fe.protocol.value}/{fe.port}: {len(usable)} endpoints exceed the "
            f"selector's max_group_size {max_group}; not offloaded",
            severity="error",
        )
    return None


def backend_entities(
    schema: Schema, b: Backend, be_id: int, origin: tuple[str, ...]
) -> tuple[ProfileMember, TableEntry]:
    """The selector member and DNAT entry of one backend (address, target port)."""
    member = schema.member(SELECTOR, be_id, "set_backend", {"be_id": be_id}, origin)
    action = "dnat4" if b.address.version == 4 else "dnat6"
    nat = schema.entry(
        "backend_nat",
        {"be_id": Exact(be_id)},
        action,
        {"addr": int(b.address), "port": b.port},
        origin=origin,
    )
    return member, nat


def frontend_entries(
    schema: Schema, fe: ServiceFrontend, bset: BackendSet | None, fe_id: int, group_id: int | None
) -> list[TableEntry]:
    """An offloaded frontend: reject without a group, else frontend, backend group and reverse NAT."""
    origin = _sources(bset, fe)
    key = {
        "dst_addr": Exact(mapped(fe.vip)),
        "l4_proto": Exact(PROTOCOL_NUMBERS[fe.protocol.value.lower()]),
        "dport": Exact(fe.port),
    }
    if group_id is None:
        return [schema.entry("svc_frontend", key, "reject_no_endpoint", origin=origin)]
    snat = "snat4" if fe.vip.version == 4 else "snat6"
    return [
        schema.entry("svc_frontend", key, "set_frontend", {"fe_id": fe_id}, origin=origin),
        schema.entry("svc_backend", {"fe_id": Exact(fe_id)}, group_id=group_id, origin=origin),
        schema.entry(
            "rev_nat", {"ct_nat_id": Exact(fe_id)}, snat, {"vip": int(fe.vip), "port": fe.port}, origin=origin
        ),
    ]
