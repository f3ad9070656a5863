"""The cluster IR as engine units (docs/engine.md): Kubernetes objects in, IR records out.

Inputs: one table per kind of object (`Pod`, `Service`, ...), by key. Each IR record is one unit
of its key, built by the per-object functions of pods.py and services.py:

| table | key | value |
|---|---|---|
| `pod_ir` | Pod key | `PodEndpoint` (placement from the node facts, or the default ports) |
| `ip_conflicts` | pod IP claimed twice, or the gateway's | errors (a backend's pod: the first claimant) |
| `service_ir` | Service key | `ServiceInfo` |
| `service_frontends` | Service key | its `ServiceFrontend`s |
| `frontend_ir` | (VIP, protocol, port) | the frontend that wins the address (notes: the others) |
| `backend_sets_of` | Service key | its `BackendSet`s, from its EndpointSlices (or Endpoints) |
| `backend_set_ir` | `BackendSetKey` | one `BackendSet` |
| `namespace_ir` | name | `NamespaceInfo` (declared, or used by some object) |
| `policy_ir` | NetworkPolicy key | the policy (the IR keeps it as parsed) |

`build_ir(objects, facts)` runs only these units once and assembles `ClusterIR`; the same tables
can instead be inputs set from a `ClusterIR` (`ir_inputs`), which is how `lower(ir)` runs the
lowering units on an IR built elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from k8s_offload.compiler.errors import ManifestError
from k8s_offload.compiler.frontend.loader import KubeObject
from k8s_offload.compiler.frontend.model import (
    Endpoints,
    EndpointSlice,
    IPAddress,
    Namespace,
    ObjectKey,
    Pod,
    Service,
)
from k8s_offload.compiler.frontend.nodefacts import DEFAULT_NODE_FACTS, NodeFacts
from k8s_offload.compiler.frontend.policy import NetworkPolicy
from k8s_offload.compiler.frontend.tiers import ANP_KIND, BANP_KIND, CNP_KIND, TIER_KINDS, ClusterPolicy, Node
from k8s_offload.compiler.ir.model import (
    BackendSet,
    ClusterIR,
    Diagnostic,
    FrontendKind,
    PodEndpoint,
    ServiceFrontend,
)
from k8s_offload.compiler.ir.pods import (
    Placement,
    attachable,
    default_placement,
    gateway_conflict,
    namespace_info,
    place_pod,
    pod_endpoint,
    unused_attachment,
)
from k8s_offload.compiler.ir.services import (
    backend_sets,
    endpoint_warnings,
    service_frontends,
    service_info,
    service_warnings,
)
from k8s_offload.compiler.ir.tiers import tier_notes

if TYPE_CHECKING:
    from k8s_offload.compiler.engine.core import Reads
    from k8s_offload.compiler.passes.pipeline import Build

IR_TABLES = ("pod_ir", "service_ir", "frontend_ir", "backend_set_ir", "namespace_ir", "policy_ir")
"""The tables the lowering reads: units here, or inputs set from a `ClusterIR` (`ir_inputs`)."""

TIER_IR_INPUTS = ("cluster_policy_inputs", "node_inputs", "host_network_inputs")
"""With an IR built elsewhere: the inputs behind `_declare_tier_indexes` (`ir_inputs` fills them)."""

_KINDS = list(FrontendKind)


def build_ir(objects: Iterable[KubeObject], node_facts: NodeFacts | None = None) -> ClusterIR:
    """The cluster IR (the IR units run once); raises ManifestErrors for conflicts no single
    object shows (shared IPs, VIPs). Input order does not matter."""
    from k8s_offload.compiler.compilation import Compilation

    c = Compilation(None, node_facts, track=False, until="ir")  # type: ignore[arg-type]
    c.fill(objects)
    c.run()
    ir = c.ir()
    c.release()
    return ir


def _owned_ips(key: ObjectKey, pod: Pod) -> tuple[tuple[IPAddress, int], ...]:
    """The addresses a live pod owns, with their position in its `PodEndpoint.ips`."""
    if not attachable(pod):
        return ()
    ips = pod.ips
    if len(ips) == 1:
        return ((ips[0], 0),)
    return tuple((ip, i) for i, ip in enumerate(_first_ips(pod)))


def _first_ips(pod: Pod) -> tuple[IPAddress, ...]:
    """A pod's addresses as its `PodEndpoint.ips`: the first of each family, IPv4 first."""
    ips = pod.ips
    if len(ips) == 1:
        return ips
    v4 = next((ip for ip in pod.ips if ip.version == 4), None)
    v6 = next((ip for ip in pod.ips if ip.version == 6), None)
    return tuple(ip for ip in (v4, v6) if ip is not None)


