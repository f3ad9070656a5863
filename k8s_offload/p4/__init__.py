"""Our P4-16 front end (preprocessor, lark grammar, resolver) and P4Info generation."""

from __future__ import annotations

from k8s_offload.p4.errors import P4FrontendError
from k8s_offload.p4.p4info import build_p4info, load_p4info
from k8s_offload.p4.program import DEFAULT_PROGRAM, load_program, parse_program_text

__all__ = [
    "DEFAULT_PROGRAM",
    "P4FrontendError",
    "build_p4info",
    "load_p4info",
    "load_program",
    "parse_program_text",
]
