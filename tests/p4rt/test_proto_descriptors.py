"""The descriptors `p4rt.proto` reads from the p4runtime wheel's generated modules by locating
the bytes literal alone are the ones a full parse of each module finds (the schema every message
class is built from)."""

from __future__ import annotations

import ast
import importlib.util

import pytest

from k8s_offload.p4rt import proto


def _by_full_parse(module: str) -> bytes:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    with open(spec.origin, encoding="utf-8") as src:
        tree = ast.parse(src.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "serialized_pb":
            value = ast.literal_eval(node.value)
            assert isinstance(value, bytes)
            return value
    raise AssertionError(f"no serialized_pb in {module}")


@pytest.mark.parametrize("module", [m for m, _ in proto._P4RUNTIME_MODULES])
def test_literal_scan_matches_full_parse(module: str) -> None:
    found = proto._embedded_descriptor(module)
    assert found == _by_full_parse(module)
    assert found.startswith(b"\n") and len(found) > 500  # field 1 (name) of a FileDescriptorProto


def test_literal_scan_reads_escapes_and_both_quotes() -> None:
    for text, want in [
        (b"x = D(serialized_pb=b'\\n\\x1a\\'q')", b"\n\x1a'q"),
        (b'AddSerializedFile(b"a\\"\\\\b")', b'a"\\b'),
    ]:
        found = proto._LITERAL.search(text)
        assert found is not None
        assert ast.literal_eval(found.group(1).decode("ascii")) == want
