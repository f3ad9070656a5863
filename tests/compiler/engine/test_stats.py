"""Engine stats on the compiler's own tables (the OVN engine-stats tests' idea): a change re-runs
the units that read what changed and nothing else."""

from __future__ import annotations

from k8s_offload.compiler.compilation import Change, Compilation
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.frontend.model import ObjectKey
from tests.compiler.incremental import objects as gen
from tests.reference import compile_reference

SCHEMA = default_schema()
SERVICE_TABLES = (
    "service_ir",
    "service_frontends",
    "backend_sets_of",
    "fe_plan",
    "frontend",
    "backend",
    "group",
)
POLICY_TABLES = (
    "policy_selection",
    "isolation_unmerged",
    "isolation",
    "eg_rule_set",
    "in_rule_set",
    "policy_pod",
)


def _slice(i: int, ready: bool) -> object:
    """Service i's endpoints: its own two addresses (no group shared with another Service)."""
    return gen.parse(
        gen.endpoint_slice(
            "a",
            f"e{i}",
            gen.SERVICES[i],
            [(f"10.1.{i}.1", ready, True, False, "n0", None), (f"10.1.{i}.2", True, True, False, "n1", None)],
        )
    )


def _cluster() -> tuple[Compilation, dict[ObjectKey, object]]:
    bodies = [
        gen.namespace("a", "t1"),
        gen.pod("a", "p0", "x", "10.0.0.1", "n0"),
        gen.pod("a", "p1", "y", "10.0.0.2", "n1"),
        gen.policy("a", "np0", "x", "y", None),
    ]
    objs = {o.key: o for o in map(gen.parse, bodies)}
    for i, name in enumerate(gen.SERVICES):
        svc = gen.parse(gen.service("a", name, gen.VIPS[i]))
        eps = _slice(i, True)
        objs[svc.key] = svc
        objs[eps.key] = eps  # type: ignore[attr-defined]
    c = Compilation(SCHEMA, gen.facts())
    c.load(objs.values())  # type: ignore[arg-type]
    return c, objs


def test_full_run_is_every_unit_once() -> None:
    c, _ = _cluster()
    services = len(gen.SERVICES)
    assert c.stats.ran["service_ir"] == services
    assert c.stats.ran["backend_sets_of"] == services
    assert c.stats.cut["service_ir"] == 0


def test_endpoint_flip_reruns_only_its_backend_sets_units() -> None:
    c, objs = _cluster()
    s0 = ObjectKey("Service", "a", gen.SERVICES[0])
    flipped = _slice(0, False)
    objs[flipped.key] = flipped  # type: ignore[attr-defined]
    c.apply([Change(flipped.key, flipped)])  # type: ignore[attr-defined]
    assert c.bundle() == compile_reference(objs.values(), c.facts, SCHEMA).bundle  # type: ignore[arg-type]
    ran = c.stats
    assert ran.ran_keys("backend_sets_of") == {s0}
    assert {k.service for k in ran.ran_keys("backend_set_ir")} == {s0}  # type: ignore[attr-defined]
    s0_frontends = {sk for sk, fe in c.b.t["frontend_ir"].values.items() if fe.service == s0}  # type: ignore[attr-defined]
    assert ran.ran_keys("fe_plan") == s0_frontends
    assert ran.ran_keys("frontend") <= s0_frontends
    assert not ran.ran_keys("service_ir") and not ran.ran_keys("service_frontends")
    for table in ("pod_ir", "namespace_ir", *POLICY_TABLES):
        assert not ran.ran_keys(table), table
    # The flip changed which backends are chosen; the plans themselves were cut off.
    assert ran.cut["fe_plan"] == len(s0_frontends)


def test_policy_change_reruns_no_service_unit() -> None:
    c, objs = _cluster()
    pol = gen.parse(gen.policy("a", "np0", "x", "x", None))
    objs[pol.key] = pol
    c.apply([Change(pol.key, pol)])
    assert c.bundle() == compile_reference(objs.values(), c.facts, SCHEMA).bundle  # type: ignore[arg-type]
    for table in SERVICE_TABLES:
        assert not c.stats.ran_keys(table), table
    assert c.stats.ran_keys("policy_selection")


def test_unchanged_object_reruns_nothing() -> None:
    c, objs = _cluster()
    key = ObjectKey("Service", "a", gen.SERVICES[1])
    delta = c.apply([Change(key, objs[key])])  # type: ignore[arg-type]
    assert len(delta) == 0
    assert not c.stats.units
