"""Typed cluster IR: build it from front-end objects, verify its invariants, print it."""

from k8s_offload.compiler.ir.build import build_ir
from k8s_offload.compiler.ir.check import verify
from k8s_offload.compiler.ir.dump import dump
from k8s_offload.compiler.ir.model import (
    Backend,
    BackendSet,
    BackendSetKey,
    ClusterIR,
    Diagnostic,
    NamespaceNode,
    PodEndpoint,
    ServiceFrontend,
    ServiceNode,
)

__all__ = [
    "Backend",
    "BackendSet",
    "BackendSetKey",
    "ClusterIR",
    "Diagnostic",
    "NamespaceNode",
    "PodEndpoint",
    "ServiceFrontend",
    "ServiceNode",
    "build_ir",
    "dump",
    "verify",
]
