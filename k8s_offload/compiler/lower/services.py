"""Service load balancing: frontends, backend groups, members (which carry the backend's address
and port), frontend options and session affinity.

Layout (p4src/README.md, "Services"): a frontend (VIP, protocol, port) is one `svc_frontend`
entry per bucket, keyed by the frontend itself, pointing at the selector group of its chosen
backends, or straight at the member of a single backend. A member is one backend (address,
target port) and carries its DNAT, shared by every group holding the backend; the flow cache keeps
the chosen backend's address and the frontend's, so nothing else is looked up per backend or per
frontend. `svc_options` holds what only some frontends need (masquerade, a split mask, affinity,
or the verdict when there is no endpoint); `svc_frontend_internal` marks the external frontends
whose pod and host traffic uses other entries (externalTrafficPolicy Local).

Ids (see ids.py): a member id per distinct backend (address, target port); a group per distinct
set of two or more usable backends, named after the first (backend-set key, selection) that uses
it so that a set whose endpoints change keeps its group id; an affinity id per (backend-set key,
selection).

Endpoint selection follows kube-proxy's CategorizeEndpoints: cluster IPs use the "cluster"
endpoints (ready, zone-filtered by topology hints when usable) or, with internalTrafficPolicy
Local, the "local" ones; external frontends (node ports, external and load-balancer IPs) use the
cluster endpoints and masquerade, or, with externalTrafficPolicy Local, the local ones and keep the
client address, while pod and host traffic to them (svc_frontend_internal) still uses the cluster
endpoints. No endpoint in the selection: the frontend rejects or drops.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from k8s_offload.compiler.bundle.model import Exact, ProfileGroup, ProfileMember, TableEntry
from k8s_offload.compiler.bundle.schema import BundleError, Schema
from k8s_offload.compiler.bundle.values import PROTOCOL_NUMBERS, mapped
from k8s_offload.compiler.frontend.model import ObjectKey, Protocol
from k8s_offload.compiler.frontend.nodefacts import DEFAULT_NODE_FACTS, NodeFacts
from k8s_offload.compiler.ir.model import (
    Backend,
    BackendSet,
    BackendSetKey,
    Diagnostic,
    ServiceFrontend,
    ServiceInfo,
)
from k8s_offload.compiler.lower.ecmp import (
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
from k8s_offload.compiler.lower.ids import IdAllocator

if TYPE_CHECKING:
    from k8s_offload.compiler.engine.core import Reads
    from k8s_offload.compiler.passes.pipeline import Build

Entity = TableEntry | ProfileMember | ProfileGroup

ID_BITS = 24


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
    lo, hi = max(1, n // parts), -(-n // parts)
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
    parts = tuple(deal(tuple(mid for mid, _ in slots), k))
    return GroupLayout(parts, slots, k, maglev_note(len(idents), m, k))


def maglev_slot_ident(name: str, slot: int) -> str:
    return f"{name}|maglev|{slot}"


MAGLEV_MEMBER_BASE = 1 << ID_BITS
"""Maglev slot members get ids above every backend id (a backend's member id is its be_id)."""


@dataclass(frozen=True, slots=True)
class FrontendPlan:
    """How one frontend is lowered: why not (`problem`), else its backend set (None when the
    Service port has no endpoint object) and its (table, selection, masquerade) entries."""

    fe: ServiceFrontend
    problem: Diagnostic | None
    set_key: BackendSetKey | None
    plans: tuple[tuple[str, str, bool], ...]


@dataclass(frozen=True, slots=True)
class Group:
    """The selector group(s) of one distinct set of chosen backends: named after the first
    (backend set, selection) choosing it, so a set whose endpoints change keeps its group ids. A
    single backend (hash) needs no group: its frontends point at its member (`parts` empty)."""

    name: str
    parts: tuple[str, ...]
    """Group names of the parts, one per svc_frontend bucket (`part_names`); () for one backend."""
    slots: tuple[str, ...]
    """Maglev slot identities (none with hash)."""
    origin: tuple[str, ...]
    note: str | None


Target = int | tuple[int, ...]
"""What a frontend's svc_frontend entries point at: a member id (one backend) or the group ids
of its buckets."""


def declare_services(b: Build) -> None:
    """The Service lowering as units (docs/engine.md): per frontend its plan and entries, per
    (backend set, selection) its chosen backends and affinity entries, per distinct choice its
    group, per chosen backend its member; ids for members, groups, Maglev slots and affinity
    domains from `IdAllocator`s."""
    from k8s_offload.compiler.engine.core import Index, Rule, Stateful

    e, schema, config, t = b.engine, b.schema, b.config, b.t
    node = b.facts or DEFAULT_NODE_FACTS
    limits = selector_limits(schema, config.profile)
    max_group = limits.max_group_size
    maglev = config.lb == "maglev"
    families = {ip.version for ip in node.node_ips}
    frontend_ir, set_ir, service_ir = t["frontend_ir"], t["backend_set_ir"], t["service_ir"]
    idents: dict[int, str] | None = None if e.track else {}
    """A one-shot run holds every Backend until it ends: each one's identity is formatted once."""

    def ident(be: Backend) -> str:
        if idents is None:
            return _backend_ident(be)
        found = idents.get(id(be))
        if found is None:
            found = idents[id(be)] = _backend_ident(be)
        return found

    def plan(r: Reads, sk: object) -> FrontendPlan:
        fe = r(frontend_ir, sk)
        bset = r(set_ir, fe.backend_set)
        problem = offload_problem(fe, bset, max_group, config.lb)
        if problem is not None:
            return FrontendPlan(fe, problem, None, ())
        svc = r(service_ir, fe.service)
        return FrontendPlan(fe, None, None if bset is None else bset.key, tuple(selections(fe, svc)))

    plans = b.add(Rule(e, "fe_plan", plan, over=frontend_ir))

    def plan_notes(r: Reads, sk: object) -> tuple[Diagnostic, ...]:
        """Why a frontend is not offloaded; masquerading needs a node IP of its family."""
        p = r(plans, sk)
        if p.problem is not None:
            return (p.problem,)
        fe = p.fe
        if any(masq for _, _, masq in p.plans) and fe.vip.version not in families:
            message = (
                f"{fe.kind} {fe.vip}: no IPv{fe.vip.version} node IP in the node facts to masquerade "
                "with; external traffic to endpoints on other nodes keeps its client address"
            )
            return (Diagnostic(fe.service, message),)
        return ()

    b.add(Rule(e, "fe_notes", plan_notes, over=frontend_ir, out="diagnostics"))
    sel_users = b.add(
        Index(
            e,
            "selection_users",
            plans,
            lambda sk, p: (((p.set_key, sel), sk) for _, sel, _ in p.plans) if p.set_key is not None else (),
        )
    )

    def chosen(r: Reads, sel: tuple[BackendSetKey, str]) -> Members:
        """The backends a selection picks (kube-proxy's CategorizeEndpoints), as identities."""
        set_key, selection = sel
        bset = r(set_ir, set_key)
        if selection == CLUSTER:
            picked = cluster_backends(bset, r(service_ir, set_key.service), node)
        else:
            picked = local_backends(bset, node)
        return tuple(sorted({ident(be) for be in picked}))

    choices = b.add(Rule(e, "selection", chosen, over=sel_users))
    set_users = b.add(
        Index(e, "set_users", plans, lambda sk, p: ((p.set_key, sk),) if p.set_key is not None else ())
    )
    used_sets = b.add(Rule(e, "used_set", lambda r, k: r(set_ir, k), over=set_users))

    def users_of(key: BackendSetKey, bset: BackendSet) -> Iterator[tuple[str, BackendUse]]:
        """A used set's backends by identity, each with the set's sources as sorted names (an
        entity's origin, formatted once per set)."""
        names = tuple(sorted({str(k) for k in bset.sources}))
        for be in bset.backends:
            yield ident(be), (be, names)

    backend_users = b.add(Index(e, "backend_users", used_sets, users_of))
    be_ids = b.add(Stateful(e, "be_ids", backend_users, IdAllocator(ID_BITS)))
    """Member ids over every backend of a used set, chosen or not: a backend that stops and
    starts taking new connections keeps its member id."""

    def backend_of(r: Reads, ident: str) -> BackendUse:
        """A backend as its used sets have it, with the union of their sources' names."""
        users: Mapping[object, BackendUse] = r.group(backend_users, ident)
        if len(users) == 1:
            return next(iter(users.values()))
        origin = tuple(sorted({name for _, names in users.values() for name in names}))
        return next(iter(users.values()))[0], origin

    if not maglev:
        member_users = b.add(
            Index(e, "member_users", choices, lambda sel, members: ((m, sel) for m in members))
        )

        def backend(r: Reads, ident: str) -> tuple[Entity, ...]:
            """One member per backend some selection chooses, shared by every group holding it and
            carrying its DNAT. A backend that only drains (not ready, or not chosen) has none:
            flows pinned to it keep its address in the flow cache."""
            be, origin = backend_of(r, ident)
            return (backend_member(schema, be, r(be_ids, ident), origin),)

        b.add(Rule(e, "backend", backend, over=member_users, out="entities"))
    by_members = b.add(
        Index(e, "groups_by_members", choices, lambda sel, members: ((members, sel),) if members else ())
    )

    def group(r: Reads, members: Members) -> Group:
        sels: Mapping[tuple[BackendSetKey, str], object] = r.group(by_members, members)
        name = _selection_name(*min(sels))
        origin = tuple(sorted({str(k) for key, _ in sels for k in r(set_ir, key).sources}))
        n = len(members)
        if maglev:
            m = maglev_size(n)
            assert m is not None, "offload_problem admits only sets that fit"
            k = split_bits(m, max_group)
            assert k is not None
            slots = tuple(maglev_slot_ident(name, j) for j in range(m))
            note: str | None = maglev_note(n, m, k)
        else:
            k = split_bits(n, max_group)
            assert k is not None, "offload_problem admits only sets that fit"
            slots = ()
            note = fitting_note(n, k, limits)
            if n == 1 and k == 0:
                return Group(name, (), slots, origin, note)
        return Group(name, tuple(part_names(name, 1 << k)), slots, origin, note)

    groups = b.add(Rule(e, "group", group, over=by_members))
    group_ids = b.add(Stateful(e, "group_ids", groups, IdAllocator(32, lambda g: g.parts)))
    slot_ids = b.add(
        Stateful(e, "slot_ids", groups, IdAllocator(ID_BITS, lambda g: g.slots, offset=MAGLEV_MEMBER_BASE))
    )

    def group_entities(r: Reads, members: Members) -> tuple[Entity, ...]:
        g = r(groups, members)
        if not g.parts:
            return ()
        ids = [r(be_ids, ident) for ident in members]
        out: list[Entity] = []
        if maglev:
            slot_of = {slot: r(slot_ids, slot) for slot in g.slots}
            lay = maglev_layout(g.name, list(zip(ids, members, strict=True)), limits, slot_of)
            owner = {be_id: backend_of(r, ident)[0] for be_id, ident in zip(ids, members, strict=True)}
            out += (backend_member(schema, owner[be], mid, g.origin) for mid, be in lay.slots)
        else:
            lay = hash_layout(tuple(sorted(ids)), limits)
        for part, group_members in zip(g.parts, lay.parts, strict=True):
            gid = r(group_ids, part)
            out.append(schema.group(SELECTOR, gid, tuple((m, 1) for m in group_members), max_group, g.origin))
        return tuple(out)

    b.add(Rule(e, "group_entities", group_entities, over=groups, out="entities"))

    def affinity_key(sel: tuple[BackendSetKey, str], members: Members) -> tuple[tuple[str, bool], ...]:
        return ((_selection_name(*sel), True),) if members else ()

    aff_names = b.add(Index(e, "affinity_names", choices, affinity_key))
    aff = b.add(Stateful(e, "aff_ids", aff_names, IdAllocator(ID_BITS)))

    def target(r: Reads, set_key: BackendSetKey | None, selection: str) -> Target | None:
        if set_key is None:
            return None
        members = r(choices, (set_key, selection))
        if not members:
            return None
        parts = r(groups, members).parts
        if not parts:
            member: int = r(be_ids, members[0])
            return member
        return tuple(r(group_ids, p) for p in parts)

    def frontend(r: Reads, sk: object) -> tuple[Entity, ...]:
        """Per selection of the frontend: its svc_frontend entries (one per bucket) and its
        svc_options entry when it needs one; svc_frontend_internal when it has internal ones."""
        p = r(plans, sk)
        if p.problem is not None:
            return ()
        fe = p.fe
        bset = r(set_ir, p.set_key) if p.set_key is not None else None
        svc = r(service_ir, fe.service)
        out: list[Entity] = []
        for table, selection, masq in p.plans:
            to = target(r, p.set_key, selection)
            affinity: tuple[int, int] | None = None
            if to is not None and bset is not None and svc is not None and svc.affinity_timeout is not None:
                affinity = (
                    r(aff, _selection_name(bset.key, selection)),
                    affinity_units(svc.affinity_timeout),
                )
            internal = table == "svc_frontend_internal"
            out += frontend_entries(schema, fe, bset, to, internal=internal, masq=masq, affinity=affinity)
        return tuple(out)

    b.add(Rule(e, "frontend", frontend, over=plans, out="entities"))

    def affinity(r: Reads, sel: tuple[BackendSetKey, str]) -> tuple[Entity, ...]:
        """aff_backend entries of one selection's chosen backends, when its Service has affinity."""
        members = r(choices, sel)
        svc = r(service_ir, sel[0].service)
        if not members or svc is None or svc.affinity_timeout is None:
            return ()
        aff_id = r(aff, _selection_name(*sel))
        origin = tuple(str(k) for k in r(set_ir, sel[0]).sources)
        out = []
        for ident in members:
            be = backend_of(r, ident)[0]
            key = {"aff_id": Exact(aff_id), "be_addr": Exact(mapped(be.address)), "be_port": Exact(be.port)}
            out.append(schema.entry("aff_backend", key, "affinity_ok", origin=origin))
        return tuple(out)

    b.add(Rule(e, "affinity", affinity, over=choices, out="entities"))

    def notes(r: Reads, sk: object) -> tuple[Diagnostic, ...]:
        """The fitting note (`info`) of each offloaded frontend of a split or Maglev group."""
        p = r(plans, sk)
        found = []
        for _, selection, _ in p.plans:
            members = r(choices, (p.set_key, selection)) if p.set_key is not None else None
            if not members:
                continue
            note = r(groups, members).note
            if note is not None:
                where = f"{p.fe.vip} {p.fe.protocol.value}/{p.fe.port}"
                found.append(Diagnostic(p.fe.service, f"{where}: {note}", severity="info"))
        return tuple(found)

    b.add(Rule(e, "fitting_notes", notes, over=plans, out="diagnostics"))


BackendUse = tuple[Backend, tuple[str, ...]]
"""A backend as one used set has it, with that set's sources as names."""
Members = tuple[str, ...]
"""A group's backends: sorted backend identities (equal ids exactly when the identities are)."""


def maglev_note(n: int, m: int, k: int) -> str:
    return (
        f"Maglev table of {m} slots for {n} endpoints"
        + (f", over {1 << k} groups picked by {_bits(k)} of a flow hash" if k else "")
        + f" ({m} members instead of {n})"
    )


def check_selector(schema: Schema, profile: str, counts: Mapping[str, int]) -> None:
    """The profile's own selector limits beyond P4Info (dpdk: groups and member ids), on the
    bundle's counts (before the P4Info capacities)."""
    limits = selector_limits(schema, profile)
    name = schema.profile(SELECTOR).name
    groups = counts.get(f"{name} (groups)", 0)
    members = counts.get(f"{name} (members)", 0)
    problems = []
    if limits.max_groups is not None and groups > limits.max_groups:
        problems.append(f"needs {groups} groups, holds {limits.max_groups}")
    if members > limits.max_members:
        problems.append(f"needs {members} members, holds {limits.max_members}")
    if problems:
        raise BundleError(f"action selector {SELECTOR} ({limits.profile}): " + "; ".join(problems))


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
    """The selector member of one backend (address, target port): the DNAT it carries."""
    action = "set_backend4" if b.address.version == 4 else "set_backend6"
    return schema.member(SELECTOR, member_id, action, {"addr": int(b.address), "port": b.port}, origin)


def frontend_entries(
    schema: Schema,
    fe: ServiceFrontend,
    bset: BackendSet | None,
    to: Target | None,
    *,
    internal: bool = False,
    masq: bool = False,
    affinity: tuple[int, int] | None = None,
) -> list[TableEntry]:
    """One selection of an offloaded frontend (`internal`: its entries for traffic not from the
    uplink, announced by svc_frontend_internal). Without a target, the svc_options verdict: reject
    (ICMP port unreachable) when the Service port has no usable endpoint anywhere, drop when a
    Local traffic policy leaves none on this node, as kube-proxy does. Else one svc_frontend entry
    per bucket, pointing at the group of that bucket or at the single backend's member, and
    svc_options when the frontend masquerades, is split or has affinity (aff_id, timeout)."""
    origin = _sources(bset, fe)
    key = {
        "dst_addr": Exact(mapped(fe.vip)),
        "l4_proto": Exact(PROTOCOL_NUMBERS[fe.protocol.value.lower()]),
        "dport": Exact(fe.port),
    }
    out = []
    if internal:
        out.append(schema.entry("svc_frontend_internal", key, "use_internal", origin=origin))
    selection_key = {**key, "fe_internal": Exact(int(internal))}
    if to is None:
        # kube-proxy: REJECT when the port has no endpoints at all, DROP "has no local endpoints".
        reject = bset is None or not usable_backends(bset)
        verdict = "reject_no_endpoint" if reject else "drop_no_local_endpoint"
        return [*out, schema.entry("svc_options", selection_key, verdict, origin=origin)]
    parts = (to,) if isinstance(to, int) else to
    if masq or len(parts) > 1 or affinity is not None:
        aff_id, timeout = affinity or (0, 0)
        params = {"masq": int(masq), "split": len(parts) - 1, "aff_id": aff_id, "aff_timeout": timeout}
        out.append(schema.entry("svc_options", selection_key, "set_options", params, origin=origin))
    for bucket, ref in enumerate(parts):
        entry_key = {**selection_key, "fe_bucket": Exact(bucket)}
        if isinstance(to, int):
            out.append(schema.entry("svc_frontend", entry_key, member_id=ref, origin=origin))
        else:
            out.append(schema.entry("svc_frontend", entry_key, group_id=ref, origin=origin))
    return out
