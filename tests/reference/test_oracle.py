"""The engine against the frozen full path (tests/reference) on the benchmark's synthetic
clusters: the one-shot compile, and a tracking compilation fed the objects in batches then
changed (endpoints flipped, a policy and a pod relabelled, objects deleted), give the oracle's
bundle, diagnostics and IR, for every target profile, load-balancing mode and no-opt."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from bench.synth import SIZES, cluster, write
from k8s_offload.compiler.compilation import Change, Compilation, compile_objects
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.frontend.loader import KubeObject, load_manifests
from k8s_offload.compiler.frontend.model import EndpointSlice, Pod
from k8s_offload.compiler.frontend.nodefacts import load_node_facts
from k8s_offload.compiler.passes.pipeline import PassConfig
from tests.reference import compile_reference
from tests.reference.ir_build import build_ir as reference_build_ir

SCHEMA = default_schema()
CONFIGS = {
    "default": PassConfig(check=True),
    "no-opt": PassConfig(frozenset(), check=True),
    "dpdk": PassConfig(profile="dpdk", check=True),
    "maglev": PassConfig(lb="maglev", check=True),
}


@pytest.fixture(scope="module", params=["XS", "P"])
def synth(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[KubeObject], object]:
    d = tmp_path_factory.mktemp(f"synth-{request.param}")
    files = write(cluster(SIZES[request.param], 1), d)
    return list(load_manifests([str(f) for f in files]).objects), load_node_facts(d / "node.yaml")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_one_shot_and_tracking_equal_the_oracle(synth: tuple[list[KubeObject], object], name: str) -> None:
    objects, facts = synth
    config = CONFIGS[name]
    expected = compile_reference(objects, facts, SCHEMA, config)  # type: ignore[arg-type]
    one_shot = compile_objects(objects, facts, SCHEMA, config)  # type: ignore[arg-type]
    assert one_shot.bundle() == expected.bundle
    assert one_shot.lowering_diagnostics() == expected.diagnostics
    assert one_shot.ir() == reference_build_ir(objects, facts)  # type: ignore[arg-type]
    assert one_shot.policy() == expected.policy

    rng = random.Random(name)
    c = Compilation(SCHEMA, facts, config)  # type: ignore[arg-type]
    shuffled = list(objects)
    rng.shuffle(shuffled)
    for i in range(0, len(shuffled), 97):  # in batches, in a random order
        c.apply([Change(o.key, o) for o in shuffled[i : i + 97]])
    assert c.bundle() == expected.bundle
    store = {o.key: o for o in objects}
    for _ in range(5):
        key = rng.choice(sorted(store, key=str))
        obj = store[key]
        if isinstance(obj, EndpointSlice) and obj.endpoints:
            ep = obj.endpoints[0]
            flipped = replace(ep, conditions=replace(ep.conditions, ready=not ep.conditions.ready))
            new: KubeObject | None = replace(obj, endpoints=(flipped, *obj.endpoints[1:]))
        elif isinstance(obj, Pod):
            new = replace(obj, labels=(("app", rng.choice(("x", "web", "api"))),))
        else:
            new = None
        if new is None:
            del store[key]
        else:
            store[key] = new
        c.apply([Change(key, new)])
        assert c.bundle() == compile_reference(store.values(), facts, SCHEMA, config).bundle  # type: ignore[arg-type]
