"""Our P4-16 front end (preprocessor, lark grammar, resolver) and P4Info generation.

The names below load on first use (PEP 562): the compiler's command line catches
`P4FrontendError` but compiles from the committed P4Info, so importing this package must not load
the parser, the AST and lark (about 0.2 s of every `offload-compile` run).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOME = {
    "DEFAULT_PROGRAM": "program",
    "P4FrontendError": "errors",
    "build_p4info": "p4info",
    "load_p4info": "p4info",
    "load_program": "program",
    "parse_program_text": "program",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
