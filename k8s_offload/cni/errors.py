"""CNI error codes and the exception that carries one to the CLI, which prints it as the spec's error JSON."""

from __future__ import annotations

from typing import Any

# Codes defined by the CNI specification 1.1.0 (Section 5, "Error"; 50 and 51 are for STATUS).
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_NETWORK_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
NOT_AVAILABLE_DEGRADED = 51

# Plugin-specific codes (the spec reserves 100 and up for plugins); documented in docs/cni.md.
POOL_EXHAUSTED = 100
NODE_FACTS_INVALID = 101
PLUMBING_FAILED = 102
CHECK_FAILED = 103
IPAM_FAILED = 104  # the IPAM plugin is missing, timed out, or failed without an error document
INTERNAL_ERROR = 199  # a bug in the plugin; stderr has the traceback

MAX_ECHO = 80


def brief(value: object, limit: int = MAX_ECHO) -> str:
    """``repr`` of a value from the runtime, cut to ``limit`` characters: messages stay one short line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


class CniError(Exception):
    """A failure to report to the runtime; ``details`` is optional extra text for humans."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out
