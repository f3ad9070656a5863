"""Integer literals and annotation bodies, as the P4-16 lexer reads them."""

from __future__ import annotations

import re

from k8s_offload.p4.ast import NO_LOC, Annotation, SourceLoc

_WIDTHED = re.compile(r"^([0-9]+)([ws])(.+)$")
_ANNOTATION = re.compile(r"^@([A-Za-z_]\w*)\s*(?:\((.*)\))?$", re.S)
_ARG = re.compile(r'\s*("(?:[^"\\]|\\.)*"|[^,]+?)\s*(?:,|$)')


def parse_integer(text: str) -> tuple[int, int | None, bool]:
    """`32w0xff` -> (255, 32, False); `5` -> (5, None, False); `8s-1` is not a literal."""
    width: int | None = None
    signed = False
    match = _WIDTHED.match(text)
    if match:
        width, signed, text = int(match.group(1)), match.group(2) == "s", match.group(3)
    digits = text.replace("_", "")
    base = 10
    if digits[:2].lower() in ("0x", "0b", "0o", "0d"):
        base = {"x": 16, "b": 2, "o": 8, "d": 10}[digits[1].lower()]
        digits = digits[2:]
    try:
        return int(digits, base), width, signed
    except ValueError:
        raise ValueError(f"malformed integer literal {text!r}") from None


def parse_annotation(token: str, loc: SourceLoc = NO_LOC) -> Annotation:
    """An ANNOTATION token -> Annotation; literal arguments are decoded when the body is a
    plain list of integers, strings and booleans."""
    match = _ANNOTATION.match(token)
    assert match is not None, token
    name, body = match.group(1), match.group(2)
    args: list[int | str | bool] = []
    if body is not None and body.strip():
        for raw in (m.group(1) for m in _ARG.finditer(body) if m.group(1)):
            value = _literal(raw)
            if value is None:
                args = []
                break
            args.append(value)
    return Annotation(name, body, tuple(args), loc)


def _literal(raw: str) -> int | str | bool | None:
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        return bytes(raw[1:-1], "utf-8").decode("unicode_escape")
    if raw in ("true", "false"):
        return raw == "true"
    try:
        return parse_integer(raw)[0]
    except ValueError:
        return None
