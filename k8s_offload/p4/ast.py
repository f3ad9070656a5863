"""The program model: what the P4 front end hands to P4Info generation and to the interpreter.

Everything is resolved before it lands here: typedefs are expanded, constants are folded into
`Constant` nodes, every expression carries its type (so its bit width), and every name is bound
to the kind of thing it denotes. Consumers never need a symbol table or a second type pass.
Nodes are frozen dataclasses; sequences are tuples in source order, so the model is hashable
where its contents are and iteration order is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar

# --------------------------------------------------------------------------------------------
# Source locations and annotations


@dataclass(frozen=True, slots=True)
class SourceLoc:
    """An ORIGINAL file:line:column (1-based), after undoing #include splicing."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NO_LOC = SourceLoc("<builtin>", 0, 0)


@dataclass(frozen=True, slots=True)
class Annotation:
    """`@name(args)`. `body` is the source text between the parentheses, as written (p4c puts
    unstructured annotations into P4Info verbatim); `args` holds the parsed literal arguments
    (int, str or bool) when the body is a plain comma-separated literal list, else ()."""

    name: str
    body: str | None = None
    args: tuple[int | str | bool, ...] = ()
    loc: SourceLoc = NO_LOC

    def __str__(self) -> str:
        return f"@{self.name}" if self.body is None else f"@{self.name}({self.body})"


NO_ACTION = "NoAction"
"""core.p4's action that does nothing: the default action of a table that declares none."""


def control_plane_name(path: str, local_name: str, annotations: tuple[Annotation, ...]) -> str:
    """The P4Info name of a control local declared at `path`, as p4c names it: `@name(".x")` is
    the global name `x`, `@name("x")` replaces the local name, else `path.local_name`."""
    anno = find_annotation(annotations, "name")
    if anno is not None and anno.args and isinstance(anno.args[0], str):
        given = anno.args[0]
        return given[1:] if given.startswith(".") else f"{path}.{given}"
    return f"{path}.{local_name}"


def find_annotation(annotations: tuple[Annotation, ...], name: str) -> Annotation | None:
    """The first annotation called `name`, or None."""
    for annotation in annotations:
        if annotation.name == name:
            return annotation
    return None


# --------------------------------------------------------------------------------------------
# Types


@dataclass(frozen=True, slots=True)
class BitsType:
    """`bit<W>` (signed=False) or `int<W>` (signed=True)."""

    width: int
    signed: bool = False

    def __str__(self) -> str:
        return f"{'int' if self.signed else 'bit'}<{self.width}>"


@dataclass(frozen=True, slots=True)
class BoolType:
    def __str__(self) -> str:
        return "bool"


@dataclass(frozen=True, slots=True)
class IntType:
    """The arbitrary-precision type of an unsized integer literal (`5`, not `8w5`). Only left in
    places where no width can be inferred (e.g. arguments of untyped extern parameters)."""

    def __str__(self) -> str:
        return "int"


@dataclass(frozen=True, slots=True)
class VarbitType:
    max_width: int

    def __str__(self) -> str:
        return f"varbit<{self.max_width}>"


@dataclass(frozen=True, slots=True)
class StringType:
    def __str__(self) -> str:
        return "string"


@dataclass(frozen=True, slots=True)
class VoidType:
    def __str__(self) -> str:
        return "void"


@dataclass(frozen=True, slots=True)
class StructField:
    name: str
    type: Type
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class HeaderType:
    """A header type; fields are in wire order. `width` is the total bit width."""

    name: str
    fields: tuple[StructField, ...]
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC

    def field(self, name: str) -> StructField | None:
        return next((f for f in self.fields if f.name == name), None)

    @property
    def width(self) -> int:
        return sum(type_width(f.type) for f in self.fields)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class StructType:
    name: str
    fields: tuple[StructField, ...]
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC

    def field(self, name: str) -> StructField | None:
        return next((f for f in self.fields if f.name == name), None)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class EnumType:
    """A non-serializable enum such as v1model's `HashAlgorithm` or `CounterType`, and also
    `match_kind` (whose members are exact, ternary, lpm, ...)."""

    name: str
    members: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class TupleType:
    """Type of a list expression `{a, b}` (hash and checksum inputs, select keys)."""

    elements: tuple[Type, ...]

    def __str__(self) -> str:
        return "tuple<" + ", ".join(str(e) for e in self.elements) + ">"


