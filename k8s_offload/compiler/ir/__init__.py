"""Typed cluster IR: build it from front-end objects, check its invariants, print it."""

from k8s_offload.compiler.ir.build import build_ir
from k8s_offload.compiler.ir.check import check_ir
from k8s_offload.compiler.ir.dump import dump
from k8s_offload.compiler.ir.model import (
    Backend,
    BackendSet,
    BackendSetKey,
    ClusterIR,
    Diagnostic,
    NamespaceInfo,
    PodEndpoint,
    ServiceFrontend,
    ServiceInfo,
)

__all__ = [
    "Backend",
    "BackendSet",
    "BackendSetKey",
    "ClusterIR",
    "Diagnostic",
    "NamespaceInfo",
    "PodEndpoint",
    "ServiceFrontend",
    "ServiceInfo",
    "build_ir",
    "check_ir",
    "dump",
]
