"""Incremental compilation: object changes in, bundle entity changes out.

`build_ir` + `lower` recompile a whole cluster; a live cluster changes one object at a time. This
keeps an object store and a dependency index around the same pure per-object functions
(`compiler.ir.pods`, `compiler.ir.services`) and recomputes only what a change reaches:

* a Pod: its `PodEndpoint`; the backend sets holding one of its old or new IPs (the `local`/`pod`
  of a backend); the node entries if it is local; its own isolation if it is local, and the
  results of the policy rules whose peers select its old or new version (or, for egress named
  ports, that name one of its ports), with the local pods that use them;
* an EndpointSlice / Endpoints: the backend sets of the Service it names (old and new label);
* a Service: its node, frontends, warnings, backend sets, and the warnings of its endpoint objects;
* a Namespace: its node; the rule results whose namespaceSelector flips for it;
* a NetworkPolicy: its rule results and the local pods its podSelector selects before or after.

Services are lowered per unit (`ServiceLowerer`). Policy resolution is kept per local pod and
direction (`PolicyResolver`, k8s_offload/compiler/passes/incremental_resolve.py); the policy passes run per
rule set (cached) and the policy stages are kept per unit by `PolicySection`
(k8s_offload/compiler/lower/incremental_policy.py): set and class ids are content-derived (`IdSpace`), class
memberships are updated per network, and the peer-class LPM table is `lpm_compress`'s ORTC kept
up to date (k8s_offload/compiler/passes/incremental_ortc.py). The node entries are `lower_node` on the local
pods. Every unit's output is diffed against its previous one, so `apply` returns only changed
entities. `bundle()` always equals `lower(build_ir(objects, facts), schema, passes).bundle`, for
every target profile, load-balancing mode and set of enabled passes (`PassConfig`): the policy
passes run per rule set, `lpm_compress` is the kept-up-to-date ORTC (or, disabled, one entry per
network), the dpdk port encoding (`range_encoding`, `expand_blocks`) runs per rule set, and the
Service section lays out hash or Maglev groups under the profile's selector limits.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from k8s_offload.compiler.bundle.model import Bundle, ProfileGroup, ProfileMember, TableEntry
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.errors import ManifestError, ManifestErrors
from k8s_offload.compiler.frontend.loader import KubeObject
from k8s_offload.compiler.frontend.model import (
    Endpoints,
    EndpointSlice,
    IPAddress,
    Namespace,
    ObjectKey,
    Pod,
    Service,
    by_key,
)
from k8s_offload.compiler.frontend.nodefacts import DEFAULT_NODE_FACTS, NodeFacts
from k8s_offload.compiler.frontend.policy import NetworkPolicy
from k8s_offload.compiler.ir.build import build_ir
from k8s_offload.compiler.ir.model import (
    BackendSet,
    BackendSetKey,
    ClusterIR,
    Diagnostic,
    PodEndpoint,
    ServiceFrontend,
    ServiceInfo,
)
from k8s_offload.compiler.ir.pods import Placement, attachable, namespace_info, place_pods, pod_endpoint
from k8s_offload.compiler.ir.rules import PodIsolation, PolicyIR, Rule, RuleSet, check_policy_ir
from k8s_offload.compiler.ir.services import (
    backend_sets,
    endpoint_warnings,
    service_frontends,
    service_info,
    service_warnings,
)
from k8s_offload.compiler.lower.bundle import check_counts, entry_sort_key, lower
from k8s_offload.compiler.lower.incremental_policy import PolicySection
from k8s_offload.compiler.lower.incremental_services import Entity, FeKey, ServiceLowerer
from k8s_offload.compiler.lower.node import lower_node
from k8s_offload.compiler.passes.incremental_resolve import PolicyResolver, RuleSetPasses
from k8s_offload.compiler.passes.pipeline import PassConfig, run_entry_passes


@dataclass(frozen=True, slots=True)
class Change:
    """One object created or updated (`obj` set) or deleted (`obj` None)."""

    key: ObjectKey
    obj: KubeObject | None


@dataclass
class Delta:
    """Bundle entities that appeared and disappeared (an updated entity is both)."""

    added: list[Entity] = field(default_factory=list)
    removed: list[Entity] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.added) + len(self.removed)


def _service_of(obj: KubeObject | None) -> ObjectKey | None:
    if isinstance(obj, EndpointSlice) and obj.service_name is not None:
        return ObjectKey("Service", obj.key.namespace, obj.service_name)
    if isinstance(obj, Endpoints):
        return ObjectKey("Service", obj.key.namespace, obj.key.name)
    return None


class IncrementalCompiler:
    def __init__(
        self,
        schema: Schema,
        node_facts: NodeFacts | None = None,
        check: bool = False,
        passes: PassConfig | None = None,
    ) -> None:
        """`passes` picks the passes, target profile and load-balancing mode as for `lower` (None:
        every pass, bmv2, hash); `check` checks the policy IR of every new rule set as `lower`
        does (tests)."""
        self.schema = schema
        self.check = check
        # Dumps are the full compile's business; the config is otherwise used as given.
        self.passes = replace(passes or PassConfig(), dump_after=None, dumps=[])
        self.facts = node_facts
        self.objects: dict[ObjectKey, KubeObject] = {}
        self.kinds: dict[str, dict[ObjectKey, KubeObject]] = defaultdict(dict)
        self._attachments = {(a.namespace, a.name): a for a in node_facts.pods} if node_facts else {}
        self.entities: dict[Entity, None] = {}
        self.counts: Counter[str] = Counter()
        self._order = {name: i for i, name in enumerate(schema.table_order)}
        self._stale = True
        self._clear()

    def _clear(self) -> None:
        self.pods: dict[ObjectKey, PodEndpoint] = {}
        self.pod_notes: dict[ObjectKey, tuple[Diagnostic, ...]] = {}
        self.placements: dict[ObjectKey, Placement] = {}
        self.ip_owners: dict[IPAddress, set[ObjectKey]] = defaultdict(set)
        self.vip_owners: dict[IPAddress, set[ObjectKey]] = defaultdict(set)
        self.conflicts: set[IPAddress] = set()
        self.vip_conflicts: set[IPAddress] = set()  # VIPs of more than one Service
        self.endpoint_objs: dict[ObjectKey, dict[ObjectKey, KubeObject]] = defaultdict(dict)
        self.frontends: dict[ObjectKey, tuple[ServiceFrontend, ...]] = {}
        self.svc_sets: dict[ObjectKey, tuple[BackendSet, ...]] = {}
        self.svc_notes: dict[ObjectKey, tuple[Diagnostic, ...]] = {}
        self.ep_notes: dict[ObjectKey, tuple[Diagnostic, ...]] = {}
        self.services_by_ip: dict[IPAddress, set[ObjectKey]] = defaultdict(set)
        self.ns_use: Counter[str] = Counter()
        self.services = ServiceLowerer(
            self.schema, self.passes.profile, self.passes.lb, self.facts or DEFAULT_NODE_FACTS
        )
        self.resolver = PolicyResolver()
        self.policy = PolicySection(self.schema, self.passes.enabled, self.passes.profile)
        self._passed: dict[tuple[Rule, ...], RuleSet] = {}
        self._rule_passes = RuleSetPasses(self.passes.enabled)
        self.local_pods: set[ObjectKey] = set()
        self.sections: dict[str, tuple[Entity, ...]] = {}
        self._owned: dict[ObjectKey, tuple[IPAddress, ...]] = {}
        self._svc_vips: dict[ObjectKey, tuple[IPAddress, ...]] = {}
        self._pending_services: tuple[
            dict[FeKey, ServiceFrontend | None],
            dict[BackendSetKey, BackendSet | None],
            dict[ObjectKey, ServiceInfo | None],
        ] = ({}, {}, {})

    # ---- public -------------------------------------------------------------------------------

    def load(self, objects: Iterable[KubeObject]) -> Delta:
        """Replace the whole store (the first list, a relist after 410 Gone)."""
        new = {obj.key: obj for obj in objects}
        changes = [Change(k, None) for k in self.objects if k not in new]
        changes += [Change(k, o) for k, o in new.items() if self.objects.get(k) != o]
        self._stale = True
        return self.apply(changes)

    def apply(self, changes: Iterable[Change]) -> Delta:
        """Apply changes; raises ManifestErrors/BundleError as a full compile would, and then
        recomputes everything on the next call (the store already holds the changes)."""
        changes = list(changes)
        old_objects = {c.key: self.objects.get(c.key) for c in changes}
        for c in changes:
            if c.obj is None:
                self.objects.pop(c.key, None)
                self.kinds[c.key.kind].pop(c.key, None)
            else:
                self.objects[c.key] = c.obj
                self.kinds[c.key.kind][c.key] = c.obj
        try:
            if self._stale:
                self._clear()
                delta = self._commit(self._rebuild(), full=True)
            else:
                delta = self._commit(self._update(old_objects), full=False)
        except Exception:
            self._stale = True
            raise
        self._stale = False
        return delta

    def bundle(self) -> Bundle:
        members = sorted(
            (e for e in self.entities if isinstance(e, ProfileMember)), key=lambda m: m.member_id
        )
        groups = sorted((e for e in self.entities if isinstance(e, ProfileGroup)), key=lambda g: g.group_id)
        entries = sorted(
            (e for e in self.entities if isinstance(e, TableEntry)),
            key=lambda e: entry_sort_key(self.schema, self._order, e),
        )
        return Bundle(tuple(members), tuple(groups), tuple(entries))

    def ir(self) -> ClusterIR:
        """The current IR, equal to `build_ir` of the store."""
        return self._ir(with_services=True)

    def diagnostics(self) -> tuple[Diagnostic, ...]:
        found = set(self.ir().diagnostics) | set(self.services.diagnostics()) | set(self.services.notes())
        return tuple(sorted(found))

    # ---- IR -----------------------------------------------------------------------------------

    def _of(self, cls: type) -> list[KubeObject]:
        return sorted(self.kinds[cls.__name__].values(), key=by_key)

    def _ir(self, with_services: bool) -> ClusterIR:
        facts = self.facts or DEFAULT_NODE_FACTS
        notes: list[Diagnostic] = [d for ds in self.pod_notes.values() for d in ds]
        if self.facts is not None:
            present = {(k.namespace, k.name) for k in self.pods}
            for a in self.facts.pods:
                if (a.namespace, a.name) not in present:
                    message = (
                        f"listed in node facts (port {a.port}) but not in the manifests; the port is unused"
                    )
                    notes.append(Diagnostic(ObjectKey("Pod", a.namespace, a.name), message))
        services = [o for o in self._of(Service) if isinstance(o, Service)] if with_services else []
        if with_services:
            notes += [d for ds in self.svc_notes.values() for d in ds]
            notes += [d for ds in self.ep_notes.values() for d in ds]
        declared = {k.name: o for k, o in self.kinds["Namespace"].items() if isinstance(o, Namespace)}
        names = sorted(set(declared) | {ns for ns, n in self.ns_use.items() if n > 0})
        return ClusterIR(
            node=facts,
            namespaces=tuple(namespace_info(name, declared.get(name)) for name in names),
            pods=tuple(sorted(self.pods.values(), key=by_key)),
            services=tuple(service_info(s) for s in services) if with_services else (),
            frontends=tuple(
                sorted((f for fs in self.frontends.values() for f in fs), key=lambda f: f.sort_key)
            )
            if with_services
            else (),
            backend_sets=tuple(sorted((s for ss in self.svc_sets.values() for s in ss), key=lambda s: s.key))
            if with_services
            else (),
            network_policies=tuple(o for o in self._of(NetworkPolicy) if isinstance(o, NetworkPolicy)),
            diagnostics=tuple(sorted(set(notes))),
        )

    def _pods_by_ip(self) -> Mapping[IPAddress, PodEndpoint]:
        return _PodsByIp(self)

    def _place(self, changed: set[ObjectKey]) -> set[ObjectKey]:
        """Placements of the changed pods (all pods without node facts); returns pods to recompute."""
        if self.facts is None:
            pods = [o for o in self._of(Pod) if isinstance(o, Pod)]
            errors: list[ManifestError] = []
            new, _ = place_pods(pods, None, errors)
            if errors:
                raise ManifestErrors(errors)
            moved = {k for k in set(new) | set(self.placements) if new.get(k) != self.placements.get(k)}
            self.placements = new
            return changed | moved
        for key in changed:
            pod = self.objects.get(key)
            self.placements.pop(key, None)
            self.pod_notes.pop(key, None)
            if isinstance(pod, Pod):
                # Only this pod's attachment: the others would only add notes about absent pods.
                mine = self._attachments.get((key.namespace, key.name))
                facts = replace(self.facts, pods=(mine,) if mine else ())
                placed, notes = place_pods([pod], facts, [])
                if key in placed:
                    self.placements[key] = placed[key]
                own = tuple(d for d in notes if d.subject == key)
                if own:
                    self.pod_notes[key] = own
        return changed

    def _rebuild(self) -> dict[str, bool]:
        for obj in self.objects.values():
            if not isinstance(obj, Namespace):
                self.ns_use[obj.key.namespace] += 1
            svc = _service_of(obj)
            if svc is not None:
                self.endpoint_objs[svc][obj.key] = obj
        for key, obj in self.objects.items():
            if isinstance(obj, Namespace):
                self.resolver.set_namespace(key.name, namespace_info(key.name, obj))
            elif isinstance(obj, NetworkPolicy):
                self.resolver.set_policy(None, obj)
        pods = {k for k, o in self.objects.items() if isinstance(o, Pod)}
        for key in self._place(pods):
            self._set_pod(key)
            self.resolver.set_pod(None, self.pods.get(key))
        self._check_conflicts()
        services = {k for k, o in self.objects.items() if isinstance(o, Service)}
        self._update_services(services, services)
        for key, obj in self.objects.items():
            if isinstance(obj, EndpointSlice | Endpoints):
                self._endpoint_notes(key)
        return {"node": True, "policy": True}

    def _update(self, old: Mapping[ObjectKey, KubeObject | None]) -> dict[str, bool]:
        pods: set[ObjectKey] = set()
        full_services: set[ObjectKey] = set()
        services: set[ObjectKey] = set()
        notes: set[ObjectKey] = set()
        sections = {"node": False, "policy": False}
        for key, before in old.items():
            after = self.objects.get(key)
            if before == after:
                continue
            for obj, step in ((before, -1), (after, 1)):
                if obj is not None and not isinstance(obj, Namespace):
                    self.ns_use[obj.key.namespace] += step
            if key.kind == "Pod":
                pods.add(key)
            elif key.kind == "Service":
                full_services.add(key)
                notes |= set(self.endpoint_objs.get(key, {}))
            elif key.kind in ("EndpointSlice", "Endpoints"):
                notes.add(key)
                for obj, present in ((before, False), (after, True)):
                    svc = _service_of(obj)
                    if svc is None:
                        continue
                    services.add(svc)
                    if present:
                        self.endpoint_objs[svc][key] = obj  # type: ignore[assignment]
                    else:
                        self.endpoint_objs[svc].pop(key, None)
            elif key.kind == "NetworkPolicy":
                self.resolver.set_policy(
                    before if isinstance(before, NetworkPolicy) else None,
                    after if isinstance(after, NetworkPolicy) else None,
                )
            elif key.kind == "Namespace":
                self.resolver.set_namespace(
                    key.name, namespace_info(key.name, after) if isinstance(after, Namespace) else None
                )
        if self.facts is None and pods:
            sections["node"] = True
        for key in self._place(pods):
            before_node = self.pods.get(key)
            self._set_pod(key)
            after_node = self.pods.get(key)
            if before_node == after_node:
                continue
            for node in (before_node, after_node):
                if node is None:
                    continue
                sections["node"] |= node.local
                for ip in node.ips:
                    services |= self.services_by_ip.get(ip, set())
            if before_node is not None or after_node is not None:
                self.resolver.set_pod(before_node, after_node)
        self._check_conflicts()
        self._update_services(services | full_services, full_services)
        for key in notes:
            self._endpoint_notes(key)
        return sections

    def _set_pod(self, key: ObjectKey) -> None:
        self.pods.pop(key, None)
        self.local_pods.discard(key)
        for ip in self._owned.pop(key, ()):
            self.ip_owners[ip].discard(key)
            self._touch_conflict(ip)
        pod = self.objects.get(key)
        if not isinstance(pod, Pod):
            return
        node = pod_endpoint(pod, self.placements.get(key))
        self.pods[key] = node
        if node.local:
            self.local_pods.add(key)
        if attachable(pod):
            self._owned[key] = node.ips
            for ip in node.ips:
                self.ip_owners[ip].add(key)
                self._touch_conflict(ip)

    def _touch_conflict(self, ip: IPAddress) -> None:
        owners = self.ip_owners.get(ip)
        if owners is not None and len(owners) > 1:
            self.conflicts.add(ip)
        else:
            self.conflicts.discard(ip)
            if owners is not None and not owners:
                del self.ip_owners[ip]

    def _check_conflicts(self) -> None:
        """Shared pod IPs or VIPs: let the full build report them exactly as it does."""
        if self.conflicts or self.vip_conflicts:
            build_ir(self.objects.values(), self.facts)
            raise AssertionError("the full build accepted a conflict the incremental one found")

    def _update_services(self, services: set[ObjectKey], full: set[ObjectKey]) -> None:
        fes: dict[FeKey, ServiceFrontend | None] = {}
        sets: dict[BackendSetKey, BackendSet | None] = {}
        nodes: dict[ObjectKey, ServiceInfo | None] = {}
        pods_by_ip = self._pods_by_ip()
        for key in sorted(services, key=lambda k: (k.kind, k.namespace, k.name)):
            svc = self.objects.get(key)
            if key in full:
                for fe in self.frontends.pop(key, ()):
                    fes.setdefault(fe.sort_key, None)  # another Service may take this VIP in the batch
                self.svc_notes.pop(key, None)
                old_svc = self._svc_vips.pop(key, ())
                for vip in old_svc:
                    self.vip_owners[vip].discard(key)
                    if len(self.vip_owners[vip]) < 2:
                        self.vip_conflicts.discard(vip)
                    if not self.vip_owners[vip]:
                        del self.vip_owners[vip]
                nodes[key] = service_info(svc) if isinstance(svc, Service) else None
                if isinstance(svc, Service):
                    self.frontends[key] = service_frontends(svc, self.facts)
                    for fe in self.frontends[key]:
                        fes[fe.sort_key] = fe
                    notes = service_warnings(svc, self.facts)
                    if notes:
                        self.svc_notes[key] = notes
                    self._svc_vips[key] = svc.cluster_ips
                    for vip in svc.cluster_ips:
                        self.vip_owners[vip].add(key)
                        if len(self.vip_owners[vip]) > 1:
                            self.vip_conflicts.add(vip)
            for bset in self.svc_sets.pop(key, ()):
                sets[bset.key] = None
                for b in bset.backends:
                    owners = self.services_by_ip.get(b.address)
                    if owners is not None:
                        owners.discard(key)
                        if not owners:
                            del self.services_by_ip[b.address]
            if not isinstance(svc, Service):
                continue
            eps = self.endpoint_objs.get(key, {})
            slices = sorted((o for o in eps.values() if isinstance(o, EndpointSlice)), key=by_key)
            legacy = next((o for o in eps.values() if isinstance(o, Endpoints)), None)
            new_sets = backend_sets(svc, slices, legacy, pods_by_ip)
            self.svc_sets[key] = new_sets
            for bset in new_sets:
                sets[bset.key] = bset
                for b in bset.backends:
                    self.services_by_ip[b.address].add(key)
        self._check_conflicts()
        self._pending_services = (fes, sets, nodes)

    def _endpoint_notes(self, key: ObjectKey) -> None:
        self.ep_notes.pop(key, None)
        obj = self.objects.get(key)
        svc = _service_of(obj)
        services: dict[ObjectKey, Service] = {}
        if svc is not None and isinstance(found := self.objects.get(svc), Service):
            services[svc] = found
        if isinstance(obj, EndpointSlice):
            notes = endpoint_warnings([obj], [], services)
        elif isinstance(obj, Endpoints):
            notes = endpoint_warnings([], [obj], services)
        else:
            return
        if notes:
            self.ep_notes[key] = tuple(notes)

    # ---- policy -----------------------------------------------------------------------------

    def _passes(self, iso: PodIsolation) -> PodIsolation:
        """The policy passes `lower` runs, on one isolation: each pass maps every rule set on its
        own (merge_rules, drop_subsumed), so a set's result does not depend on the other pods'."""
        rules = iso.rule_set.rules
        done = self._passed.get(rules)
        if done is None:
            done = self._passed[rules] = RuleSet(self._rule_passes.run(rules))
            if self.check:
                check_policy_ir(PolicyIR((replace(iso, rule_set=done),)))
        return PodIsolation(iso.pod, iso.direction, iso.addresses, done, iso.policies)

    def _node_entries(self) -> tuple[Entity, ...]:
        local = sorted((self.pods[k] for k in self.local_pods), key=by_key)
        facts = self.facts or DEFAULT_NODE_FACTS
        ir = ClusterIR(facts, (), tuple(local), (), (), (), (), ())
        return tuple(run_entry_passes(lower_node(ir, self.schema), self.passes))

    # ---- lowering -----------------------------------------------------------------------------

    def _commit(self, sections: Mapping[str, bool], full: bool) -> Delta:
        delta = Delta()
        fes, sets, nodes = self._pending_services
        self._pending_services = ({}, {}, {})
        added, removed = self.services.update(fes, sets, nodes)
        delta.added += added
        delta.removed += removed
        if sections.get("node"):
            self._section("node", self._node_entries(), delta)
        changed = self.resolver.resolve()
        if changed:
            appeared, vanished = self.policy.update(
                {k: None if iso is None else self._passes(iso) for k, iso in changed.items()}
            )
            delta.added += appeared
            delta.removed += vanished
            if len(self._passed) > 4 * len(self.resolver.isolations) + 64:
                used = {iso.rule_set.rules for iso in self.resolver.isolations.values()}
                self._passed = {k: v for k, v in self._passed.items() if k in used}
        if full:  # everything was recomputed: the delta is against the last good bundle
            now = {e: None for unit in self.services.units.values() for e in unit}
            for section in self.sections.values():
                now.update(dict.fromkeys(section))
            for lowerer in self.policy.directions.values():
                now.update(dict.fromkeys(lowerer.entries()))
            delta = Delta(
                [e for e in now if e not in self.entities], [e for e in self.entities if e not in now]
            )
        change: Counter[str] = Counter()
        for e in delta.removed:
            change[_count_key(e)] -= 1
        for e in delta.added:
            change[_count_key(e)] += 1
        counts = {k: self.counts[k] + change[k] for k in set(change) | set(self.counts) if k}
        self.services.check(counts)
        check_counts(self.schema, {k: n for k, n in counts.items() if n})
        for e in delta.removed:
            self.entities.pop(e, None)
        for e in delta.added:
            self.entities[e] = None
        self.counts.update(change)
        return delta

    def _section(self, name: str, new: tuple[Entity, ...], delta: Delta) -> None:
        old = self.sections.get(name, ())
        self.sections[name] = new
        kept = set(new)
        before = set(old)
        delta.removed += [e for e in old if e not in kept]
        delta.added += [e for e in new if e not in before]


class _PodsByIp(Mapping[IPAddress, PodEndpoint]):
    """The owner of each pod IP, as `build_ir` indexes it, read from the compiler's index."""

    def __init__(self, c: IncrementalCompiler) -> None:
        self.c = c

    def __getitem__(self, ip: IPAddress) -> PodEndpoint:
        owners = self.c.ip_owners.get(ip)
        if not owners:
            raise KeyError(ip)
        return self.c.pods[min(owners, key=lambda k: (k.kind, k.namespace, k.name))]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.c.ip_owners)

    def __len__(self) -> int:
        return len(self.c.ip_owners)


def _count_key(e: Entity) -> str:
    if isinstance(e, ProfileMember):
        return f"{e.profile} (members)"
    if isinstance(e, ProfileGroup):
        return f"{e.profile} (groups)"
    return "" if e.is_default else e.table


def full_compile(
    schema: Schema, objects: Iterable[KubeObject], facts: NodeFacts | None, passes: PassConfig | None = None
) -> Bundle:
    """The reference the incremental compiler (with the same `passes`) must always equal."""
    return lower(build_ir(objects, facts), schema, passes).bundle
