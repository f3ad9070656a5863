"""`resolve_unmerged` kept up to date one object at a time (the incremental compiler's policy half).

State: the resolution's cluster index (`_Cluster`, updated pod by pod), the policies by namespace,
the result of every API rule (`MemoKey` -> resolved rules, as `resolve_unmerged` memoizes within
one run) and which local pods read it, and every local pod's isolation per direction.

What a change reaches:
- a NetworkPolicy: its rule results are dropped; the local pods of its namespace its podSelector
  selects before or after are recomputed;
- a Pod (any node): the results of rules with a peer that selects its old or new version (when
  its addresses or container ports changed, or its selection did), and of egress rules naming a
  port it declares; the local pods that read those results; the pod itself when it is local;
- a Namespace: the results of rules whose namespaceSelector matches its old labels but not its
  new ones or the reverse.
`resolve()` then recomputes only the local pods reached and returns their new isolations. The
result per pod is what `resolve_unmerged` gives for it on the whole cluster (the hypothesis test
in tests/compiler/incremental compares the bundles).
"""

from __future__ import annotations

from collections import defaultdict

from k8s_offload.compiler.frontend.model import Labels, ObjectKey
from k8s_offload.compiler.frontend.policy import NetworkPolicy, PolicyPeer, PolicyType
from k8s_offload.compiler.ir.model import NamespaceInfo, PodEndpoint
from k8s_offload.compiler.ir.rules import AddressSet, PodIsolation, Rule, RuleSet
from k8s_offload.compiler.passes.drop_subsumed import drop_subsumed_rules
from k8s_offload.compiler.passes.merge_rules import merge_rules
from k8s_offload.compiler.passes.resolve_policy import MemoKey, PeerKey, _Cluster, _rule_rules
from k8s_offload.compiler.passes.selectors import matches

DIRECTIONS = (PolicyType.Egress, PolicyType.Ingress)


