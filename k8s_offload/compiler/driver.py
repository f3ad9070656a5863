"""The main job as a function: manifests and node facts in, a checked bundle out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.frontend.gc_pause import gc_paused
from k8s_offload.compiler.frontend.loader import Manifests, load_inputs
from k8s_offload.compiler.ir.build import build_ir
from k8s_offload.compiler.ir.check import check_ir
from k8s_offload.compiler.ir.model import ClusterIR, Diagnostic
from k8s_offload.compiler.lower.bundle import Lowered, lower
from k8s_offload.compiler.passes.pipeline import PassConfig


@dataclass(frozen=True, slots=True)
class CompileResult:
    manifests: Manifests
    ir: ClusterIR
    lowered: Lowered
    schema: Schema

    @property
    def diagnostics(self) -> tuple[Diagnostic, ...]:
        return tuple(sorted(set(self.ir.diagnostics) | set(self.lowered.diagnostics)))


def compile_sources(
    sources: Sequence[str | Path],
    node: str | Path | None = None,
    *,
    stdin: TextIO | None = None,
    schema: Schema | None = None,
    passes: PassConfig | None = None,
) -> CompileResult:
    """Raises ManifestErrors for bad input and BundleError/CapacityError when entries do not fit.

    The cyclic GC stays paused for the whole compile rather than per stage: each stage that
    re-enabled it paid a collection over everything the earlier stages had built (frontend/gc_pause.py).
    """
    with gc_paused():
        manifests, facts = load_inputs(sources, node, stdin=stdin)
        ir = build_ir(manifests.objects, facts)
        check_ir(ir)
        schema = schema or default_schema()
        return CompileResult(manifests, ir, lower(ir, schema, passes), schema)
