"""Source text -> lark parse tree, with syntax errors located in the original files."""

from __future__ import annotations

from functools import cache
from importlib import resources

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from compiler.p4.errors import P4FrontendError
from compiler.p4.preprocess import Preprocessed

_TOKEN_NAMES = {
    "SEMICOLON": "';'", "RBRACE": "'}'", "LBRACE": "'{'", "RPAR": "')'", "LPAR": "'('", "COMMA": "','",
    "NAME": "a name", "COLON": "':'", "EQUAL": "'='", "MORETHAN": "'>'", "LESSTHAN": "'<'",
    "INTEGER": "an integer", "$END": "end of input",
}  # fmt: skip


@cache
def parser() -> Lark:
    """The LALR parser, built once per process (about 0.3 s)."""
    grammar = resources.files("compiler.p4").joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def parse(pp: Preprocessed) -> Tree[Token]:
    try:
        return parser().parse(pp.text)
    except UnexpectedInput as exc:
        raise _syntax_error(pp, exc) from None


def _syntax_error(pp: Preprocessed, exc: UnexpectedInput) -> P4FrontendError:
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        expected = sorted(
            _TOKEN_NAMES.get(t, repr(t.lower())) for t in exc.expected if not t.startswith("__")
        )
        hint = f"; expected {', '.join(expected[:6])}" if expected else ""
        if tok.type == "$END":
            return P4FrontendError(pp.loc(len(pp.origins), 1), f"syntax error: unexpected end of input{hint}")
        # A missing ';' is reported where the previous token ended, as compilers do.
        if "SEMICOLON" in exc.expected and len(exc.expected) <= 3 and exc.token_history:
            prev = exc.token_history[-1]
            if prev.end_line is not None and prev.end_column is not None:
                return P4FrontendError(
                    pp.loc(prev.end_line, prev.end_column), f"syntax error: missing ';' before '{tok}'"
                )
        return P4FrontendError(pp.loc(exc.line, exc.column), f"syntax error: unexpected '{tok}'{hint}")
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        char = pp.text[pos] if pos < len(pp.text) else "?"
        return P4FrontendError(pp.loc(exc.line, exc.column), f"syntax error: unexpected character {char!r}")
    if isinstance(exc, UnexpectedEOF):
        return P4FrontendError(pp.loc(len(pp.origins), 1), "syntax error: unexpected end of input")
    return P4FrontendError(pp.loc(exc.line, exc.column), f"syntax error: {exc}")