def _service_of(key: ObjectKey, obj: KubeObject) -> ObjectKey | None:
    if isinstance(obj, EndpointSlice):
        return None if obj.service_name is None else ObjectKey("Service", key.namespace, obj.service_name)
    if isinstance(obj, Endpoints):
        return ObjectKey("Service", key.namespace, key.name)
    return None


KINDS = {
    "Pod": Pod,
    "Service": Service,
    "EndpointSlice": EndpointSlice,
    "Endpoints": Endpoints,
    "Namespace": Namespace,
    "NetworkPolicy": NetworkPolicy,
    ANP_KIND: ClusterPolicy,
    BANP_KIND: ClusterPolicy,
    CNP_KIND: ClusterPolicy,
    "Node": Node,
}
"""One input table per kind, named after it."""


def declare_ir(b: Build) -> None:
    """The IR units over the object inputs."""
    from k8s_offload.compiler.engine.core import Index, Input, Rule

    e, facts = b.engine, b.facts
    ins = {kind: b.add(Input(e, kind)) for kind in KINDS}
    pods, services, namespaces = ins["Pod"], ins["Service"], ins["Namespace"]

    # ---- pods ---------------------------------------------------------------------------------
    if facts is None:
        placeable = b.add(
            Index(e, "placeable_pods", pods, lambda k, p: (("all", p),) if p.ips and attachable(p) else ())
        )

        def placements(r: Reads, _: object) -> tuple[dict[ObjectKey, Placement], tuple[Any, ...]]:
            """Ports in pod order: one placement depends on every pod before it."""
            errors: list[ManifestError] = []
            pods_in_order = sorted(r.group(placeable, "all").values(), key=lambda p: p.key)
            placed = default_placement(pods_in_order, errors)
            return placed, tuple(((0,), err) for err in errors)

        placement = b.add(Rule(e, "default_placement", placements))

        def place(r: Reads, pod: Pod) -> Placement | None:
            return r(placement, ())[0].get(pod.key)  # type: ignore[no-any-return]

        b.add(Rule(e, "placement_errors", lambda r, k: r(placement, ())[1], over=b.one, out="errors"))
    else:
        attached = {(a.namespace, a.name): a for a in facts.pods}

        def placed(pod: Pod) -> tuple[Placement | None, Diagnostic | None]:
            key = pod.key
            return place_pod(pod, facts, attached.get((key.namespace, key.name)))

        def place(r: Reads, pod: Pod) -> Placement | None:
            return placed(pod)[0]

        def pod_notes(r: Reads, key: ObjectKey) -> tuple[Diagnostic, ...]:
            """Node facts and the pod disagree on where it runs."""
            note = placed(r(pods, key))[1]
            return () if note is None else (note,)

        # Only a pod on this node or attached by the facts can disagree with them.
        maybe = b.add(
            Index(
                e,
                "pods_here_or_attached",
                pods,
                lambda k, p: (
                    ((k, True),)
                    if p.node_name == facts.node_name or (k.namespace, k.name) in attached
                    else ()
                ),
            )
        )
        b.add(Rule(e, "pod_notes", pod_notes, over=maybe, out="ir_diagnostics"))
        listed = b.add(Input(e, "attachments"))
        for a in facts.pods:
            listed.set((a.namespace, a.name), a)

        def attachment_note(r: Reads, ident: tuple[str, str]) -> tuple[Diagnostic, ...]:
            if r(pods, ObjectKey("Pod", *ident)) is not None:
                return ()
            return (unused_attachment(r(listed, ident)),)

        b.add(Rule(e, "attachment_notes", attachment_note, over=listed, out="ir_diagnostics"))

    def pod_record(r: Reads, key: ObjectKey) -> PodEndpoint:
        pod = r(pods, key)
        return pod_endpoint(pod, place(r, pod))

    pod_ir = b.add(Rule(e, "pod_ir", pod_record, over=pods))
    owned = b.add(
        Index(
            e,
            "pod_ips",
            pods,
            _owned_ips,
        )
    )

    in_effect = facts or DEFAULT_NODE_FACTS
    gateways = {ip for ip in (in_effect.gateway.ipv4, in_effect.gateway.ipv6) if ip is not None}

    def ip_errors(r: Reads, ip: IPAddress) -> tuple[tuple[Any, ManifestError], ...]:
        """Two live pods must not share an IP: every claimant after the first (by key) is an
        error. No live pod may hold the gateway's address (its error comes before the pod's IP
        conflicts)."""
        claims = r.group(owned, ip)
        first, *others = sorted(claims)
        errors: list[tuple[Any, ManifestError]] = []
        if ip in gateways:
            for key in sorted(claims):
                found: list[ManifestError] = []
                gateway_conflict(r(pods, key), (ip,), in_effect, found)
                errors += (((1, key, -1, claims[key]), err) for err in found)
        reason = f"IP {ip} is also the IP of {first}"
        errors += (
            ((1, key, claims[key]), ManifestError(r(pods, key).location, str(key), "status.podIPs", reason))
            for key in others
        )
        return tuple(errors)

    # Only an address with several claimants, or the gateway's, can be an error.
    suspect = b.add(
        Index(
            e,
            "suspect_ips",
            owned,
            lambda ip, claims: ((ip, True),) if len(claims) > 1 or ip in gateways else (),
        )
    )
    b.add(Rule(e, "ip_conflicts", ip_errors, over=suspect, out="errors"))

    # ---- services -----------------------------------------------------------------------------
    b.add(Rule(e, "service_ir", lambda r, k: service_info(r(services, k)), over=services))
    fes = b.add(
        Rule(e, "service_frontends", lambda r, k: service_frontends(r(services, k), facts), over=services)
    )
    b.add(
        Rule(
            e,
            "service_warnings",
            lambda r, k: service_warnings(r(services, k), facts),
            over=services,
            out="ir_diagnostics",
        )
    )
    vips = b.add(
        Index(
            e, "cluster_vips", services, lambda k, s: tuple((vip, i) for i, vip in enumerate(s.cluster_ips))
        )
    )

    def vip_conflicts(r: Reads, vip: IPAddress) -> tuple[tuple[Any, ManifestError], ...]:
        """A VIP belongs to one Service; the API server's allocator guarantees it, hand-written
        input may not."""
        owners = r.group(vips, vip)
        if len(owners) < 2:
            return ()
        first, *others = sorted(owners)
        reason = f"{vip} is also the cluster IP of {first}"
        return tuple(
            (
                (2, key, owners[key]),
                ManifestError(r(services, key).location, str(key), f"spec.clusterIPs[{owners[key]}]", reason),
            )
            for key in others
        )

    b.add(Rule(e, "vip_conflicts", vip_conflicts, over=vips, out="errors"))
    claims = b.add(Index(e, "frontend_claims", fes, _claims))

    def ranked(r: Reads, sk: Any) -> list[ServiceFrontend]:
        """Cluster IPs first, then by kind and Service (in their order within one Service)."""
        found = [
            (_KINDS.index(fe.kind), svc, i, fe) for svc, fs in r.group(claims, sk).items() for i, fe in fs
        ]
        found.sort(key=lambda t: t[:3])
        return [t[3] for t in found]

    b.add(Rule(e, "frontend_ir", lambda r, sk: ranked(r, sk)[0], over=claims))

    def frontend_notes(r: Reads, sk: Any) -> tuple[Diagnostic, ...]:
        """One frontend per (address, protocol, port): an external or node IP colliding by hand
        with another frontend is reported and ignored."""
        first, *others = ranked(r, sk)
        return tuple(
            Diagnostic(
                fe.service,
                f"{fe.kind} {fe.vip} {fe.protocol}/{fe.port} is also a {first.kind} frontend of "
                f"{first.service}; ignored here",
            )
            for fe in others
        )

    b.add(Rule(e, "frontend_notes", frontend_notes, over=claims, out="ir_diagnostics"))
    slices, legacy = ins["EndpointSlice"], ins["Endpoints"]
    endpoints_of = b.add(
        Index(
            e,
            "endpoints_of",
            (slices, legacy),
            lambda k, o: ((svc, o),) if (svc := _service_of(k, o)) is not None else (),
        )
    )

    def sets_of(r: Reads, key: ObjectKey) -> tuple[BackendSet, ...]:
        eps = r.group(endpoints_of, key)
        in_order = sorted((o for o in eps.values() if isinstance(o, EndpointSlice)), key=lambda o: o.key)
        old = next((o for o in eps.values() if isinstance(o, Endpoints)), None)
        return backend_sets(r(services, key), in_order, old, _PodsByIp(r, owned, pod_ir))

    sets = b.add(Rule(e, "backend_sets_of", sets_of, over=services))
    set_index = b.add(Index(e, "backend_sets", sets, lambda k, ss: ((s.key, s) for s in ss)))
    b.add(Rule(e, "backend_set_ir", lambda r, k: next(iter(r.group(set_index, k).values())), over=set_index))

    def endpoint_notes(r: Reads, key: ObjectKey) -> tuple[Diagnostic, ...]:
        """Endpoint objects that cannot contribute anything (usually a typo in a label or name)."""
        obj = r(slices if key.kind == "EndpointSlice" else legacy, key)
        svc_key = _service_of(key, obj)
        found = {}
        if svc_key is not None and (svc := r(services, svc_key)) is not None:
            found[svc_key] = svc
        if isinstance(obj, EndpointSlice):
            return tuple(endpoint_warnings([obj], [], found))
        return tuple(endpoint_warnings([], [obj], found))

    b.add(Rule(e, "endpointslice_notes", endpoint_notes, over=slices, out="ir_diagnostics"))
    b.add(Rule(e, "endpoints_notes", endpoint_notes, over=legacy, out="ir_diagnostics"))

    # ---- namespaces and policies --------------------------------------------------------------
    used = b.add(
        Index(
            e,
            "namespace_objects",
            tuple(ins.values()),
            lambda k, o: (
                ((k.name, k),) if k.kind == "Namespace" else ((k.namespace, k),) if k.namespace else ()
            ),
        )
    )

    def ns_info(r: Reads, name: str) -> Any:
        """Declared namespaces and every namespace some object lives in (references never dangle)."""
        return namespace_info(name, r(namespaces, ObjectKey("Namespace", "", name)))

    b.add(Rule(e, "namespace_ir", ns_info, over=used))
    policies = ins["NetworkPolicy"]
    b.add(Rule(e, "policy_ir", lambda r, k: r(policies, k), over=policies))
    for kind in TIER_KINDS:
        b.add(Rule(e, f"{kind}_notes", _tier_notes(ins[kind]), over=ins[kind], out="ir_diagnostics"))
    _declare_tier_indexes(b, tuple(ins[kind] for kind in TIER_KINDS), ins["Node"], ins["Pod"])
    _declare_local_pods(b)


