"""Typed NetworkPolicy (networking.k8s.io/v1); validated here, lowered to entries by a later pass."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from k8s_offload.compiler.errors import Location
from k8s_offload.compiler.frontend.model import IPNetwork, Labels, ObjectKey, Protocol


class Operator(StrEnum):
    In = "In"
    NotIn = "NotIn"
    Exists = "Exists"
    DoesNotExist = "DoesNotExist"


class PolicyType(StrEnum):
    Ingress = "Ingress"
    Egress = "Egress"


@dataclass(frozen=True, slots=True)
class SelectorRequirement:
    key: str
    operator: Operator
    values: tuple[str, ...]
    """Sorted and deduplicated: the API treats them as a set."""


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """All terms must match; an empty selector matches everything."""

    match_labels: Labels
    match_expressions: tuple[SelectorRequirement, ...]

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True, slots=True)
class IPBlock:
    cidr: IPNetwork
    except_: tuple[IPNetwork, ...]


@dataclass(frozen=True, slots=True)
class PolicyPeer:
    """Exactly one of: ip_block, or one or both selectors (a missing namespace selector means "own")."""

    pod_selector: LabelSelector | None
    namespace_selector: LabelSelector | None
    ip_block: IPBlock | None


@dataclass(frozen=True, slots=True)
class PolicyPort:
    protocol: Protocol
    port: int | str | None
    """None matches all ports; a string is a named container port resolved per pod."""
    end_port: int | None


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One ingress or egress rule; empty peers (or ports) means all peers (or ports)."""

    peers: tuple[PolicyPeer, ...]
    ports: tuple[PolicyPort, ...]


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    key: ObjectKey
    labels: Labels
    pod_selector: LabelSelector
    policy_types: tuple[PolicyType, ...]
    """Effective types, defaulted like the API server: Ingress, plus Egress when egress rules exist."""
    ingress: tuple[PolicyRule, ...]
    egress: tuple[PolicyRule, ...]
    location: Location = field(compare=False, repr=False)