@dataclass(frozen=True, slots=True)
class ExternType:
    """An extern object type (register, counter, packet_in, ...); `type_args` are its
    instantiation's type arguments, e.g. (bit<32>,) for `register<bit<32>>`."""

    name: str
    type_args: tuple[Type, ...] = ()

    def __str__(self) -> str:
        if not self.type_args:
            return self.name
        return f"{self.name}<" + ", ".join(str(t) for t in self.type_args) + ">"


@dataclass(frozen=True, slots=True)
class ControlType:
    """The type of a control or parser instance (used for parameters and `x.apply`)."""

    name: str
    kind: Literal["control", "parser", "package"]

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class TableType:
    """The type of a table name inside its control (only `.apply()` is allowed on it)."""

    name: str

    def __str__(self) -> str:
        return f"table {self.name}"


@dataclass(frozen=True, slots=True)
class ApplyResultType:
    """What `t.apply()` returns: a struct with `hit`, `miss` and `action_run`."""

    table: str

    def __str__(self) -> str:
        return f"apply_result<{self.table}>"


Type = (
    BitsType
    | BoolType
    | IntType
    | VarbitType
    | StringType
    | VoidType
    | HeaderType
    | StructType
    | EnumType
    | TupleType
    | ExternType
    | ControlType
    | TableType
    | ApplyResultType
)


def type_width(t: Type) -> int:
    """Bit width of a fixed-width type: bit/int<W> -> W, bool -> 1, header/struct -> sum."""
    if isinstance(t, BitsType):
        return t.width
    if isinstance(t, BoolType):
        return 1
    if isinstance(t, HeaderType | StructType):
        return sum(type_width(f.type) for f in t.fields)
    raise TypeError(f"type {t} has no fixed bit width")


# --------------------------------------------------------------------------------------------
# Expressions. Every expression has `type` (resolved) and `loc`.


@dataclass(frozen=True, slots=True)
class Constant:
    """A folded compile-time integer. `type` is BitsType after width inference, or IntType
    when nothing fixed the width. `value` is already reduced modulo 2**width for bit<W>.
    `name` keeps the constant's declared name (`CPU_PORT`) when it came from one."""

    value: int
    type: BitsType | IntType
    loc: SourceLoc = NO_LOC
    name: str | None = None

    @property
    def width(self) -> int | None:
        return self.type.width if isinstance(self.type, BitsType) else None


@dataclass(frozen=True, slots=True)
class BoolLiteral:
    value: bool
    type: BoolType = field(default_factory=BoolType)
    loc: SourceLoc = NO_LOC
    name: str | None = None


@dataclass(frozen=True, slots=True)
class StringLiteral:
    value: str
    type: StringType = field(default_factory=StringType)
    loc: SourceLoc = NO_LOC


PathKind = Literal["param", "local", "action_param", "instance", "table", "parser_state"]


@dataclass(frozen=True, slots=True)
class PathRef:
    """A name bound in the enclosing parser/control/action. `kind` tells what it denotes:
    a control/parser parameter, a local variable, an action parameter, an extern or
    control instance, or a table."""

    name: str
    kind: PathKind
    type: Type
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Member:
    """`expr.member`: a header or struct field (`hdr.ipv4.ttl` is Member(Member(hdr, ipv4),
    ttl)), or `hit`/`miss`/`action_run` of an ApplyResultType."""

    expr: Expr
    member: str
    type: Type
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class EnumMember:
    """`HashAlgorithm.crc16`, `CounterType.packets_and_bytes`, a match kind."""

    enum: str
    member: str
    type: EnumType
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Slice:
    """`expr[hi:lo]`, bounds inclusive; type is bit<hi-lo+1>."""

    expr: Expr
    hi: int
    lo: int
    type: BitsType
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Cast:
    """`(T) expr`: width change (truncate / zero- or sign-extend), bool <-> bit<1>."""

    expr: Expr
    type: Type
    loc: SourceLoc = NO_LOC


