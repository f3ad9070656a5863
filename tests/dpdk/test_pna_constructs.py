"""The PNA constructs p4src/k8s_dp_pna.p4 builds on, run in DPDK 23.11's SWX pipeline (swx-run).

tests/dpdk/data/learn_in_second_pass.p4 is the flow cache's commit pattern reduced to one learner:
a packet that misses carries a commit record into a second pass (recirculate()), whose lookup
misses again and adds the entry (add_entry in the default action, data from metadata); a later
packet with the same key hits the entry and sees the data the record carried.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.p4ref import tool, tool_env

DATA = Path(__file__).resolve().parent / "data"
EAL = ["--no-huge", "-m", "512", "--no-pci", "--no-shconf", "-l", "0"]


def _frame(src_low: int) -> str:
    """dst 00:..:01, src aa:aa:aa:aa:aa:<src_low>, ethertype 0x0800 (replaced by the program)."""
    return f"000000000001aaaaaaaaaa{src_low:02x}0800"


def test_a_learner_entry_added_in_a_second_pass_is_hit_by_the_next_packet(tmp_path: Path) -> None:
    spec = tmp_path / "learn.spec"
    built = subprocess.run(
        [str(tool("p4c-dpdk")), "--arch", "pna", "-o", str(spec), str(DATA / "learn_in_second_pass.p4")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    script = tmp_path / "learn.script"
    lines = [
        "table egress_port add match 0x0000000000c2 action send port 2",  # the second pass's way out
        "table egress_port add match 0x000000000001 action send port 1",  # a hit's way out
        "commit",
    ]
    # One run per packet: packets at different times (see docs/architectures.md on batches).
    for src in (0x05, 0x05, 0x09, 0x09, 0x05):
        lines += [f"packet 0 {_frame(src)}", "run"]
    script.write_text("\n".join(lines) + "\n")
    ran = subprocess.run(
        [str(tool("swx-run")), *EAL, "--file-prefix", f"swxlearn{tmp_path.name[-8:]}", "--",
         "-d", str(tmp_path / "work"), str(spec), str(script)],
        capture_output=True, text=True, timeout=300, check=False, env=tool_env(),
    )  # fmt: skip
    out = [line.split() for line in ran.stdout.splitlines() if line.startswith("OUT ")]
    assert [(port, data) for _, port, _, data in out] == [
        ("2", "0000000000c2aaaaaaaaaa050000"),  # miss, committed in the second pass (which missed too)
        ("1", "000000000001aaaaaaaaaa050006"),  # hit: the data the record carried (0x05 + 1)
        ("2", "0000000000c2aaaaaaaaaa090000"),  # another key: miss, committed
        ("1", "000000000001aaaaaaaaaa09000a"),
        ("1", "000000000001aaaaaaaaaa050006"),  # the first entry is still there
    ], ran.stdout + ran.stderr
