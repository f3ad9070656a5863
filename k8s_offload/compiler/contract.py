"""Where the compiler gets the P4 program's contract: the committed P4Info.

`p4src/build/k8s_dp.p4info.txtpb` is generated from the P4 source by our front end and a test
fails when it is stale, so reading it is equivalent to parsing the program, and much faster.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from google.protobuf import text_format

from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.p4rt.proto import p4info

REPO_ROOT = Path(__file__).resolve().parents[2]
P4INFO_PATH = REPO_ROOT / "p4src" / "build" / "k8s_dp.p4info.txtpb"


def read_p4info(path: Path = P4INFO_PATH) -> object:
    msg = p4info.P4Info()
    text_format.Parse(path.read_text(encoding="utf-8"), msg)
    return msg


@cache
def default_schema() -> Schema:
    return Schema(read_p4info())
