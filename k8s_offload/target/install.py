"""An interpreter holding a compiled bundle: what `trace` and packet-level tests start from."""

from __future__ import annotations

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.p4rt import updates
from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.p4 import load_program
from k8s_offload.target.errors import P4RuntimeError
from k8s_offload.target.interpreter import Interpreter


def interpreter_with(schema: Schema, bundle: Bundle) -> Interpreter:
    """Install every entity as a P4Runtime server would; any rejection is a compiler bug."""
    sim = Interpreter(load_program(), schema.p4info)
    batch = updates(schema, bundle)
    for update, error in zip(batch, sim.state.write(batch), strict=True):
        if error is not None:
            kind = update.entity.WhichOneof("entity")
            raise P4RuntimeError(error.code, f"the device rejected a {kind}: {error.message}")
    return sim
