"""Source text -> lark parse tree, with syntax errors located in the original files."""

from __future__ import annotations

from functools import cache
from importlib import resources

from lark import Lark, Token, Tree, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from k8s_offload.p4.errors import P4FrontendError
from k8s_offload.p4.preprocess import Preprocessed

_TOKEN_NAMES = {
    "SEMICOLON": "';'", "RBRACE": "'}'", "LBRACE": "'{'", "RPAR": "')'", "LPAR": "'('", "COMMA": "','",
    "NAME": "a name", "COLON": "':'", "EQUAL": "'='", "MORETHAN": "'>'", "LESSTHAN": "'<'",
    "INTEGER": "an integer", "$END": "end of input",
}  # fmt: skip


@cache
def parser() -> Lark:
    """The LALR parser, built once per process (about 0.3 s)."""
    grammar = resources.files("k8s_offload.p4").joinpath("grammar.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"KW_UNSUPPORTED_DECL": _reject_unsupported},
    )


class _Unsupported(Exception):
    def __init__(self, token: Token) -> None:
        self.token = token


def _reject_unsupported(token: Token) -> Token:
    """Stop at the keyword of a declaration kind we do not support, rather than at whatever
    syntax error its body would cause later."""
    raise _Unsupported(token)


def parse(pp: Preprocessed) -> Tree[Token]:
    try:
        return parser().parse(pp.text)
    except _Unsupported as exc:
        tok = exc.token
        raise P4FrontendError(
            pp.loc(tok.line or 0, tok.column or 0),
            f"unsupported construct: '{tok}' declarations are not supported by this front end",
        ) from None
    except UnexpectedInput as exc:
        raise _syntax_error(pp, exc) from None


def _syntax_error(pp: Preprocessed, exc: UnexpectedInput) -> P4FrontendError:
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        expected = sorted(
            _TOKEN_NAMES.get(t, repr(t.lower())) for t in exc.expected if not t.startswith("__")
        )
        hint = f"; expected {', '.join(expected[:6])}" if expected else ""
        # A ';' missing at the end of a line is reported there, as compilers do.
        start = len(pp.text) if tok.type == "$END" else (tok.start_pos or 0)
        end = len(pp.text[:start].rstrip())
        line = pp.text.count("\n", 0, end) + 1
        column = end - pp.text.rfind("\n", 0, end)
        if "SEMICOLON" in exc.expected and (tok.type == "$END" or "\n" in pp.text[end:start]):
            before = "at end of input" if tok.type == "$END" else f"before '{tok}'"
            return P4FrontendError(pp.loc(line, column), f"syntax error: missing ';' {before}")
        if tok.type == "$END":
            return P4FrontendError(pp.loc(line, column), f"syntax error: unexpected end of input{hint}")
        return P4FrontendError(pp.loc(exc.line, exc.column), f"syntax error: unexpected '{tok}'{hint}")
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        char = pp.text[pos] if pos < len(pp.text) else "?"
        return P4FrontendError(pp.loc(exc.line, exc.column), f"syntax error: unexpected character {char!r}")
    if isinstance(exc, UnexpectedEOF):
        return P4FrontendError(pp.loc(len(pp.origins), 1), "syntax error: unexpected end of input")
    return P4FrontendError(pp.loc(exc.line, exc.column), f"syntax error: {exc}")
