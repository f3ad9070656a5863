"""A simulator holding a compiled bundle: what `trace` and packet-level tests start from."""

from __future__ import annotations

from compiler.bundle.model import Bundle
from compiler.bundle.p4rt import updates
from compiler.bundle.schema import Schema
from compiler.p4 import load_program
from compiler.sim.errors import P4RuntimeError
from compiler.sim.simulator import Simulator


def simulator_with(schema: Schema, bundle: Bundle) -> Simulator:
    """Install every entity as a P4Runtime server would; any rejection is a compiler bug."""
    sim = Simulator(load_program(), schema.p4info)
    batch = updates(schema, bundle)
    for update, error in zip(batch, sim.state.write(batch), strict=True):
        if error is not None:
            kind = update.entity.WhichOneof("entity")
            raise P4RuntimeError(error.code, f"the device rejected a {kind}: {error.message}")
    return sim
