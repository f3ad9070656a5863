"""Compile the program model into Python source, once, and exec it into plain functions.

Each parser state, control instance, table and action becomes one Python function over the flat
slot list `S` (see layout.py); expressions become inline Python expressions with explicit
wraparound masks, so a packet runs straight-line code with no AST walking and no per-node calls.
Objects the code needs at run time (match engines, register arrays, hash functions) are bound
into the generated module's namespace under generated names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from k8s_offload.p4 import ast
from k8s_offload.target import context as runtime
from k8s_offload.target.hashes import ALGORITHMS
from k8s_offload.target.layout import HeaderSlots, Layout, Path
from k8s_offload.target.state import TargetState

__all__ = ["Codegen", "Scope"]

Binding = Path | str  # a slot path prefix, or "packet" for packet_in/packet_out parameters


@dataclass(slots=True)
class Scope:
    """Names visible in one control instance, parser or action body."""

    path: str
    block: ast.Control | ast.Parser
    params: dict[str, Binding]
    locals: dict[str, Path] = field(default_factory=dict)
    action_params: dict[str, str] = field(default_factory=dict)


def _mask(width: int) -> int:
    return (1 << width) - 1


def _width(t: ast.Type) -> int:
    return 1 if isinstance(t, ast.BoolType) else ast.type_width(t)


class Codegen:
    """Accumulates generated functions; `build()` execs them and returns the namespace."""

    def __init__(self, program: ast.Program, state: TargetState, layout: Layout) -> None:
        self.program = program
        self.state = state
        self.layout = layout
        self.chunks: list[str] = []
        self.ns: dict[str, Any] = {
            "_ParserError": runtime.ParserError,
            "_Exit": runtime.ExitPipeline,
            "_Event": runtime.TableEvent,
            "_shl": runtime.shl,
            "_sx": runtime.sign,
            "_packv": runtime.pack_valid,
        }
        self.actions_by_id: dict[int, str] = {}
        self.action_names: dict[int, str] = {}
        self._tables: dict[tuple[str, str], str] = {}
        self._actions: dict[tuple[str, str], str] = {}
        self._controls: dict[tuple[str, tuple[tuple[str, Binding], ...]], str] = {}
        self._uid = 0
        self.drop_slots: tuple[int, int | None] = (0, None)  # egress_spec, mcast_grp

    # ---- helpers ------------------------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        self._uid += 1
        return f"{prefix}{self._uid}"

    def bind(self, obj: Any, prefix: str) -> str:
        name = self.fresh(prefix)
        self.ns[name] = obj
        return name

    def build(self) -> dict[str, Any]:
        source = "\n\n".join(self.chunks)
        self.ns["_ACT"] = {}
        self.ns["_NAMES"] = self.action_names
        exec(compile(source, "<p4-sim>", "exec"), self.ns)
        self.ns["_ACT"].update({aid: self.ns[fn] for aid, fn in self.actions_by_id.items()})
        self.ns["__source__"] = source
        return self.ns

    def p4info_id(self, kind: dict[int, Any], name: str, annotated: int | None, prefix: int) -> int:
        """The P4Info id of an object: its @id (with p4c's resource prefix), else its full name."""
        if annotated is not None:
            candidate = annotated if annotated >> 24 else (prefix << 24) | annotated
            if candidate in kind:
                return candidate
        by_name = {getattr(v, "name", None) or v[0]: k for k, v in kind.items()}
        if name in by_name:
            return by_name[name]
        short = [
            k
            for n, k in by_name.items()
            if n == name.split(".", 1)[-1] or n.endswith("." + name.rsplit(".", 1)[-1])
        ]
        if len(short) == 1:
            return short[0]
        raise LookupError(f"{name}: not found in P4Info")

    # ---- expressions --------------------------------------------------------------------------

    def path_of(self, e: ast.Expr, sc: Scope) -> Path:
        if isinstance(e, ast.PathRef):
            if e.kind == "param":
                binding = sc.params[e.name]
                if isinstance(binding, str):
                    raise TypeError(f"{e.name} is a packet, not a value")
                return binding
            if e.kind == "local":
                return sc.locals[e.name]
            raise TypeError(f"{e.name} ({e.kind}) has no storage")
        if isinstance(e, ast.Member):
            return (*self.path_of(e.expr, sc), e.member)
        raise TypeError(f"{type(e).__name__} is not an lvalue")

    def header(self, e: ast.Expr, sc: Scope) -> HeaderSlots:
        return self.layout.headers[self.path_of(e, sc)]

    def expr(self, e: ast.Expr, sc: Scope) -> str:
        """A Python expression computing `e` from `S`, normalized to its type's width."""
        if isinstance(e, ast.Constant):
            return str(e.value)
        if isinstance(e, ast.BoolLiteral):
            return "True" if e.value else "False"
        if isinstance(e, ast.PathRef) and e.kind == "action_param":
            return sc.action_params[e.name]
        if isinstance(e, ast.Member) and isinstance(e.expr, ast.TableApply):
            fn = self.table_fn(sc, e.expr.table)
            if e.member == "hit":
                return f"{fn}(S)[0]"
            if e.member == "miss":
                return f"(not {fn}(S)[0])"
            return f"{fn}(S)[1]"
        if isinstance(e, ast.PathRef | ast.Member):
            path = self.path_of(e, sc)
            if path in self.layout.slots:
                return f"S[{self.layout.slots[path]}]"
            raise NotImplementedError(f"{'.'.join(path)}: struct- or header-valued expression")
        if isinstance(e, ast.Slice):
            return f"(({self.expr(e.expr, sc)} >> {e.lo}) & {_mask(e.hi - e.lo + 1)})"
        if isinstance(e, ast.IsValid):
            return f"S[{self.header(e.header, sc).valid}]"
        if isinstance(e, ast.Mux):
            return f"({self.expr(e.then, sc)} if {self.expr(e.cond, sc)} else {self.expr(e.else_, sc)})"
        if isinstance(e, ast.Cast):
            return self._cast(e, sc)
        if isinstance(e, ast.Unary):
            inner = self.expr(e.expr, sc)
            if e.op == "!":
                return f"(not {inner})"
            width = _width(e.type)
            return f"(({e.op}{inner}) & {_mask(width)})"
        if isinstance(e, ast.Binary):
            return self._binary(e, sc)
        if isinstance(e, ast.EnumMember) and isinstance(e.type, ast.EnumType):
            return str(e.type.members.index(e.member))  # as stored: the member's index (layout.py)
        raise NotImplementedError(f"expression {type(e).__name__} at {getattr(e, 'loc', '?')}")

    def _cast(self, e: ast.Cast, sc: Scope) -> str:
        inner = self.expr(e.expr, sc)
        src, dst = e.expr.type, e.type
        if isinstance(dst, ast.BoolType):
            return f"({inner} != 0)"
        if not isinstance(dst, ast.BitsType):
            return inner
        if isinstance(src, ast.BoolType):
            return f"(1 if {inner} else 0)"
        if isinstance(src, ast.BitsType):
            if src.signed and src.width < dst.width:
                return f"(_sx({inner}, {src.width}) & {_mask(dst.width)})"
            if src.width <= dst.width:
                return inner
        return f"({inner} & {_mask(dst.width)})"

    def _binary(self, e: ast.Binary, sc: Scope) -> str:
        left, right = self.expr(e.left, sc), self.expr(e.right, sc)
        op = e.op
        if op == "&&":
            return f"({left} and {right})"
        if op == "||":
            return f"({left} or {right})"
        if op == "++":
            return f"(({left} << {_width(e.right.type)}) | {right})"
        ltype = e.left.type
        signed = isinstance(ltype, ast.BitsType) and ltype.signed
        if op in ("==", "!=", "<", ">", "<=", ">="):
            if signed and op not in ("==", "!="):
                w = _width(ltype)
                return f"(_sx({left}, {w}) {op} _sx({right}, {w}))"
            return f"({left} {op} {right})"
        if not isinstance(e.type, ast.BitsType):
            return f"({left} {op} {right})"  # unsized (IntType) arithmetic: exact
        width = e.type.width
        mask = _mask(width)
        if op in ("&", "|", "^"):
            return f"({left} {op} {right})"
        if op == ">>":
            if signed:
                return f"((_sx({left}, {width}) >> {right}) & {mask})"
            return f"({left} >> {right})"
        if op == "<<":
            if isinstance(e.right, ast.Constant):
                return f"(({left} << {e.right.value}) & {mask})" if e.right.value < width else "0"
            return f"_shl({left}, {right}, {width})"
        return f"(({left} {op} {right}) & {mask})"

    # ---- field lists (hash and checksum inputs) -----------------------------------------------

    def pack(self, data: ast.Expr, sc: Scope) -> str:
        """Bytes of a field list as bmv2 builds them (fields of invalid headers are skipped)."""
        elements = data.elements if isinstance(data, ast.ListExpr) else (data,)
        items: list[tuple[str, int, str | None]] = []
        for el in elements:
            if isinstance(el.type, ast.HeaderType):
                hdr = self.header(el, sc)
                items.extend((f"S[{slot}]", w, f"S[{hdr.valid}]") for slot, w in hdr.fields)
                continue
            valid = None
            if isinstance(el, ast.Member):
                parent = self.path_of(el.expr, sc) if isinstance(el.expr, ast.Member | ast.PathRef) else None
                if parent is not None and parent in self.layout.headers:
                    valid = f"S[{self.layout.headers[parent].valid}]"
            items.append((self.expr(el, sc), _width(el.type), valid))
        inline = self._pack_inline(items)
        valids = sorted({v for _, _, v in items if v is not None})
        if valids:
            # Fast path when every header involved is valid; bmv2's skipping rule otherwise.
            parts = ", ".join(f"({x}, {w}, {v or 'True'})" for x, w, v in items)
            return f"({inline} if {' and '.join(valids)} else _packv(({parts},)))"
        return inline

    @staticmethod
    def _pack_inline(items: list[tuple[str, int, str | None]]) -> str:
        total = sum(w for _, w, _ in items)
        pad = -total % 8
        shift = total + pad
        terms = []
        for x, w, _ in items:
            shift -= w
            terms.append(f"({x} << {shift})" if shift else x)
        return f"({' | '.join(terms) or '0'}).to_bytes({(total + pad) // 8}, 'big')"

    # ---- statements ---------------------------------------------------------------------------

    def block(self, stmts: tuple[ast.Stmt, ...], sc: Scope, out: list[str], ind: str) -> None:
        start = len(out)
        for s in stmts:
            self.stmt(s, sc, out, ind)
        if len(out) == start:
            out.append(f"{ind}pass")

    def stmt(self, s: ast.Stmt, sc: Scope, out: list[str], ind: str) -> None:
        if isinstance(s, ast.Block):
            self.block(s.stmts, sc, out, ind)
        elif isinstance(s, ast.Assign):
            self._assign(s, sc, out, ind)
        elif isinstance(s, ast.VarDecl):
            path = (sc.path, "$var", s.name, str(self.fresh("")))
            self.layout.add(path, s.type)
            sc.locals[s.name] = path
            if s.init is not None:
                out.append(f"{ind}S[{self.layout.slots[path]}] = {self.expr(s.init, sc)}")
            elif path in self.layout.slots:
                out.append(f"{ind}S[{self.layout.slots[path]}] = 0")
        elif isinstance(s, ast.If):
            out.append(f"{ind}if {self.expr(s.cond, sc)}:")
            self.block(s.then.stmts, sc, out, ind + "    ")
            if s.else_ is not None and s.else_.stmts:
                out.append(f"{ind}else:")
                self.block(s.else_.stmts, sc, out, ind + "    ")
        elif isinstance(s, ast.Switch):
            self._switch(s, sc, out, ind)
        elif isinstance(s, ast.Exit):
            out.append(f"{ind}raise _Exit()")
        elif isinstance(s, ast.Return):
            out.append(f"{ind}return")
        elif isinstance(s, ast.EmptyStmt):
            out.append(f"{ind}pass")
        elif isinstance(s, ast.CallStmt):
            self.call(s.call, sc, out, ind)
        else:
            raise NotImplementedError(f"statement {type(s).__name__}")

    def _assign(self, s: ast.Assign, sc: Scope, out: list[str], ind: str) -> None:
        lhs = s.lhs
        if isinstance(lhs, ast.Slice):
            slot = self.layout.slots[self.path_of(lhs.expr, sc)]
            m = _mask(lhs.hi - lhs.lo + 1) << lhs.lo
            value = self.expr(s.rhs, sc)
            out.append(f"{ind}S[{slot}] = (S[{slot}] & ~{m}) | (({value} << {lhs.lo}) & {m})")
            return
        path = self.path_of(lhs, sc)
        if path in self.layout.slots:
            out.append(f"{ind}S[{self.layout.slots[path]}] = {self.expr(s.rhs, sc)}")
            return
        # Whole header or struct: copy every slot under the source path.
        src = self.path_of(s.rhs, sc)
        for p, slot in list(self.layout.slots.items()):
            if p[: len(path)] == path:
                out.append(f"{ind}S[{slot}] = S[{self.layout.slots[(*src, *p[len(path) :])]}]")

    def _switch(self, s: ast.Switch, sc: Scope, out: list[str], ind: str) -> None:
        fn = self.table_fn(sc, s.table)
        var = self.fresh("_r")
        out.append(f"{ind}{var} = {fn}(S)[1]")
        control = sc.block
        assert isinstance(control, ast.Control)
        pending: list[str | None] = []
        first = True
        for case in s.cases:
            pending.extend(case.labels)
            if case.body is None:
                continue
            if None in pending:
                out.append(f"{ind}{'if True' if first else 'else'}:")
            else:
                ids = [self.action_fn(sc, control.action(str(label)))[1] for label in pending]
                out.append(f"{ind}{'if' if first else 'elif'} {var} in {tuple(ids)!r}:")
            self.block(case.body.stmts, sc, out, ind + "    ")
            first = False
            pending = []

    # ---- calls --------------------------------------------------------------------------------

    def call(self, c: ast.Call, sc: Scope, out: list[str], ind: str) -> None:
        if isinstance(c, ast.ApplyCall):
            if c.kind == "table":
                out.append(f"{ind}{self.table_fn(sc, c.instance)}(S)")
            else:
                out.append(f"{ind}{self.instance_fn(sc, c.instance, c.args)}(S)")
        elif isinstance(c, ast.ActionCall):
            control = sc.block
            assert isinstance(control, ast.Control)
            fn, _ = self.action_fn(sc, control.action(c.action))
            args = "".join(self.expr(a, sc) + ", " for a in c.args)
            out.append(f"{ind}{fn}(S, ({args}))")
        elif isinstance(c, ast.MethodCall):
            self._method(c, sc, out, ind)
        else:
            self._function(c, sc, out, ind)

    def _extern(self, target: ast.Expr, sc: Scope) -> ast.ExternInstance:
        if not isinstance(target, ast.PathRef) or not isinstance(sc.block, ast.Control):
            raise NotImplementedError(f"extern call on {target}")
        return sc.block.extern(target.name)

    def _method(self, c: ast.MethodCall, sc: Scope, out: list[str], ind: str) -> None:
        if c.extern == "header":
            hdr = self.header(c.target, sc)
            if c.method in ("setValid", "setInvalid"):
                out.append(f"{ind}S[{hdr.valid}] = {1 if c.method == 'setValid' else 0}")
                return
        elif c.extern == "packet_in" and c.method == "extract" and len(c.args) == 1:
            self._extract(self.header(c.args[0], sc), out, ind)
            return
        elif c.extern == "packet_out" and c.method == "emit":
            hdr = self.header(c.args[0], sc)
            out.append(f"{ind}if S[{hdr.valid}]:")
            out.append(f"{ind}    S[0].out.append({self._header_bytes(hdr)})")
            return
        elif c.extern == "register":
            self._register(c, sc, out, ind)
            return
        elif c.extern == "counter" and c.method == "count":
            inst = self._extern(c.target, sc)
            assert isinstance(inst, ast.CounterInstance)
            full = f"{sc.path}.{inst.name}"
            cid = self.p4info_id(self.state.index.counters, full, inst.id, 0x12)
            packets, octets = self.state.counters[cid]
            cp, cb = self.bind(packets, "_cp"), self.bind(octets, "_cb")
            i = self.fresh("_i")
            out.append(f"{ind}{i} = {self.expr(c.args[0], sc)}")
            out.append(f"{ind}if {i} < {len(packets)}:")
            out.append(f"{ind}    {cp}[{i}] += 1")
            out.append(f"{ind}    {cb}[{i}] += S[0].ingress_len")
            out.append(f"{ind}    S[0].counts.append(({full!r}, {i}))")
            return
        elif c.extern == "direct_counter":
            return  # direct counters are not exposed in our P4Info; counting them is a no-op here
        raise NotImplementedError(f"{c.extern}.{c.method} at {c.loc}")

    def _register(self, c: ast.MethodCall, sc: Scope, out: list[str], ind: str) -> None:
        inst = self._extern(c.target, sc)
        assert isinstance(inst, ast.RegisterInstance)
        rid = self.p4info_id(self.state.index.registers, f"{sc.path}.{inst.name}", inst.id, 0x16)
        cells = self.state.registers[rid]
        reg = self.bind(cells, "_reg")
        i = self.fresh("_i")
        if c.method == "read":
            dst, index = c.args
            out.append(f"{ind}{i} = {self.expr(index, sc)}")
            out.append(f"{ind}if {i} < {len(cells)}:")
            out.append(f"{ind}    S[{self.layout.slots[self.path_of(dst, sc)]}] = {reg}[{i}]")
        elif c.method == "write":
            index, value = c.args
            out.append(f"{ind}{i} = {self.expr(index, sc)}")
            out.append(f"{ind}if {i} < {len(cells)}:")
            out.append(f"{ind}    {reg}[{i}] = {self.expr(value, sc)}")
        else:
            raise NotImplementedError(f"register.{c.method}")

    def _function(self, c: ast.FunctionCall, sc: Scope, out: list[str], ind: str) -> None:
        name = c.function
        if name == "mark_to_drop":
            path = self.path_of(c.args[0], sc)
            out.append(f"{ind}S[{self.layout.slots[(*path, 'egress_spec')]}] = 511")
            if (*path, "mcast_grp") in self.layout.slots:
                out.append(f"{ind}S[{self.layout.slots[(*path, 'mcast_grp')]}] = 0")
            out.append(f"{ind}S[0].drop_site = {sc.path!r}")
            return
        if name == "truncate":
            # bmv2 Packet::truncate keeps the smallest length; it applies to the deparsed packet.
            n = self.fresh("_n")
            out.append(f"{ind}{n} = {self.expr(c.args[0], sc)}")
            out.append(f"{ind}if S[0].truncate_len is None or {n} < S[0].truncate_len:")
            out.append(f"{ind}    S[0].truncate_len = {n}")
            return
        if name == "hash":
            dst, algo, base, data, limit = c.args
            fn = self._algorithm(algo)
            slot = self.layout.slots[self.path_of(dst, sc)]
            h, b, m = self.expr(base, sc), self.fresh("_h"), self.expr(limit, sc)
            out.append(f"{ind}{b} = {fn}({self.pack(data, sc)})")
            width = self.layout.widths[slot]
            if isinstance(limit, ast.Constant):
                value = f"({h} + {b} % {m})" if limit.value else h
            else:
                value = f"(({h} + {b} % {m}) if {m} else {h})"
            out.append(f"{ind}S[{slot}] = {value} & {_mask(width)}")
            return
        if name in (
            "update_checksum",
            "update_checksum_with_payload",
            "verify_checksum",
            "verify_checksum_with_payload",
        ):
            cond, data, dst, algo = c.args
            fn = self._algorithm(algo)
            slot = self.layout.slots[self.path_of(dst, sc)]
            payload = " + S[0].payload()" if name.endswith("_with_payload") else ""
            value = f"({fn}({self.pack(data, sc)}{payload}) & {_mask(self.layout.widths[slot])})"
            out.append(f"{ind}if {self.expr(cond, sc)}:")
            if name.startswith("update"):
                out.append(f"{ind}    S[{slot}] = {value}")
            else:
                err = self.layout.slots.get(("sm", "checksum_error"))
                if err is not None:
                    out.append(f"{ind}    if {value} != S[{slot}]:")
                    out.append(f"{ind}        S[{err}] = 1")
                else:
                    out.append(f"{ind}    pass")
            return
        raise NotImplementedError(f"extern function {name} at {c.loc}")

    def _algorithm(self, algo: ast.Expr) -> str:
        if not isinstance(algo, ast.EnumMember) or algo.member not in ALGORITHMS:
            raise NotImplementedError(f"hash algorithm {algo}")
        return self.bind(ALGORITHMS[algo.member], f"_{algo.member}_")

    # ---- headers on the wire ------------------------------------------------------------------

    def _header_bytes(self, hdr: HeaderSlots) -> str:
        total = sum(w for _, w in hdr.fields)
        if total % 8:
            raise NotImplementedError(f"{hdr.name}: header of {total} bits is not byte aligned")
        shift = total
        terms = []
        for slot, w in hdr.fields:
            shift -= w
            terms.append(f"(S[{slot}] << {shift})" if shift else f"S[{slot}]")
        return f"({' | '.join(terms)}).to_bytes({hdr.nbytes}, 'big')"

    def _extract(self, hdr: HeaderSlots, out: list[str], ind: str) -> None:
        total = sum(w for _, w in hdr.fields)
        if total % 8:
            raise NotImplementedError(f"{hdr.name}: header of {total} bits is not byte aligned")
        out.append(f"{ind}_c = S[0]; _p = _c.pos; _e = _p + {hdr.nbytes}")
        out.append(f"{ind}if _e > len(_c.data):")
        out.append(f"{ind}    raise _ParserError('PacketTooShort')")
        out.append(f"{ind}_v = int.from_bytes(_c.data[_p:_e], 'big'); _c.pos = _e")
        shift = total
        for slot, w in hdr.fields:
            shift -= w
            if shift:
                out.append(f"{ind}S[{slot}] = (_v >> {shift}) & {_mask(w)}")
            else:
                out.append(f"{ind}S[{slot}] = _v & {_mask(w)}")
        out.append(f"{ind}S[{hdr.valid}] = 1")

    # ---- functions for controls, tables, actions ----------------------------------------------

    def control_fn(self, path: str, control: ast.Control, params: dict[str, Binding]) -> str:
        key = (path, tuple(sorted(params.items())))
        if key in self._controls:
            return self._controls[key]
        fn = self.fresh("ctl_")
        self._controls[key] = fn
        sc = Scope(path, control, params)
        body: list[str] = []
        for decl in control.locals:
            if isinstance(decl, ast.VarDecl):
                self.stmt(decl, sc, body, "    ")
        self.block(control.body.stmts, sc, body, "    ")
        self.chunks.append(f"def {fn}(S):  # {path}\n" + "\n".join(body))
        return fn

    def instance_fn(self, sc: Scope, name: str, args: tuple[ast.Expr, ...]) -> str:
        control = sc.block
        assert isinstance(control, ast.Control)
        inst = control.instance(name)
        child = self.program.control(inst.control)
        params: dict[str, Binding] = {}
        for param, arg in zip(child.params, args, strict=True):
            if isinstance(arg, ast.PathRef) and arg.kind == "param" and isinstance(sc.params[arg.name], str):
                params[param.name] = sc.params[arg.name]
            else:
                params[param.name] = self.path_of(arg, sc)
        return self.control_fn(f"{sc.path}.{name}", child, params)

    def action_fn(self, sc: Scope, action: ast.Action) -> tuple[str, int]:
        key = (sc.path, action.name)
        full = f"{sc.path}.{action.name}"
        aid = self.p4info_id(self.state.index.actions, full, action.id, 0x01)
        if key in self._actions:
            return self._actions[key], aid
        fn = self.fresh("act_")
        self._actions[key] = fn
        self.actions_by_id.setdefault(aid, fn)
        self.action_names[aid] = action.name
        inner = Scope(f"{sc.path}.{action.name}", sc.block, sc.params, dict(sc.locals))
        for i, p in enumerate(action.params):
            inner.action_params[p.name] = f"A[{i}]"
        body: list[str] = []
        self.block(action.body.stmts, inner, body, "    ")
        self.chunks.append(f"def {fn}(S, A):  # {full}\n" + "\n".join(body))
        return fn, aid

    def table_fn(self, sc: Scope, name: str) -> str:
        key = (sc.path, name)
        if key in self._tables:
            return self._tables[key]
        control = sc.block
        assert isinstance(control, ast.Control)
        table = control.table(name)
        full = f"{sc.path}.{name}"
        tid = self.p4info_id(self.state.index.tables, full, table.id, 0x02)
        ts = self.state.tables[tid]
        for ref in table.actions:
            self.action_fn(sc, control.action(ref.action))
        if not ts.default[0] and table.default_action is not None and ts.profile is None:
            # bmv2 holds no default for a table with an action profile (p4c drops it with a
            # warning): a miss there runs no action, whatever the source says.
            da = table.default_action
            _, daid = self.action_fn(sc, control.action(da.action))
            args = tuple(a.value for a in da.args if isinstance(a, ast.Constant))
            ts.default = ts.initial_default = (daid, args)
        fn = self.fresh("tbl_")
        self._tables[key] = fn
        ts_name = self.bind(ts, "_ts")
        lookup = self.bind(ts.engine.lookup, "_lookup")
        keys = "".join(self.expr(k.expr, sc) + ", " for k in table.match_keys)
        lines = [f"def {fn}(S):  # {full}", f"    e = {lookup}(({keys}))" if keys else "    e = None"]
        lines += [
            "    if e is None:",
            f"        aid, args = {ts_name}.default",
            "        hit = False",
            "    else:",
            "        hit = True",
        ]
        if ts.profile is None:
            lines.append("        aid, args = e.action_id, e.args")
        else:
            prof = self.bind(ts.profile, "_prof")
            impl = control.extern(table.implementation or "")
            assert isinstance(impl, ast.ActionProfileInstance)
            lines += [
                "        if e.member_id:",
                f"            m = {prof}.members[e.member_id]",
                "            aid, args = m.action_id, m.args",
                "        else:",
                f"            ms = {prof}.groups[e.group_id].ordered",
                "            if ms:",
            ]
            if impl.with_selector:
                algo = impl.algorithm or "crc16"
                fn_hash = self.bind(ALGORITHMS[algo], f"_{algo}_")
                sel = ast.ListExpr(tuple(k.expr for k in table.selector_keys), ast.TupleType(()))
                width = impl.output_width or 64
                lines.append(
                    f"                m = ms[({fn_hash}({self.pack(sel, sc)}) & {_mask(width)}) % len(ms)]"
                )
            else:
                lines.append("                m = ms[0]")
            lines += [
                "                aid, args = m.action_id, m.args",
                "            else:",  # bmv2: an empty group is a hit that runs no action
                "                aid, args = 0, ()",
            ]
        lines += [
            f"    S[0].tables.append(_Event({full!r}, hit, _NAMES.get(aid, ''), args,"
            " e.key if e is not None else None, e.priority if e is not None else 0,"
            " e.member_id if e is not None else 0, e.group_id if e is not None else 0))",
            "    if aid:",
            "        _ACT[aid](S, args)",
            "    return hit, aid",
        ]
        self.chunks.append("\n".join(lines))
        return fn
