"""The one error type of the interpreter's control plane: a google.rpc code plus a message.

A P4Runtime server reports every rejected update as a canonical code; carrying that code in the
exception lets the embedded server map it to a `p4.v1.Error` without re-deriving it from text.
"""

from __future__ import annotations

from k8s_offload.p4rt.proto import code_pb2

__all__ = ["P4RuntimeError", "code_name"]


def code_name(code: int) -> str:
    """`NOT_FOUND` for 5, so messages and test failures read like the spec."""
    return str(code_pb2.Code.Name(code))


class P4RuntimeError(Exception):
    """A rejected write or read, with the canonical code the P4Runtime spec prescribes."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code_name(code)}: {message}")
