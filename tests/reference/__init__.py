"""A frozen copy of the full compile path (`build_ir` + `lower` and everything they call) as it
was before the incremental engine (issue 15), kept as an independent oracle: the engine's output
is compared with it in tests/reference/test_oracle.py. Shared with the compiler: the data types
(frontend model, IR records, rule IR, bundle model and schema), nothing that computes.

`compile_reference(objects, facts, schema, config)` is `lower(build_ir(objects, facts), ...)`.

Why it stays (for now): the engine's one-shot and tracking runs are the same units, so comparing
them can only catch engine bugs, not a unit computing the wrong thing; this copy is the only
independent implementation, and the state machine, the golden replay and the synthetic-cluster
tests compare with it. Its cost: a semantic change made on purpose must be made here too (done
for main's gateway-address check) or the comparisons adjusted. When the next such change would
mean rewriting part of it (a leaner Service layout, policy tiers), retire it in favour of the
golden cases and the IR text fixtures.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.compiler.frontend.loader import KubeObject
from k8s_offload.compiler.frontend.nodefacts import NodeFacts
from tests.reference.ir_build import build_ir
from tests.reference.lower_bundle import Lowered, lower


def compile_reference(
    objects: Iterable[KubeObject], facts: NodeFacts | None, schema: Schema, config: Any = None
) -> Lowered:
    """The frozen full path; `config` is a PassConfig (read: enabled, profile, lb, check)."""
    return lower(build_ir(objects, facts), schema, config)