UnaryOp = Literal["!", "~", "-"]
BinaryOp = Literal[
    "*", "+", "-", "<<", ">>", "&", "^", "|", "++", "==", "!=", "<", ">", "<=", ">=", "&&", "||"
]


@dataclass(frozen=True, slots=True)
class Unary:
    op: UnaryOp
    expr: Expr
    type: Type
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Binary:
    """Arithmetic on bit<W> wraps modulo 2**W; `++` concatenates (left is the high part);
    comparisons and `&&`/`||` have type bool. Operands already have matching widths except
    for shifts (right operand any width) and `++`."""

    op: BinaryOp
    left: Expr
    right: Expr
    type: Type
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Mux:
    """`cond ? then : else_`."""

    cond: Expr
    then: Expr
    else_: Expr
    type: Type
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class ListExpr:
    """`{a, b, c}`: a tuple; hash/checksum inputs concatenate its elements in order."""

    elements: tuple[Expr, ...]
    type: TupleType
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class IsValid:
    """`hdr.x.isValid()`."""

    header: Expr
    type: BoolType = field(default_factory=BoolType)
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class TableApply:
    """`t.apply()` used as an expression: `.hit`, `.miss` and `.action_run` are Members of
    it (`t.apply().hit` is Member(TableApply(t), "hit", bool)). `table` is the table's name
    in the enclosing control."""

    table: str
    type: ApplyResultType
    loc: SourceLoc = NO_LOC


Expr = (
    Constant
    | BoolLiteral
    | StringLiteral
    | PathRef
    | Member
    | EnumMember
    | Slice
    | Cast
    | Unary
    | Binary
    | Mux
    | ListExpr
    | IsValid
    | TableApply
)


# --------------------------------------------------------------------------------------------
# Calls (as statements)


