"""The v1model pipeline around the generated code: what a packet goes through in simple_switch.

parser -> verify checksum -> ingress -> (drop if egress_spec == 511) -> egress with
egress_port = egress_spec -> (drop if egress_spec == 511) -> compute checksum -> deparser, then
the unparsed bytes as payload. A parser error does not drop the packet: as in bmv2 it goes on to
ingress with the headers extracted so far, `parser_error` set, and the rest left as payload.
Multicast, cloning, resubmit and recirculation are not modelled (our program uses none).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from k8s_offload.p4 import ast
from k8s_offload.target.codegen import Binding, Codegen
from k8s_offload.target.context import Context, ExitPipeline, ParserError, TableEvent
from k8s_offload.target.layout import Layout
from k8s_offload.target.parser_gen import gen_parser
from k8s_offload.target.state import TargetState

__all__ = ["Interpreter", "PacketResult", "Trace"]

DROP_PORT = 511
_ROOTS = {"parser": ("packet", "hdr", "meta", "sm"), "deparser": ("packet", "hdr")}
_CONTROL_ROOTS = ("hdr", "meta", "sm")


@dataclass(slots=True)
class Trace:
    """What happened to one packet, for tests and for `offload` debugging output."""

    parser_states: list[str] = field(default_factory=list)
    parser_error: str = ""
    tables: list[TableEvent] = field(default_factory=list)
    counters: list[tuple[str, int]] = field(default_factory=list)
    drop_reason: str = ""

    def table(self, name: str) -> TableEvent | None:
        """The last application of the table whose full or short name is `name`."""
        for event in reversed(self.tables):
            if event.table == name or event.table.rsplit(".", 1)[-1] == name:
                return event
        return None


@dataclass(slots=True)
class PacketResult:
    """Egress port (None when dropped), the bytes leaving it, and the trace."""

    egress_port: int | None
    data: bytes
    trace: Trace

    @property
    def dropped(self) -> bool:
        return self.egress_port is None


class Interpreter:
    """A program compiled once into Python functions, running against a `TargetState`."""

    def __init__(self, program: ast.Program, p4info: Any, state: TargetState | None = None) -> None:
        """`state`: run against this existing state (built for the same P4Info) instead of a new one."""
        self.program = program
        self.state = TargetState(p4info) if state is None else state
        pipe = program.v1_pipeline()
        self.layout = layout = Layout()
        bindings = self._bind(pipe.parser.params, _ROOTS["parser"])
        cg = Codegen(program, self.state, layout)
        self._parser_name = gen_parser(cg, pipe.parser, bindings, pipe.parser.name)
        names = []
        for block, roots in (
            (pipe.verify_checksum, ("hdr", "meta")),
            (pipe.ingress, _CONTROL_ROOTS),
            (pipe.egress, _CONTROL_ROOTS),
            (pipe.compute_checksum, ("hdr", "meta")),
            (pipe.deparser, _ROOTS["deparser"]),
        ):
            names.append(cg.control_fn(block.name, block, self._bind(block.params, roots)))
        ns = cg.build()
        self.source: str = ns["__source__"]
        self._parser: Callable[[list[Any]], None] = ns[self._parser_name]
        self._verify, self._ingress, self._egress, self._compute, self._deparse = (ns[n] for n in names)
        slot = layout.slots.get
        self._ingress_port = slot(("sm", "ingress_port"))
        self._egress_spec = layout.slot(("sm", "egress_spec"))
        self._egress_port = slot(("sm", "egress_port"))
        self._packet_length = slot(("sm", "packet_length"))
        self._timestamp = slot(("sm", "ingress_global_timestamp"))
        self._parser_error = slot(("sm", "parser_error"))
        self._errors = self._error_members(pipe.parser)
        self._initial: list[Any] = list(layout.initial)

    def _bind(self, params: tuple[ast.Param, ...], roots: tuple[str, ...]) -> dict[str, Binding]:
        out: dict[str, Binding] = {}
        for param, root in zip(params, roots, strict=False):
            if isinstance(param.type, ast.ExternType):
                out[param.name] = "packet"
                continue
            if (root,) not in {p[:1] for p in self.layout.slots}:
                self.layout.add((root,), param.type)
            out[param.name] = (root,)
        return out

    def _error_members(self, parser: ast.Parser) -> tuple[str, ...]:
        for param in parser.params:
            if isinstance(param.type, ast.StructType):
                f = param.type.field("parser_error")
                if f is not None and isinstance(f.type, ast.EnumType):
                    return f.type.members
        return ()

    def process(self, ingress_port: int, data: bytes, time_us: int = 0) -> PacketResult:
        """Run one packet; `time_us` becomes ingress_global_timestamp (48 bits, microseconds)."""
        S = self._initial.copy()
        ctx = Context(data, ingress_len=len(data))
        S[0] = ctx
        if self._ingress_port is not None:
            S[self._ingress_port] = ingress_port & 0x1FF
        if self._packet_length is not None:
            S[self._packet_length] = len(data)
        if self._timestamp is not None:
            S[self._timestamp] = time_us & ((1 << 48) - 1)
        trace = Trace(ctx.states, "", ctx.tables, ctx.counts)
        try:
            self._parser(S)
        except ParserError as err:
            trace.parser_error = str(err)
            if self._parser_error is not None and trace.parser_error in self._errors:
                S[self._parser_error] = self._errors.index(trace.parser_error)
        self._verify(S)
        with contextlib.suppress(ExitPipeline):
            self._ingress(S)
        spec = S[self._egress_spec]
        if spec == DROP_PORT:
            trace.drop_reason = f"ingress: egress_spec = 511 ({ctx.drop_site or 'set by the program'})"
            return PacketResult(None, b"", trace)
        if self._egress_port is not None:
            S[self._egress_port] = spec
        with contextlib.suppress(ExitPipeline):
            self._egress(S)
        if S[self._egress_spec] == DROP_PORT:
            trace.drop_reason = f"egress: egress_spec = 511 ({ctx.drop_site or 'set by the program'})"
            return PacketResult(None, b"", trace)
        self._compute(S)
        self._deparse(S)
        out = b"".join(ctx.out) + data[ctx.pos :]
        if ctx.truncate_len is not None:
            out = out[: ctx.truncate_len]
        return PacketResult(spec, out, trace)

    def parse_only(self, ingress_port: int, data: bytes) -> list[str]:
        """Run just the parser (the benchmark's baseline); returns the states visited."""
        S = self._initial.copy()
        ctx = Context(data, ingress_len=len(data))
        S[0] = ctx
        if self._ingress_port is not None:
            S[self._ingress_port] = ingress_port
        with contextlib.suppress(ParserError):
            self._parser(S)
        return ctx.states