class PolicyResolver:
    def __init__(self) -> None:
        self.cluster = _Cluster()
        self.policies: dict[str, dict[ObjectKey, NetworkPolicy]] = defaultdict(dict)
        self.local: dict[ObjectKey, PodEndpoint] = {}
        self.memo: dict[MemoKey, list[Rule]] = {}
        self.readers: dict[MemoKey, set[ObjectKey]] = defaultdict(set)
        self.reads: dict[ObjectKey, list[MemoKey]] = {}
        self.by_rule: dict[tuple[ObjectKey, PolicyType, int], set[MemoKey]] = defaultdict(set)
        self.peer_sets: dict[PeerKey, AddressSet | None] = {}
        """Peer sets by (namespace, peers), shared by the rules with those peers, kept across
        policy changes: a new port on a rule keeps its peer set object (and every set equal to
        one is found by identity, not by comparing thousands of networks)."""
        self.interned: dict[AddressSet, AddressSet] = {}
        """One object per distinct peer set of the rule results (different selectors often pick
        the same pods): equal sets then compare, hash-look-up and sort by identity."""
        self.isolations: dict[tuple[PolicyType, ObjectKey], PodIsolation] = {}
        self._canonical: dict[tuple[MemoKey, ...], tuple[tuple[list[Rule], ...], tuple[Rule, ...]]] = {}
        """The sorted, deduplicated rules of the memo keys a pod read, with the rule lists they
        were built from: local pods selected by the same policies share them, and sorting rules
        compares peer sets of thousands of networks (90 ms per policy change on M, every pod
        sorting the same rules)."""
        self._dirty: set[ObjectKey] = set()
        self._ns_before: dict[str, Labels] = {}

    # ---- changes --------------------------------------------------------------------------------

    def set_namespace(self, name: str, node: NamespaceInfo | None) -> None:
        """A declared Namespace changed (None: deleted, its labels fall back to the name only)."""
        before = self.cluster.namespace_labels(name)
        self._ns_before.setdefault(name, before)
        if node is None:
            self.cluster.namespaces.pop(name, None)
        else:
            self.cluster.namespaces[name] = node
        after = self.cluster.namespace_labels(name)
        if before == after or name not in self.cluster.pods_by_ns:
            return
        flipped: set[PeerKey] = set()
        for pkey in self.peer_sets:
            for peer in pkey[1]:
                sel = peer.namespace_selector
                if sel is not None and peer.ip_block is None and matches(sel, before) != matches(sel, after):
                    flipped.add(pkey)
                    break
        self._drop_peers(flipped)

    def set_policy(self, before: NetworkPolicy | None, after: NetworkPolicy | None) -> None:
        pol = before or after
        assert pol is not None
        ns = pol.key.namespace
        if after is None:
            self.policies[ns].pop(pol.key, None)
        else:
            self.policies[ns][pol.key] = after
        for direction in DIRECTIONS:
            for i in range(max(_count(before, direction), _count(after, direction))):
                for key in list(self.by_rule.get((pol.key, direction, i), ())):
                    self._drop(key)
        for pod in self.local.values():
            if pod.key.namespace == ns and any(
                p is not None and matches(p.pod_selector, pod.labels) for p in (before, after)
            ):
                self._dirty.add(pod.key)

    def set_pod(self, before: PodEndpoint | None, after: PodEndpoint | None) -> None:
        pod = before or after
        assert pod is not None
        key = pod.key
        self.cluster.remove_pod(key)
        if after is not None:
            self.cluster.add_pod(after)
        self.local.pop(key, None)
        if after is not None and after.local and after.ips:
            self.local[key] = after
        if (before is not None and before.local) or (after is not None and after.local):
            self._dirty.add(key)
        versions = [p for p in (before, after) if p is not None and p.ips]
        if not versions:
            return
        same_shape = (
            before is not None
            and after is not None
            and before.ips == after.ips
            and before.container_ports == after.container_ports
            and key.namespace not in self._ns_before
        )
        named = {cp.name for p in versions for cp in p.container_ports if cp.name}
        reached: set[PeerKey] = set()
        for pkey in self.peer_sets:
            ns, peers = pkey
            for peer in peers:
                if peer.ip_block is not None:
                    continue
                selected = [self._selects(ns, peer, p) for p in versions]
                if (same_shape and selected[0] != selected[1]) or (not same_shape and any(selected)):
                    reached.add(pkey)
                    break
        self._drop_peers(reached)
        if same_shape or not named:
            return
        for mkey in list(self.memo):
            pol_key, direction, i, _ = mkey
            if direction is not PolicyType.Egress:
                continue
            pol = self.policies.get(pol_key.namespace, {}).get(pol_key)
            if pol is None or i >= len(pol.egress):
                continue
            if any(isinstance(port.port, str) and port.port in named for port in pol.egress[i].ports):
                self._drop(mkey)

    # ---- results --------------------------------------------------------------------------------

    def resolve(self) -> dict[tuple[PolicyType, ObjectKey], PodIsolation | None]:
        """New isolations of the local pods the changes since the last call reached (None: not
        isolated in that direction any more); unchanged ones are left out."""
        out: dict[tuple[PolicyType, ObjectKey], PodIsolation | None] = {}
        dirty, self._dirty = self._dirty, set()
        self._ns_before = {}
        for key in sorted(dirty, key=lambda k: (k.namespace, k.name)):
            for mkey in self.reads.pop(key, ()):
                users = self.readers.get(mkey)
                if users is not None:
                    users.discard(key)
            pod = self.local.get(key)
            used: list[MemoKey] = []
            for direction in DIRECTIONS:
                iso = None
                if pod is not None:
                    iso = self._isolation(pod, direction, used)
                before = self.isolations.pop((direction, key), None)
                if iso is not None:
                    self.isolations[(direction, key)] = iso
                if iso != before:
                    out[(direction, key)] = iso
            if used:
                self.reads[key] = used
                for mkey in used:
                    self.readers[mkey].add(key)
                    self.by_rule[mkey[:3]].add(mkey)
        if len(self.peer_sets) > 2 * len(self.memo) + 64:
            live = {pkey for mkey in self.memo if (pkey := self._peer_key(mkey)) is not None}
            self.peer_sets = {k: v for k, v in self.peer_sets.items() if k in live}
        if len(self._canonical) > 4096:
            self._canonical.clear()
        if len(self.interned) > 2 * len(self.memo) + 64:
            self.interned = {r.peers: r.peers for rs in self.memo.values() for r in rs if r.peers is not None}
        return out

    # ---- helpers --------------------------------------------------------------------------------

    def _isolation(self, pod: PodEndpoint, direction: PolicyType, used: list[MemoKey]) -> PodIsolation | None:
        """`resolve_policy.pod_isolation` with the memo, peer sets and interned sets kept here, and
        the canonical rule order taken from `_canonical` when the same rule results were sorted
        before."""
        pols = self.policies.get(pod.key.namespace, {}).values()
        selecting = [
            pol for pol in pols if direction in pol.policy_types and matches(pol.pod_selector, pod.labels)
        ]
        if not selecting:
            return None
        local = tuple(pod.container_ports) if direction is PolicyType.Ingress else ()
        keys: list[MemoKey] = []
        lists: list[list[Rule]] = []
        for pol in selecting:
            api_rules = pol.ingress if direction is PolicyType.Ingress else pol.egress
            for i, rule in enumerate(api_rules):
                mkey = (pol.key, direction, i, local)
                found = self.memo.get(mkey)
                if found is None:
                    found = _rule_rules(self.cluster, pol, rule, direction, pod, self.peer_sets)
                    interned = self.interned
                    found = [
                        r if r.peers is None else Rule(interned.setdefault(r.peers, r.peers), r.ports)
                        for r in found
                    ]
                    self.memo[mkey] = found
                keys.append(mkey)
                lists.append(found)
        used.extend(keys)
        ckey = tuple(keys)
        cached = self._canonical.get(ckey)
        if cached is not None and all(a is b for a, b in zip(cached[0], lists, strict=True)):
            canonical = cached[1]
        else:
            rules = {r for found in lists for r in found}
            canonical = tuple(sorted(rules, key=lambda r: r.sort_key))
            self._canonical[ckey] = (tuple(lists), canonical)
        policies = tuple(sorted(pol.key for pol in selecting))
        return PodIsolation(pod.key, direction, pod.ips, RuleSet(canonical), policies)

    def _rule(self, key: MemoKey) -> tuple[PolicyPeer, ...] | None:
        pol_key, direction, i, _ = key
        pol = self.policies.get(pol_key.namespace, {}).get(pol_key)
        if pol is None:
            return None
        api = pol.ingress if direction is PolicyType.Ingress else pol.egress
        return api[i].peers if i < len(api) else None

    def _peer_key(self, key: MemoKey) -> PeerKey | None:
        peers = self._rule(key)
        return None if peers is None else (key[0].namespace, peers)

    def _drop_peers(self, reached: set[PeerKey]) -> None:
        """Forget the peer sets a change reached, and the rule results built on them."""
        if not reached:
            return
        for pkey in reached:
            del self.peer_sets[pkey]
        for mkey in list(self.memo):
            used = self._peer_key(mkey)
            if used is None or used in reached:
                self._drop(mkey)

    def _drop(self, key: MemoKey) -> None:
        self.memo.pop(key, None)
        self.by_rule.get(key[:3], set()).discard(key)
        self._dirty |= self.readers.pop(key, set())

    def _selects(self, pol_ns: str, peer: PolicyPeer, pod: PodEndpoint) -> bool:
        """The selection `_Cluster.peer_pods` makes, under the namespace's labels before and after
        the changes since the last `resolve` (either counts)."""
        ns = pod.key.namespace
        if peer.namespace_selector is None:
            if ns != pol_ns:
                return False
        else:
            views = [self.cluster.namespace_labels(ns)]
            if ns in self._ns_before:
                views.append(self._ns_before[ns])
            if not any(matches(peer.namespace_selector, labels) for labels in views):
                return False
        return peer.pod_selector is None or matches(peer.pod_selector, pod.labels)


def _count(pol: NetworkPolicy | None, direction: PolicyType) -> int:
    if pol is None:
        return 0
    return len(pol.ingress if direction is PolicyType.Ingress else pol.egress)


class RuleSetPasses:
    """The policy passes (`merge_rules`, `drop_subsumed`) on one rule set at a time, with the same
    result as `run_policy_passes` on it (each pass maps every rule set on its own). The merged peer
    sets are interned: rule sets merging equal groups share one set object, so the lowering's
    indexes find it by identity instead of comparing thousands of networks."""

    def __init__(self, enabled: frozenset[str]) -> None:
        self.enabled = enabled
        self._interned: dict[AddressSet, AddressSet] = {}

    def run(self, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        if "merge_rules" in self.enabled:
            rules = tuple(
                r if r.peers is None else Rule(self._interned.setdefault(r.peers, r.peers), r.ports)
                for r in merge_rules(rules)
            )
        if "drop_subsumed" in self.enabled:
            rules = drop_subsumed_rules(rules)
        if len(self._interned) > 4096:
            self._interned.clear()
        return rules
