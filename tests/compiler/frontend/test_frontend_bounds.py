"""Hostile and malformed input (issue 17, items 2, 3 and 8): every case is one error line naming
the file, document and field path, within the limits of frontend/limits.py (docs/failure-modes.md).

Upstream behaviour these tests follow, read in the sources:
- yaml.v2 (gopkg.in/yaml.v2 decode.go, `allowedAliasRatio`): "document contains excessive aliasing"
  once more than 99% of up to 400,000 decoded nodes (falling to 10% at 4,000,000) come from aliases;
  an anchor whose value contains itself is an error.
- apimachinery runtime/serializer/json (strict mode, what `kubectl --validate=strict`, the default,
  asks the API server for): YAML through sigs.k8s.io/yaml `YAMLToJSONStrict` (yaml.v2 strict: "key
  already set in map", merges included), JSON through sigs.k8s.io/json `DisallowDuplicateFields`
  (`duplicate field "a.b"`). kubectl's own YAML-to-JSON step still drops duplicates before the server
  sees them (kubernetes/kubernetes#125885, open); we follow the server.
- cli-runtime resource/visitor.go `FlattenListVisitor`: Lists nested in Lists are flattened;
  apimachinery unstructured `decodeToList`: items with neither kind nor apiVersion take the List's.
- sigs.k8s.io/json: an integer that does not fit int64 is decoded as float64, and one beyond
  float64's range is an error.
"""

from __future__ import annotations

import io
import json
import os
import stat
import threading
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k8s_offload.compiler.errors import ManifestErrors
from k8s_offload.compiler.frontend import limits, load_manifests, load_text
from k8s_offload.compiler.frontend.loader import load_inputs
from k8s_offload.compiler.frontend.syntax import SyntaxFailure, load_json, load_yaml

POD = "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: shop}}\nstatus: {{podIP: {ip}}}\n"


def messages(exc: pytest.ExceptionInfo[ManifestErrors]) -> list[str]:
    lines = [str(e) for e in exc.value.errors]
    assert all("\n" not in line for line in lines)
    return lines


