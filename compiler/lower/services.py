"""Service load balancing: frontends, backend groups, members, DNAT and reverse NAT entries, and
session affinity.

Ids (see ids.py): a backend id per distinct (address, target port), which is also its member id
(one member per distinct backend action, shared by every group); a group per distinct set of usable
backends, named after the first (backend-set key, selection) that uses it so that a set whose
endpoints change keeps its group id; a frontend id per (VIP, protocol, port) and table; an affinity
id per (backend-set key, selection).

Endpoint selection follows kube-proxy's CategorizeEndpoints: cluster IPs use the "cluster"
endpoints (ready, zone-filtered by topology hints when usable) or, with internalTrafficPolicy
Local, the "local" ones; external frontends (node ports, external and load-balancer IPs) use the
cluster endpoints and masquerade, or, with externalTrafficPolicy Local, the local ones and keep the
client address, while pod and host traffic to them (svc_frontend_internal) still uses the cluster
endpoints. No endpoint in the selection: the frontend drops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.bundle.model import Exact, ProfileGroup, ProfileMember, TableEntry
from compiler.bundle.schema import Schema
from compiler.bundle.values import PROTOCOL_NUMBERS, mapped
from compiler.frontend.model import ObjectKey, Protocol
from compiler.frontend.nodefacts import NodeFacts
from compiler.ir.nodes import (
    Backend,
    BackendSet,
    BackendSetKey,
    ClusterIR,
    Diagnostic,
    ServiceFrontend,
    ServiceNode,
)
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


def _frontend_ident(fe: ServiceFrontend, table: str = "svc_frontend") -> str:
    base = f"{fe.vip}|{fe.protocol.value}|{fe.port}"
    return base if table == "svc_frontend" else f"{base}|{table}"


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


CLUSTER = "cluster"
LOCAL = "local"
TIME_UNIT_US = 1 << 20
"""Flow-cache and affinity times count units of 2^20 microseconds (p4src/include/defines.p4)."""


def affinity_units(seconds: int) -> int:
    """sessionAffinityConfig.clientIP.timeoutSeconds in pipeline time units, rounded up."""
    return -(-seconds * 1_000_000 // TIME_UNIT_US)


def is_local(b: Backend, node: NodeFacts) -> bool:
    """kube-proxy's IsLocal: the endpoint's nodeName is this node (or its pod is attached here)."""
    return b.local or (node.node_name is not None and b.node_name == node.node_name)


def cluster_backends(bset: BackendSet, svc: ServiceNode | None, node: NodeFacts) -> tuple[Backend, ...]:
    """Cluster endpoints: usable ones, restricted to those hinted for this node's zone when kube-proxy's
    canUseTopology holds (every ready endpoint has hints and one of them names the zone)."""
    usable = usable_backends(bset)
    zone = node.zone
    if svc is None or not svc.topology or not zone:
        return usable
    ready = bset.ready
    if not ready or any(not b.hint_zones for b in ready) or not any(zone in b.hint_zones for b in ready):
        return usable
    return tuple(b for b in ready if zone in b.hint_zones)


def local_backends(bset: BackendSet, node: NodeFacts) -> tuple[Backend, ...]:
    """Local endpoints: the ready local ones, or the serving and terminating local ones."""
    ready = tuple(b for b in bset.ready if is_local(b, node))
    if ready:
        return ready
    return tuple(
        b for b in bset.backends if b.conditions.serving and b.conditions.terminating and is_local(b, node)
    )


def selections(fe: ServiceFrontend, svc: ServiceNode | None) -> list[tuple[str, str, bool]]:
    """(table, endpoint selection, masquerade) of every svc_frontend* entry a frontend needs."""
    if not fe.external:
        local = svc is not None and svc.internal_local
        return [("svc_frontend", LOCAL if local else CLUSTER, False)]
    if svc is not None and svc.external_local:
        return [("svc_frontend", LOCAL, False), ("svc_frontend_internal", CLUSTER, False)]
    return [("svc_frontend", CLUSTER, True)]


def _selection_name(set_key: BackendSetKey, selection: str) -> str:
    return str(set_key) if selection == CLUSTER else f"{set_key} {selection}"


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

    services = {svc.key: svc for svc in ir.services}
    used_sets = {bset.key: bset for _, bset in offloaded if bset is not None}
    backends: dict[str, Backend] = {}
    for bset in used_sets.values():
        for b in bset.backends:
            backends.setdefault(_backend_ident(b), b)
    be_ids = stable_ids(backends, ID_BITS)
    plans = [
        (fe, bset, table, selection, masq)
        for fe, bset in offloaded
        for table, selection, masq in selections(fe, services.get(fe.service))
    ]
    fe_ids = stable_ids((_frontend_ident(fe, table) for fe, _, table, _, _ in plans), ID_BITS)

    # Groups: one per distinct set of usable backends, named by the first (set key, selection) using it.
    chosen: dict[tuple[BackendSetKey, str], tuple[int, ...]] = {}
    for fe, bset, _, selection, _ in plans:
        if bset is None or (bset.key, selection) in chosen:
            continue
        svc = services.get(fe.service)
        picked = (
            cluster_backends(bset, svc, ir.node) if selection == CLUSTER else local_backends(bset, ir.node)
        )
        chosen[(bset.key, selection)] = tuple(sorted(be_ids[_backend_ident(b)] for b in picked))
    group_of_members: dict[tuple[int, ...], str] = {}
    group_origin: dict[str, set[str]] = {}
    set_group: dict[tuple[BackendSetKey, str], str] = {}
    for set_key, selection in sorted(chosen):
        members = chosen[(set_key, selection)]
        if not members:
            continue
        name = group_of_members.setdefault(members, _selection_name(set_key, selection))
        set_group[(set_key, selection)] = name
        group_origin.setdefault(name, set()).update(str(k) for k in used_sets[set_key].sources)
    group_ids = stable_ids(group_of_members.values(), 32)
    aff_ids = stable_ids((_selection_name(*k) for k in sorted(set_group)), ID_BITS)

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

    affinity_members: set[tuple[int, int]] = set()
    for fe, bset, table, selection, masq in plans:
        group_name = set_group.get((bset.key, selection)) if bset is not None else None
        group = group_ids[group_name] if group_name is not None else None
        fe_id = fe_ids[_frontend_ident(fe, table)]
        out.entries.extend(frontend_entries(schema, fe, bset, fe_id, group, table=table, masq=masq))
        svc = services.get(fe.service)
        if group is None or bset is None or svc is None or svc.affinity_timeout is None:
            continue
        aff_id = aff_ids[_selection_name(bset.key, selection)]
        origin = _sources(bset, fe)
        params = {"aff_id": aff_id, "timeout": affinity_units(svc.affinity_timeout)}
        out.entries.append(
            schema.entry("svc_affinity", {"fe_id": Exact(fe_id)}, "set_affinity", params, origin=origin)
        )
        for be_id in chosen[(bset.key, selection)]:
            if (aff_id, be_id) not in affinity_members:
                affinity_members.add((aff_id, be_id))
                key = {"aff_id": Exact(aff_id), "be_id": Exact(be_id)}
                out.entries.append(schema.entry("aff_backend", key, "affinity_ok", origin=origin))
    out.diagnostics.extend(_masquerade_warnings(ir, plans))
    return out


def _masquerade_warnings(
    ir: ClusterIR, plans: list[tuple[ServiceFrontend, BackendSet | None, str, str, bool]]
) -> list[Diagnostic]:
    """Masquerading needs a node IP of the frontend's family (nat_source); say when there is none."""
    families = {ip.version for ip in ir.node.node_ips}
    found: set[Diagnostic] = set()
    for fe, _, _, _, masq in plans:
        if masq and fe.vip.version not in families:
            message = (
                f"{fe.kind} {fe.vip}: no IPv{fe.vip.version} node IP in the node facts to masquerade "
                "with; external traffic to endpoints on other nodes keeps its client address"
            )
            found.add(Diagnostic(fe.service, message))
    return sorted(found)


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
    schema: Schema,
    fe: ServiceFrontend,
    bset: BackendSet | None,
    fe_id: int,
    group_id: int | None,
    *,
    table: str = "svc_frontend",
    masq: bool = False,
) -> list[TableEntry]:
    """An offloaded frontend: reject without a group, else frontend (masquerading or not), backend
    group and reverse NAT."""
    origin = _sources(bset, fe)
    key = {
        "dst_addr": Exact(mapped(fe.vip)),
        "l4_proto": Exact(PROTOCOL_NUMBERS[fe.protocol.value.lower()]),
        "dport": Exact(fe.port),
    }
    if group_id is None:
        return [schema.entry(table, key, "reject_no_endpoint", origin=origin)]
    snat = "snat4" if fe.vip.version == 4 else "snat6"
    action = "set_frontend_masq" if masq else "set_frontend"
    return [
        schema.entry(table, key, action, {"fe_id": fe_id}, origin=origin),
        schema.entry("svc_backend", {"fe_id": Exact(fe_id)}, group_id=group_id, origin=origin),
        schema.entry(
            "rev_nat", {"ct_nat_id": Exact(fe_id)}, snat, {"vip": int(fe.vip), "port": fe.port}, origin=origin
        ),
    ]
