"""The main job as a function: manifests and node facts in, a checked bundle out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from k8s_offload import gcpause
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.compilation import compile_objects
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.frontend.loader import Manifests, load_inputs
from k8s_offload.compiler.ir.model import ClusterIR, Diagnostic
from k8s_offload.compiler.lower.bundle import Lowered
from k8s_offload.compiler.passes.pipeline import PassConfig

if TYPE_CHECKING:
    from k8s_offload.console import PhaseHook


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
    progress: PhaseHook | None = None,
) -> CompileResult:
    """Raises ManifestErrors for bad input and BundleError/CapacityError when entries do not fit;
    the PIPELINE's units run once (compiler/compilation.py).

    The cyclic GC stays paused for the whole compile rather than per stage: each stage that
    re-enabled it paid a collection over everything the earlier stages had built (k8s_offload/gcpause.py).
    `progress` is called after each stage with what it made (k8s_offload.console.Progress).
    """
    report = progress or _silent
    with gcpause.paused():
        manifests, facts = load_inputs(sources, node, stdin=stdin)
        report("load", len(manifests.objects), "objects")
        schema = schema or default_schema()
        c = compile_objects(manifests.objects, facts, schema, passes)
        lowered = Lowered(c.bundle(), c.lowering_diagnostics(), c.policy(), c.tiers())
        ir = c.ir()
        c.release()
        records = len(ir.pods) + len(ir.services) + len(ir.frontends) + len(ir.backend_sets)
        report("ir", records + len(ir.network_policies), "records")
        bundle = lowered.bundle
        report(
            "passes and lowering", len(bundle.entries) + len(bundle.members) + len(bundle.groups), "entities"
        )
        return CompileResult(manifests, ir, lowered, schema)


def _silent(phase: str, count: int, unit: str) -> None:
    pass
