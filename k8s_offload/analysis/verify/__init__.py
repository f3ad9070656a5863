"""Exact verification of table bundles on BDDs (issue 10): bundle against bundle, stage by stage,
and the policy stages against the resolved NetworkPolicy rules. See docs/verify.md."""

from k8s_offload.analysis.verify.bdd import BackendMissing, Space, load_cudd
from k8s_offload.analysis.verify.equiv import (
    Report,
    StageResult,
    Verifier,
    check_semantics,
    render_report,
    verify,
)

__all__ = [
    "BackendMissing",
    "Report",
    "Space",
    "StageResult",
    "Verifier",
    "check_semantics",
    "load_cudd",
    "render_report",
    "verify",
]
