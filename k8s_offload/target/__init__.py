"""A behavioural model of our P4 program on v1model, bit-exact with bmv2.

`TargetState` holds what a P4Runtime server would install (validated like PI validates it);
the interpreter (`Interpreter`) runs packets through the program against that state.
"""

from __future__ import annotations

from k8s_offload.target.errors import P4RuntimeError
from k8s_offload.target.state import TargetState

__all__ = ["P4RuntimeError", "TargetState"]