@dataclass(frozen=True, slots=True)
class MethodCall:
    """`target.method(args)` on an extern instance or parameter (`packet.extract(hdr.x)`,
    `ct_tag.read(v, i)`, `drop_reasons.count(i)`) and header methods `setValid`/`setInvalid`.
    `target` is the object expression; `extern` names its extern type ("packet_in",
    "register", "header" for header methods)."""

    target: Expr
    extern: str
    method: str
    args: tuple[Expr, ...]
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A call of an extern function: `hash(...)`, `mark_to_drop(sm)`, `update_checksum(...)`.
    `type_args` are the explicit or inferred type arguments of generic functions."""

    function: str
    args: tuple[Expr, ...]
    type_args: tuple[Type, ...] = ()
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class ActionCall:
    """A direct call of an action from a control body or another action."""

    action: str
    args: tuple[Expr, ...]
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class ApplyCall:
    """`instance.apply(args)` of a control instance declared in the enclosing control, or
    `t.apply()` of a table (then `args` is () and `kind` is "table")."""

    instance: str
    kind: Literal["control", "table"]
    args: tuple[Expr, ...] = ()
    loc: SourceLoc = NO_LOC


Call = MethodCall | FunctionCall | ActionCall | ApplyCall


# --------------------------------------------------------------------------------------------
# Statements


@dataclass(frozen=True, slots=True)
class Assign:
    """`lhs = rhs`; `rhs.type` equals `lhs.type` (literals were sized to the target)."""

    lhs: Expr
    rhs: Expr
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class CallStmt:
    call: Call
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class VarDecl:
    """A local variable; `init` is None when declared without initializer (value unspecified;
    the interpreter zero-initializes, as bmv2 does)."""

    name: str
    type: Type
    init: Expr | None = None
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Block:
    stmts: tuple[Stmt, ...] = ()
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class If:
    cond: Expr
    then: Block
    else_: Block | None = None
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class SwitchCase:
    """`labels` are action names (the table's local action names) or None for `default`.
    `body` None means fall-through to the next case's body (P4 `a: b: {...}`)."""

    labels: tuple[str | None, ...]
    body: Block | None
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Switch:
    """`switch (t.apply().action_run) { ... }`: applies `table`, then runs the case of the
    action that ran."""

    table: str
    cases: tuple[SwitchCase, ...]
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Exit:
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Return:
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class EmptyStmt:
    loc: SourceLoc = NO_LOC


Stmt = Assign | CallStmt | VarDecl | Block | If | Switch | Exit | Return | EmptyStmt


# --------------------------------------------------------------------------------------------
# Declarations

Direction = Literal["in", "out", "inout", ""]


@dataclass(frozen=True, slots=True)
class Param:
    """A parameter; direction "" means directionless (for actions: supplied by the control
    plane, i.e. a P4Runtime action parameter)."""

    name: str
    direction: Direction
    type: Type
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class ConstantDecl:
    name: str
    type: Type
    value: Constant | BoolLiteral
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class TypedefDecl:
    name: str
    type: Type
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Action:
    """An action declared in a control. `id` is the raw `@id` value, if any."""

    name: str
    params: tuple[Param, ...]
    body: Block
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC

    @property
    def id(self) -> int | None:
        return _id_of(self.annotations)

    @property
    def control_plane_params(self) -> tuple[Param, ...]:
        """The directionless parameters, i.e. those a table entry supplies."""
        return tuple(p for p in self.params if p.direction == "")


MatchKind = Literal["exact", "ternary", "lpm", "range", "optional", "selector"]


@dataclass(frozen=True, slots=True)
class KeyElement:
    """One `expr : match_kind` of a table key. `name` is the p4c control-plane name (an
    explicit `@name` or the key expression's source form, e.g. "meta.dst_addr");
    `width` is the expression's bit width."""

    expr: Expr
    match_kind: MatchKind
    name: str
    width: int
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class ActionRef:
    """An entry of a table's `actions` list; `scope` comes from @tableonly/@defaultonly."""

    action: str
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC

    @property
    def scope(self) -> Literal["TABLE_AND_DEFAULT", "TABLE_ONLY", "DEFAULT_ONLY"]:
        if find_annotation(self.annotations, "tableonly"):
            return "TABLE_ONLY"
        if find_annotation(self.annotations, "defaultonly"):
            return "DEFAULT_ONLY"
        return "TABLE_AND_DEFAULT"


@dataclass(frozen=True, slots=True)
class DefaultAction:
    """`[const] default_action = a(args);` -- args are typed to the action's parameters."""

    action: str
    args: tuple[Expr, ...]
    is_const: bool
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Table:
    """A table declared in a control. `keys` keeps selector fields (they are the hash input of
    an action selector, not match fields). `implementation` names an action_selector or
    action_profile instance of the same control; `counters` a direct_counter instance.
    `size` is None when the program does not say (v1model default 1024)."""

    name: str
    keys: tuple[KeyElement, ...]
    actions: tuple[ActionRef, ...]
    default_action: DefaultAction | None
    size: int | None
    implementation: str | None = None
    counters: str | None = None
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC

    @property
    def id(self) -> int | None:
        return _id_of(self.annotations)

    @property
    def match_keys(self) -> tuple[KeyElement, ...]:
        return tuple(k for k in self.keys if k.match_kind != "selector")

    @property
    def selector_keys(self) -> tuple[KeyElement, ...]:
        return tuple(k for k in self.keys if k.match_kind == "selector")


@dataclass(frozen=True, slots=True)
class ExternInstance:
    """An instantiation of an extern object, e.g. `register<bit<32>>(CT_SLOTS) ct_tag;`.
    `args` are the constructor arguments, folded. Subclasses expose the fields of the
    externs we know; unknown externs stay generic."""

    name: str
    type: ExternType
    args: tuple[Expr, ...]
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC

    @property
    def id(self) -> int | None:
        return _id_of(self.annotations)


@dataclass(frozen=True, slots=True)
class RegisterInstance(ExternInstance):
    """`register<bit<W>>(size)`: `element_width` W, `size` cells."""

    element_width: int = 0
    size: int = 0


@dataclass(frozen=True, slots=True)
class CounterInstance(ExternInstance):
    """`counter(size, CounterType.x)`; `unit` is "packets", "bytes" or "packets_and_bytes"."""

    size: int = 0
    unit: str = "packets"


@dataclass(frozen=True, slots=True)
class DirectCounterInstance(ExternInstance):
    unit: str = "packets"


@dataclass(frozen=True, slots=True)
class ActionProfileInstance(ExternInstance):
    """`action_profile(size)` or `action_selector(algo, size, output_width)` (then
    `with_selector`, `algorithm`, `output_width` are set; `max_group_size` comes from the
    `@max_group_size` annotation, 0 when absent)."""

    size: int = 0
    with_selector: bool = False
    algorithm: str | None = None
    output_width: int | None = None
    max_group_size: int = 0


@dataclass(frozen=True, slots=True)
class ControlInstance:
    """`PortClassify() port_classify;` inside a control: an instance of another control."""

    name: str
    control: str
    args: tuple[Expr, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Control:
    """A control declaration. `locals` are in source order; the typed views below select
    them. The body runs with `params` bound to the caller's arguments."""

    name: str
    params: tuple[Param, ...]
    locals: tuple[Action | Table | ExternInstance | ControlInstance | VarDecl | ConstantDecl, ...]
    body: Block
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC

    @property
    def actions(self) -> tuple[Action, ...]:
        return tuple(d for d in self.locals if isinstance(d, Action))

    @property
    def tables(self) -> tuple[Table, ...]:
        return tuple(d for d in self.locals if isinstance(d, Table))

    @property
    def externs(self) -> tuple[ExternInstance, ...]:
        return tuple(d for d in self.locals if isinstance(d, ExternInstance))

    @property
    def instances(self) -> tuple[ControlInstance, ...]:
        return tuple(d for d in self.locals if isinstance(d, ControlInstance))

    @property
    def variables(self) -> tuple[VarDecl, ...]:
        return tuple(d for d in self.locals if isinstance(d, VarDecl))

    def action(self, name: str) -> Action:
        return _named(self.actions, name, f"action {name} in control {self.name}")

    def table(self, name: str) -> Table:
        return _named(self.tables, name, f"table {name} in control {self.name}")

    def extern(self, name: str) -> ExternInstance:
        return _named(self.externs, name, f"extern instance {name} in control {self.name}")

    def instance(self, name: str) -> ControlInstance:
        return _named(self.instances, name, f"control instance {name} in control {self.name}")


@dataclass(frozen=True, slots=True)
class SelectCase:
    """One case of a select: `keysets` has one entry per select key (a single-key select
    has one). `next_state` is a state name, "accept" or "reject"."""

    keysets: tuple[Keyset, ...]
    next_state: str
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class DefaultKeyset:
    """`default` or `_`: matches anything."""

    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class MaskKeyset:
    """`value &&& mask`."""

    value: Constant
    mask: Constant
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class RangeKeyset:
    """`lo .. hi`, inclusive."""

    lo: Constant
    hi: Constant
    loc: SourceLoc = NO_LOC


Keyset = Constant | BoolLiteral | DefaultKeyset | MaskKeyset | RangeKeyset


@dataclass(frozen=True, slots=True)
class Select:
    """`transition select(keys) { cases }`; the first matching case wins; no match rejects."""

    keys: tuple[Expr, ...]
    cases: tuple[SelectCase, ...]
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Goto:
    """`transition next_state;` ("accept" and "reject" are the terminal states)."""

    next_state: str
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class ParserState:
    name: str
    stmts: tuple[Stmt, ...]
    transition: Select | Goto
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class Parser:
    name: str
    params: tuple[Param, ...]
    locals: tuple[ExternInstance | VarDecl | ConstantDecl, ...]
    states: tuple[ParserState, ...]
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC

    def state(self, name: str) -> ParserState:
        return _named(self.states, name, f"state {name} in parser {self.name}")


@dataclass(frozen=True, slots=True)
class PackageInstance:
    """The `main` instantiation: `V1Switch(K8sParser(), ..., K8sDeparser()) main;`.
    `args` are the names of the parser/control declarations, in V1Switch parameter order."""

    package: str
    name: str
    args: tuple[str, ...]
    annotations: tuple[Annotation, ...] = ()
    loc: SourceLoc = NO_LOC


@dataclass(frozen=True, slots=True)
class V1Pipeline:
    """The six blocks of V1Switch, resolved to their declarations."""

    parser: Parser
    verify_checksum: Control
    ingress: Control
    egress: Control
    compute_checksum: Control
    deparser: Control


@dataclass(frozen=True, slots=True)
class InstantiatedControl:
    """A control as instantiated in the pipeline: `path` is the control-plane name prefix
    (e.g. "K8sIngress.port_classify"), as P4Info writes it for objects inside."""

    path: str
    control: Control


@dataclass(frozen=True, slots=True)
class Program:
    """A whole resolved program. `headers`/`structs`/`constants`/`typedefs` are the top-level
    declarations in source order (built-in architecture types are not included)."""

    headers: tuple[HeaderType, ...]
    structs: tuple[StructType, ...]
    typedefs: tuple[TypedefDecl, ...]
    constants: tuple[ConstantDecl, ...]
    parsers: tuple[Parser, ...]
    controls: tuple[Control, ...]
    main: PackageInstance
    source: str = ""

    def header(self, name: str) -> HeaderType:
        return _named(self.headers, name, f"header type {name}")

    def struct(self, name: str) -> StructType:
        return _named(self.structs, name, f"struct type {name}")

    def constant(self, name: str) -> ConstantDecl:
        return _named(self.constants, name, f"constant {name}")

    def parser(self, name: str) -> Parser:
        return _named(self.parsers, name, f"parser {name}")

    def control(self, name: str) -> Control:
        return _named(self.controls, name, f"control {name}")

    def v1_pipeline(self) -> V1Pipeline:
        """The V1Switch blocks of `main`, in V1Switch parameter order."""
        if self.main.package != "V1Switch" or len(self.main.args) != 6:
            raise LookupError(f"main is {self.main.package}, not a V1Switch with six blocks")
        p, vc, ig, eg, cc, dp = self.main.args
        return V1Pipeline(
            self.parser(p),
            self.control(vc),
            self.control(ig),
            self.control(eg),
            self.control(cc),
            self.control(dp),
        )

    def instantiated_controls(self) -> Iterator[InstantiatedControl]:
        """Every control of the pipeline with its instance path, depth first in declaration
        order: `K8sIngress`, `K8sIngress.port_classify`, ... (the order p4c's inliner lays
        out the nested locals)."""
        for name in self.main.args:
            if any(c.name == name for c in self.controls):
                yield from self._walk(name, self.control(name))

    def _walk(self, path: str, control: Control) -> Iterator[InstantiatedControl]:
        yield InstantiatedControl(path, control)
        for inst in control.instances:
            yield from self._walk(f"{path}.{inst.name}", self.control(inst.control))


def _id_of(annotations: tuple[Annotation, ...]) -> int | None:
    annotation = find_annotation(annotations, "id")
    if annotation is None or not annotation.args or not isinstance(annotation.args[0], int):
        return None
    return annotation.args[0]


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def _named(items: tuple[_N, ...], name: str, what: str) -> _N:
    for item in items:
        if item.name == name:
            return item
    raise KeyError(f"no {what}")
