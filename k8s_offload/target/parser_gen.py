"""Generate the parser: one function per state, returning the next state's function.

Extraction reads the header's bytes as one integer and slices the fields out of it; running off
the end raises ParserError('PacketTooShort') before the header is marked valid, as bmv2 does.
"""

from __future__ import annotations

from k8s_offload.p4 import ast
from k8s_offload.target.codegen import Binding, Codegen, Scope
from k8s_offload.target.context import ParserError

__all__ = ["gen_parser"]


def _keyset(ks: ast.Keyset, var: str) -> str:
    if isinstance(ks, ast.DefaultKeyset):
        return "True"
    if isinstance(ks, ast.MaskKeyset):
        return f"({var} & {ks.mask.value}) == {ks.value.value & ks.mask.value}"
    if isinstance(ks, ast.RangeKeyset):
        return f"{ks.lo.value} <= {var} <= {ks.hi.value}"
    if isinstance(ks, ast.BoolLiteral):
        return f"bool({var}) is {ks.value}"
    return f"{var} == {ks.value}"


def gen_parser(cg: Codegen, parser: ast.Parser, params: dict[str, Binding], path: str) -> str:
    """Emit the state functions of `parser`; returns the name of the start state's function."""
    names = {st.name: cg.fresh("ps_") for st in parser.states}
    sc = Scope(path, parser, params)
    lines: list[str] = []
    for decl in parser.locals:
        if isinstance(decl, ast.VarDecl):
            cg.stmt(decl, sc, lines, "    ")

    def target(state: str) -> str:
        if state == "accept":
            return "None"
        if state == "reject":
            return "_reject()"
        return names[state]

    cg.ns["_reject"] = _reject
    for st in parser.states:
        body = [f"    S[0].states.append({st.name!r})"]
        for s in st.stmts:
            cg.stmt(s, sc, body, "    ")
        tr = st.transition
        if isinstance(tr, ast.Goto):
            body.append(f"    return {target(tr.next_state)}")
        else:
            keys = [cg.fresh("_k") for _ in tr.keys]
            for var, key in zip(keys, tr.keys, strict=True):
                body.append(f"    {var} = {cg.expr(key, sc)}")
            for case in tr.cases:
                cond = " and ".join(_keyset(ks, var) for ks, var in zip(case.keysets, keys, strict=True))
                body.append(f"    if {cond}:")
                body.append(f"        return {target(case.next_state)}")
            body.append("    raise _ParserError('NoMatch')")
        cg.chunks.append(f"def {names[st.name]}(S):  # {parser.name}.{st.name}\n" + "\n".join(body))
    start = cg.fresh("parser_")
    init = "\n".join(lines) if lines else "    pass"
    cg.chunks.append(
        f"def {start}(S):\n{init}\n    st = {names['start']}\n    while st is not None:\n        st = st(S)"
    )
    return start


def _reject() -> None:
    raise ParserError("Reject")
