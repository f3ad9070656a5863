"""Label selectors as the API defines them (meta/v1 LabelSelector)."""

from __future__ import annotations

from k8s_offload.compiler.frontend.model import Labels
from k8s_offload.compiler.frontend.policy import LabelSelector, Operator


def matches(selector: LabelSelector, labels: Labels) -> bool:
    """matchLabels and every matchExpression must hold; NotIn and DoesNotExist match absent keys."""
    have = dict(labels)
    for key, value in selector.match_labels:
        if have.get(key) != value:
            return False
    for req in selector.match_expressions:
        present = req.key in have
        if req.operator is Operator.In:
            if not present or have[req.key] not in req.values:
                return False
        elif req.operator is Operator.NotIn:
            if present and have[req.key] in req.values:
                return False
        elif req.operator is Operator.Exists:
            if not present:
                return False
        elif present:  # DoesNotExist
            return False
    return True