def _declare_tier_indexes(b: Build, policies: tuple[Any, ...], nodes: Any, pods: Any) -> None:
    """What tier resolution reads besides the IR: `tier_policies["all"]` (every cluster policy),
    `tier_nodes["all"]` (every Node) and `host_network_pods[pod key]` (non-empty for a
    host-network pod, which is never a subject or a namespaces/pods peer). From the object inputs,
    or from the inputs `ir_inputs` fills."""
    from k8s_offload.compiler.engine.core import Index

    e = b.engine
    b.add(Index(e, "tier_policies", policies, lambda k, pol: (("all", pol),)))
    b.add(Index(e, "tier_policy", policies, lambda k, pol: ((k, pol),)))
    b.add(Index(e, "tier_nodes", nodes, lambda k, node: (("all", node),)))
    b.add(
        Index(
            e,
            "host_network_pods",
            pods,
            lambda k, p: ((k, True),) if p is True or getattr(p, "host_network", False) else (),
        )
    )


def _tier_notes(tier_input: Any) -> Any:
    """The notes on one cluster policy kind's objects (a function per kind's input table)."""

    def notes(r: Reads, key: ObjectKey) -> tuple[Diagnostic, ...]:
        return tier_notes(r(tier_input, key))

    return notes


def _declare_local_pods(b: Build) -> None:
    """`local_pods`: per key of a pod attached to this device, a group holding its PodEndpoint.
    With node facts only the pods they attach can be local, so the index looks at those alone."""
    from k8s_offload.compiler.engine.core import Index, Rule

    e, pods = b.engine, b.t["pod_ir"]
    if b.facts is None or "attachments" not in b.t:
        b.add(Index(e, "local_pods", pods, lambda k, p: ((k, p),) if p.local else ()))
        return

    def attached(r: Reads, ident: tuple[str, str]) -> PodEndpoint | None:
        pod = r(pods, ObjectKey("Pod", *ident))
        return pod if pod is not None and pod.local else None

    candidates = b.add(Rule(e, "attached_pods", attached, over=b.t["attachments"]))
    b.add(Index(e, "local_pods", candidates, lambda k, p: ((p.key, p),)))


