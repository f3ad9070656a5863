"""Service features a tracking compilation keeps as the frozen full path does: session affinity,
traffic policies (svc_frontend_internal, local endpoints) and the masquerade warnings."""

from __future__ import annotations

from typing import Any

from k8s_offload.compiler.bundle.model import Bundle, Exact, TableEntry
from k8s_offload.compiler.compilation import Change, Compilation
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.frontend.loader import KubeObject
from k8s_offload.compiler.frontend.nodefacts import NodeFacts
from tests.reference import compile_reference

from . import objects as gen

SCHEMA = default_schema()


def _full(objs: list[KubeObject], facts: NodeFacts | None) -> Bundle:
    return compile_reference(objs, facts, SCHEMA).bundle


def _tables(bundle: Bundle, *names: str) -> list[TableEntry]:
    return [e for e in bundle.entries if e.table.rsplit(".", 1)[-1] in names]


def _affinity(bundle: Bundle) -> list[TableEntry]:
    """svc_options entries naming an affinity domain."""
    return [e for e in _tables(bundle, "svc_options") if e.action and dict(e.action.params).get("aff_id")]


def _objects(svc: dict[str, Any]) -> list[KubeObject]:
    bodies = [
        gen.pod("a", "p0", "x", "10.0.0.1", "n0"),
        gen.pod("a", "p4", "x", "10.0.0.2", "n1"),
        svc,
        gen.endpoint_slice(
            "a",
            "e0",
            "s0",
            [("10.0.0.1", True, True, False, "n0", None), ("10.0.0.2", True, True, False, "n1", None)],
        ),
    ]
    return [gen.parse(b) for b in bodies]


def test_affinity_and_local_traffic_policy_follow_the_full_lowering() -> None:
    facts = gen.facts()
    svc = gen.service("a", "s0", "10.96.0.1", affinity=60, type_="NodePort", external_local=True)
    objs = _objects(svc)
    compiler = Compilation(SCHEMA, facts)
    compiler.load(objs)
    full = _full(objs, facts)
    assert compiler.bundle() == full
    # Cluster IP and the node port's internal entry (cluster selection), the node port (local).
    assert len(_affinity(full)) == 3
    chosen = {dict(e.action.params)["aff_id"] for e in _affinity(full) if e.action}
    assert len(chosen) == 2
    assert chosen == {
        m.value
        for e in _tables(full, "aff_backend")
        for f, m in e.match
        if isinstance(m, Exact) and f.endswith("aff_id")
    }
    assert len(_tables(full, "aff_backend")) == 3  # two cluster backends, one local
    assert _tables(full, "svc_frontend_internal")

    # The remote endpoint stops being ready: the cluster selection's affinity shrinks.
    slice_ = gen.parse(
        gen.endpoint_slice(
            "a",
            "e0",
            "s0",
            [("10.0.0.1", True, True, False, "n0", None), ("10.0.0.2", False, False, True, "n1", None)],
        )
    )
    objs[-1] = slice_
    delta = compiler.apply([Change(slice_.key, slice_)])
    assert compiler.bundle() == _full(objs, facts)
    assert any(isinstance(e, TableEntry) and e.table.endswith(".aff_backend") for e in delta.removed)

    # Affinity off: every affinity entry goes.
    plain = gen.parse(gen.service("a", "s0", "10.96.0.1", type_="NodePort", external_local=True))
    objs[2] = plain
    compiler.apply([Change(plain.key, plain)])
    assert compiler.bundle() == _full(objs, facts)
    assert not _affinity(compiler.bundle()) and not _tables(compiler.bundle(), "aff_backend")


def test_masquerade_warning_without_a_node_ip_of_the_family() -> None:
    facts = gen.facts(node_ips=("fd00::1",))
    objs = _objects(gen.service("a", "s0", "10.96.0.1", external_ips=True))
    compiler = Compilation(SCHEMA, facts)
    compiler.load(objs)
    full = compile_reference(objs, facts, SCHEMA)
    warning = [d for d in full.diagnostics if "to masquerade with" in d.message]
    assert len(warning) == 1 and "ExternalIP 172.20.0.1" in warning[0].message
    assert set(full.diagnostics) <= set(compiler.diagnostics())
    # externalTrafficPolicy Local keeps the client address: nothing to masquerade, no warning.
    local = gen.parse(gen.service("a", "s0", "10.96.0.1", external_ips=True, external_local=True))
    compiler.apply([Change(local.key, local)])
    assert not [d for d in compiler.diagnostics() if "to masquerade with" in d.message]
