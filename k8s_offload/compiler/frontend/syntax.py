"""YAML and JSON text to plain values, within the limits of frontend/limits.py.

YAML is built straight from libyaml's events (no node graph), which bounds what a document may
cost while it is read: nesting depth, nodes per source, alias expansion (yaml.v2's rule, as kubectl
and the API server apply it), integers (the float64 range, beyond which the API server cannot
decode a number). Aliases share the anchored value, as PyYAML's loader does; a value that contains
itself is an error, as in yaml.v2.

Duplicate keys are rejected with their field path, as the API server's strict field validation
does (apimachinery runtime/serializer/json: YAML through sigs.k8s.io/yaml's YAMLToJSONStrict, JSON
through sigs.k8s.io/json's DisallowDuplicateFields), which is what kubectl asks for by default
(`--validate=strict`). This includes a key set both by a merge (`<<`) and explicitly: yaml.v2's
strict mode reports those too.

Problems that make one object unusable (a duplicate key, an integer out of range) are recorded
with the document and reading goes on; problems that end the source (a syntax error, too deep,
too many aliases or nodes) raise SyntaxFailure after the documents before them were yielded.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import events as ev_types
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode

from k8s_offload.compiler.frontend.fields import at, shown
from k8s_offload.compiler.frontend.limits import MAX_DEPTH, MAX_YAML_NODES, excessive_aliasing

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    reason: str
    line: int | None = None
    """1-based, when known (YAML always; JSON for syntax and depth errors)."""
    column: int | None = None

    @property
    def field_path(self) -> str:
        return field_path(self.path)

    def with_position(self) -> str:
        """The reason, preceded by `line L, column C: ` when known."""
        if self.line is None:
            return self.reason
        where = f"line {self.line}" + (f", column {self.column}" if self.column is not None else "")
        return f"{where}: {self.reason}"


@dataclass(slots=True)
class Document:
    index: int
    """1-based position in the stream."""
    value: Any
    problems: list[Problem] = field(default_factory=list)
    """Fields that make the document's objects unusable; it is otherwise complete."""


class SyntaxFailure(Exception):
    """The source cannot be read past this point; `document` is the 1-based document it is in."""

    def __init__(self, document: int, problem: Problem) -> None:
        super().__init__(problem.reason)
        self.document = document
        self.problem = problem


def field_path(path: Path) -> str:
    """`spec.ports[0].port` from ("spec", "ports", 0, "port")."""
    out = ""
    for part in path:
        out = at(out, part) if isinstance(part, int) else at(out, str(part))
    return out


# ---- integers ------------------------------------------------------------------------------------

_MAX_INT_TEXT = 1100
"""Characters of an integer literal worth converting: every longer one (leading zeros aside, which
nobody writes 800 of) is beyond the float64 range in any base YAML allows."""


def int_problem(value: int) -> str | None:
    """Why `value` cannot be a Kubernetes number: beyond float64, which sigs.k8s.io/json falls back
    to for integers that do not fit int64 (and then fails on)."""
    try:
        float(value)
    except OverflowError:
        return f"integer {shown(value)} is out of range: numbers must fit a float64 (about ±1.8e308)"
    return None


def _long_int(text: str) -> str:
    return f"integer of {len(text)} characters is out of range: numbers must fit a float64 (about ±1.8e308)"


# ---- YAML ----------------------------------------------------------------------------------------

_Parser: Any = getattr(yaml, "cyaml", None) and getattr(yaml.cyaml, "CParser", None)
"""libyaml's event parser; without it (PyYAML built without libyaml) the pure-Python one, slower."""

_RESOLVERS: dict[str, list[tuple[str, re.Pattern[str]]]] = {
    k: v for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items() if k is not None
}
_CONSTRUCTOR = SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT = _TAG + "str", _TAG + "null", _TAG + "bool", _TAG + "int"
_MERGE, _VALUE, _MAP, _SEQ = _TAG + "merge", _TAG + "value", _TAG + "map", _TAG + "seq"
_SCALAR_TAGS = {_TAG + t for t in ("float", "binary", "timestamp")}
_BOOLS = SafeConstructor.bool_values


class _Merge:
    """The `<<` key: its value's mappings are merged into the mapping holding it."""


_MERGE_KEY = _Merge()
_NO_KEY = object()


class _Stop(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.reason)
        self.problem = problem


def load_yaml(text: str) -> Iterator[Document]:
    """The documents of a YAML stream, built within the limits (see the module docstring)."""
    parser = _Parser(text) if _Parser is not None else yaml.SafeLoader(text)
    builder = _YamlBuilder(parser)
    index = 0
    try:
        parser.get_event()  # StreamStartEvent
        while type(parser.peek_event()) is not ev_types.StreamEndEvent:
            index += 1
            yield builder.document(index)
    except _Stop as stop:
        raise SyntaxFailure(max(index, 1), stop.problem) from None
    except yaml.YAMLError as exc:
        raise SyntaxFailure(max(index, 1), _yaml_problem(exc, builder.path())) from None


