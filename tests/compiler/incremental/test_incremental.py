"""A tracking compilation (the engine taking changes) equals a full compile after every event,
and its delta, as device writes, equals the minimal diff between the two full bundles. The full
compile is the frozen oracle (tests/reference) and the engine's own one-shot run."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.bundle.schema import BundleError
from k8s_offload.compiler.compilation import Change, Compilation, compile_objects
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.frontend.loader import KubeObject
from k8s_offload.compiler.frontend.model import ObjectKey, Pod
from k8s_offload.compiler.frontend.nodefacts import NodeFacts
from k8s_offload.compiler.ir.build import build_ir
from k8s_offload.compiler.lower.ids import IdSpace, stable_ids
from k8s_offload.compiler.passes.pipeline import LB_MODES, PASS_NAMES, PassConfig
from k8s_offload.compiler.passes.range_encoding import PROFILES
from k8s_offload.loader.delta import apply_delta, delta_plan
from k8s_offload.loader.entities import Item, Key, bundle_items, entity_value
from k8s_offload.loader.plan import Plan, make_plan
from k8s_offload.loader.transition import Facts
from tests.reference import compile_reference
from tests.reference.ir_build import build_ir as reference_build_ir

from . import objects as gen

SCHEMA = default_schema()


def _ops(plan: Plan) -> list[tuple[int, Key, Any]]:
    return sorted(((op.type, op.item.key, entity_value(op.item.entity)) for op in plan.ops()), key=repr)


PASS_CONFIGS = st.builds(
    lambda profile, lb, enabled: PassConfig(enabled, profile, check=True, lb=lb),
    st.sampled_from(PROFILES),
    st.sampled_from(LB_MODES),
    st.frozensets(st.sampled_from(PASS_NAMES)) | st.just(frozenset(PASS_NAMES)),
)
"""Every target profile and load-balancing mode with a random subset of the passes (often all)."""

FACTS = st.sampled_from(
    (
        None,
        gen.facts(),
        gen.facts(zone="z0"),
        gen.facts(zone="z1", node_ips=("192.168.0.1", "fd00::1")),
        gen.facts(node_ips=("fd00::1",)),
    )
)
"""No node facts, or node n0 with or without a zone (topology hints), and an IPv6-only node IP
that leaves IPv4 external frontends nothing to masquerade with."""


class IncrementalMatchesFull(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store: dict[ObjectKey, KubeObject] = {}
        self.facts: NodeFacts | None = None
        self.passes = PassConfig(check=True)
        self.compiler = Compilation(SCHEMA, passes=PassConfig(check=True))
        self.last_good: Bundle | None = None
        self.desired: dict[Key, Item] = {}
        self.stages = Facts(SCHEMA)  # the policy stages of `desired`, as the loader keeps them
        self.applied: bool = True

    @initialize(facts=FACTS, first=st.lists(gen.any_object, max_size=12), passes=PASS_CONFIGS)
    def start(self, facts: NodeFacts | None, first: list[dict[str, Any]], passes: PassConfig) -> None:
        self.facts = facts
        self.passes = passes
        self.compiler = Compilation(SCHEMA, self.facts, passes)
        objs = [gen.parse(b) for b in first]
        self.store = {o.key: o for o in objs}
        self._step(lambda: self.compiler.load(self.store.values()))

    def _step(self, action: Any) -> None:
        try:
            lowered = compile_reference(self.store.values(), self.facts, SCHEMA, self.passes)
            expected: Bundle | None = lowered.bundle
            expected_error: type[Exception] | None = None
        except Exception as err:
            expected, expected_error = None, type(err)
        if expected is None:
            with pytest.raises(Exception) as caught:
                action()
            assert caught.type is expected_error
            self.applied = False  # the next step recomputes everything: its delta is against last_good
            return
        delta = action()
        assert self.compiler.bundle() == expected
        one_shot = compile_objects(self.store.values(), self.facts, SCHEMA, self.passes)
        assert one_shot.bundle() == expected
        assert set(one_shot.lowering_diagnostics()) == set(lowered.diagnostics)
        # The Service section's notes (fitting, Maglev) and offload errors, as the full lowering's.
        assert set(lowered.diagnostics) <= set(self.compiler.diagnostics())
        if self.last_good == expected and self.applied:
            # Nothing changed on the device (e.g. a pod no peer selects): nothing is sent.
            assert len(delta) == 0, delta
        self.applied = True
        before = dict(self.desired)
        new, old = apply_delta(SCHEMA, self.desired, delta.added, delta.removed)
        self.stages.update(new, old)
        full = bundle_items(SCHEMA, expected)
        assert set(self.desired) == set(full)
        plan = delta_plan(SCHEMA, new, old, (self.stages, self.desired))
        assert plan is not None
        whole = make_plan(SCHEMA, full, before)
        assert _ops(plan) == _ops(whole)
        assert [_ops(Plan([s])) for s in plan.stages] == [_ops(Plan([s])) for s in whole.stages]
        self.last_good = expected

    @rule(body=gen.any_object)
    def upsert(self, body: dict[str, Any]) -> None:
        obj = gen.parse(body)
        self.store[obj.key] = obj
        self._step(lambda: self.compiler.apply([Change(obj.key, obj)]))

    @precondition(lambda self: any(k.kind == "Pod" for k in self.store))
    @rule(data=st.data(), app=gen.apps)
    def relabel(self, data: st.DataObject, app: str) -> None:
        """The commonest pod event that reaches policy: only a label changes."""
        keys = sorted((k for k in self.store if k.kind == "Pod"), key=lambda k: (k.namespace, k.name))
        old = self.store[data.draw(st.sampled_from(keys))]
        assert isinstance(old, Pod)
        obj = replace(old, labels=(("app", app),))
        self.store[obj.key] = obj
        self._step(lambda: self.compiler.apply([Change(obj.key, obj)]))

    @precondition(lambda self: any(k.kind == "NetworkPolicy" for k in self.store))
    @rule(data=st.data(), selects=gen.apps, peer=gen.maybe_app, team=gen.maybe_team, named=st.booleans())
    def change_policy(
        self, data: st.DataObject, selects: str, peer: str | None, team: str | None, named: bool
    ) -> None:
        """An existing policy selects other pods or peers (its rule results and pods are recomputed)."""
        keys = sorted(
            (k for k in self.store if k.kind == "NetworkPolicy"), key=lambda k: (k.namespace, k.name)
        )
        key = data.draw(st.sampled_from(keys))
        obj = gen.parse(gen.policy(key.namespace, key.name, selects, peer, team, named))
        self.store[key] = obj
        self._step(lambda: self.compiler.apply([Change(key, obj)]))

    @rule(name=gen.ns_names, team=st.sampled_from(("t1", "t2", "t3")))
    def relabel_namespace(self, name: str, team: str) -> None:
        """namespaceSelector peers flip for the pods of this namespace."""
        obj = gen.parse(gen.namespace(name, team))
        self.store[obj.key] = obj
        self._step(lambda: self.compiler.apply([Change(obj.key, obj)]))

    @precondition(lambda self: any(k.kind == "Pod" for k in self.store))
    @rule(data=st.data(), app=st.sampled_from(("x", "y", "z")))
    def relabel_batch(self, data: st.DataObject, app: str) -> None:
        """Two pods relabelled in one batch with a policy change: one resolution for all three."""
        keys = sorted((k for k in self.store if k.kind == "Pod"), key=lambda k: (k.namespace, k.name))
        chosen = data.draw(st.lists(st.sampled_from(keys), min_size=1, max_size=2, unique=True))
        changes = []
        for key in chosen:
            old = self.store[key]
            assert isinstance(old, Pod)
            obj = replace(old, labels=(("app", app),))
            self.store[key] = obj
            changes.append(Change(key, obj))
        pol = gen.parse(gen.policy("a", "np1", app, "x", None, False))
        self.store[pol.key] = pol
        changes.append(Change(pol.key, pol))
        self._step(lambda: self.compiler.apply(changes))

    @precondition(lambda self: bool(self.store))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.store, key=lambda k: (k.kind, k.namespace, k.name))))
        del self.store[key]
        self._step(lambda: self.compiler.apply([Change(key, None)]))

    @rule(bodies=st.lists(gen.any_object, min_size=2, max_size=4))
    def batch(self, bodies: list[dict[str, Any]]) -> None:
        objs = [gen.parse(b) for b in bodies]
        for o in objs:
            self.store[o.key] = o
        self._step(lambda: self.compiler.apply([Change(o.key, o) for o in objs]))

    @rule(bodies=st.lists(gen.any_object, max_size=6))
    def relist(self, bodies: list[dict[str, Any]]) -> None:
        objs = [gen.parse(b) for b in bodies]
        self.store = {o.key: o for o in objs}
        self._step(lambda: self.compiler.load(self.store.values()))

    @invariant()
    def ir_matches(self) -> None:
        if self.last_good is None or not self.applied:
            return
        assert self.compiler.ir() == reference_build_ir(self.store.values(), self.facts)
        assert build_ir(self.store.values(), self.facts) == self.compiler.ir()


TestIncrementalMatchesFull = IncrementalMatchesFull.TestCase
TestIncrementalMatchesFull.settings = settings(
    max_examples=150, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.parametrize("bits", [3, 5])
@settings(max_examples=300, deadline=None)
@given(ops=st.lists(st.tuples(st.booleans(), st.sampled_from([f"id{i}" for i in range(12)])), max_size=40))
def test_idspace_equals_stable_ids(bits: int, ops: list[tuple[bool, str]]) -> None:
    """Few bits force collisions and runs that merge and split."""
    space = IdSpace(bits)
    current: set[str] = set()
    for add, ident in ops:
        before = dict(space.ids)
        if add and len(current) < (1 << bits) - 1:
            moved = space.add(ident)
            current.add(ident)
        elif not add:
            moved = space.remove(ident)
            current.discard(ident)
        else:
            continue
        assert space.ids == stable_ids(current, bits)
        changed = {i for i in current if before.get(i) != space.ids.get(i)}
        assert changed <= moved | {ident}


def test_dpdk_selector_limits_fail_as_the_full_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    """More selector groups than the dpdk target holds: the same error as the frozen full path."""
    import k8s_offload.compiler.lower.ecmp as ecmp
    import tests.reference.lower_ecmp as reference_ecmp

    monkeypatch.setattr(ecmp, "DPDK_SELECTOR_GROUPS", 2)
    monkeypatch.setattr(reference_ecmp, "DPDK_SELECTOR_GROUPS", 2)
    bodies = [gen.pod("a", f"p{i}", "x", f"10.0.0.{i + 1}", "n0") for i in range(4)]
    for i, name in enumerate(gen.SERVICES):  # two endpoints each: a group each (one needs none)
        bodies.append(gen.service("a", name, gen.VIPS[i]))
        endpoints = [(f"10.0.0.{i + 1}", True), (f"10.0.0.{i + 2}", True)]
        bodies.append(gen.endpoint_slice("a", f"e{i}", name, endpoints))
    objs = [gen.parse(b) for b in bodies]
    passes = PassConfig(profile="dpdk")
    with pytest.raises(BundleError) as full:
        compile_reference(objs, None, SCHEMA, passes)
    compiler = Compilation(SCHEMA, passes=passes)
    with pytest.raises(BundleError) as incremental:
        compiler.load(objs)
    assert str(incremental.value) == str(full.value)
    assert "needs 3 groups, holds 2" in str(full.value)
    # One Service fewer fits: the compiler recovers on the next change.
    compiler.apply([Change(objs[-1].key, None)])
    assert compiler.bundle() == compile_reference(objs[:-1], None, SCHEMA, passes).bundle
