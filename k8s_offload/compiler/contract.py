"""Where the compiler gets the P4 program's contract: the committed P4Info.

`p4src/build/k8s_dp.p4info.txtpb` (shipped in the package, k8s_offload/resources.py) is generated
from the P4 source by our front end and a test fails when it is stale, so reading it is equivalent
to parsing the program, and much faster.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from google.protobuf import text_format

from k8s_offload.compiler.bundle.schema import Schema
from k8s_offload.p4rt.proto import p4info
from k8s_offload.resources import P4SRC

P4INFO_PATH = P4SRC / "build" / "k8s_dp.p4info.txtpb"


def read_p4info(path: Path = P4INFO_PATH) -> object:
    msg = p4info.P4Info()
    text_format.Parse(path.read_text(encoding="utf-8"), msg)
    return msg


@cache
def default_schema() -> Schema:
    return Schema(read_p4info())