def _yaml_problem(exc: yaml.YAMLError, path: Path) -> Problem:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if "exceeded maximum nesting depth" in problem:
        problem = f"nested deeper than {MAX_DEPTH} levels"
    else:
        problem = f"invalid YAML: {problem}"
    if mark is None:
        return Problem(path, problem)
    return Problem(path, problem, mark.line + 1, mark.column + 1)


class _YamlBuilder:
    """One source's documents; counts nodes over the whole source, aliases per document."""

    __slots__ = ("aliased", "anchors", "decoded", "get", "nodes", "problems", "stack")

    def __init__(self, parser: Any) -> None:
        self.get = parser.get_event
        self.nodes = 0
        self.stack: list[list[Any]] = []
        """Open collections: [container, key or _NO_KEY (mappings) / None (sequences), anchor,
        decoded count at its start, line of the pending key]."""
        self.anchors: dict[str, tuple[Any, int | None]] = {}
        self.decoded = 0
        self.aliased = 0
        self.problems: list[Problem] = []

    def path(self) -> Path:
        """Where the node being built goes: a mapping's pending key, a sequence's next index."""
        out: list[str | int] = []
        for frame in self.stack:
            container, key = frame[0], frame[1]
            if type(container) is list:
                out.append(len(container))
            elif key is not _NO_KEY:  # a key that is no string (`1: x`) is still a field, not an index
                out.append("<<" if key is _MERGE_KEY else key if isinstance(key, str) else str(key))
        return tuple(out)

    def stop(self, reason: str, mark: Any = None) -> _Stop:
        if mark is None:
            return _Stop(Problem(self.path(), reason))
        return _Stop(Problem(self.path(), reason, mark.line + 1, mark.column + 1))

    def document(self, index: int) -> Document:
        self.get()  # DocumentStartEvent
        self.anchors = {}
        self.decoded = 1  # yaml.v2 counts the document node
        self.aliased = 0
        self.problems = []
        value = self._build()
        self.get()  # DocumentEndEvent
        return Document(index, value, self.problems)

    def _build(self) -> Any:
        get = self.get
        stack = self.stack
        anchors = self.anchors
        scalar_event = ev_types.ScalarEvent
        mapping_start = ev_types.MappingStartEvent
        sequence_start = ev_types.SequenceStartEvent
        alias_event = ev_types.AliasEvent
        while True:
            ev = get()
            kind = type(ev)
            if kind is scalar_event:
                value = self._scalar(ev)
                if value is not _MERGE_KEY:
                    self.decoded += 1  # yaml.v2 does not decode the `<<` key itself
                    if self.aliased > 100 and excessive_aliasing(self.decoded, self.aliased):
                        raise self.stop("document contains excessive aliasing", ev.start_mark)
                self.nodes += 1
                if self.nodes > MAX_YAML_NODES:
                    raise self.stop(f"more than {MAX_YAML_NODES} YAML nodes in one source", ev.start_mark)
                if ev.anchor is not None:
                    anchors[ev.anchor] = (value, 1)
            elif kind is mapping_start or kind is sequence_start:
                if len(stack) >= MAX_DEPTH:
                    raise self.stop(f"nested deeper than {MAX_DEPTH} levels", ev.start_mark)
                tag = ev.tag
                if tag is not None and tag != "!" and tag != (_MAP if kind is mapping_start else _SEQ):
                    raise self.stop(f"tag {shown(tag)} is not supported in manifests", ev.start_mark)
                merging = kind is sequence_start and stack and stack[-1][1] is _MERGE_KEY
                if not merging:  # yaml.v2 decodes a merged sequence's items, not the sequence
                    self.decoded += 1
                    if self.aliased > 100 and excessive_aliasing(self.decoded, self.aliased):
                        raise self.stop("document contains excessive aliasing", ev.start_mark)
                self.nodes += 1
                if self.nodes > MAX_YAML_NODES:
                    raise self.stop(f"more than {MAX_YAML_NODES} YAML nodes in one source", ev.start_mark)
                if kind is mapping_start:
                    container: Any = {}
                    stack.append([container, _NO_KEY, ev.anchor, self.decoded - 1, 0])
                else:
                    container = []
                    stack.append([container, None, ev.anchor, self.decoded - 1, 0])
                if ev.anchor is not None:
                    anchors[ev.anchor] = (container, None)  # in progress
                continue
            elif kind is alias_event:
                target = anchors.get(ev.anchor)
                if target is None:
                    raise self.stop(f"found undefined alias {shown(ev.anchor)}", ev.start_mark)
                value, expanded = target
                if expanded is None:
                    raise self.stop(f"anchor {shown(ev.anchor)} value contains itself", ev.start_mark)
                self.decoded += 1
                if self.aliased > 100 and excessive_aliasing(self.decoded, self.aliased):
                    raise self.stop("document contains excessive aliasing", ev.start_mark)
                self.decoded += expanded
                self.aliased += expanded
                if excessive_aliasing(self.decoded, self.aliased):
                    raise self.stop("document contains excessive aliasing", ev.start_mark)
            else:  # the end of the innermost collection
                frame = stack.pop()
                value = frame[0]
                if type(value) is dict and frame[1] is not _NO_KEY:
                    raise self.stop("mapping ends after a key without a value", ev.start_mark)
                if frame[2] is not None:
                    anchors[frame[2]] = (value, self.decoded - frame[3])
            if not stack:
                return value
            frame = stack[-1]
            container = frame[0]
            if type(container) is list:
                container.append(value)
                continue
            key = frame[1]
            if key is _NO_KEY:
                if type(value) is dict or type(value) is list:
                    raise self.stop("found unhashable key (a mapping or a sequence)", ev.start_mark)
                frame[1] = value
                frame[4] = ev.start_mark.line + 1
                continue
            if key is _MERGE_KEY:
                self._merge(container, value, ev)
            else:
                before = len(container)
                container[key] = value
                if len(container) == before:
                    self.problems.append(Problem(self.path(), "duplicate field", frame[4]))
            frame[1] = _NO_KEY

    def _scalar(self, ev: Any) -> Any:
        tag = ev.tag
        text: str = ev.value
        if tag is None or tag == "!":
            if not ev.implicit[0]:
                return text
            resolvers = _RESOLVERS.get(text[:1])
            if resolvers is None:
                return text
            for candidate, regexp in resolvers:
                if regexp.match(text):
                    tag = candidate
                    break
            else:
                return text
        if tag == _STR:
            return text
        if tag == _NULL:
            return None
        if tag == _BOOL:
            value = _BOOLS.get(text.lower())
            if value is None:
                raise self.stop(f"{shown(text)} is not a boolean", ev.start_mark)
            return value
        if tag == _INT:
            return self._int(text, ev)
        if tag == _MERGE:
            return _MERGE_KEY if self.stack and self.stack[-1][1] is _NO_KEY else text
        if tag == _VALUE:
            return text
        if tag in _SCALAR_TAGS:
            node = ScalarNode(tag, text, ev.start_mark, ev.end_mark, ev.style)
            try:
                return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)
            except (ValueError, OverflowError, yaml.YAMLError) as exc:
                reason = f"{shown(text)} is not a valid {tag.removeprefix(_TAG)}: {exc}"
                raise self.stop(reason, ev.start_mark) from None
        raise self.stop(f"could not determine a constructor for the tag {shown(tag)}", ev.start_mark)

    def _int(self, text: str, ev: Any) -> Any:
        digits = text.replace("_", "")
        if len(digits) > _MAX_INT_TEXT:
            self.problems.append(Problem(self.path(), _long_int(text), ev.start_mark.line + 1))
            return 0
        node = ScalarNode(_INT, text, ev.start_mark, ev.end_mark, ev.style)
        try:
            value: int = _CONSTRUCTOR.construct_yaml_int(node)
        except ValueError as exc:
            raise self.stop(f"{shown(text)} is not a valid integer: {exc}", ev.start_mark) from None
        if len(digits) > 300 and (reason := int_problem(value)) is not None:
            self.problems.append(Problem(self.path(), reason, ev.start_mark.line + 1))
            return 0
        return value

    def _merge(self, mapping: dict[Any, Any], value: Any, ev: Any) -> None:
        """`<<: *base` or `<<: [*a, *b]`; any key set twice is a duplicate (yaml.v2 strict)."""
        sources = [value] if type(value) is dict else value if type(value) is list else None
        if sources is None or any(type(s) is not dict for s in sources):
            raise self.stop(
                "map merge requires a mapping or a sequence of mappings as the value", ev.start_mark
            )
        for source in reversed(sources):  # yaml.v2 merges the last first
            for key, item in source.items():
                if key in mapping:
                    path = (*self.path()[:-1], key if isinstance(key, str) else str(key))
                    self.problems.append(
                        Problem(path, "duplicate field (set by a merge and again)", ev.start_mark.line + 1)
                    )
                mapping[key] = item


