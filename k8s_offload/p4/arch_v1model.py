"""The declarations of core.p4 and v1model.p4 that our program uses, written from the P4-16
and v1model specifications (we cannot ship p4c's include files). Only what the resolver
needs: types, enums, extern object constructors and methods, extern functions."""

from __future__ import annotations

from dataclasses import dataclass

from k8s_offload.p4.ast import BitsType, BoolType, Direction, EnumType, StructField, StructType, Type

MATCH_KINDS = ("exact", "ternary", "lpm", "range", "optional", "selector")

ERROR = EnumType(
    "error",
    ("NoError", "PacketTooShort", "NoMatch", "StackOutOfBounds", "HeaderTooShort", "ParserTimeout",
     "ParserInvalidArgument"),
)  # fmt: skip
HASH_ALGORITHM = EnumType(
    "HashAlgorithm",
    ("crc32", "crc32_custom", "crc16", "crc16_custom", "random", "identity", "csum16", "xor16"),
)
COUNTER_TYPE = EnumType("CounterType", ("packets", "bytes", "packets_and_bytes"))
METER_TYPE = EnumType("MeterType", ("packets", "bytes"))
MATCH_KIND = EnumType("match_kind", MATCH_KINDS)

ENUMS = {e.name: e for e in (ERROR, HASH_ALGORITHM, COUNTER_TYPE, METER_TYPE, MATCH_KIND)}

PORT_ID = BitsType(9)

STANDARD_METADATA = StructType(
    "standard_metadata_t",
    tuple(
        StructField(name, t)
        for name, t in (
            ("ingress_port", PORT_ID),
            ("egress_spec", PORT_ID),
            ("egress_port", PORT_ID),
            ("instance_type", BitsType(32)),
            ("packet_length", BitsType(32)),
            ("enq_timestamp", BitsType(32)),
            ("enq_qdepth", BitsType(19)),
            ("deq_timedelta", BitsType(32)),
            ("deq_qdepth", BitsType(19)),
            ("ingress_global_timestamp", BitsType(48)),
            ("egress_global_timestamp", BitsType(48)),
            ("mcast_grp", BitsType(16)),
            ("egress_rid", BitsType(16)),
            ("checksum_error", BitsType(1)),
            ("parser_error", ERROR),
            ("priority", BitsType(3)),
        )
    ),
)

# A parameter type is a concrete Type, "T" (the instance's type argument), "header" (any
# header), or "any" (a generic type parameter: the argument keeps its own type).
ParamKind = Type | str


@dataclass(frozen=True, slots=True)
class BuiltinParam:
    name: str
    direction: Direction
    kind: ParamKind


@dataclass(frozen=True, slots=True)
class BuiltinMethod:
    name: str
    params: tuple[BuiltinParam, ...]


@dataclass(frozen=True, slots=True)
class BuiltinExtern:
    """An extern object type: its type parameter count, constructor and methods."""

    name: str
    type_params: int
    constructor: tuple[BuiltinParam, ...]
    methods: tuple[BuiltinMethod, ...]

    def method(self, name: str) -> BuiltinMethod | None:
        return next((m for m in self.methods if m.name == name), None)


def _p(name: str, direction: Direction, kind: ParamKind) -> BuiltinParam:
    return BuiltinParam(name, direction, kind)


_B32 = BitsType(32)

EXTERNS = {
    e.name: e
    for e in (
        BuiltinExtern("packet_in", 0, (), (BuiltinMethod("extract", (_p("hdr", "out", "header"),)),)),
        BuiltinExtern("packet_out", 0, (), (BuiltinMethod("emit", (_p("hdr", "in", "header"),)),)),
        BuiltinExtern(
            "register",
            1,
            (_p("size", "", _B32),),
            (
                BuiltinMethod("read", (_p("result", "out", "T"), _p("index", "in", _B32))),
                BuiltinMethod("write", (_p("index", "in", _B32), _p("value", "in", "T"))),
            ),
        ),
        BuiltinExtern(
            "counter",
            0,
            (_p("size", "", _B32), _p("type", "", COUNTER_TYPE)),
            (BuiltinMethod("count", (_p("index", "in", _B32),)),),
        ),
        BuiltinExtern("direct_counter", 0, (_p("type", "", COUNTER_TYPE),), (BuiltinMethod("count", ()),)),
        BuiltinExtern(
            "action_selector",
            0,
            (_p("algorithm", "", HASH_ALGORITHM), _p("size", "", _B32), _p("outputWidth", "", _B32)),
            (),
        ),
        BuiltinExtern("action_profile", 0, (_p("size", "", _B32),), ()),
    )
}

_CHECKSUM = (
    _p("condition", "in", BoolType()),
    _p("data", "in", "any"),
    _p("checksum", "inout", "any"),
    _p("algo", "", HASH_ALGORITHM),
)

FUNCTIONS = {
    m.name: m
    for m in (
        BuiltinMethod(
            "hash",
            (
                _p("result", "out", "any"),
                _p("algo", "in", HASH_ALGORITHM),
                _p("base", "in", "any"),
                _p("data", "in", "any"),
                _p("max", "in", "any"),
            ),
        ),
        BuiltinMethod("mark_to_drop", (_p("standard_metadata", "inout", STANDARD_METADATA),)),
        BuiltinMethod("truncate", (_p("length", "in", BitsType(32)),)),
        BuiltinMethod("verify_checksum", tuple(p if p.name != "checksum" else _p("checksum", "in", "any")
                                               for p in _CHECKSUM)),
        BuiltinMethod("update_checksum", _CHECKSUM),
        BuiltinMethod("verify_checksum_with_payload", tuple(
            p if p.name != "checksum" else _p("checksum", "in", "any") for p in _CHECKSUM)),
        BuiltinMethod("update_checksum_with_payload", _CHECKSUM),
    )
}  # fmt: skip

# V1Switch's six parameters: (name, kind) in order.
V1SWITCH = (
    ("p", "parser"),
    ("vr", "control"),
    ("ig", "control"),
    ("eg", "control"),
    ("ck", "control"),
    ("dep", "control"),
)

BUILTIN_TYPES: dict[str, Type] = {"standard_metadata_t": STANDARD_METADATA}
