"""Parse tree -> program model: name binding, type checking, width inference, folding.

One pass over lark's tree, declarations in source order (P4 requires declare-before-use).
Each rule fails with a P4FrontendError at the offending construct's original location.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

from lark import Token, Tree

from k8s_offload.p4 import arch_v1model as arch
from k8s_offload.p4.ast import (
    NO_ACTION,
    Action,
    ActionCall,
    ActionProfileInstance,
    ActionRef,
    Annotation,
    ApplyCall,
    ApplyResultType,
    Assign,
    Binary,
    BinaryOp,
    BitsType,
    Block,
    BoolLiteral,
    BoolType,
    Call,
    CallStmt,
    Cast,
    Constant,
    ConstantDecl,
    Control,
    ControlInstance,
    ControlType,
    CounterInstance,
    DefaultAction,
    DefaultKeyset,
    DirectCounterInstance,
    Direction,
    EmptyStmt,
    EnumMember,
    EnumType,
    Exit,
    Expr,
    ExternInstance,
    ExternType,
    FunctionCall,
    Goto,
    HeaderType,
    If,
    IntType,
    IsValid,
    KeyElement,
    Keyset,
    ListExpr,
    MaskKeyset,
    MatchKind,
    Member,
    MethodCall,
    Mux,
    PackageInstance,
    Param,
    Parser,
    ParserState,
    PathKind,
    PathRef,
    Program,
    RangeKeyset,
    RegisterInstance,
    Return,
    Select,
    SelectCase,
    Slice,
    SourceLoc,
    Stmt,
    StringLiteral,
    StructField,
    StructType,
    Switch,
    SwitchCase,
    Table,
    TableApply,
    TableType,
    TupleType,
    Type,
    TypedefDecl,
    Unary,
    VarbitType,
    VarDecl,
    find_annotation,
)
from k8s_offload.p4.errors import P4FrontendError
from k8s_offload.p4.literals import parse_annotation, parse_integer
from k8s_offload.p4.preprocess import Preprocessed

_BINOPS: dict[str, BinaryOp] = {
    "mul": "*", "add": "+", "sub": "-", "shl": "<<", "shr": ">>", "band": "&", "bxor": "^",
    "bor": "|", "concat": "++", "eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=",
    "ge": ">=", "land": "&&", "lor": "||",
}  # fmt: skip
_COMPARE = {"==", "!=", "<", ">", "<=", ">="}


@dataclass(frozen=True, slots=True)
class _Binding:
    kind: PathKind | Literal_const
    type: Type
    value: Constant | BoolLiteral | None = None


Literal_const = str  # "const", "type", "control_decl", "parser_decl", "action"


class _Scope:
    def __init__(self, parent: _Scope | None = None) -> None:
        self.names: dict[str, _Binding] = {}
        self.parent = parent

    def lookup(self, name: str) -> _Binding | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None


@dataclass
class _ControlCtx:
    """What names inside a control body may refer to."""

    name: str
    actions: dict[str, Action]
    tables: dict[str, Table]
    externs: dict[str, ExternInstance]
    instances: dict[str, ControlInstance]


class Resolver:
    def __init__(self, pp: Preprocessed) -> None:
        self.pp = pp
        self.types: dict[str, Type] = dict(arch.BUILTIN_TYPES)
        self.headers: list[HeaderType] = []
        self.structs: list[StructType] = []
        self.typedefs: list[TypedefDecl] = []
        self.constants: list[ConstantDecl] = []
        self.parsers: dict[str, Parser] = {}
        self.controls: dict[str, Control] = {}
        self.main: PackageInstance | None = None
        self.globals = _Scope()
        self.ctx: _ControlCtx | None = None
        self.in_action = False

    # ------------------------------------------------------------------ helpers
    def loc(self, node: Tree[Token] | Token) -> SourceLoc:
        if isinstance(node, Token):
            return self.pp.loc(node.line or 0, node.column or 0)
        meta = node.meta
        if getattr(meta, "empty", True):
            return self.pp.loc(0, 0)
        return self.pp.loc(meta.line, meta.column)

    def err(self, node: Tree[Token] | Token, reason: str) -> P4FrontendError:
        return P4FrontendError(self.loc(node), reason)

    def annos(self, tree: Tree[Token]) -> tuple[Annotation, ...]:
        assert tree.data == "annos"
        return tuple(
            parse_annotation(str(tok), self.loc(tok)) for tok in tree.children if isinstance(tok, Token)
        )

    def source_text(self, node: Tree[Token]) -> str:
        meta = node.meta
        return self.pp.text[meta.start_pos : meta.end_pos]

    # ------------------------------------------------------------------ program
    def program(self, tree: Tree[Token]) -> Program:
        for decl in tree.children:
            assert isinstance(decl, Tree)
            handler = getattr(self, f"top_{decl.data}", None)
            if handler is None:
                raise self.err(decl, f"unsupported top-level declaration ({decl.data})")
            handler(decl)
        if self.main is None:
            raise P4FrontendError(self.pp.loc(len(self.pp.origins), 1), "no 'main' package instance")
        return Program(
            tuple(self.headers), tuple(self.structs), tuple(self.typedefs), tuple(self.constants),
            tuple(self.parsers.values()), tuple(self.controls.values()), self.main,
            self.pp.origins[0][0] if self.pp.origins else "",
        )  # fmt: skip

    def declare_global(self, tok: Token, binding: _Binding) -> None:
        name = str(tok)
        if self.globals.lookup(name) is not None or name in self.types:
            raise self.err(tok, f"duplicate declaration of '{name}'")
        self.globals.names[name] = binding

    def top_unsupported_decl(self, tree: Tree[Token]) -> None:
        tok = tree.children[1]
        assert isinstance(tok, Token)
        raise self.err(
            tok, f"unsupported construct: '{tok}' declarations are not supported by this front end"
        )

    def top_const_decl(self, tree: Tree[Token]) -> None:
        decl = self.const_decl(tree, self.globals)
        self.constants.append(decl)

    def const_decl(self, tree: Tree[Token], scope: _Scope) -> ConstantDecl:
        _annos, type_tree, name, value_tree = tree.children
        assert isinstance(name, Token) and isinstance(value_tree, Tree | Token)
        t = self.type_ref(type_tree)
        value = self.coerce(self.expr(value_tree, scope), t, value_tree, "constant initializer")
        if not isinstance(value, Constant | BoolLiteral):
            raise self.err(value_tree, f"initializer of constant '{name}' is not a compile-time constant")
        value = _renamed(value, str(name))
        if scope is self.globals:
            self.declare_global(name, _Binding("const", t, value))
        else:
            scope.names[str(name)] = _Binding("const", t, value)
        return ConstantDecl(str(name), t, value, self.loc(name))

    def top_typedef_decl(self, tree: Tree[Token]) -> None:
        _annos, type_tree, name = tree.children
        assert isinstance(name, Token)
        t = self.type_ref(type_tree)
        if str(name) in self.types:
            raise self.err(name, f"duplicate declaration of type '{name}'")
        self.types[str(name)] = t
        self.typedefs.append(TypedefDecl(str(name), t, self.loc(name)))

    def _fields(self, children: list[Tree[Token]], header: bool) -> tuple[StructField, ...]:
        fields: list[StructField] = []
        for f in children:
            annos, type_tree, name = f.children
            assert isinstance(annos, Tree) and isinstance(name, Token)
            t = self.type_ref(type_tree)
            if header and not isinstance(t, BitsType | VarbitType | BoolType):
                raise self.err(
                    type_tree, f"header field '{name}' must be bit<W>, int<W>, varbit or bool, not {t}"
                )
            if any(x.name == str(name) for x in fields):
                raise self.err(name, f"duplicate field '{name}'")
            fields.append(StructField(str(name), t, self.annos(annos), self.loc(name)))
        return tuple(fields)

    def top_header_decl(self, tree: Tree[Token]) -> None:
        annos, name, *fields = tree.children
        assert isinstance(annos, Tree) and isinstance(name, Token)
        h = HeaderType(
            str(name), self._fields(cast(list[Tree[Token]], fields), True), self.annos(annos), self.loc(name)
        )
        self._declare_type(name, h)
        self.headers.append(h)

    def top_struct_decl(self, tree: Tree[Token]) -> None:
        annos, name, *fields = tree.children
        assert isinstance(annos, Tree) and isinstance(name, Token)
        s = StructType(
            str(name), self._fields(cast(list[Tree[Token]], fields), False), self.annos(annos), self.loc(name)
        )
        self._declare_type(name, s)
        self.structs.append(s)

    def _declare_type(self, name: Token, t: Type) -> None:
        if str(name) in self.types:
            raise self.err(name, f"duplicate declaration of type '{name}'")
        self.types[str(name)] = t

    # ------------------------------------------------------------------ types
    def type_ref(self, node: Tree[Token] | Token | None) -> Type:
        assert isinstance(node, Tree)
        kind = node.data
        if kind == "bool_type":
            return BoolType()
        if kind == "bit1_type":
            return BitsType(1)
        if kind in ("bit_type", "int_type", "varbit_type"):
            width_node = node.children[1]
            width = self.const_int(width_node, self.globals, "width")
            if width <= 0:
                raise self.err(node, f"width must be positive, not {width}")
            if kind == "varbit_type":
                return VarbitType(width)
            return BitsType(width, signed=kind == "int_type")
        if kind == "named_type":
            (name,) = node.children
            assert isinstance(name, Token)
            return self.named_type(name)
        if kind == "generic_type":
            name = node.children[0]
            assert isinstance(name, Token)
            args: list[Type] = []
            for child in node.children[1:]:
                if isinstance(child, Tree) and child.data == "type_args":
                    args.extend(self.type_ref(c) for c in child.children)
                elif isinstance(child, Tree):
                    args.append(self.type_ref(child))
            if str(name) not in arch.EXTERNS:
                raise self.err(name, f"unknown generic type '{name}'")
            return ExternType(str(name), tuple(args))
        raise self.err(node, f"unsupported type syntax ({kind})")

    def named_type(self, name: Token) -> Type:
        text = str(name)
        if text in self.types:
            return self.types[text]
        if text in arch.EXTERNS:
            return ExternType(text)
        if text in arch.ENUMS:
            return arch.ENUMS[text]
        if text in self.controls:
            return ControlType(text, "control")
        if text in self.parsers:
            return ControlType(text, "parser")
        raise self.err(name, f"unknown type '{text}'")

    # ------------------------------------------------------------------ parsers and controls
    def params(self, tree: Tree[Token], action: bool) -> tuple[Param, ...]:
        out: list[Param] = []
        for p in tree.children:
            if p is None:
                continue
            assert isinstance(p, Tree)
            annos, direction, type_tree, name = p.children
            assert isinstance(annos, Tree) and isinstance(name, Token)
            d = str(direction) if direction is not None else ""
            if not action and d == "" and not isinstance(self.type_ref(type_tree), ExternType):
                raise self.err(name, f"parameter '{name}' needs a direction (in, out or inout)")
            if any(x.name == str(name) for x in out):
                raise self.err(name, f"duplicate parameter '{name}'")
            out.append(
                Param(
                    str(name),
                    cast(Direction, d),
                    self.type_ref(type_tree),
                    self.annos(annos),
                    self.loc(name),
                )
            )
        return tuple(out)

    def top_parser_decl(self, tree: Tree[Token]) -> None:
        annos, name, params_tree, *rest = tree.children
        assert isinstance(annos, Tree) and isinstance(name, Token) and isinstance(params_tree, Tree)
        params = self.params(params_tree, False)
        scope = _Scope(self.globals)
        for p in params:
            scope.names[p.name] = _Binding("param", p.type)
        self.ctx = _ControlCtx(str(name), {}, {}, {}, {})
        locals_: list[ExternInstance | VarDecl | ConstantDecl] = []
        state_trees: list[Tree[Token]] = []
        for child in rest:
            assert isinstance(child, Tree)
            if child.data == "parser_state":
                state_trees.append(child)
            elif child.data == "var_decl":
                locals_.append(self.var_decl(child, scope))
            elif child.data == "const_decl":
                locals_.append(self.const_decl(child, scope))
            else:
                raise self.err(child, "unsupported construct: instantiations inside a parser")
        names = {str(s.children[1]) for s in state_trees}
        states = tuple(self.parser_state(s, scope, names) for s in state_trees)
        if "start" not in names:
            raise self.err(name, f"parser '{name}' has no start state")
        self.ctx = None
        self.declare_global(name, _Binding("parser_decl", ControlType(str(name), "parser")))
        self.parsers[str(name)] = Parser(
            str(name), params, tuple(locals_), states, self.annos(annos), self.loc(name)
        )

    def parser_state(self, tree: Tree[Token], outer: _Scope, names: set[str]) -> ParserState:
        annos, name, *body = tree.children
        assert isinstance(annos, Tree) and isinstance(name, Token)
        scope = _Scope(outer)
        stmts = tuple(self.stmt(cast(Tree[Token], s), scope) for s in body[:-1])
        trans = body[-1]
        assert isinstance(trans, Tree)
        transition: Select | Goto
        if trans.data == "goto":
            (target,) = trans.children
            assert isinstance(target, Token)
            self.check_state(target, names)
            transition = Goto(str(target), self.loc(trans))
        else:
            keys_tree, *case_trees = trans.children
            assert isinstance(keys_tree, Tree)
            keys = tuple(self.expr(k, scope) for k in keys_tree.children)
            cases = tuple(self.select_case(cast(Tree[Token], c), keys, scope, names) for c in case_trees)
            transition = Select(keys, cases, self.loc(trans))
        return ParserState(str(name), stmts, transition, self.annos(annos), self.loc(name))

    def check_state(self, target: Token, names: set[str]) -> None:
        if str(target) not in names and str(target) not in ("accept", "reject"):
            raise self.err(target, f"unknown parser state '{target}'")

    def select_case(
        self, tree: Tree[Token], keys: tuple[Expr, ...], scope: _Scope, names: set[str]
    ) -> SelectCase:
        keyset_tree, target = tree.children
        assert isinstance(keyset_tree, Tree) and isinstance(target, Token)
        self.check_state(target, names)
        items = keyset_tree.children
        if len(items) == 1 and isinstance(items[0], Tree) and items[0].data == "ks_default":
            keysets: tuple[Keyset, ...] = tuple(DefaultKeyset(self.loc(items[0])) for _ in keys)
        else:
            if len(items) != len(keys):
                raise self.err(keyset_tree, f"select has {len(keys)} key(s) but this case has {len(items)}")
            keysets = tuple(self.keyset(i, k, scope) for i, k in zip(items, keys, strict=True))
        return SelectCase(keysets, str(target), self.loc(tree))

    def keyset(self, node: Tree[Token] | Token, key: Expr, scope: _Scope) -> Keyset:
        if isinstance(node, Tree) and node.data == "ks_default":
            return DefaultKeyset(self.loc(node))
        if isinstance(node, Tree) and node.data in ("ks_mask", "ks_range"):
            a, b = (self.keyset_value(c, key, scope) for c in node.children)
            if node.data == "ks_mask":
                return MaskKeyset(a, b, self.loc(node))
            return RangeKeyset(a, b, self.loc(node))
        value = self.keyset_value(node, key, scope)
        return value

    def keyset_value(self, node: Tree[Token] | Token, key: Expr, scope: _Scope) -> Constant:
        value = self.coerce(self.expr(node, scope), key.type, node, "select case")
        if not isinstance(value, Constant):
            raise self.err(node, "select case values must be compile-time constants")
        return value

    def top_control_decl(self, tree: Tree[Token]) -> None:
        annos, name, params_tree, *rest = tree.children
        assert isinstance(annos, Tree) and isinstance(name, Token) and isinstance(params_tree, Tree)
        params = self.params(params_tree, False)
        scope = _Scope(self.globals)
        for p in params:
            scope.names[p.name] = _Binding("param", p.type)
        ctx = _ControlCtx(str(name), {}, {}, {}, {})
        self.ctx = ctx
        locals_: list[Action | Table | ExternInstance | ControlInstance | VarDecl | ConstantDecl] = []
        body_tree = rest[-1]
        for child in rest[:-1]:
            assert isinstance(child, Tree)
            local = self.control_local(child, scope, ctx)
            locals_.append(local)
        assert isinstance(body_tree, Tree)
        body = self.block(body_tree, scope)
        self.ctx = None
        if NO_ACTION in ctx.actions and ctx.actions[NO_ACTION] not in locals_:
            # core.p4's NoAction, localized as p4c's LocalizeAllActions does: first in the control.
            locals_.insert(0, ctx.actions[NO_ACTION])
        self.declare_global(name, _Binding("control_decl", ControlType(str(name), "control")))
        self.controls[str(name)] = Control(
            str(name), params, tuple(locals_), body, self.annos(annos), self.loc(name)
        )

    def control_local(
        self, child: Tree[Token], scope: _Scope, ctx: _ControlCtx
    ) -> Action | Table | ExternInstance | ControlInstance | VarDecl | ConstantDecl:
        name_tok = next(c for c in child.children if isinstance(c, Token) and c.type == "NAME")
        if (
            child.data != "instantiation"
            and scope.lookup(str(name_tok)) is not None
            and scope.names.get(str(name_tok))
        ):
            raise self.err(name_tok, f"duplicate declaration of '{name_tok}'")
        if child.data == "const_decl":
            return self.const_decl(child, scope)
        if child.data == "var_decl":
            return self.var_decl(child, scope)
        if child.data == "action_decl":
            action = self.action_decl(child, scope)
            ctx.actions[action.name] = action
            scope.names[action.name] = _Binding("action", BoolType())
            return action
        if child.data == "table_decl":
            table = self.table_decl(child, scope, ctx)
            ctx.tables[table.name] = table
            scope.names[table.name] = _Binding("table", TableType(table.name))
            return table
        inst = self.instantiation(child, scope)
        if str(inst.name) in scope.names:
            raise self.err(child, f"duplicate declaration of '{inst.name}'")
        if isinstance(inst, ControlInstance):
            ctx.instances[inst.name] = inst
            scope.names[inst.name] = _Binding("instance", ControlType(inst.control, "control"))
        else:
            ctx.externs[inst.name] = inst
            scope.names[inst.name] = _Binding("instance", inst.type)
        return inst

    def var_decl(self, tree: Tree[Token], scope: _Scope) -> VarDecl:
        annos, type_tree, name, init_tree = tree.children
        assert isinstance(annos, Tree) and isinstance(name, Token)
        t = self.type_ref(type_tree)
        if isinstance(t, ExternType | ControlType):
            raise self.err(type_tree, f"'{t}' is not a data type (instantiations need constructor arguments)")
        init = None
        if init_tree is not None:
            init = self.coerce(self.expr(init_tree, scope), t, init_tree, f"initializer of '{name}'")
        scope.names[str(name)] = _Binding("local", t)
        return VarDecl(str(name), t, init, self.annos(annos), self.loc(name))

    def instantiation(self, tree: Tree[Token], scope: _Scope) -> ExternInstance | ControlInstance:
        annos_tree, type_tree, args_tree, name = tree.children
        assert isinstance(annos_tree, Tree) and isinstance(args_tree, Tree) and isinstance(name, Token)
        annos = self.annos(annos_tree)
        t = self.type_ref(type_tree)
        arg_nodes = [a for a in args_tree.children if a is not None]
        loc = self.loc(name)
        if isinstance(t, ControlType) and t.kind == "control":
            if arg_nodes:
                raise self.err(args_tree, "unsupported construct: control constructor arguments")
            return ControlInstance(str(name), t.name, (), annos, loc)
        if not isinstance(t, ExternType):
            raise self.err(type_tree, f"cannot instantiate '{t}'")
        spec = arch.EXTERNS[t.name]
        if len(t.type_args) != spec.type_params:
            raise self.err(
                type_tree, f"{t.name} takes {spec.type_params} type argument(s), not {len(t.type_args)}"
            )
        if len(arg_nodes) != len(spec.constructor):
            raise self.err(
                args_tree,
                f"{t.name} takes {len(spec.constructor)} constructor argument(s), not {len(arg_nodes)}",
            )
        args = tuple(
            self.coerce(self.expr(a, scope), cast(Type, p.kind), a, f"{t.name} argument '{p.name}'")
            for a, p in zip(arg_nodes, spec.constructor, strict=True)
        )  # fmt: skip
        return self.extern_instance(str(name), t, args, annos, loc, tree)

    def extern_instance(
        self,
        name: str,
        t: ExternType,
        args: tuple[Expr, ...],
        annos: tuple[Annotation, ...],
        loc: SourceLoc,
        tree: Tree[Token],
    ) -> ExternInstance:
        def num(e: Expr) -> int:
            if not isinstance(e, Constant):
                raise self.err(tree, f"{t.name} arguments must be compile-time constants")
            return e.value

        def enum(e: Expr) -> str:
            assert isinstance(e, EnumMember)
            return e.member

        if t.name == "register":
            elem = t.type_args[0]
            if not isinstance(elem, BitsType):
                raise self.err(tree, "unsupported construct: register element type other than bit<W>")
            return RegisterInstance(name, t, args, annos, loc, element_width=elem.width, size=num(args[0]))
        if t.name == "counter":
            return CounterInstance(name, t, args, annos, loc, size=num(args[0]), unit=enum(args[1]))
        if t.name == "direct_counter":
            return DirectCounterInstance(name, t, args, annos, loc, unit=enum(args[0]))
        max_group = find_annotation(annos, "max_group_size")
        max_group_size = 0
        if max_group is not None:
            if len(max_group.args) != 1 or not isinstance(max_group.args[0], int):
                raise P4FrontendError(max_group.loc, "@max_group_size needs one integer argument")
            max_group_size = max_group.args[0]
        if t.name == "action_selector":
            return ActionProfileInstance(
                name, t, args, annos, loc, size=num(args[1]), with_selector=True, algorithm=enum(args[0]),
                output_width=num(args[2]), max_group_size=max_group_size,
            )  # fmt: skip
        if t.name == "action_profile":
            return ActionProfileInstance(name, t, args, annos, loc, size=num(args[0]))
        raise self.err(tree, f"unsupported construct: instances of {t.name} inside a control")

    def top_instantiation(self, tree: Tree[Token]) -> None:
        annos_tree, type_tree, args_tree, name = tree.children
        assert isinstance(annos_tree, Tree) and isinstance(type_tree, Tree) and isinstance(args_tree, Tree)
        assert isinstance(name, Token)
        if type_tree.data != "named_type" or str(type_tree.children[0]) != "V1Switch":
            raise self.err(
                type_tree,
                "unsupported construct: only 'V1Switch(...) main;' may be instantiated at top level",
            )
        if str(name) != "main":
            raise self.err(name, "the V1Switch instance must be called 'main'")
        arg_nodes = [a for a in args_tree.children if a is not None]
        if len(arg_nodes) != len(arch.V1SWITCH):
            raise self.err(args_tree, f"V1Switch takes {len(arch.V1SWITCH)} arguments, not {len(arg_nodes)}")
        names: list[str] = []
        for node, (pname, kind) in zip(arg_nodes, arch.V1SWITCH, strict=True):
            if not (isinstance(node, Tree) and node.data == "call" and isinstance(node.children[0], Tree)
                    and node.children[0].data == "name"):  # fmt: skip
                raise self.err(
                    node, f"V1Switch argument '{pname}' must be a {kind} constructor call like X()"
                )
            callee = node.children[0].children[0]
            assert isinstance(callee, Token)
            known = self.parsers if kind == "parser" else self.controls
            if str(callee) not in known:
                raise self.err(
                    callee,
                    f"V1Switch argument '{pname}' must be a {kind}; '{callee}' is not a declared {kind}",
                )
            names.append(str(callee))
        self.main = PackageInstance("V1Switch", "main", tuple(names), self.annos(annos_tree), self.loc(name))

    def top_action_decl(self, tree: Tree[Token]) -> None:
        raise self.err(tree, "unsupported construct: top-level actions (declare actions inside a control)")

    def action_decl(self, tree: Tree[Token], outer: _Scope) -> Action:
        annos, name, params_tree, body_tree = tree.children
        assert isinstance(annos, Tree) and isinstance(name, Token) and isinstance(params_tree, Tree)
        assert isinstance(body_tree, Tree)
        params = self.params(params_tree, True)
        scope = _Scope(outer)
        for p in params:
            if not isinstance(p.type, BitsType | BoolType):
                raise self.err(params_tree, f"action parameter '{p.name}' must be bit<W>, int<W> or bool")
            scope.names[p.name] = _Binding("action_param", p.type)
        self.in_action = True
        body = self.block(body_tree, scope)
        self.in_action = False
        return Action(str(name), params, body, self.annos(annos), self.loc(name))

    # ------------------------------------------------------------------ tables
    def table_decl(self, tree: Tree[Token], scope: _Scope, ctx: _ControlCtx) -> Table:
        annos, name, *props = tree.children
        assert isinstance(annos, Tree) and isinstance(name, Token)
        keys: tuple[KeyElement, ...] = ()
        actions: tuple[ActionRef, ...] = ()
        default: DefaultAction | None = None
        size: int | None = None
        implementation: str | None = None
        counters: str | None = None
        seen: set[str] = set()
        for prop in props:
            assert isinstance(prop, Tree)
            pname = prop.data if prop.data != "generic_prop" else str(prop.children[2])
            if pname in seen:
                raise self.err(prop, f"duplicate table property '{pname.removesuffix('_prop')}'")
            seen.add(pname)
            if prop.data == "key_prop":
                keys = tuple(self.key_element(cast(Tree[Token], k), scope) for k in prop.children)
            elif prop.data == "actions_prop":
                actions = tuple(self.action_ref(cast(Tree[Token], a), ctx) for a in prop.children)
            elif prop.data == "default_prop":
                default = self.default_action(prop, scope, ctx, actions)
            elif prop.data == "entries_prop":
                raise self.err(prop, "unsupported construct: table entries")
            else:
                _annos, _const, pname_tok, value = prop.children
                assert isinstance(pname_tok, Token)
                if str(pname_tok) == "size":
                    size = self.const_int(value, scope, "table size")
                elif str(pname_tok) in ("implementation", "counters"):
                    ref = self.instance_ref(value, ctx)
                    is_impl = str(pname_tok) == "implementation"
                    expected = ("action_selector", "action_profile") if is_impl else ("direct_counter",)
                    if ref.type.name not in expected:
                        raise self.err(
                            value if isinstance(value, Tree) else prop,
                            f"table {pname_tok} must be a {' or '.join(expected)} instance, "
                            f"'{ref.name}' is a {ref.type.name}",
                        )
                    if str(pname_tok) == "implementation":
                        implementation = ref.name
                    else:
                        counters = ref.name
                else:
                    raise self.err(pname_tok, f"unsupported table property '{pname_tok}'")
        if not actions:
            raise self.err(name, f"table '{name}' has no actions")
        if default is None:
            # P4-16 "Default action": a table without one runs NoAction on a miss; p4c adds it to
            # the actions list as @defaultonly when it is not there.
            no_action = self.no_action(ctx, name)
            if not any(a.action == NO_ACTION for a in actions):
                actions += (ActionRef(NO_ACTION, (Annotation("defaultonly"),), self.loc(name)),)
            default = DefaultAction(no_action.name, (), False, self.loc(name))
        if any(k.match_kind == "selector" for k in keys):
            impl = ctx.externs.get(implementation or "")
            if not (isinstance(impl, ActionProfileInstance) and impl.with_selector):
                raise self.err(
                    name, f"table '{name}' has selector keys but no action_selector implementation"
                )
        return Table(
            str(name),
            keys,
            actions,
            default,
            size,
            implementation,
            counters,
            self.annos(annos),
            self.loc(name),
        )

    def no_action(self, ctx: _ControlCtx, where: Tree[Token] | Token) -> Action:
        """core.p4's `@noWarn("unused") action NoAction() {}`, as a local of this control named
        `.NoAction` (one global control-plane name however many controls use it)."""
        found = ctx.actions.get(NO_ACTION)
        if found is None:
            loc = self.loc(where)
            annos = (
                Annotation("noWarn", '"unused"', ("unused",), loc),
                Annotation("name", '".NoAction"', (".NoAction",), loc),
            )
            found = ctx.actions[NO_ACTION] = Action(NO_ACTION, (), Block((), loc), annos, loc)
        return found

    def key_element(self, tree: Tree[Token], scope: _Scope) -> KeyElement:
        expr_tree, kind, annos_tree = tree.children
        assert isinstance(kind, Token) and isinstance(annos_tree, Tree)
        expr = self.expr(expr_tree, scope)
        if str(kind) not in arch.MATCH_KINDS:
            raise self.err(kind, f"unknown match kind '{kind}'")
        if not isinstance(expr.type, BitsType | BoolType):
            raise self.err(expr_tree, f"table key must be bit<W> or bool, not {expr.type}")
        annos = self.annos(annos_tree)
        name_anno = find_annotation(annos, "name")
        if name_anno is not None and name_anno.args and isinstance(name_anno.args[0], str):
            name = name_anno.args[0]
        else:
            name = self.key_name(expr, expr_tree)
        width = expr.type.width if isinstance(expr.type, BitsType) else 1
        return KeyElement(expr, cast(MatchKind, str(kind)), name, width, annos, self.loc(tree))

    def key_name(self, expr: Expr, node: Tree[Token] | Token | None) -> str:
        """p4c's TableKeyNames: the source form of fields and slices, `x.$valid$` for isValid()."""
        if isinstance(expr, PathRef):
            return expr.name
        if isinstance(expr, Member):
            return f"{self.key_name(expr.expr, None)}.{expr.member}"
        if isinstance(expr, Slice):
            return f"{self.key_name(expr.expr, None)}[{expr.hi}:{expr.lo}]"
        if isinstance(expr, IsValid):
            return f"{self.key_name(expr.header, None)}.$valid$"
        raise P4FrontendError(expr.loc, "unsupported construct: complex table key expression without @name")

    def action_ref(self, tree: Tree[Token], ctx: _ControlCtx) -> ActionRef:
        annos, name, args = tree.children
        assert isinstance(annos, Tree) and isinstance(name, Token)
        if str(name) == NO_ACTION:
            self.no_action(ctx, name)
        if str(name) not in ctx.actions:
            raise self.err(name, f"unknown action '{name}' in control {ctx.name}")
        if args is not None and any(a is not None for a in cast(Tree[Token], args).children):
            raise self.err(tree, "unsupported construct: action arguments in an actions list")
        ref = ActionRef(str(name), self.annos(annos), self.loc(name))
        if find_annotation(ref.annotations, "tableonly") and find_annotation(ref.annotations, "defaultonly"):
            raise self.err(name, f"action '{name}' cannot be both @tableonly and @defaultonly")
        return ref

    def default_action(
        self, prop: Tree[Token], scope: _Scope, ctx: _ControlCtx, actions: tuple[ActionRef, ...]
    ) -> DefaultAction:
        _annos, const, value = prop.children
        assert isinstance(value, Tree | Token)
        if isinstance(value, Tree) and value.data == "call":
            callee, args_tree = value.children
            arg_nodes = [a for a in cast(Tree[Token], args_tree).children if a is not None]
        else:
            callee, arg_nodes = value, []
        if not (isinstance(callee, Tree) and callee.data == "name"):
            raise self.err(value, "default_action must name an action")
        name = callee.children[0]
        assert isinstance(name, Token)
        if str(name) == NO_ACTION:
            self.no_action(ctx, name)
        action = ctx.actions.get(str(name))
        if action is None:
            raise self.err(name, f"unknown action '{name}' in control {ctx.name}")
        ref = next((a for a in actions if a.action == str(name)), None)
        if ref is None:
            raise self.err(name, f"default action '{name}' is not in the table's actions list")
        if ref.scope == "TABLE_ONLY":
            raise self.err(name, f"default action '{name}' is annotated @tableonly")
        args = self.call_args(action.params, arg_nodes, scope, value, f"action {name}")
        return DefaultAction(str(name), args, const is not None, self.loc(prop))

    def instance_ref(self, value: Tree[Token] | Token | None, ctx: _ControlCtx) -> ExternInstance:
        if isinstance(value, Tree) and value.data == "name":
            tok = value.children[0]
            assert isinstance(tok, Token)
            inst = ctx.externs.get(str(tok))
            if inst is None:
                raise self.err(tok, f"unknown extern instance '{tok}' in control {ctx.name}")
            return inst
        assert value is not None
        raise self.err(
            value, "unsupported construct: table property must name an instance declared in the control"
        )

    # ------------------------------------------------------------------ statements
    def block(self, tree: Tree[Token], outer: _Scope) -> Block:
        scope = _Scope(outer)
        return Block(tuple(self.stmt(cast(Tree[Token], s), scope) for s in tree.children), self.loc(tree))

    def stmt(self, tree: Tree[Token], scope: _Scope) -> Stmt:
        kind = tree.data
        loc = self.loc(tree)
        if kind == "assignment":
            lhs_tree, rhs_tree = tree.children
            lhs = self.expr(lhs_tree, scope)
            self.check_lvalue(lhs, lhs_tree)
            rhs = self.coerce(self.expr(rhs_tree, scope), lhs.type, rhs_tree, "assignment")
            return Assign(lhs, rhs, loc)
        if kind == "call_stmt":
            (call_tree,) = tree.children
            assert isinstance(call_tree, Tree | Token)
            return CallStmt(self.call(call_tree, scope, statement=True), loc)
        if kind == "if_stmt":
            cond_tree, then_tree, *rest = tree.children
            else_tree = rest[0] if rest else None
            cond = self.coerce(self.expr(cond_tree, scope), BoolType(), cond_tree, "if condition")
            then = self.as_block(cast(Tree[Token], then_tree), scope)
            else_ = self.as_block(else_tree, scope) if isinstance(else_tree, Tree) else None
            return If(cond, then, else_, loc)
        if kind == "block":
            return self.block(tree, scope)
        if kind == "var_decl":
            return self.var_decl(tree, scope)
        if kind == "const_decl":
            self.const_decl(tree, scope)
            return EmptyStmt(loc)
        if kind == "switch_stmt":
            return self.switch(tree, scope)
        if kind == "exit_stmt":
            return Exit(loc)
        if kind == "return_stmt":
            return Return(loc)
        if kind == "empty_stmt":
            return EmptyStmt(loc)
        raise self.err(tree, f"unsupported statement ({kind})")

    def as_block(self, tree: Tree[Token], scope: _Scope) -> Block:
        if tree.data == "block":
            return self.block(tree, scope)
        inner = _Scope(scope)
        return Block((self.stmt(tree, inner),), self.loc(tree))

    def check_lvalue(self, e: Expr, node: Tree[Token] | Token | None) -> None:
        root = e
        while isinstance(root, Member | Slice):
            root = root.expr
        if not isinstance(root, PathRef) or root.kind not in ("param", "local"):
            assert node is not None
            raise self.err(node, "left side of an assignment must be a variable, parameter or field")

    def switch(self, tree: Tree[Token], scope: _Scope) -> Switch:
        expr_tree, *case_trees = tree.children
        expr = self.expr(expr_tree, scope)
        if not (
            isinstance(expr, Member) and expr.member == "action_run" and isinstance(expr.expr, TableApply)
        ):
            raise self.err(
                cast(Tree[Token], expr_tree),
                "unsupported construct: switch on anything but t.apply().action_run",
            )
        table = expr.expr.table
        assert self.ctx is not None
        table_actions = {a.action for a in self.ctx.tables[table].actions}
        cases: list[SwitchCase] = []
        for c in case_trees:
            assert isinstance(c, Tree)
            label, body = c.children
            if isinstance(label, Tree):
                labels: tuple[str | None, ...] = (None,)
            else:
                assert isinstance(label, Token)
                if str(label) not in table_actions:
                    raise self.err(label, f"'{label}' is not an action of table {table}")
                labels = (str(label),)
            cases.append(
                SwitchCase(labels, self.block(body, scope) if isinstance(body, Tree) else None, self.loc(c))
            )
        return Switch(table, tuple(cases), self.loc(tree))

    # ------------------------------------------------------------------ calls
    def call(self, node: Tree[Token] | Token, scope: _Scope, statement: bool) -> Call:
        if not (isinstance(node, Tree) and node.data == "call"):
            raise self.err(node, "expression statement must be a call")
        callee, args_tree = node.children
        assert isinstance(callee, Tree) and isinstance(args_tree, Tree)
        arg_nodes = [a for a in args_tree.children if a is not None]
        loc = self.loc(node)
        if callee.data == "name":
            tok = callee.children[0]
            assert isinstance(tok, Token)
            name = str(tok)
            if name in arch.FUNCTIONS:
                return self.function_call(name, arg_nodes, scope, node)
            if self.ctx is not None and name in self.ctx.actions:
                action = self.ctx.actions[name]
                args = self.call_args(action.params, arg_nodes, scope, node, f"action {name}")
                return ActionCall(name, args, loc)
            if scope.lookup(name) is None:
                raise self.err(tok, f"unknown function or action '{name}'")
            raise self.err(tok, f"'{name}' cannot be called")
        if callee.data != "member":
            raise self.err(callee, "unsupported construct: call of a computed expression")
        target_tree, method_tok = callee.children
        assert isinstance(method_tok, Token)
        method = str(method_tok)
        target = self.expr(target_tree, scope)
        if isinstance(target, PathRef) and target.kind == "table":
            if method != "apply":
                raise self.err(method_tok, f"tables have no method '{method}'")
            if arg_nodes:
                raise self.err(args_tree, "table apply() takes no arguments")
            return ApplyCall(target.name, "table", (), loc)
        if isinstance(target.type, ControlType) and isinstance(target, PathRef):
            if method != "apply":
                raise self.err(method_tok, f"controls have no method '{method}'")
            control = self.controls[target.type.name]
            args = self.call_args(control.params, arg_nodes, scope, node, f"{control.name}.apply")
            return ApplyCall(target.name, "control", args, loc)
        if isinstance(target.type, HeaderType):
            if method in ("setValid", "setInvalid"):
                if arg_nodes:
                    raise self.err(args_tree, f"{method}() takes no arguments")
                return MethodCall(target, "header", method, (), loc)
            if method == "isValid":
                raise self.err(node, "isValid() result is unused")
            raise self.err(method_tok, f"headers have no method '{method}'")
        if isinstance(target.type, ExternType):
            spec = arch.EXTERNS[target.type.name]
            m = spec.method(method)
            if m is None:
                raise self.err(method_tok, f"{spec.name} has no method '{method}'")
            elem = target.type.type_args[0] if target.type.type_args else None
            params = tuple(
                Param(p.name, p.direction, cast(Type, elem if p.kind == "T" else p.kind)) for p in m.params
            )
            args = self.call_args(params, arg_nodes, scope, node, f"{spec.name}.{method}")
            return MethodCall(target, spec.name, method, args, loc)
        raise self.err(method_tok, f"'{method}' is not a method of {target.type}")

    def function_call(
        self, name: str, arg_nodes: list[Tree[Token] | Token], scope: _Scope, node: Tree[Token]
    ) -> FunctionCall:
        spec = arch.FUNCTIONS[name]
        params = tuple(Param(p.name, p.direction, cast(Type, p.kind)) for p in spec.params)
        args = self.call_args(params, arg_nodes, scope, node, name)
        type_args = tuple(a.type for a, p in zip(args, spec.params, strict=True) if p.kind == "any")
        if name == "mark_to_drop" and self.in_action is False and self.ctx is None:
            raise self.err(node, "mark_to_drop outside a control")
        return FunctionCall(name, args, type_args, self.loc(node))

    def call_args(
        self, params: tuple[Param, ...], arg_nodes: list[Tree[Token] | Token], scope: _Scope,
        node: Tree[Token] | Token, what: str,
    ) -> tuple[Expr, ...]:  # fmt: skip
        if len(arg_nodes) != len(params):
            raise self.err(node, f"{what} takes {len(params)} argument(s), not {len(arg_nodes)}")
        out: list[Expr] = []
        for a, p in zip(arg_nodes, params, strict=True):
            e = self.expr(a, scope)
            if p.type == "any":  # type: ignore[comparison-overlap]
                coerced = e
            elif p.type == "header":  # type: ignore[comparison-overlap]
                if not isinstance(e.type, HeaderType):
                    raise self.err(a, f"argument '{p.name}' of {what} must be a header, not {e.type}")
                coerced = e
            else:
                coerced = self.coerce(e, p.type, a, f"argument '{p.name}' of {what}")
            if p.direction in ("out", "inout"):
                self.check_lvalue(coerced, a)
            out.append(coerced)
        return tuple(out)

    # ------------------------------------------------------------------ expressions
    def const_int(self, node: Tree[Token] | Token | None, scope: _Scope, what: str) -> int:
        assert node is not None
        e = self.expr(node, scope)
        if not isinstance(e, Constant):
            raise self.err(node, f"{what} must be a compile-time integer")
        return e.value

    def expr(self, node: Tree[Token] | Token | None, scope: _Scope) -> Expr:
        assert node is not None
        if isinstance(node, Token):
            if node.type == "INTEGER":
                return self.integer(node)
            raise self.err(node, f"unexpected token {node!r}")
        kind = node.data
        loc = self.loc(node)
        if kind == "integer":
            tok = node.children[0]
            assert isinstance(tok, Token)
            return self.integer(tok)
        if kind == "true":
            return BoolLiteral(True, loc=loc)
        if kind == "false":
            return BoolLiteral(False, loc=loc)
        if kind == "string":
            return StringLiteral(str(node.children[0])[1:-1], loc=loc)
        if kind == "name":
            tok = node.children[0]
            assert isinstance(tok, Token)
            return self.name(tok, scope)
        if kind == "member":
            return self.member(node, scope)
        if kind == "call":
            return self.call_expr(node, scope)
        if kind == "slice":
            return self.slice(node, scope)
        if kind == "index":
            raise self.err(node, "unsupported construct: header stacks and array indexing")
        if kind == "list_expr":
            (items,) = node.children
            elements = tuple(self.expr(c, scope) for c in cast(Tree[Token], items).children) if items else ()
            return ListExpr(elements, TupleType(tuple(e.type for e in elements)), loc)
        if kind == "cast":
            type_tree, inner_tree = node.children
            return self.cast(self.type_ref(type_tree), self.expr(inner_tree, scope), node)
        if kind in ("lnot", "bnot", "neg"):
            return self.unary(kind, self.expr(node.children[0], scope), node)
        if kind == "mux":
            c, t, f = (self.expr(x, scope) for x in node.children)
            cond = self.coerce(c, BoolType(), node.children[0], "condition of ?:")
            t2, f2 = self.unify(t, f, node)
            if isinstance(cond, BoolLiteral):
                return t2 if cond.value else f2
            return Mux(cond, t2, f2, t2.type, loc)
        if kind in _BINOPS:
            left = self.expr(node.children[0], scope)
            right = self.expr(node.children[1], scope)
            return self.binary(_BINOPS[kind], left, right, node)
        if kind in ("div", "mod"):
            raise self.err(node, "unsupported construct: division and modulo")
        raise self.err(node, f"unsupported expression ({kind})")

    def integer(self, tok: Token) -> Constant:
        try:
            value, width, signed = parse_integer(str(tok))
        except ValueError as exc:
            raise self.err(tok, str(exc)) from None
        if width is None:
            return Constant(value, IntType(), self.loc(tok))
        if width <= 0:
            raise self.err(tok, f"integer width must be positive in {tok}")
        return Constant(_wrap(value, width, signed), BitsType(width, signed), self.loc(tok))

    def name(self, tok: Token, scope: _Scope) -> Expr:
        text = str(tok)
        b = scope.lookup(text)
        loc = self.loc(tok)
        if b is None:
            if text in arch.ENUMS or text in self.types or text in arch.EXTERNS:
                raise self.err(tok, f"'{text}' is a type, not a value")
            raise self.err(tok, f"unknown name '{text}'")
        if b.kind == "const":
            assert b.value is not None
            return _relocated(b.value, loc)
        if b.kind in ("param", "local", "action_param", "instance", "table"):
            return PathRef(text, cast(PathKind, b.kind), b.type, loc)
        raise self.err(tok, f"'{text}' ({b.kind}) cannot be used as a value")

    def member(self, node: Tree[Token], scope: _Scope) -> Expr:
        target_tree, field_tok = node.children
        assert isinstance(field_tok, Token)
        name = str(field_tok)
        loc = self.loc(field_tok)
        if isinstance(target_tree, Tree) and target_tree.data == "name":
            root = target_tree.children[0]
            assert isinstance(root, Token)
            if scope.lookup(str(root)) is None and str(root) in arch.ENUMS:
                enum = arch.ENUMS[str(root)]
                if name not in enum.members:
                    raise self.err(field_tok, f"{enum.name} has no member '{name}'")
                return EnumMember(enum.name, name, enum, loc)
        target = self.expr(target_tree, scope)
        t = target.type
        if isinstance(t, HeaderType | StructType):
            f = t.field(name)
            if f is None:
                kind = "header" if isinstance(t, HeaderType) else "struct"
                raise self.err(field_tok, f"unknown field '{name}' of {kind} {t.name}")
            return Member(target, name, f.type, loc)
        if isinstance(t, ApplyResultType):
            if name in ("hit", "miss"):
                return Member(target, name, BoolType(), loc)
            if name == "action_run":
                return Member(target, name, t, loc)
            raise self.err(field_tok, f"table apply result has no member '{name}'")
        raise self.err(field_tok, f"{t} has no field '{name}'")

    def call_expr(self, node: Tree[Token], scope: _Scope) -> Expr:
        callee, args_tree = node.children
        assert isinstance(callee, Tree) and isinstance(args_tree, Tree)
        has_args = any(a is not None for a in args_tree.children)
        if callee.data == "member":
            target_tree, method_tok = callee.children
            assert isinstance(method_tok, Token)
            target = self.expr(target_tree, scope)
            method = str(method_tok)
            if isinstance(target.type, HeaderType) and method == "isValid" and not has_args:
                return IsValid(target, loc=self.loc(node))
            if isinstance(target, PathRef) and target.kind == "table" and method == "apply" and not has_args:
                return TableApply(target.name, ApplyResultType(target.name), self.loc(node))
        raise self.err(node, "unsupported construct: this call cannot be used as a value")

    def slice(self, node: Tree[Token], scope: _Scope) -> Expr:
        target_tree, hi_tree, lo_tree = node.children
        target = self.expr(target_tree, scope)
        if not isinstance(target.type, BitsType):
            raise self.err(node, f"cannot slice a value of type {target.type}")
        hi = self.const_int(hi_tree, scope, "slice bound")
        lo = self.const_int(lo_tree, scope, "slice bound")
        if not 0 <= lo <= hi < target.type.width:
            raise self.err(node, f"slice [{hi}:{lo}] out of range for {target.type}")
        t = BitsType(hi - lo + 1)
        if isinstance(target, Constant):
            return Constant((target.value >> lo) & ((1 << t.width) - 1), t, self.loc(node))
        return Slice(target, hi, lo, t, self.loc(node))

    def cast(self, t: Type, e: Expr, node: Tree[Token]) -> Expr:
        loc = self.loc(node)
        if isinstance(t, BitsType):
            if isinstance(e, Constant):
                return Constant(_wrap(e.value, t.width, t.signed), t, loc)
            if isinstance(e.type, BitsType):
                return e if e.type == t else Cast(e, t, loc)
            if isinstance(e.type, BoolType) and t.width == 1:
                return Cast(e, t, loc)
        if isinstance(t, BoolType):
            if isinstance(e.type, BoolType):
                return e
            if isinstance(e.type, BitsType) and e.type.width == 1:
                return Cast(e, t, loc)
        raise self.err(node, f"cannot cast {e.type} to {t}")

    def unary(self, kind: str, e: Expr, node: Tree[Token]) -> Expr:
        loc = self.loc(node)
        if kind == "lnot":
            if not isinstance(e.type, BoolType):
                raise self.err(node, f"'!' needs a bool operand, not {e.type}")
            if isinstance(e, BoolLiteral):
                return BoolLiteral(not e.value, loc=loc)
            return Unary("!", e, BoolType(), loc)
        if isinstance(e, Constant):
            if kind == "neg":
                if isinstance(e.type, IntType):
                    return Constant(-e.value, IntType(), loc)
                return Constant(_wrap(-e.value, e.type.width, e.type.signed), e.type, loc)
            if isinstance(e.type, IntType):
                raise self.err(node, "'~' needs an operand with a width")
            return Constant(_wrap(~e.value, e.type.width, e.type.signed), e.type, loc)
        if not isinstance(e.type, BitsType):
            raise self.err(node, f"'{'~' if kind == 'bnot' else '-'}' needs a bit<W> operand, not {e.type}")
        return Unary("~" if kind == "bnot" else "-", e, e.type, loc)

    def binary(self, op: BinaryOp, left: Expr, right: Expr, node: Tree[Token]) -> Expr:
        loc = self.loc(node)
        if op in ("&&", "||"):
            for side, e in (("left", left), ("right", right)):
                if not isinstance(e.type, BoolType):
                    raise self.err(node, f"'{op}' needs bool operands; the {side} one is {e.type}")
            if isinstance(left, BoolLiteral) and isinstance(right, BoolLiteral):
                value = (left.value and right.value) if op == "&&" else (left.value or right.value)
                return BoolLiteral(value, loc=loc)
            return Binary(op, left, right, BoolType(), loc)
        if op == "++":
            if not (isinstance(left.type, BitsType) and isinstance(right.type, BitsType)):
                raise self.err(
                    node, f"'++' needs bit<W> operands with widths, not {left.type} and {right.type}"
                )
            t = BitsType(left.type.width + right.type.width, left.type.signed)
            if isinstance(left, Constant) and isinstance(right, Constant):
                return Constant((left.value << right.type.width) | right.value, t, loc)
            return Binary(op, left, right, t, loc)
        if op in ("<<", ">>"):
            if not isinstance(left.type, BitsType | IntType) or not isinstance(
                right.type, BitsType | IntType
            ):
                raise self.err(node, f"'{op}' needs integer operands, not {left.type} and {right.type}")
            if isinstance(left, Constant) and isinstance(right, Constant):
                shifted = left.value << right.value if op == "<<" else left.value >> right.value
                if isinstance(left.type, BitsType):
                    shifted = _wrap(shifted, left.type.width, left.type.signed)
                return Constant(shifted, left.type, loc)
            if isinstance(left.type, IntType):
                raise self.err(node, f"left operand of '{op}' needs a width")
            return Binary(op, left, right, left.type, loc)
        if op in ("==", "!=") and isinstance(left.type, BoolType):
            left, right = self.unify(left, right, node)
            return Binary(op, left, right, BoolType(), loc)
        if op in ("==", "!=") and isinstance(left.type, EnumType):
            if left.type != right.type:
                raise self.err(node, f"'{op}' compares {left.type} with {right.type}")
            return Binary(op, left, right, BoolType(), loc)
        for side, e in (("left", left), ("right", right)):
            if not isinstance(e.type, BitsType | IntType):
                raise self.err(node, f"'{op}' needs bit<W> operands; the {side} one is {e.type}")
        left, right = self.unify(left, right, node)
        result: Type = BoolType() if op in _COMPARE else left.type
        if isinstance(left, Constant) and isinstance(right, Constant):
            return _fold(op, left, right, result, loc)
        return Binary(op, left, right, result, loc)

    def unify(self, a: Expr, b: Expr, node: Tree[Token]) -> tuple[Expr, Expr]:
        """Give both operands one type: an unsized literal takes the other side's width."""
        if a.type == b.type:
            return a, b
        if isinstance(a.type, IntType):
            return self.coerce(a, b.type, node, "operand"), b
        if isinstance(b.type, IntType):
            return a, self.coerce(b, a.type, node, "operand")
        raise self.err(node, f"width mismatch: {a.type} and {b.type} (insert a cast)")

    def coerce(self, e: Expr, t: Type, node: Tree[Token] | Token | None, what: str) -> Expr:
        """`e` as a value of type `t`: sizes unsized literals, rejects any other mismatch."""
        assert node is not None
        if e.type == t:
            return e
        if isinstance(e, Constant) and isinstance(e.type, IntType) and isinstance(t, BitsType):
            lo, hi = (
                (-(1 << (t.width - 1)), (1 << (t.width - 1)) - 1) if t.signed else (0, (1 << t.width) - 1)
            )
            if not lo <= e.value <= hi:
                raise self.err(node, f"{what}: value {e.value} does not fit in {t}")
            return Constant(e.value, t, e.loc, e.name)
        if isinstance(t, BitsType) and isinstance(e.type, BitsType):
            raise self.err(node, f"width mismatch in {what}: expected {t}, got {e.type}")
        raise self.err(node, f"type mismatch in {what}: expected {t}, got {e.type}")


