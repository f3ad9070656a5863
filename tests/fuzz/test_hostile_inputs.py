"""Hostile manifests, node facts and probes files against the real `offload-compile`, run as a
subprocess under a memory bound (RLIMIT_AS) and a generous timeout that turns a hang into a
failure (issue 17, items 2, 3 and 8). Each must end with exit status 2, nothing on stdout, and one
line per problem on stderr, each naming the file it is about, and no traceback.

Nothing here asserts how long a run takes: the timeout only stops a run that never ends.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k8s_offload.compiler.errors import one_line

MEMORY_BYTES = 1 << 30
"""Address space for one run: the compiler needs about 300 MiB for the example cluster."""
TIMEOUT_SECONDS = 120.0
REPO = Path(__file__).resolve().parents[2]
NODE = REPO / "examples" / "shop" / "node.yaml"
CLUSTER = REPO / "examples" / "shop" / "cluster"
EXAMPLES = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))


BOUNDED = (
    "import resource, runpy, sys\n"
    f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_BYTES}, {MEMORY_BYTES}))\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    "sys.argv[0] = 'offload-compile'\n"
    "runpy.run_module('k8s_offload.cli.main', run_name='__main__', alter_sys=True)\n"
)
"""The child sets its own bounds, then runs the CLI: no `preexec_fn`, which would make subprocess
fork() (not vfork) and run, in the child, the atfork handlers of whatever the test process has
loaded. gRPC's (from the loader tests in the same worker) then aborted the child now and then with
"epoll_wait error: Bad file descriptor" (exit -6) before it ever ran the compiler."""


def run(args: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", BOUNDED, *args],
        input=stdin,
        capture_output=True,
        timeout=TIMEOUT_SECONDS,
        cwd=REPO,
        check=False,
    )


def assert_rejected(proc: subprocess.CompletedProcess[bytes], *names: str) -> list[str]:
    """Exit 2, empty stdout, and stderr lines that each name one of `names` (escaped as printed)."""
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, err[-2000:]
    assert proc.stdout == b""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines
    prefixes = tuple(one_line(n) + ": " for n in names)
    for line in lines:
        assert line.startswith(prefixes) or line.startswith("stopped after "), line
        assert len(line) < 3000
    return lines


# ---- generators ----------------------------------------------------------------------------------

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"}, "spec": {}}


def alias_bomb(levels: int, width: int, field: str) -> str:
    lines = [f"  a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{name: web}}\n{field}:\n" + "\n".join(lines) + "\n"


def deep(depth: int, style: str) -> str:
    if style == "block":
        return "".join(" " * i + "a:\n" for i in range(depth)) + " " * depth + "b: 1\n"
    if style == "flow":
        return "a: " + "[" * depth + "]" * depth + "\n"
    return '{"a":' * depth + "1" + "}" * depth


def big_int(digits: int, where: str) -> str:
    body = json.loads(json.dumps(POD))
    body["spec"][where] = 0
    return json.dumps(body).replace('": 0', '": ' + "7" * digits)


def duplicate_key(path: list[str]) -> str:
    indent = ""
    out = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n"
    for key in path:
        out += f"{indent}{key}:\n"
        indent += "  "
    return out + f"{indent}k: 1\n{indent}k: 2\n"


hostile_manifest = st.one_of(
    st.builds(
        alias_bomb,
        st.integers(6, 10),
        st.integers(9, 14),
        st.sampled_from(["spec", "metadata", "status", "x"]),
    ).map(lambda t: ("bomb.yaml", t.encode())),
    st.builds(deep, st.integers(1000, 20_000), st.sampled_from(["block", "flow"])).map(
        lambda t: ("deep.yaml", t.encode())
    ),
    st.builds(deep, st.integers(1000, 100_000), st.just("json")).map(lambda t: ("deep.json", t.encode())),
    st.builds(big_int, st.integers(310, 20_000), st.sampled_from(["replicas", "x", "port"])).flatmap(
        lambda t: st.sampled_from([("big.json", t.encode()), ("big.yaml", t.encode())])
    ),
    st.builds(duplicate_key, st.lists(st.sampled_from(["spec", "a", "b", "labels"]), max_size=5)).map(
        lambda t: ("dup.yaml", t.encode())
    ),
    st.tuples(st.integers(0, 200), st.sampled_from([b"\xff", b"\x00", b"\xc3\x28", b"\xed\xa0\x80"])).map(
        lambda t: (
            "bytes.yaml",
            json.dumps(POD).encode()[: t[0]] + t[1] + json.dumps(POD).encode()[t[0] :],
        )
    ),
    st.just(("self.yaml", b"a: &x\n  b: *x\n")),
)


def node_facts_variants() -> st.SearchStrategy[tuple[str, bytes]]:
    base = NODE.read_text()

    def mutate(kind: str, n: int) -> tuple[str, bytes]:
        if kind == "mac-twice":
            facts = json.loads(json.dumps(_yaml(base)))
            facts["pods"][1]["mac"] = facts["pods"][0]["mac"]
            return "node.json", json.dumps(facts).encode()
        if kind == "gateway-mac":
            facts = json.loads(json.dumps(_yaml(base)))
            facts["pods"][n % len(facts["pods"])]["mac"] = facts["gateway"]["mac"]
            return "node.json", json.dumps(facts).encode()
        if kind == "big-port":
            return "node.yaml", base.replace("arpProxy: 1", "arpProxy: " + "9" * (310 + n)).encode()
        if kind == "duplicate":
            return "node.yaml", (base + "nodeName: other\n").encode()
        if kind == "bomb":
            return "node.yaml", alias_bomb(8, 10 + n % 4, "zone").encode()
        if kind == "deep":
            return "node.yaml", deep(1000 + n, "flow").encode()
        return "node.yaml", base.encode()[: n % 200] + b"\xff\xfe" + base.encode()[n % 200 :]

    kinds = ["mac-twice", "gateway-mac", "big-port", "duplicate", "bomb", "deep", "bytes"]
    return st.builds(mutate, st.sampled_from(kinds), st.integers(0, 5000))


def _yaml(text: str) -> object:
    import yaml

    return yaml.safe_load(text)


# ---- tests ---------------------------------------------------------------------------------------


@EXAMPLES
@given(hostile_manifest)
def test_hostile_manifest_file(case: tuple[str, bytes]) -> None:
    name, data = case
    with tempfile.TemporaryDirectory(prefix="hostile-") as d:
        f = Path(d) / name
        f.write_bytes(data)
        assert_rejected(run([str(f), "--node", str(NODE)]), str(f))


@EXAMPLES
@given(hostile_manifest)
def test_hostile_manifest_on_stdin(case: tuple[str, bytes]) -> None:
    _, data = case
    assert_rejected(run(["-", "--node", str(NODE)], stdin=data), "<stdin>")


@EXAMPLES
@given(node_facts_variants(), hostile_manifest)
def test_hostile_node_facts_are_reported_with_the_manifests(
    facts: tuple[str, bytes], manifest: tuple[str, bytes]
) -> None:
    with tempfile.TemporaryDirectory(prefix="hostile-") as d:
        node = Path(d) / facts[0]
        node.write_bytes(facts[1])
        m = Path(d) / manifest[0]
        m.write_bytes(manifest[1])
        lines = assert_rejected(run([str(m), "--node", str(node)]), str(m), str(node))
    named = {line.split(": ")[0] for line in lines}
    assert named == {str(m), str(node)}  # both files' problems, in one run


@EXAMPLES
@given(hostile_manifest)
def test_hostile_probes_file(case: tuple[str, bytes]) -> None:
    with tempfile.TemporaryDirectory(prefix="hostile-") as d:
        probes = Path(d) / "probes.yaml"
        probes.write_bytes(case[1])
        proc = run(["trace", str(CLUSTER), "--node", str(NODE), "--probes", str(probes)])
    assert_rejected(proc, str(probes))


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=400), st.sampled_from(["x.yaml", "x.json"]))
def test_random_bytes_never_crash(data: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="hostile-") as d:
        f = Path(d) / name
        f.write_bytes(data)
        proc = run([str(f), "--node", str(NODE)])
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode in (0, 2), err
    assert "Traceback" not in err
    if proc.returncode == 2:
        assert proc.stdout == b""
        assert all(line.startswith(one_line(str(f)) + ": ") for line in err.splitlines())


def test_special_files_are_errors_not_hangs(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert_rejected(run(["/dev/zero", "--node", str(NODE)]), "/dev/zero")
    assert_rejected(run([str(fifo), "--node", str(NODE)]), str(fifo))
    assert_rejected(run([str(CLUSTER), "--node", str(fifo)]), str(fifo))
    assert_rejected(run(["-", "--node", str(NODE)], stdin=b"\0" * (1 << 22)), "<stdin>")
    newline = tmp_path / "a\nb.yaml"
    newline.write_bytes(b"kind: [")
    assert_rejected(run([str(newline)]), str(newline))


def test_the_red_team_inputs(tmp_path: Path) -> None:
    """The issue's own cases, once each, as regression tests of the whole command."""
    rng = random.Random(17)
    d = tmp_path
    cases = {
        "bomb.yaml": alias_bomb(9, 9, "spec"),
        "deep.json": deep(100_000, "json"),
        "bigint.yaml": big_int(5000, "x"),
        "dup.json": json.dumps(POD).replace('"name": "web"', '"name": "web", "name": "api"'),
        "dupe.yaml": duplicate_key(["metadata", "labels"]),
    }
    for name, text in cases.items():
        f = d / name
        f.write_text(text)
        assert_rejected(run([str(f), "--node", str(NODE)]), str(f))
    assert_rejected(run(["-"], stdin=bytes(rng.randrange(128, 256) for _ in range(64))), "<stdin>")
