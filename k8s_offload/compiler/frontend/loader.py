"""From raw documents to typed objects: dispatch by kind, duplicate detection, unsupported-kind notes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

from k8s_offload import gcpause
from k8s_offload.compiler.errors import (
    ErrorList,
    Location,
    ManifestError,
    ManifestErrors,
    TooManyErrors,
    one_line,
)
from k8s_offload.compiler.frontend.common import subject_of, unsupported
from k8s_offload.compiler.frontend.fast import fast_endpoint_slice, fast_pod
from k8s_offload.compiler.frontend.fields import Checker, Raw, shown
from k8s_offload.compiler.frontend.limits import MAX_ERRORS, MAX_OBJECTS
from k8s_offload.compiler.frontend.model import (
    Endpoints,
    EndpointSlice,
    Namespace,
    ObjectKey,
    Pod,
    Service,
    by_key,
)
from k8s_offload.compiler.frontend.nodefacts import NodeFacts, read_node_facts
from k8s_offload.compiler.frontend.parse_core import parse_namespace, parse_pod
from k8s_offload.compiler.frontend.parse_endpoints import parse_endpoint_slice, parse_endpoints
from k8s_offload.compiler.frontend.parse_policy import parse_network_policy
from k8s_offload.compiler.frontend.parse_service import parse_service
from k8s_offload.compiler.frontend.parse_tiers import (
    parse_admin_network_policy,
    parse_baseline_admin_network_policy,
    parse_cluster_network_policy,
    parse_node,
)
from k8s_offload.compiler.frontend.policy import NetworkPolicy
from k8s_offload.compiler.frontend.sources import RawObject, parse_text, read_objects
from k8s_offload.compiler.frontend.tiers import ClusterPolicy, Node

KubeObject = Namespace | Pod | Service | EndpointSlice | Endpoints | NetworkPolicy | ClusterPolicy | Node
K = TypeVar("K", Namespace, Pod, Service, EndpointSlice, Endpoints, NetworkPolicy, ClusterPolicy, Node)
Parser = Callable[[Checker, Raw, Location], KubeObject]


@dataclass(frozen=True, slots=True)
class _Kind:
    api_version: str
    namespaced: bool
    parse: Parser


KINDS: dict[str, _Kind] = {
    "Namespace": _Kind("v1", False, parse_namespace),
    "Pod": _Kind("v1", True, parse_pod),
    "Service": _Kind("v1", True, parse_service),
    "Endpoints": _Kind("v1", True, parse_endpoints),
    "EndpointSlice": _Kind("discovery.k8s.io/v1", True, parse_endpoint_slice),
    "NetworkPolicy": _Kind("networking.k8s.io/v1", True, parse_network_policy),
    "AdminNetworkPolicy": _Kind("policy.networking.k8s.io/v1alpha1", False, parse_admin_network_policy),
    "BaselineAdminNetworkPolicy": _Kind(
        "policy.networking.k8s.io/v1alpha1", False, parse_baseline_admin_network_policy
    ),
    "ClusterNetworkPolicy": _Kind("policy.networking.k8s.io/v1alpha2", False, parse_cluster_network_policy),
    "Node": _Kind("v1", False, parse_node),
}
"""Cluster policy tiers and Nodes have no fast path: they are tens to thousands of objects, where
the fast path pays for itself at the hundred thousand Pods and EndpointSlices of a large cluster."""
_FAST: dict[str, Callable[[dict[str, Any], Location], KubeObject | None]] = {
    "Pod": fast_pod,
    "EndpointSlice": fast_endpoint_slice,
}
"""Validating fast paths (frontend/fast.py): None sends the object to the full parser above."""


@dataclass(frozen=True, slots=True)
class Manifests:
    """Every supported object of a run, each tuple sorted by key, plus notes for the user."""

    namespaces: tuple[Namespace, ...]
    pods: tuple[Pod, ...]
    services: tuple[Service, ...]
    endpoint_slices: tuple[EndpointSlice, ...]
    endpoints: tuple[Endpoints, ...]
    network_policies: tuple[NetworkPolicy, ...]
    notes: tuple[str, ...]
    cluster_policies: tuple[ClusterPolicy, ...] = ()
    """AdminNetworkPolicy, BaselineAdminNetworkPolicy and ClusterNetworkPolicy, sorted by key."""
    nodes: tuple[Node, ...] = ()

    @property
    def objects(self) -> tuple[KubeObject, ...]:
        return (
            *self.namespaces,
            *self.pods,
            *self.services,
            *self.endpoint_slices,
            *self.endpoints,
            *self.network_policies,
            *self.cluster_policies,
            *self.nodes,
        )


def load_manifests(sources: Sequence[str | Path], *, stdin: TextIO | None = None) -> Manifests:
    """Read files, directories (recursive, sorted) and `-` (stdin); raise ManifestErrors with all problems."""
    return load_inputs(sources, None, stdin=stdin)[0]


def load_inputs(
    sources: Sequence[str | Path], node: str | Path | None, *, stdin: TextIO | None = None
) -> tuple[Manifests, NodeFacts | None]:
    """Manifests and node facts together: one ManifestErrors holds the problems of both, each
    naming its file, so one run shows everything to fix."""
    errors = ErrorList(MAX_ERRORS)
    facts: NodeFacts | None = None
    with gcpause.paused():
        try:
            manifests = _collect(read_objects(sources, errors, stdin), errors)
            if node is not None:
                facts = read_node_facts(node, errors)
        except TooManyErrors:
            raise ManifestErrors(errors, stopped=True) from None
    if errors:
        raise ManifestErrors(errors)
    return manifests, facts


def load_text(text: str, source: str = "<text>") -> Manifests:
    """Same as load_manifests for an in-memory YAML stream (tests, embedding)."""
    errors = ErrorList(MAX_ERRORS)
    try:
        manifests = _collect(parse_text(text, source, errors), errors)
    except TooManyErrors:
        raise ManifestErrors(errors, stopped=True) from None
    if errors:
        raise ManifestErrors(errors)
    return manifests


def _collect(raws: Iterable[RawObject], errors: list[ManifestError]) -> Manifests:
    seen: dict[ObjectKey, Location] = {}
    skipped: Counter[str] = Counter()
    parsed: list[KubeObject] = []
    count = 0
    for raw in raws:
        count += 1
        if count > MAX_OBJECTS:
            reason = f"more than {MAX_OBJECTS} objects in one run; not read further"
            errors.append(ManifestError(raw.location, "", "", reason))
            break
        obj = parse_object(raw, errors, skipped)
        if obj is None:
            continue
        first = seen.setdefault(obj.key, raw.location)
        if first is not raw.location:
            reason = f"Duplicate value: {obj.key} is already defined at {first}"
            errors.append(ManifestError(raw.location, str(obj.key), "metadata.name", reason))
            continue
        parsed.append(obj)
    return _sorted(parsed, skipped)


def parse_object(raw: RawObject, errors: list[ManifestError], skipped: Counter[str]) -> KubeObject | None:
    """One typed object, or None when it is invalid (errors recorded) or of a kind we skip (counted)."""
    body = raw.body
    kind = body.get("kind")
    if raw.problems:
        spec = KINDS.get(kind) if isinstance(kind, str) else None
        subject = (
            subject_of(kind, body, spec.namespaced) if spec is not None and isinstance(kind, str) else ""
        )
        for problem in raw.problems:
            errors.append(ManifestError(raw.location, subject, problem.field_path, problem.with_position()))
        return None
    if not isinstance(kind, str) or not kind:
        errors.append(ManifestError(raw.location, "", "kind", "Required value"))
        return None
    spec = KINDS.get(kind)
    if spec is None:
        skipped[kind] += 1
        return None
    api_version = body.get("apiVersion")
    fast = _FAST.get(kind)
    if fast is not None and api_version == spec.api_version and type(body) is dict:
        quick = fast(body, raw.location)
        if quick is not None:
            return quick
    checker = Checker(raw.location, subject_of(kind, body, spec.namespaced), errors)
    if api_version != spec.api_version:
        text = api_version if isinstance(api_version, str) else shown(api_version)
        checker.fail("apiVersion", unsupported(text, (spec.api_version,)))
        return None
    obj = spec.parse(checker, body, raw.location)
    return obj if checker.ok else None


def _of(objects: dict[type, list[KubeObject]], cls: type[K]) -> tuple[K, ...]:
    return tuple(sorted(objects.get(cls, ()), key=by_key))  # type: ignore[arg-type]


def _sorted(objects: list[KubeObject], skipped: Counter[str]) -> Manifests:
    notes: tuple[str, ...] = ()
    if skipped:
        counts = ", ".join(f"{one_line(kind, 63)} ({n})" for kind, n in sorted(skipped.items())[:20])
        if len(skipped) > 20:
            counts += f" and {len(skipped) - 20} more kinds"
        total = sum(skipped.values())
        noun = "object" if total == 1 else "objects"
        notes = (f"note: skipped {total} {noun} of unsupported kinds: {counts}",)
    by_kind: dict[type, list[KubeObject]] = {}  # one pass; the parsers build these exact types
    for obj in objects:
        by_kind.setdefault(type(obj), []).append(obj)
    return Manifests(
        namespaces=_of(by_kind, Namespace),
        pods=_of(by_kind, Pod),
        services=_of(by_kind, Service),
        endpoint_slices=_of(by_kind, EndpointSlice),
        endpoints=_of(by_kind, Endpoints),
        network_policies=_of(by_kind, NetworkPolicy),
        notes=notes,
        cluster_policies=_of(by_kind, ClusterPolicy),
        nodes=_of(by_kind, Node),
    )