def _claims(key: ObjectKey, frontends: tuple[ServiceFrontend, ...]) -> Iterator[tuple[Any, Any]]:
    """A Service's frontends by address: ((VIP, protocol, port), ((position, frontend), ...))."""
    by_address: dict[Any, list[tuple[int, ServiceFrontend]]] = {}
    for i, fe in enumerate(frontends):
        by_address.setdefault(fe.sort_key, []).append((i, fe))
    for sk, found in by_address.items():
        yield sk, tuple(found)


def declare_ir_inputs(b: Build) -> None:
    """The IR tables as inputs (`ir_inputs` fills them from a `ClusterIR`)."""
    from k8s_offload.compiler.engine.core import Input

    for name in IR_TABLES:
        b.add(Input(b.engine, name))
    _declare_local_pods(b)
    inputs = [b.add(Input(b.engine, name)) for name in TIER_IR_INPUTS]
    _declare_tier_indexes(b, (inputs[0],), inputs[1], inputs[2])


def ir_inputs(b: Build, ir: ClusterIR) -> None:
    """Set the IR tables of `declare_ir_inputs` from a `ClusterIR` built elsewhere."""
    t = b.t
    for pod in ir.pods:
        t["pod_ir"].set(pod.key, pod)  # type: ignore[attr-defined]
    for svc in ir.services:
        t["service_ir"].set(svc.key, svc)  # type: ignore[attr-defined]
    for fe in ir.frontends:
        t["frontend_ir"].set(fe.sort_key, fe)  # type: ignore[attr-defined]
    for bset in ir.backend_sets:
        t["backend_set_ir"].set(bset.key, bset)  # type: ignore[attr-defined]
    for ns in ir.namespaces:
        t["namespace_ir"].set(ns.key.name, ns)  # type: ignore[attr-defined]
    for pol in ir.network_policies:
        t["policy_ir"].set(pol.key, pol)  # type: ignore[attr-defined]
    policies, nodes, host_network = (t[name] for name in TIER_IR_INPUTS)
    for cpol in ir.cluster_policies:
        policies.set(cpol.key, cpol)  # type: ignore[attr-defined]
    for node in ir.nodes:
        nodes.set(node.key, node)  # type: ignore[attr-defined]
    for key in ir.host_network_pods:
        host_network.set(key, True)  # type: ignore[attr-defined]


class _PodsByIp(Mapping[IPAddress, PodEndpoint]):
    """The owner of each pod IP as `backend_sets` asks for it, read through the unit's reads."""

    __slots__ = ("owners", "pods", "r")

    def __init__(self, r: Reads, owners: Any, pods: Any) -> None:
        self.r, self.owners, self.pods = r, owners, pods

    def get(self, ip: IPAddress, default: Any = None) -> Any:
        """The first live pod (by key) claiming the address."""
        claims = self.r.group(self.owners, ip)
        if not claims:
            return default
        return self.r(self.pods, next(iter(claims)) if len(claims) == 1 else min(claims))

    def __getitem__(self, ip: IPAddress) -> PodEndpoint:
        found = self.get(ip)
        if found is None:
            raise KeyError(ip)
        return found  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[IPAddress]:
        raise NotImplementedError("only looked up by address")

    def __len__(self) -> int:
        raise NotImplementedError("only looked up by address")
