"""Typed cluster IR: build it from front-end objects, verify its invariants, print it."""

from compiler.ir.build import build_ir
from compiler.ir.dump import dump
from compiler.ir.nodes import (
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
from compiler.ir.verify import verify

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