def bomb(levels: int = 9, width: int = 9) -> str:
    """The billion laughs: each level a list of `width` aliases of the one before (~590 bytes)."""
    lines = ["  a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    lines += [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "apiVersion: v1\nkind: Pod\nmetadata: {name: bomb}\nspec:\n" + "\n".join(lines) + "\n"


# ---- item 2: alias bombs, depth, integers --------------------------------------------------------


def test_alias_bomb_is_rejected_with_its_path() -> None:
    text = bomb()
    assert len(text) < 700
    with pytest.raises(ManifestErrors) as exc:
        load_text(text, "bomb.yaml")
    [message] = messages(exc)
    assert message.startswith("bomb.yaml: document 1: spec.a3[")
    assert message.endswith("document contains excessive aliasing")


def test_moderate_aliasing_is_accepted_and_shares_the_value() -> None:
    # 100 aliases of a small map: yaml.v2 allows it (its rule only applies beyond 100 aliased nodes
    # and 1000 decoded ones), and the value is shared, not copied.
    text = "base: &b {k: v}\nitems:\n" + "".join("  - *b\n" for _ in range(100))
    [doc] = list(load_yaml(text))
    assert doc.value["items"][0] is doc.value["items"][99] is doc.value["base"]


def test_yaml_v2_alias_ratio_boundary() -> None:
    # 2000 plain scalars, then aliases of a 10-scalar list: yaml.v2 fails when aliased/decoded
    # exceeds 0.99. Each alias adds 1 decoded node and 11 aliased ones.
    def doc(aliases: int) -> str:
        plain = "p: [" + ", ".join(["0"] * 2000) + "]\n"
        return plain + "a: &a [" + ", ".join(["1"] * 10) + "]\nb: [" + ", ".join(["*a"] * aliases) + "]\n"

    # decoded = 1 (document) + 1 (map) + 1 + 1 + 2000 + 1 + 1 + 10 + 1 + 1 (keys and seqs) + 12n;
    # aliased = 11n. 11n / (2018 + 12n) <= 0.99 holds for every n: 11/12 < 0.99.
    list(load_yaml(doc(5000)))
    # An alias of a 200-element list: 201/202 > 0.99 quickly.
    text = "a: &a [" + ", ".join(["1"] * 200) + "]\nb: [" + ", ".join(["*a"] * 2000) + "]\n"
    with pytest.raises(SyntaxFailure, match="excessive aliasing"):
        list(load_yaml(text))


def test_anchor_containing_itself_is_an_error() -> None:
    with pytest.raises(SyntaxFailure, match="value contains itself"):
        list(load_yaml("a: &x [1, *x]\n"))
    with pytest.raises(SyntaxFailure, match="undefined alias"):
        list(load_yaml("a: *nowhere\n"))


@pytest.mark.parametrize("style", ["flow", "block", "json"])
def test_nesting_limit_is_the_same_for_yaml_and_json(style: str, tmp_path: Path) -> None:
    def text(depth: int) -> str:
        if style == "block":
            return "".join(" " * i + "a:\n" for i in range(depth - 1)) + " " * (depth - 1) + "a: 1\n"
        return '{"a":' * (depth - 1) + "[1]" + "}" * (depth - 1)

    suffix = ".json" if style == "json" else ".yaml"
    ok = tmp_path / f"ok{suffix}"
    ok.write_text(text(limits.MAX_DEPTH))
    with pytest.raises(ManifestErrors) as exc:  # valid syntax, but not an object of a known kind
        load_manifests([ok])
    assert "nested deeper" not in str(exc.value)
    deep = tmp_path / f"deep{suffix}"
    deep.write_text(text(limits.MAX_DEPTH + 1))
    with pytest.raises(ManifestErrors) as exc:
        load_manifests([deep])
    [message] = messages(exc)
    assert f"nested deeper than {limits.MAX_DEPTH} levels" in message
    assert message.startswith(f"{deep}: ")
    assert "a.a.a" in message  # the path, cut to a bounded length
    assert len(message) < 1000


def test_json_100000_deep_is_one_line() -> None:
    text = '{"a":' * 100_000 + "1" + "}" * 100_000
    with pytest.raises(SyntaxFailure) as exc:
        load_json(text)
    assert exc.value.problem.reason == f"nested deeper than {limits.MAX_DEPTH} levels"
    assert exc.value.problem.line == 1


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_integers_beyond_float64_are_rejected_with_their_path(suffix: str, tmp_path: Path) -> None:
    fits = str(int(float("1.7976931348623157e308")))  # the largest float64, exactly
    for value, ok in ((fits, True), ("1" + "0" * 309, False), ("9" * 5000, False), ("-1" + "0" * 400, False)):
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"x": [1, 0]}}
        text = json.dumps(body).replace("[1, 0]", f"[1, {value}]")
        f = tmp_path / f"pod{suffix}"
        f.write_text(text)
        if ok:
            load_manifests([f])
            continue
        with pytest.raises(ManifestErrors) as exc:
            load_manifests([f])
        [message] = messages(exc)
        assert message.startswith(f"{f}: document 1: Pod default/a: spec.x[1]: ")
        assert "out of range" in message
        assert len(message) < 300


def test_yaml_integer_forms_keep_their_yaml_1_1_values() -> None:
    [doc] = list(load_yaml("a: 0x1F\nb: 0o17\nc: 1_000\nd: 017\ne: 1:30\nf: -12\n"))
    assert doc.value == yaml.load(
        "a: 0x1F\nb: 0o17\nc: 1_000\nd: 017\ne: 1:30\nf: -12\n", Loader=yaml.SafeLoader
    )


def test_node_budget_per_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("k8s_offload.compiler.frontend.syntax.MAX_YAML_NODES", 50)
    with pytest.raises(SyntaxFailure, match="more than 50 YAML nodes"):
        list(load_yaml("".join(f"- {i}\n" for i in range(100))))


# ---- item 2: bounded echo ------------------------------------------------------------------------


def test_long_and_container_values_are_cut_in_messages() -> None:
    long = "x" * 100_000
    text = f"apiVersion: {long}\nkind: Service\nmetadata:\n  name: web\n  labels: {{app: {long}}}\n"
    with pytest.raises(ManifestErrors) as exc:
        load_text(text, "s.yaml")
    for message in messages(exc):
        assert len(message) < 800
        assert "characters" in message
    nested = "apiVersion: [[[1, 2], [3]], {a: b}]\nkind: Service\nmetadata: {name: web}\n"
    with pytest.raises(ManifestErrors) as exc:
        load_text(nested, "s.yaml")
    assert 'Unsupported value: "list of 2 entries"' in messages(exc)[0]


def test_file_names_with_newlines_stay_on_one_line(tmp_path: Path) -> None:
    f = tmp_path / "bad\nname.yaml"
    f.write_text("a: [")
    with pytest.raises(ManifestErrors) as exc:
        load_manifests([f])
    [message] = messages(exc)
    assert "bad\\nname.yaml" in message


