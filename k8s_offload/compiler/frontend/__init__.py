"""Kubernetes front end: manifests and node facts in, typed and validated objects out."""

from k8s_offload.compiler.frontend.loader import KubeObject, Manifests, load_manifests, load_text
from k8s_offload.compiler.frontend.nodefacts import (
    DEFAULT_NODE_FACTS,
    NodeFacts,
    load_node_facts,
    parse_node_facts,
)

__all__ = [
    "DEFAULT_NODE_FACTS",
    "KubeObject",
    "Manifests",
    "NodeFacts",
    "load_manifests",
    "load_node_facts",
    "load_text",
    "parse_node_facts",
]
