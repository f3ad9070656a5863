"""Reading a DPDK SWX `.spec` (what p4c-dpdk writes) for the limits the SWX pipeline does not check.

An SWX instruction names a field by `struct instr_operand { uint8_t struct_id; uint8_t n_bits;
uint8_t offset; }` (DPDK 23.11 lib/pipeline/rte_swx_pipeline_internal.h), the offset in bytes
into the field's struct: `f->offset / 8` is stored without a range check, so a field that starts
256 or more bytes into its struct is silently addressed modulo 256 (the generated C shows it:
no operand offset above 255 whatever the struct's size). p4c-dpdk puts all user metadata, its
own temporaries and the key copies of tables in one metadata struct, so a program whose metadata
outgrows 256 bytes reads and writes the wrong bytes while `swx-check` and `swx-run` accept it.
Table keys and hash inputs are addressed with wider offsets and do not count; a hash's result and
a learn instruction's argument and timeout fields are 8-bit offsets too and do.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

__all__ = ["OPERAND_WINDOW_BYTES", "WindowReport", "operand_window"]

OPERAND_WINDOW_BYTES = 256

_STRUCT = re.compile(r"^struct (\w+) \{")
_FIELD = re.compile(r"^\s*bit<(\d+)> (\w+)")
_METADATA = re.compile(r"^metadata instanceof (\w+)", re.M)
_BLOCK = re.compile(r"^(action \w+ args .*|apply) \{$")
_LABEL = re.compile(r"^\w+ :\s*")
# Instructions without metadata operands (a table's key has a 32-bit offset of its own).
_NOT_OPERANDS = frozenset({"table", "learner", "selector", "jmp", "return"})


@dataclass(frozen=True)
class WindowReport:
    """The metadata struct's size and the instruction operands past the first 256 bytes."""

    metadata_bytes: int
    operand_uses: int
    outside: Counter[str] = field(default_factory=Counter)

    @property
    def outside_uses(self) -> int:
        return sum(self.outside.values())


def _structs(text: str) -> dict[str, list[tuple[str, int]]]:
    structs: dict[str, list[tuple[str, int]]] = {}
    current: list[tuple[str, int]] | None = None
    for line in text.splitlines():
        opened = _STRUCT.match(line)
        if opened:
            current = structs.setdefault(opened.group(1), [])
        elif current is not None and line.startswith("}"):
            current = None
        elif current is not None:
            member = _FIELD.match(line)
            if member:
                current.append((member.group(2), int(member.group(1))))
    return structs


def operand_window(text: str) -> WindowReport:
    """Count the uses of metadata fields as instruction operands beyond OPERAND_WINDOW_BYTES."""
    found = _METADATA.search(text)
    if found is None:
        raise ValueError("no 'metadata instanceof' line: not an SWX spec")
    offsets: dict[str, int] = {}
    bits = 0
    for name, width in _structs(text)[found.group(1)]:
        offsets[name] = bits // 8
        bits += width
    outside: Counter[str] = Counter()
    uses = 0
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if _BLOCK.match(line):
            inside = True
            continue
        if line == "}":
            inside = False
            continue
        if not inside or not line or line.startswith(";"):
            continue
        tokens = _LABEL.sub("", line).split()
        if not tokens or tokens[0] in _NOT_OPERANDS:
            continue
        # hash ALGO DST FIRST LAST: only DST is an 8-bit offset (the inputs have 16 bits).
        operands = tokens[2:3] if tokens[0] == "hash" else tokens[1:]
        for token in operands:
            if token.startswith("m.") and token[2:] in offsets:
                uses += 1
                if offsets[token[2:]] >= OPERAND_WINDOW_BYTES:
                    outside[token[2:]] += 1
    return WindowReport(bits // 8, uses, outside)


def main(argv: list[str]) -> int:
    """`python -m tests.dpdk.swx_spec SPEC...`: the window report of each spec (how the numbers in
    docs/architectures.md were measured)."""
    for path in argv:
        with open(path, encoding="utf-8") as f:
            report = operand_window(f.read())
        print(
            f"{path}: metadata {report.metadata_bytes} bytes, {report.operand_uses} operand uses, "
            f"{report.outside_uses} past byte {OPERAND_WINDOW_BYTES - 1} in {len(report.outside)} fields"
        )
        for name, count in report.outside.most_common(10):
            print(f"  {count:4d} {name}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