def test_error_count_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("k8s_offload.compiler.frontend.loader.MAX_ERRORS", 5)
    text = "".join("---\nkind: Pod\napiVersion: v1\nmetadata: {name: UPPER}\n" for _ in range(20))
    with pytest.raises(ManifestErrors) as exc:
        load_text(text, "many.yaml")
    assert len(exc.value.errors) == 5
    assert exc.value.stopped
    assert str(exc.value).splitlines()[-1].startswith("stopped after 5 problems")


def test_object_count_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("k8s_offload.compiler.frontend.loader.MAX_OBJECTS", 3)
    text = "".join("---\n" + POD.format(name=f"p{i}", ip=f"10.0.0.{i + 1}") for i in range(5))
    with pytest.raises(ManifestErrors) as exc:
        load_text(text, "many.yaml")
    [message] = messages(exc)
    assert message == "many.yaml: document 4: more than 3 objects in one run; not read further"


# ---- item 3: files, FIFOs, stdin -----------------------------------------------------------------


def test_non_utf8_and_nul_on_stdin() -> None:
    stdin = io.TextIOWrapper(io.BytesIO(b"kind: Pod\n\xff\n"), encoding="utf-8")
    with pytest.raises(ManifestErrors) as exc:
        load_manifests(["-"], stdin=stdin)
    assert messages(exc) == ["<stdin>: is not UTF-8 text: byte 0xff at offset 10"]
    stdin = io.TextIOWrapper(io.BytesIO(b"kind: Pod\n\0\0\0"), encoding="utf-8")
    with pytest.raises(ManifestErrors) as exc:
        load_manifests(["-"], stdin=stdin)
    assert messages(exc) == ["<stdin>: contains a NUL byte at offset 10: not YAML or JSON text"]


def test_source_size_is_bounded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("k8s_offload.compiler.frontend.sources.MAX_SOURCE_BYTES", 1024 * 1024)
    f = tmp_path / "big.yaml"
    f.write_text("# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(ManifestErrors) as exc:
        load_manifests([f])
    assert messages(exc) == [f"{f}: is larger than 1 MiB, the limit for one source"]


def test_devices_are_refused_without_reading() -> None:
    with pytest.raises(ManifestErrors) as exc:
        load_manifests(["/dev/zero"])
    assert messages(exc) == ["/dev/zero: is not a regular file or a FIFO (a device or a socket)"]


def test_fifo_without_writer_is_an_error_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ManifestErrors) as exc:
        load_manifests([fifo])
    assert messages(exc) == [f"{fifo}: is a FIFO with no writer: nothing to read"]
    with pytest.raises(ManifestErrors) as exc:
        load_inputs([], fifo)
    assert messages(exc) == [f"{fifo}: is a FIFO with no writer: nothing to read"]


def test_fifo_with_a_writer_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)  # a writer holding it open, as with process substitution
    os.write(writer, POD.format(name="a", ip="10.0.0.1").encode())
    closer = threading.Timer(0.2, os.close, (writer,))  # then it finishes: end of file
    closer.start()
    try:
        m = load_manifests([fifo])
    finally:
        closer.join()
    assert [p.key.name for p in m.pods] == ["a"]


