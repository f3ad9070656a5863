"""Service load balancing: frontends, backend groups, members carrying the backend's DNAT,
frontend options and session affinity.

Ids (see ids.py): a member id per distinct backend (address, target port) of a used set (one
member per chosen backend, shared by every group); a group per distinct set of two or more usable
backends, named after the first (backend-set key, selection) that uses it so that a set whose
endpoints change keeps its group id (a single backend: the frontend points at its member); an
affinity id per (backend-set key, selection).

Endpoint selection follows kube-proxy's CategorizeEndpoints: cluster IPs use the "cluster"
endpoints (ready, zone-filtered by topology hints when usable) or, with internalTrafficPolicy
Local, the "local" ones; external frontends (node ports, external and load-balancer IPs) use the
cluster endpoints and masquerade, or, with externalTrafficPolicy Local, the local ones and keep the
client address, while pod and host traffic to them (svc_frontend_internal) still uses the cluster
endpoints. No endpoint in the selection: the frontend drops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from k8s_offload.compiler.bundle.model import Exact, ProfileGroup, ProfileMember, TableEntry
from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.compiler.bundle.values import PROTOCOL_NUMBERS, mapped
from k8s_offload.compiler.frontend.model import ObjectKey, Protocol
from k8s_offload.compiler.frontend.nodefacts import NodeFacts
from k8s_offload.compiler.ir.model import (
    Backend,
    BackendSet,
    BackendSetKey,
    ClusterIR,
    Diagnostic,
    ServiceFrontend,
    ServiceInfo,
)
from tests.reference.lower_ecmp import (
    MAGLEV_SIZES,
    MAGLEV_SLOTS_PER_BACKEND,
    MAX_SPLIT_BITS,
    SELECTOR,
    SelectorLimits,
    deal,
    maglev_size,
    maglev_table,
    selector_limits,
    split_bits,
    split_imbalance,
)
from tests.reference.lower_ids import stable_ids
from tests.reference.passes_pipeline import PassConfig

ID_BITS = 24


@dataclass
class ServiceLowering:
    members: list[ProfileMember] = field(default_factory=list)
    groups: list[ProfileGroup] = field(default_factory=list)
    entries: list[TableEntry] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def _backend_ident(b: Backend) -> str:
    return f"{b.address!s}|{b.port}"


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


def cluster_backends(bset: BackendSet, svc: ServiceInfo | None, node: NodeFacts) -> tuple[Backend, ...]:
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


def selections(fe: ServiceFrontend, svc: ServiceInfo | None) -> list[tuple[str, str, bool]]:
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


@dataclass(frozen=True, slots=True)
class GroupLayout:
    """How one backend set's group is laid out on the selector: the member ids of each part (one
    part per svc_frontend bucket), the Maglev slot members (member id, be_id), and the notes."""

    parts: tuple[tuple[int, ...], ...]
    slots: tuple[tuple[int, int], ...] = ()
    split_k: int = 0
    note: str | None = None


def part_names(name: str, count: int) -> list[str]:
    """Group names of a layout's parts: the set's own name when it needs one group."""
    return [name] if count == 1 else [f"{name} #{b}/{count}" for b in range(count)]


def fitting_note(n: int, k: int, limits: SelectorLimits) -> str | None:
    """The documented bound of a group fitted over 2^k selector groups."""
    if k == 0:
        return None
    parts = 1 << k
    lo, hi = n // parts, -(-n // parts)
    bound = split_imbalance(n, k) * limits.slot_imbalance(lo)
    return (
        f"{n} endpoints exceed the selector's max_group_size {limits.max_group_size} ({limits.profile}): "
        f"split over {parts} groups of {lo}-{hi} picked by {_bits(k)} of a flow hash; a backend's share "
        f"of new flows is at most {bound:.4f} times another's"
    )


def _bits(k: int) -> str:
    return "1 bit" if k == 1 else f"{k} bits"


def hash_layout(members: tuple[int, ...], limits: SelectorLimits) -> GroupLayout:
    """One member per backend; above max_group_size, dealt over 2^k groups (ecmp.py)."""
    k = split_bits(len(members), limits.max_group_size)
    assert k is not None, "offload_problem admits only sets that fit"
    return GroupLayout(tuple(deal(members, k)), (), k, fitting_note(len(members), k, limits))


def maglev_layout(
    name: str, be_idents: list[tuple[int, str]], limits: SelectorLimits, slot_ids: dict[str, int]
) -> GroupLayout:
    """A Maglev table over the backends (be_id, identity); slot j is part j mod 2^k."""
    idents = sorted(be_idents, key=lambda bi: bi[1])
    m = maglev_size(len(idents))
    assert m is not None, "offload_problem admits only sets that fit"
    k = split_bits(m, limits.max_group_size)
    assert k is not None
    owners = maglev_table([i for _, i in idents], m)
    slots = tuple((slot_ids[maglev_slot_ident(name, j)], idents[o][0]) for j, o in enumerate(owners))
    parts = tuple(tuple(mid for mid, _ in slots[b :: 1 << k]) for b in range(1 << k))
    note = (
        f"Maglev table of {m} slots for {len(idents)} endpoints"
        + (f", over {1 << k} groups picked by {_bits(k)} of a flow hash" if k else "")
        + f" ({m} members instead of {len(idents)})"
    )
    return GroupLayout(parts, slots, k, note)


def maglev_slot_ident(name: str, slot: int) -> str:
    return f"{name}|maglev|{slot}"


MAGLEV_MEMBER_BASE = 1 << ID_BITS
"""Maglev slot members get ids above every backend id (a backend's member id is its be_id)."""


def lower_services(ir: ClusterIR, schema: Schema, config: PassConfig | None = None) -> ServiceLowering:
    out = ServiceLowering()
    config = config or PassConfig()
    limits = selector_limits(schema, config.profile)
    maglev = config.lb == "maglev"
    sets = {s.key: s for s in ir.backend_sets}
    max_group = limits.max_group_size

    # Frontends we can offload, and why not for the others.
    offloaded: list[tuple[ServiceFrontend, BackendSet | None]] = []
    for fe in ir.frontends:
        bset = sets.get(fe.backend_set)
        problem = offload_problem(fe, bset, max_group, config.lb)
        if problem is not None:
            out.diagnostics.append(problem)
            continue
        offloaded.append((fe, bset))

    services = {svc.key: svc for svc in ir.services}
    used_sets = {bset.key: bset for _, bset in offloaded if bset is not None}
    # Identities and source names once per Backend object and per set (hundreds of thousands of
    # backend appearances at size M); the objects live in the IR for the whole call.
    idents: dict[int, str] = {}
    set_sources = {skey: {str(k) for k in bset.sources} for skey, bset in used_sets.items()}
    backends: dict[str, Backend] = {}
    for bset in used_sets.values():
        for b in bset.backends:
            ident = idents[id(b)] = _backend_ident(b)
            backends.setdefault(ident, b)

    def be_ident(b: Backend) -> str:
        found = idents.get(id(b))
        return found if found is not None else _backend_ident(b)

    be_ids = stable_ids(backends, ID_BITS)
    plans = [
        (fe, bset, table, selection, masq)
        for fe, bset in offloaded
        for table, selection, masq in selections(fe, services.get(fe.service))
    ]

    # Groups: one per distinct set of usable backends, named by the first (set key, selection) using it.
    chosen: dict[tuple[BackendSetKey, str], tuple[int, ...]] = {}
    for fe, bset, _, selection, _ in plans:
        if bset is None or (bset.key, selection) in chosen:
            continue
        svc = services.get(fe.service)
        picked = (
            cluster_backends(bset, svc, ir.node) if selection == CLUSTER else local_backends(bset, ir.node)
        )
        chosen[(bset.key, selection)] = tuple(sorted([be_ids[be_ident(b)] for b in picked]))
    group_of_members: dict[tuple[int, ...], str] = {}
    group_origin: dict[str, set[str]] = {}
    set_group: dict[tuple[BackendSetKey, str], str] = {}
    for set_key, selection in sorted(chosen):
        members = chosen[(set_key, selection)]
        if not members:
            continue
        name = group_of_members.setdefault(members, _selection_name(set_key, selection))
        set_group[(set_key, selection)] = name
        group_origin.setdefault(name, set()).update(set_sources[set_key])
    aff_ids = stable_ids((_selection_name(*k) for k in sorted(set_group)), ID_BITS)

    # Layouts: parts (one selector group per svc_frontend bucket) and, with Maglev, slot members.
    layouts: dict[str, GroupLayout] = {}
    if maglev:
        ident_of = {i: ident for ident, i in be_ids.items()}
        sizes = {name: maglev_size(len(t)) or 0 for t, name in group_of_members.items()}
        slot_ids = {
            ident: MAGLEV_MEMBER_BASE + i
            for ident, i in stable_ids(
                (maglev_slot_ident(name, j) for name, m in sizes.items() for j in range(m)), ID_BITS
            ).items()
        }
        for t, name in group_of_members.items():
            layouts[name] = maglev_layout(name, [(i, ident_of[i]) for i in t], limits, slot_ids)
    else:
        for t, name in group_of_members.items():
            if len(t) > 1:  # one backend: its frontends point at its member, no group
                layouts[name] = hash_layout(t, limits)
    group_ids = stable_ids((p for name, lay in layouts.items() for p in part_names(name, len(lay.parts))), 32)
    part_ids = {
        name: tuple(group_ids[p] for p in part_names(name, len(lay.parts))) for name, lay in layouts.items()
    }

    # Members: every backend some selection chooses, with the sources of every used set listing it.
    member_origin: dict[str, set[str]] = {}
    for skey, bset in used_sets.items():
        sources = set_sources[skey]
        for b in bset.backends:
            member_origin.setdefault(be_ident(b), set()).update(sources)
    ident_of = {i: ident for ident, i in be_ids.items()}
    if not maglev:
        for be_id in sorted({i for members in chosen.values() for i in members}):
            ident = ident_of[be_id]
            origin = tuple(sorted(member_origin[ident]))
            out.members.append(backend_member(schema, backends[ident], be_id, origin))
    for name, lay in sorted(layouts.items(), key=lambda kv: part_ids[kv[0]][0]):
        origin = tuple(sorted(group_origin[name]))
        for mid, be_id in lay.slots:
            out.members.append(backend_member(schema, backends[ident_of[be_id]], mid, origin))
        for gid, part in zip(part_ids[name], lay.parts, strict=True):
            out.groups.append(schema.group(SELECTOR, gid, tuple((m, 1) for m in part), max_group, origin))
    _check_selector(limits, out)

    affinity_members: set[tuple[int, int]] = set()
    notes: set[Diagnostic] = set()
    for fe, bset, table, selection, masq in plans:
        group_name = set_group.get((bset.key, selection)) if bset is not None else None
        target: int | tuple[int, ...] | None = None
        if group_name is not None:
            members = chosen[(bset.key, selection)]  # type: ignore[union-attr]
            target = part_ids[group_name] if group_name in layouts else members[0]
        svc = services.get(fe.service)
        affinity = None
        if target is not None and bset is not None and svc is not None and svc.affinity_timeout is not None:
            affinity = (aff_ids[_selection_name(bset.key, selection)], affinity_units(svc.affinity_timeout))
        internal = table == "svc_frontend_internal"
        out.entries.extend(
            frontend_entries(schema, fe, bset, target, internal=internal, masq=masq, affinity=affinity)
        )
        note = layouts[group_name].note if group_name in layouts else None
        if note is not None:
            where = f"{fe.vip} {fe.protocol.value}/{fe.port}"
            notes.add(Diagnostic(fe.service, f"{where}: {note}", severity="info"))
        if affinity is None or bset is None:
            continue
        aff_id = affinity[0]
        origin = _sources(bset, fe)
        for be_id in chosen[(bset.key, selection)]:
            if (aff_id, be_id) not in affinity_members:
                affinity_members.add((aff_id, be_id))
                b = backends[ident_of[be_id]]
                key = {"aff_id": Exact(aff_id), "be_addr": Exact(mapped(b.address)), "be_port": Exact(b.port)}
                out.entries.append(schema.entry("aff_backend", key, "affinity_ok", origin=origin))
    out.diagnostics.extend(sorted(notes))
    out.diagnostics.extend(_masquerade_warnings(ir, plans))
    return out


def _check_selector(limits: SelectorLimits, out: ServiceLowering) -> None:
    """The profile's own selector limits beyond P4Info (dpdk: groups and member ids)."""
    problems = []
    if limits.max_groups is not None and len(out.groups) > limits.max_groups:
        problems.append(f"needs {len(out.groups)} groups, holds {limits.max_groups}")
    if len(out.members) > limits.max_members:
        problems.append(f"needs {len(out.members)} members, holds {limits.max_members}")
    if problems:
        raise BundleError(f"action selector svc_selector ({limits.profile}): " + "; ".join(problems))


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


def offload_problem(
    fe: ServiceFrontend, bset: BackendSet | None, max_group: int, lb: str = "hash"
) -> Diagnostic | None:
    """Why a frontend cannot be offloaded, or None; depends on the frontend and its set only."""
    if bset is not None and _sctp_translates(fe, bset):
        return Diagnostic(
            fe.service,
            f"SCTP port {fe.port} on {fe.vip}: target port differs from the service port, and "
            "v1model cannot recompute SCTP's CRC32c; left to the host",
        )
    n = len(usable_backends(bset)) if bset is not None else 0
    if lb == "maglev":
        m = maglev_size(n)
        fits = m is not None and split_bits(m, max_group) is not None
        limit = (
            f"the largest Maglev table ({MAGLEV_SIZES[-1]} slots, {MAGLEV_SLOTS_PER_BACKEND} per endpoint)"
        )
    else:
        fits = split_bits(n, max_group) is not None
        limit = f"{1 << MAX_SPLIT_BITS} selector groups of max_group_size {max_group}"
    if not fits:
        return Diagnostic(
            fe.service,
            f"{fe.vip} {fe.protocol.value}/{fe.port}: {n} endpoints exceed {limit}; not offloaded",
            severity="error",
        )
    return None


def backend_member(schema: Schema, b: Backend, member_id: int, origin: tuple[str, ...]) -> ProfileMember:
    """The selector member of one backend: set_backend4/6 with its address and target port."""
    action = "set_backend4" if b.address.version == 4 else "set_backend6"
    return schema.member(SELECTOR, member_id, action, {"addr": int(b.address), "port": b.port}, origin)


def frontend_entries(
    schema: Schema,
    fe: ServiceFrontend,
    bset: BackendSet | None,
    target: int | tuple[int, ...] | None,
    *,
    internal: bool,
    masq: bool,
    affinity: tuple[int, int] | None,
) -> list[TableEntry]:
    """One selection of an offloaded frontend. No target: svc_options rejects (no usable endpoint
    anywhere) or drops (a Local traffic policy leaves none here), as kube-proxy does. Else a
    svc_frontend entry per bucket (a group per bucket, or the one backend's member) and svc_options
    for masquerade, the split mask and affinity when any applies. The internal selection of an
    externalTrafficPolicy Local frontend is announced by svc_frontend_internal."""
    origin = _sources(bset, fe)
    vip_key = {
        "dst_addr": Exact(mapped(fe.vip)),
        "l4_proto": Exact(PROTOCOL_NUMBERS[fe.protocol.value.lower()]),
        "dport": Exact(fe.port),
    }
    key = dict(vip_key, fe_internal=Exact(1 if internal else 0))
    out = []
    if internal:
        out.append(schema.entry("svc_frontend_internal", vip_key, "use_internal", origin=origin))
    if target is None:
        # kube-proxy: REJECT when the port has no endpoints at all, DROP "has no local endpoints".
        reject = bset is None or not usable_backends(bset)
        verdict = "reject_no_endpoint" if reject else "drop_no_local_endpoint"
        out.append(schema.entry("svc_options", key, verdict, origin=origin))
        return out
    buckets = 1 if isinstance(target, int) else len(target)
    if masq or buckets > 1 or affinity is not None:
        aff_id, timeout = affinity if affinity is not None else (0, 0)
        params = {"masq": 1 if masq else 0, "split": buckets - 1, "aff_id": aff_id, "aff_timeout": timeout}
        out.append(schema.entry("svc_options", key, "set_options", params, origin=origin))
    if isinstance(target, int):
        out.append(
            schema.entry("svc_frontend", dict(key, fe_bucket=Exact(0)), member_id=target, origin=origin)
        )
    else:
        for bucket, gid in enumerate(target):
            out.append(
                schema.entry("svc_frontend", dict(key, fe_bucket=Exact(bucket)), group_id=gid, origin=origin)
            )
    return out
