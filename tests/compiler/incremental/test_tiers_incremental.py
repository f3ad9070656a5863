"""The incremental compiler with cluster policy tiers: a tracking compilation that takes object
changes (tier policies, Nodes, pods, namespaces, NetworkPolicies) equals the engine's one-shot
compile of the same objects after every event, and its delta applied to the previous bundle
gives the new one (the live watch runs this path)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from k8s_offload.compiler.bundle.model import Bundle
from k8s_offload.compiler.compilation import Change, Compilation, compile_objects
from k8s_offload.compiler.contract import default_schema
from k8s_offload.compiler.frontend.loader import KubeObject
from k8s_offload.compiler.frontend.model import ObjectKey
from k8s_offload.compiler.passes.pipeline import PassConfig

from . import objects as gen

SCHEMA = default_schema()
TEAMS = ("t1", "t2", "t3")
ACTIONS = ("Allow", "Deny", "Pass")


def _selector(team: str | None) -> dict[str, Any]:
    return {"matchLabels": {"team": team}} if team else {}


def _peer(kind: str, team: str | None, app: str | None) -> dict[str, Any]:
    if kind == "pods":
        return {
            "pods": {
                "namespaceSelector": _selector(team),
                "podSelector": {"matchLabels": {"app": app or "x"}},
            }
        }
    if kind == "nodes":
        return {"nodes": {"matchLabels": {"role": app or "x"}}}
    if kind == "networks":
        return {"networks": ["10.0.0.0/29" if team else "10.0.0.8/30"]}
    return {"namespaces": _selector(team)}


rule_bodies = st.builds(
    lambda action, kind, team, app, port: {
        "action": action,
        "peer": (kind, team, app),
        "ports": [{"portNumber": {"port": port}}] if port else None,
    },
    st.sampled_from(ACTIONS),
    st.sampled_from(("namespaces", "pods", "nodes", "networks")),
    st.sampled_from((None, *TEAMS)),
    st.sampled_from((None, "x", "y")),
    st.sampled_from((None, 8080, 9090)),
)


def admin(
    name: str, priority: int, team: str | None, rules: list[dict[str, Any]], cnp: bool
) -> dict[str, Any]:
    def one(r: dict[str, Any], peers: str) -> dict[str, Any]:
        kind, t, app = r["peer"]
        if peers == "from" and kind in ("nodes", "networks"):
            kind = "namespaces"
        out: dict[str, Any] = {
            "action": "Accept" if cnp and r["action"] == "Allow" else r["action"],
            peers: [_peer(kind, t, app)],
        }
        if r["ports"]:
            out["protocols" if cnp else "ports"] = (
                [{"tcp": {"destinationPort": {"number": r["ports"][0]["portNumber"]["port"]}}}]
                if cnp
                else r["ports"]
            )
        return out

    spec: dict[str, Any] = {
        "priority": priority,
        "subject": {"namespaces": _selector(team)},
        "ingress": [one(r, "from") for r in rules[:2]],
        "egress": [one(r, "to") for r in rules[2:]],
    }
    if cnp:
        spec["tier"] = "Admin"
        return {
            "apiVersion": "policy.networking.k8s.io/v1alpha2",
            "kind": "ClusterNetworkPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha1",
        "kind": "AdminNetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def baseline(team: str | None, rules: list[dict[str, Any]]) -> dict[str, Any]:
    body = admin(
        "default",
        0,
        team,
        [{**r, "action": "Allow" if r["action"] == "Pass" else r["action"]} for r in rules],
        False,
    )
    body["kind"] = "BaselineAdminNetworkPolicy"
    del body["spec"]["priority"]
    return body


def node(name: str, role: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"role": role}},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


tier_objects = st.one_of(
    st.builds(
        admin,
        st.sampled_from(("a0", "a1")),
        st.sampled_from((1, 2)),
        st.sampled_from((None, *TEAMS)),
        st.lists(rule_bodies, max_size=4),
        st.booleans(),
    ),
    st.builds(baseline, st.sampled_from((None, *TEAMS)), st.lists(rule_bodies, max_size=4)),
    st.builds(
        node, st.sampled_from(("n0", "n1")), st.sampled_from(("x", "y")), st.sampled_from(gen.POD_IPS[:4])
    ),
)
objects = st.one_of(tier_objects, tier_objects, gen.namespaces, gen.pods, gen.pods, gen.policies)


def _entities(bundle: Bundle) -> set[Any]:
    return {*bundle.members, *bundle.groups, *bundle.entries}


class TiersIncremental(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store: dict[ObjectKey, KubeObject] = {}
        self.passes = PassConfig(check=True)
        self.compiler = Compilation(SCHEMA, None, self.passes)
        self.last: Bundle | None = None

    @initialize(first=st.lists(objects, max_size=10), facts=st.sampled_from((None, gen.facts())))
    def start(self, first: list[dict[str, Any]], facts: Any) -> None:
        self.facts = facts
        self.compiler = Compilation(SCHEMA, facts, self.passes)
        self.store = {o.key: o for o in (gen.parse(b) for b in first)}
        self._step(lambda: self.compiler.load(self.store.values()))

    def _step(self, action: Any) -> None:
        try:
            expected: Bundle | None = compile_objects(
                self.store.values(), self.facts, SCHEMA, self.passes
            ).bundle()
        except Exception as err:  # a tier set beyond the rule bits, as the full compile says
            try:
                action()
            except Exception as got:
                assert type(got) is type(err) and str(got) == str(err)
                return
            raise AssertionError(f"the full compile failed ({err}), the tracking one did not") from None
        delta = action()
        assert self.compiler.bundle() == expected
        if self.last is not None and expected is not None:
            assert (_entities(self.last) - set(delta.removed)) | set(delta.added) == _entities(expected)
        self.last = expected

    @rule(body=objects)
    def upsert(self, body: dict[str, Any]) -> None:
        obj = gen.parse(body)
        self.store[obj.key] = obj
        self._step(lambda: self.compiler.apply([Change(obj.key, obj)]))

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        if not self.store:
            return
        key = data.draw(st.sampled_from(sorted(self.store, key=lambda k: (k.kind, k.namespace, k.name))))
        del self.store[key]
        self._step(lambda: self.compiler.apply([Change(key, None)]))


TestTiersIncremental = TiersIncremental.TestCase
TestTiersIncremental.settings = settings(
    max_examples=60, stateful_step_count=15, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
