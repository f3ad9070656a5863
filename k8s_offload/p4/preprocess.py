"""A small C-style preprocessor for P4: `#include`, include guards, object-like `#define`.

It keeps one entry per output line naming the original file and line, so parse and type
errors point at the source the user wrote, not at the spliced text. `<core.p4>` and
`<v1model.p4>` produce no text: their declarations are built in (see arch_v1model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from k8s_offload.p4.ast import SourceLoc
from k8s_offload.p4.errors import P4FrontendError

BUILTIN_INCLUDES = ("core.p4", "v1model.p4")

_DIRECTIVE = re.compile(r"^\s*#\s*(\w+)\s*(.*?)\s*$")
_IDENT = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True, slots=True)
class Preprocessed:
    """The spliced text, the origin of each of its lines, and the built-ins it asked for."""

    text: str
    origins: tuple[tuple[str, int], ...]
    builtins: tuple[str, ...]

    def loc(self, line: int, column: int) -> SourceLoc:
        """Map a 1-based line/column of `text` back to the original file."""
        if 1 <= line <= len(self.origins):
            file, orig = self.origins[line - 1]
            return SourceLoc(file, orig, column)
        file, orig = self.origins[-1] if self.origins else ("<empty>", 0)
        return SourceLoc(file, orig + 1, 1)


class _State:
    def __init__(self, display_root: Path | None) -> None:
        self.lines: list[str] = []
        self.origins: list[tuple[str, int]] = []
        self.macros: dict[str, str] = {}
        self.builtins: list[str] = []
        self.stack: list[Path] = []
        self.display_root = display_root

    def display(self, path: Path) -> str:
        if self.display_root is not None:
            try:
                return str(path.relative_to(self.display_root))
            except ValueError:
                pass
        return str(path)


def preprocess_file(path: Path, display_root: Path | None = None) -> Preprocessed:
    """Preprocess `path`; file names in locations are shown relative to `display_root`."""
    state = _State(display_root)
    _process(state, path.resolve(), None)
    return Preprocessed("\n".join(state.lines) + "\n", tuple(state.origins), tuple(state.builtins))


def preprocess_text(text: str, name: str = "<string>", base_dir: Path | None = None) -> Preprocessed:
    """Preprocess source held in memory (tests, stdin); includes resolve against `base_dir`."""
    state = _State(None)
    _process_text(state, text, name, base_dir or Path.cwd())
    return Preprocessed("\n".join(state.lines) + "\n", tuple(state.origins), tuple(state.builtins))


def _process(state: _State, path: Path, at: SourceLoc | None) -> None:
    if path in state.stack:
        raise P4FrontendError(at, f"recursive #include of {state.display(path)}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise P4FrontendError(at, f"cannot read {state.display(path)}: {exc.strerror}") from None
    state.stack.append(path)
    _process_text(state, text, state.display(path), path.parent)
    state.stack.pop()


def _process_text(state: _State, text: str, name: str, base_dir: Path) -> None:
    # Each entry: (this branch active, some branch of this #if already taken).
    conds: list[tuple[bool, bool]] = []
    in_comment = False
    for number, line in enumerate(text.splitlines(), start=1):
        active = all(c[0] for c in conds)
        match = None if in_comment else _DIRECTIVE.match(line)
        if match is None:
            if active:
                state.lines.append(_expand(state.macros, line) if state.macros else line)
                state.origins.append((name, number))
                in_comment = _ends_in_comment(line, in_comment)
            continue
        directive, rest = match.group(1), match.group(2)
        loc = SourceLoc(name, number, line.index("#") + 1)
        if directive in ("ifndef", "ifdef"):
            defined = rest.split()[0] in state.macros if rest else False
            taken = defined if directive == "ifdef" else not defined
            conds.append((taken, taken))
        elif directive == "else":
            if not conds:
                raise P4FrontendError(loc, "#else without #if")
            conds[-1] = (not conds[-1][1], True)
        elif directive == "endif":
            if not conds:
                raise P4FrontendError(loc, "#endif without #if")
            conds.pop()
        elif not active:
            pass
        elif directive == "define":
            parts = rest.split(None, 1)
            if not parts or "(" in parts[0]:
                raise P4FrontendError(loc, "unsupported #define (only object-like macros are supported)")
            state.macros[parts[0]] = parts[1] if len(parts) > 1 else ""
        elif directive == "undef":
            state.macros.pop(rest.strip(), None)
        elif directive == "include":
            _include(state, rest, loc, base_dir)
        else:
            raise P4FrontendError(loc, f"unsupported preprocessor directive #{directive}")
        # Keep line numbering of the including file intact for error messages.
        state.lines.append("")
        state.origins.append((name, number))
    if conds:
        raise P4FrontendError(SourceLoc(name, len(text.splitlines()), 1), "unterminated #if")


def _include(state: _State, rest: str, loc: SourceLoc, base_dir: Path) -> None:
    if rest.startswith("<") and rest.endswith(">"):
        target = rest[1:-1]
        if target not in BUILTIN_INCLUDES:
            raise P4FrontendError(loc, f"unknown system include <{target}> (built in: core.p4, v1model.p4)")
        if target not in state.builtins:
            state.builtins.append(target)
        return
    if rest.startswith('"') and rest.endswith('"') and len(rest) >= 2:
        _process(state, (base_dir / rest[1:-1]).resolve(), loc)
        return
    raise P4FrontendError(loc, f'malformed #include {rest!r}: expected "file" or <file>')


def _expand(macros: dict[str, str], line: str) -> str:
    return _IDENT.sub(lambda m: macros.get(m.group(0), m.group(0)), line)


def _ends_in_comment(line: str, in_comment: bool) -> bool:
    """Whether a /* comment is still open at the end of `line` (strings are ignored)."""
    i = 0
    while i < len(line):
        if in_comment:
            end = line.find("*/", i)
            if end < 0:
                return True
            in_comment, i = False, end + 2
        else:
            start = line.find("/*", i)
            slash = line.find("//", i)
            if start < 0 or (0 <= slash < start):
                return False
            in_comment, i = True, start + 2
    return in_comment