def deny_listing(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """os.scandir fails on `directory` as it does for a user without the read permission."""
    real_scandir = os.scandir

    def scandir(path: str) -> object:
        if path == str(directory):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_unreadable_subdirectory_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ok.yaml").write_text(POD.format(name="a", ip="10.0.0.1"))
    hidden = tmp_path / "sub"
    hidden.mkdir()
    (hidden / "b.yaml").write_text(POD.format(name="b", ip="10.0.0.2"))
    if os.geteuid() == 0:  # root lists every directory: make the system call fail as for a user
        deny_listing(monkeypatch, hidden)
    hidden.chmod(0)
    try:
        with pytest.raises(ManifestErrors) as exc:
            load_manifests([tmp_path])
    finally:
        hidden.chmod(stat.S_IRWXU)
    assert messages(exc) == [f"{hidden}: cannot list directory: Permission denied"]


def test_broken_links_loops_and_fifos_in_directories_are_errors(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(POD.format(name="a", ip="10.0.0.1"))
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "nowhere.yaml")
    (tmp_path / "notes.txt").symlink_to(tmp_path / "nowhere.txt")  # not a manifest: ignored
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    os.mkfifo(tmp_path / "pipe.yaml")
    with pytest.raises(ManifestErrors) as exc:
        load_manifests([tmp_path])
    assert messages(exc) == [
        f"{tmp_path}/gone.yaml: cannot read: No such file or directory",
        f"{tmp_path}/loop: cannot read: too many levels of symbolic links",
        f"{tmp_path}/pipe.yaml: is not a regular file (a FIFO, device or socket in a directory is not read)",
    ]


def test_symlinked_files_and_directories_are_read_once(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.yaml").write_text(POD.format(name="a", ip="10.0.0.1"))
    (tmp_path / "alias.yaml").symlink_to(real / "a.yaml")
    (real / "up").symlink_to(tmp_path)  # a cycle back to the root
    m = load_manifests([tmp_path])
    assert [p.key.name for p in m.pods] == ["a"]


def configmap_volume(root: Path, version: str, files: dict[str, str]) -> None:
    """The kubelet's atomic writer layout: ..<version>/files, ..data -> ..<version>, name -> ..data/name."""
    data = root / f"..{version}"
    data.mkdir(parents=True)
    for name, text in files.items():
        (data / name).write_text(text)
    tmp = root / "..data_tmp"
    tmp.symlink_to(data.name)
    tmp.rename(root / "..data")
    for name in files:
        if not (root / name).is_symlink():
            (root / name).symlink_to(Path("..data") / name)


def test_configmap_volume_is_read_once(tmp_path: Path) -> None:
    configmap_volume(tmp_path, "2024_01_01_00_00_00.1", {"pods.yaml": POD.format(name="a", ip="10.0.0.1")})
    m = load_manifests([tmp_path])
    assert [(p.key.name, str(p.location)) for p in m.pods] == [("a", f"{tmp_path}/pods.yaml: document 1")]


def test_configmap_volume_swapped_while_read_gives_one_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k8s_offload.compiler.frontend import sources

    one = {"a.yaml": POD.format(name="a1", ip="10.0.0.1"), "b.yaml": POD.format(name="b1", ip="10.0.0.2")}
    two = {"a.yaml": POD.format(name="a2", ip="10.0.0.1"), "b.yaml": POD.format(name="b2", ip="10.0.0.2")}
    configmap_volume(tmp_path, "v1", one)
    real_read = sources.read_path
    swapped: list[bool] = []

    def read_and_swap(path: str | Path) -> str:
        text = real_read(path)
        if not swapped:  # after the first file of version 1: the kubelet swaps to version 2
            swapped.append(True)
            configmap_volume(tmp_path, "v2", two)
            for name in one:
                os.unlink(tmp_path / "..v1" / name)
            os.rmdir(tmp_path / "..v1")
        return text

    monkeypatch.setattr(sources, "read_path", read_and_swap)
    m = load_manifests([tmp_path])
    assert sorted(p.key.name for p in m.pods) == ["a2", "b2"]


# ---- item 8: duplicate keys, nested Lists --------------------------------------------------------


def test_duplicate_yaml_key_names_object_path_and_line() -> None:
    text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels:\n    app: x\n    app: y\n"
    with pytest.raises(ManifestErrors) as exc:
        load_text(text, "p.yaml")
    assert messages(exc) == [
        "p.yaml: document 1: Pod default/a: metadata.labels.app: line 7: duplicate field"
    ]


def test_duplicate_json_key(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(
        '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "labels": {"k": "1", "k": "2"}}}'
    )
    with pytest.raises(ManifestErrors) as exc:
        load_manifests([f])
    assert messages(exc) == [f"{f}: document 1: Pod default/a: metadata.labels.k: duplicate field"]


def test_merge_keys_without_collision_are_fine_and_collisions_are_duplicates() -> None:
    ok = "base: &b {x: 1}\nobj:\n  <<: *b\n  y: 2\n"
    [doc] = list(load_yaml(ok))
    assert doc.value["obj"] == {"x": 1, "y": 2} and not doc.problems
    clash = "base: &b {x: 1}\nobj:\n  <<: *b\n  x: 2\n"
    [doc] = list(load_yaml(clash))
    assert [(p.field_path, p.reason) for p in doc.problems] == [("obj.x", "duplicate field")]


def test_duplicate_in_a_list_item_is_reported_at_the_item() -> None:
    text = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "PodList",
            "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}],
        }
    ).replace('"name": "b"', '"name": "b", "name": "c"')
    with pytest.raises(ManifestErrors) as exc:
        load_text(text, "list.json")
    assert messages(exc) == [
        "list.json: document 1: items[1]: Pod default/c: metadata.name: line 1: duplicate field"
    ]


def test_duplicate_key_in_node_facts(tmp_path: Path) -> None:
    node = tmp_path / "node.yaml"
    node.write_text(
        "apiVersion: offload.k8s-offload.dev/v1alpha1\nkind: NodeFacts\nnodeName: a\nnodeName: b\n"
    )
    with pytest.raises(ManifestErrors) as exc:
        load_inputs([], node)
    assert messages(exc) == [f"{node}: nodeName: line 4: duplicate field"]


def test_nested_lists_are_flattened_like_kubectl() -> None:
    inner = {
        "kind": "List",
        "apiVersion": "v1",
        "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n1"}}],
    }
    outer = {
        "kind": "List",
        "apiVersion": "v1",
        "items": [inner, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n0"}}],
    }
    m = load_text(json.dumps(outer), "l.json")
    assert [(n.key.name, str(n.location)) for n in m.namespaces] == [
        ("n0", "l.json: document 1: items[1]"),
        ("n1", "l.json: document 1: items[0].items[0]"),
    ]
    assert m.notes == ()


def test_list_items_take_kind_only_when_they_have_neither_kind_nor_api_version() -> None:
    text = json.dumps(
        {
            "kind": "NamespaceList",
            "apiVersion": "v1",
            "items": [{"metadata": {"name": "a"}}, {"apiVersion": "v2", "metadata": {"name": "b"}}],
        }
    )
    with pytest.raises(ManifestErrors) as exc:
        load_text(text, "l.json")
    assert messages(exc) == ["l.json: document 1: items[1]: kind: Required value"]


# ---- manifests and node facts together -----------------------------------------------------------


def test_manifest_and_node_fact_errors_come_together(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: UPPER}\n")
    node = tmp_path / "node.yaml"
    node.write_text("apiVersion: offload.k8s-offload.dev/v1alpha1\nkind: NodeFacts\n")
    with pytest.raises(ManifestErrors) as exc:
        load_inputs([bad], node)
    lines = messages(exc)
    assert lines[0].startswith(f"{bad}: document 1: Pod default/UPPER: metadata.name: ")
    assert [line.split(": ")[0] for line in lines[1:]] == [str(node)] * (len(lines) - 1)
    assert len(lines) > 2


# ---- the YAML builder equals PyYAML's safe loader on valid YAML ----------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(values, min_size=1, max_size=3), st.booleans())
def test_yaml_builder_equals_pyyaml(docs: list[object], flow: bool) -> None:
    text = yaml.safe_dump_all(docs, default_flow_style=flow)
    assert [d.value for d in load_yaml(text)] == list(yaml.load_all(text, Loader=yaml.SafeLoader))


@settings(max_examples=200, deadline=None)
@given(values)
def test_json_loader_equals_json(value: object) -> None:
    text = json.dumps(value)
    assert load_json(text).value == json.loads(text)


def test_builder_equals_pyyaml_on_the_repository_manifests() -> None:
    root = Path(__file__).parents[3]
    files = [p for d in ("examples", "deploy") for p in (root / d).rglob("*.yaml")]
    assert files
    for f in files:
        text = f.read_text()
        try:
            expected = list(yaml.load_all(text, Loader=yaml.SafeLoader))
        except yaml.YAMLError:
            continue
        assert [d.value for d in load_yaml(text)] == expected, f


def test_configmap_volume_items_in_subdirectories_and_foreign_data_links(tmp_path: Path) -> None:
    """`items[].path` may put a key in a subdirectory of the volume; `..data` naming anything but a
    sibling directory is not the kubelet's layout and is refused rather than followed."""
    volume = tmp_path / "vol"
    configmap_volume(volume, "v1", {"a.yaml": POD.format(name="a", ip="10.0.0.1")})
    (volume / "..v1" / "conf").mkdir()
    (volume / "..v1" / "conf" / "b.yaml").write_text(POD.format(name="b", ip="10.0.0.2"))
    (volume / "conf").symlink_to("..data/conf")
    m = load_manifests([volume])
    assert [str(p.location) for p in m.pods] == [
        f"{volume}/a.yaml: document 1",
        f"{volume}/conf/b.yaml: document 1",
    ]
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "..data").symlink_to(tmp_path / "vol")
    with pytest.raises(ManifestErrors) as exc:
        load_manifests([odd])
    assert messages(exc) == [
        f"{odd}/..data: points outside its volume ({tmp_path}/vol); a kubelet volume's ..data names a sibling"
    ]