def _wrap(value: int, width: int, signed: bool) -> int:
    value &= (1 << width) - 1
    if signed and value >> (width - 1):
        value -= 1 << width
    return value


def _fold(op: BinaryOp, a: Constant, b: Constant, result: Type, loc: SourceLoc) -> Constant | BoolLiteral:
    ops: dict[str, Callable[[int, int], int | bool]] = {
        "*": lambda x, y: x * y, "+": lambda x, y: x + y, "-": lambda x, y: x - y,
        "&": lambda x, y: x & y, "^": lambda x, y: x ^ y, "|": lambda x, y: x | y,
        "==": lambda x, y: x == y, "!=": lambda x, y: x != y, "<": lambda x, y: x < y,
        ">": lambda x, y: x > y, "<=": lambda x, y: x <= y, ">=": lambda x, y: x >= y,
    }  # fmt: skip
    value = ops[op](a.value, b.value)
    if isinstance(result, BoolType):
        return BoolLiteral(bool(value), loc=loc)
    assert isinstance(result, BitsType | IntType)
    number = int(value)
    if isinstance(result, BitsType):
        number = _wrap(number, result.width, result.signed)
    return Constant(number, result, loc)


def _renamed(value: Constant | BoolLiteral, name: str) -> Constant | BoolLiteral:
    if isinstance(value, Constant):
        return Constant(value.value, value.type, value.loc, name)
    return BoolLiteral(value.value, value.type, value.loc, name)


def _relocated(value: Constant | BoolLiteral, loc: SourceLoc) -> Constant | BoolLiteral:
    if isinstance(value, Constant):
        return Constant(value.value, value.type, loc, value.name)
    return BoolLiteral(value.value, value.type, loc, value.name)


def iter_tokens(tree: Tree[Token]) -> Iterator[Token]:
    """All tokens of a subtree, in order."""
    for child in tree.children:
        if isinstance(child, Token):
            yield child
        elif isinstance(child, Tree):
            yield from iter_tokens(child)
