"""Reading manifests: files, directories, stdin, multi-document YAML, List kinds, kubectl JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from k8s_offload.compiler.errors import ManifestErrors
from k8s_offload.compiler.frontend import load_manifests, load_text

POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: shop}}
status: {{podIP: {ip}}}
"""


def pod(name: str, ip: str) -> str:
    return POD.format(name=name, ip=ip)


def errors_of(exc: pytest.ExceptionInfo[ManifestErrors]) -> list[str]:
    return [str(e) for e in exc.value.errors]


def test_single_file_multi_document(tmp_path: Path) -> None:
    f = tmp_path / "pods.yaml"
    f.write_text(pod("a", "10.0.0.1") + "---\n" + pod("b", "10.0.0.2") + "---\n")
    m = load_manifests([f])
    assert [p.key.name for p in m.pods] == ["a", "b"]
    assert m.notes == ()


def test_directory_is_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "b.yml").write_text(pod("b", "10.0.0.2"))
    (tmp_path / "a.yaml").write_text(pod("a", "10.0.0.1"))
    (tmp_path / "c.json").write_text(json.dumps(load_yaml_like("c", "10.0.0.3")))
    (tmp_path / "notes.txt").write_text("not: [a manifest")
    m = load_manifests([tmp_path])
    assert [p.key.name for p in m.pods] == ["a", "b", "c"]
    assert [str(p.location) for p in m.pods] == [
        f"{tmp_path}/a.yaml: document 1",
        f"{tmp_path}/z/b.yml: document 1",
        f"{tmp_path}/c.json: document 1",
    ]


def load_yaml_like(name: str, ip: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop"},
        "status": {"podIP": ip},
    }


def test_stdin_dash() -> None:
    m = load_manifests(["-"], stdin=io.StringIO(pod("a", "10.0.0.1")))
    assert [str(p.location) for p in m.pods] == ["<stdin>: document 1"]


def test_kind_list_and_typed_list_items_without_kind() -> None:
    """The API server omits kind/apiVersion on items of a typed list such as PodList."""
    text = """\
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: shop}}
---
apiVersion: v1
kind: PodList
items:
- metadata: {name: a, namespace: shop}
  status: {podIP: 10.0.0.1}
"""
    m = load_text(text, "list.yaml")
    assert [n.key.name for n in m.namespaces] == ["shop"]
    assert [str(p.location) for p in m.pods] == ["list.yaml: document 2: items[0]"]


def test_kubectl_json_list(tmp_path: Path) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": [load_yaml_like("a", "10.0.0.1")], "metadata": {}}
    f = tmp_path / "get.json"
    f.write_text(json.dumps(doc, indent=2))
    assert [p.key.name for p in load_manifests([f]).pods] == ["a"]


def test_empty_documents_are_skipped() -> None:
    assert len(load_text("---\n---\n" + pod("a", "10.0.0.1") + "---\n").pods) == 1


def test_unsupported_kinds_give_one_note() -> None:
    text = """\
{apiVersion: v1, kind: ConfigMap, metadata: {name: a}}
---
{apiVersion: apps/v1, kind: Deployment, metadata: {name: d}}
---
{apiVersion: v1, kind: ConfigMap, metadata: {name: b}}
"""
    assert load_text(text).notes == (
        "note: skipped 3 objects of unsupported kinds: ConfigMap (2), Deployment (1)",
    )


def test_missing_file() -> None:
    with pytest.raises(ManifestErrors) as exc:
        load_manifests(["/nonexistent/x.yaml"])
    assert errors_of(exc) == ["/nonexistent/x.yaml: no such file or directory"]


def test_yaml_syntax_error_names_line() -> None:
    with pytest.raises(ManifestErrors) as exc:
        load_text("a: 1\nb: [\n", "bad.yaml")
    [message] = errors_of(exc)
    # The problem text differs between libyaml and the pure-Python parser; the position does not.
    # The document and the field path being read are named as well.
    assert message.startswith("bad.yaml: document 1: b[0]: line 3, column 1: invalid YAML: ")


def test_json_syntax_error(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text('{"kind": ')
    with pytest.raises(ManifestErrors) as exc:
        load_manifests([f])
    assert errors_of(exc) == [f"{f}: line 1, column 10: invalid JSON: Expecting value"]


def test_document_shape_errors() -> None:
    text = (
        "- a\n---\n{apiVersion: v1, metadata: {name: x}}\n---\n{apiVersion: v2, kind: Pod, metadata: "
        "{name: x}}\n"
    )
    with pytest.raises(ManifestErrors) as exc:
        load_text(text, "f.yaml")
    assert errors_of(exc) == [
        "f.yaml: document 1: must be an object, got list",
        "f.yaml: document 2: kind: Required value",
        'f.yaml: document 3: Pod default/x: apiVersion: Unsupported value: "v2": supported values: "v1"',
    ]


def test_duplicates_are_errors() -> None:
    with pytest.raises(ManifestErrors) as exc:
        load_text(pod("a", "10.0.0.1") + "---\n" + pod("a", "10.0.0.2"), "dup.yaml")
    assert errors_of(exc) == [
        "dup.yaml: document 2: Pod shop/a: metadata.name: Duplicate value: Pod shop/a is already defined at "
        "dup.yaml: document 1"
    ]


def test_same_name_in_other_kind_or_namespace_is_no_duplicate() -> None:
    text = pod("a", "10.0.0.1") + "---\n" + pod("a", "10.0.0.2").replace("shop", "other")
    text += (
        "---\n{apiVersion: v1, kind: Service, metadata: {name: a, namespace: shop}, spec: {clusterIP: "
        "None}}\n"
    )
    m = load_text(text)
    assert len(m.pods) == 2 and len(m.services) == 1


def test_all_errors_of_a_run_are_collected(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(pod("a", "10.0.0.300"))
    (tmp_path / "b.yaml").write_text(pod("B", "10.0.0.1"))
    with pytest.raises(ManifestErrors) as exc:
        load_manifests([tmp_path])
    assert errors_of(exc) == [
        f"{tmp_path}/a.yaml: document 1: Pod shop/a: status.podIP: must be a valid IP address, "
        "(e.g. 10.9.8.7 or 2001:db8::ffff), got '10.0.0.300'",
        f"{tmp_path}/b.yaml: document 1: Pod shop/B: metadata.name: a lowercase RFC 1123 subdomain must "
        "consist "
        "of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
        "character, got 'B'",
    ]


def test_namespace_defaults_to_default() -> None:
    m = load_text("{apiVersion: v1, kind: Pod, metadata: {name: a}}")
    assert m.pods[0].key.namespace == "default"


def test_output_is_sorted_by_key() -> None:
    m = load_text(pod("b", "10.0.0.2") + "---\n" + pod("a", "10.0.0.1"))
    assert [p.key.name for p in m.pods] == ["a", "b"]