# ---- JSON ----------------------------------------------------------------------------------------


class _BigInt:
    """Stands for an integer literal out of range until its path is known."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def load_json(text: str) -> Document:
    """One JSON document (a `.json` file), with the same limits and duplicate rule as YAML."""
    duplicates: list[tuple[dict[str, Any], list[str]]] = []
    big: list[_BigInt] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        mapping = dict(pairs)
        if len(mapping) != len(pairs):
            seen: set[str] = set()
            dups = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
            duplicates.append((mapping, dups))
        return mapping

    def int_hook(literal: str) -> Any:
        if len(literal) < 300 or (len(literal) <= _MAX_INT_TEXT and int_problem(int(literal)) is None):
            return int(literal)
        marker = _BigInt(literal)
        big.append(marker)
        return marker

    try:
        value = json.loads(text, object_pairs_hook=pairs_hook, parse_int=int_hook)
    except json.JSONDecodeError as exc:
        raise SyntaxFailure(1, Problem((), f"invalid JSON: {exc.msg}", exc.lineno, exc.colno)) from None
    except RecursionError:
        deep = _json_too_deep(text)
        if deep is not None:
            raise SyntaxFailure(1, deep) from None
        value = _deep_json(text, pairs_hook, int_hook)
    else:
        if _json_depth_unchecked():
            deep_path = _deeper_than(value, MAX_DEPTH)
            if deep_path is not None:
                raise SyntaxFailure(1, Problem(deep_path, f"nested deeper than {MAX_DEPTH} levels"))
    problems: list[Problem] = []
    if duplicates or big:
        wanted: dict[int, Any] = {id(m): dups for m, dups in duplicates}
        wanted.update({id(b): b for b in big})
        for path, node in _find(value, wanted):
            if type(node) is _BigInt:
                problems.append(
                    Problem(
                        path,
                        _long_int(node.text)
                        if len(node.text) > _MAX_INT_TEXT
                        else int_problem(int(node.text)) or _long_int(node.text),
                    )
                )
            else:
                for key in wanted[id(node)]:
                    problems.append(Problem((*path, key), "duplicate field"))
    return Document(1, value, problems)


def _json_depth_unchecked() -> bool:
    """True when json.loads may have accepted deeper nesting than MAX_DEPTH without a
    RecursionError: Python 3.12+ counts C recursion apart, and a raised recursion limit allows more."""
    return sys.version_info >= (3, 12) or sys.getrecursionlimit() > MAX_DEPTH + 1


def _deep_json(text: str, pairs_hook: Any, int_hook: Any) -> Any:
    """JSON within MAX_DEPTH that Python's decoder needed more recursion for than the default."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + MAX_DEPTH + 100)
    try:
        return json.loads(text, object_pairs_hook=pairs_hook, parse_int=int_hook)
    finally:
        sys.setrecursionlimit(limit)


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]|[^\s\[\]{},:"]+', re.S)


def _json_too_deep(text: str) -> Problem | None:
    """Where JSON first nests deeper than MAX_DEPTH, with its path, line and column; None if never.
    Only for text the decoder gave up on: it follows brackets and keys, not the whole grammar."""
    stack: list[list[Any]] = []  # [is_object, key or index]
    expect_key = False
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token == "{" or token == "[":
            if len(stack) >= MAX_DEPTH:
                path = tuple(frame[1] for frame in stack)
                line = text.count("\n", 0, match.start()) + 1
                column = match.start() - text.rfind("\n", 0, match.start())
                return Problem(path, f"nested deeper than {MAX_DEPTH} levels", line, column)
            stack.append([token == "{", None if token == "{" else 0])
            expect_key = token == "{"
        elif token == "}" or token == "]":
            if stack:
                stack.pop()
            expect_key = False
        elif token == ",":
            if stack and not stack[-1][0]:
                stack[-1][1] += 1
            expect_key = bool(stack and stack[-1][0])
        elif token == ":":
            expect_key = False
        elif expect_key and token.startswith('"'):
            try:
                stack[-1][1] = json.loads(token)
            except ValueError:
                stack[-1][1] = token
    return None


def _deeper_than(value: Any, limit: int) -> Path | None:
    """The path to the first container nested more than `limit` deep (iterative walk)."""
    todo: list[tuple[Any, Path]] = [(value, ())]
    while todo:
        node, path = todo.pop()
        if len(path) >= limit:
            return path
        if type(node) is dict:
            todo.extend((v, (*path, k)) for k, v in node.items() if type(v) is dict or type(v) is list)
        elif type(node) is list:
            todo.extend((v, (*path, i)) for i, v in enumerate(node) if type(v) is dict or type(v) is list)
    return None


def _find(value: Any, wanted: dict[int, Any]) -> Iterator[tuple[Path, Any]]:
    """Paths of the nodes whose id is in `wanted`, in document order (iterative walk)."""
    todo: list[tuple[Any, Path]] = [(value, ())]
    while todo:
        node, path = todo.pop()
        if id(node) in wanted:
            yield path, node
        if type(node) is dict:
            todo.extend(reversed([(v, (*path, k)) for k, v in node.items()]))
        elif type(node) is list:
            todo.extend(reversed([(v, (*path, i)) for i, v in enumerate(node)]))
