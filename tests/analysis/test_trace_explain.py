"""`offload-compile trace` names what decided each verdict (issue 22, "a trace that explains"):
the NetworkPolicy and rule (or that no policy selects the pod, or that it is isolated and no rule
allows), the Service, port and EndpointSlice behind the backend, the node facts behind a port.

Expected explanations are written from the manifests (examples/shop, the policy golden cases)
and reviewed; on random clusters the named rules are checked against the independent reference
evaluator (tests/policy/reference.py), rule by rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k8s_offload.analysis.trace import Probe, Tracer
from k8s_offload.cli.main import main
from k8s_offload.compiler.driver import compile_sources
from k8s_offload.compiler.frontend.model import Protocol
from k8s_offload.target.install import interpreter_with
from tests.policy.reference import Cluster, Endpoint
from tests.policy.strategies import PROTOCOLS, clusters

ROOT = Path(__file__).resolve().parents[2]
SHOP = [str(ROOT / "examples/shop/cluster"), "--node", str(ROOT / "examples/shop/node.yaml")]
GOLDEN = ROOT / "tests/compiler/golden"


def _trace(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["trace", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    code, out, err = _trace(capsys, *args, "--format", "json")
    assert code == 0, err
    verdicts: list[dict[str, Any]] = json.loads(out)
    return verdicts


def _steps(verdict: dict[str, Any], stage: str) -> list[dict[str, Any]]:
    return [s for hop in verdict["path"] for s in hop["steps"] if s["stage"] == stage]


def _decided(verdict: dict[str, Any]) -> list[str]:
    return [f"{o['kind']} {o['name']} ({o['detail']})" for o in verdict["decided_by"]]


# ---- the shop example --------------------------------------------------------------------------
def test_shop_service_probe_names_service_slice_policies_and_node_facts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    (v,) = _json(capsys, *SHOP, "--from", "shop/cart-7f8b6-pqrst", "--to", "svc:data/redis", "--port", "6379")
    assert v["verdict"] == "allowed"
    assert _decided(v) == [
        "NodeFacts node-a (pods[3])",  # the client's port
        "Service data/redis (port redis)",
        "EndpointSlice data/redis-jkl78 (endpoint 10.244.2.40)",
        "NetworkPolicy shop/cart-egress (egress[0])",  # to namespace data, any port
        "NodeFacts node-a (ports.uplink)",  # out towards node-b
        "NetworkPolicy data/allow-cart (ingress[0])",  # on node-b: from shop's cart pods, 6379
    ]
    (service,) = _steps(v, "service")
    assert (
        service["text"] == "10.96.40.40:6379/TCP is the ClusterIP frontend of Service data/redis, port redis"
    )
    (backend,) = _steps(v, "backend")
    assert backend["pod"] == "data/redis-0" and backend["node_name"] == "node-b"
    assert backend["source"] == "EndpointSlice data/redis-jkl78"
    egress, ingress_here, egress_there, ingress = _steps(v, "egress policy") + _steps(v, "ingress policy")
    assert egress["text"] == (
        "shop/cart-7f8b6-pqrst: TCP/6379 to 10.244.2.40 allowed by NetworkPolicy shop/cart-egress egress[0] "
        "(compiled rule 1)"
    )
    # redis-0 runs on node-b: node-a leaves its ingress to node-b, node-b the client's egress to node-a.
    assert egress_there["verdict"] == "not local" and ingress_here["verdict"] == "not local"
    assert ingress["text"] == (
        "data/redis-0: TCP/6379 from 10.244.1.20 allowed by NetworkPolicy data/allow-cart ingress[0] "
        "(compiled rule 0)"
    )
    ins = _steps(v, "in")
    assert ins[0]["text"] == "port 13: Pod shop/cart-7f8b6-pqrst (node facts of node-a, pods[3])"
    assert ins[1]["text"] == "port 3: uplink (default ports.uplink, no node facts)"  # node-b, no facts given
    assert [s["text"] for s in _steps(v, "reverse nat")] == [
        "reply source rewritten to 10.96.40.40:6379, the frontend of Service data/redis it was sent to"
    ]


def test_shop_denials_name_the_isolating_policies(capsys: pytest.CaptureFixture[str]) -> None:
    probes = str(ROOT / "examples/shop/probes.yaml")
    verdicts = _json(capsys, *SHOP, "--probes", probes)
    outcome = [(v["from"], v["to"], v["verdict"]) for v in verdicts]
    assert outcome == [
        ("shop/cart-7f8b6-pqrst", "svc:data/redis", "allowed"),
        ("shop/cart-7f8b6-pqrst", "data/postgres-0", "allowed"),
        ("shop/catalog-6d5f4-zabcd", "data/postgres-0", "denied"),
        ("shop/cart-7f8b6-pqrst", "svc:kube-system/kube-dns", "allowed"),
        ("shop/catalog-6d5f4-zabcd", "svc:shop/frontend", "allowed"),
        ("monitoring/prometheus-0", "shop/frontend-5c7d9-abcde", "allowed"),
        ("shop/cart-7f8b6-pqrst", "shop/catalog-6d5f4-zabcd", "denied"),
    ]
    # catalog has no egress policy; postgres is isolated by two policies and allow-cart's only
    # rule names port 5432 (postgres) for cart pods only.
    assert _decided(verdicts[2])[1:3] == [
        "Pod shop/catalog-6d5f4-zabcd (not isolated for egress)",
        "NetworkPolicy data/allow-cart (isolates data/postgres-0, no rule allows)",
    ]
    (ingress,) = _steps(verdicts[2], "ingress policy")
    assert ingress["text"] == (
        "data/postgres-0: TCP/5432 from 10.244.1.30 denied: isolated by NetworkPolicy data/allow-cart, "
        "NetworkPolicy data/default-deny, and no rule allows it; rules for this port (other peers): "
        "data/allow-cart ingress[0]"
    )
    assert ingress["policies"] == ["data/allow-cart", "data/default-deny"]
    assert ingress["port_rules"] == [
        {"kind": "NetworkPolicy", "name": "data/allow-cart", "detail": "ingress[0]"}
    ]
    assert ingress["peer_rules"] == []
    # cart's egress allows namespace data (any port), DNS, and an ipBlock: not catalog.
    (egress,) = _steps(verdicts[6], "egress policy")
    assert egress["verdict"] == "denied" and egress["policies"] == ["shop/cart-egress"]
    assert [s["stage"] for s in verdicts[6]["path"][0]["steps"]] == ["in", "egress policy", "drop"]
    # prometheus reaches frontend's port 9999 by the second rule (team=platform, any port).
    (allowed,) = _steps(verdicts[5], "ingress policy")
    assert allowed["rules"] == [
        {"kind": "NetworkPolicy", "name": "shop/frontend-ingress", "detail": "ingress[1]"}
    ]
    # The Service probe to frontend picks the backend on node-b and names its slice.
    (backend,) = _steps(verdicts[4], "backend")
    assert backend["source"] == "EndpointSlice shop/frontend-v4"


def test_text_output_names_the_deciding_objects(capsys: pytest.CaptureFixture[str]) -> None:
    probe = ["--from", "shop/cart-7f8b6-pqrst", "--to", "shop/catalog-6d5f4-zabcd", "--port", "9090"]
    code, out, _ = _trace(capsys, *SHOP, *probe)
    assert code == 0
    assert out.splitlines()[:2] == [
        "probe 1: shop/cart-7f8b6-pqrst -> shop/catalog-6d5f4-zabcd TCP/9090: DENIED: request dropped on "
        "node-a: egress policy",
        "  decided by: NetworkPolicy shop/cart-egress (isolates shop/cart-7f8b6-pqrst, no rule allows)",
    ]
    assert (
        "    egress policy: shop/cart-7f8b6-pqrst: TCP/9090 to 10.244.1.30 denied: isolated by "
        "NetworkPolicy shop/cart-egress, and no rule allows it; rules for this port (other peers): "
        "shop/cart-egress egress[0]"
    ) in out.splitlines()


# ---- the policy golden cases -------------------------------------------------------------------
def test_default_deny_golden_case(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(GOLDEN / "policy-default-deny/manifests.yaml")]
    to_a, to_b = _json(
        capsys, *files, "--probes", _probes_file(GOLDEN, [("open/b", "secure/a"), ("secure/a", "open/b")])
    )
    # b's egress-only policy allows UDP/53 to anyone: TCP/80 is denied at b's egress.
    (egress,) = _steps(to_a, "egress policy")
    assert egress["verdict"] == "denied" and egress["policies"] == ["open/egress-dns-only"]
    assert egress["peer_rules"] == [
        {"kind": "NetworkPolicy", "name": "open/egress-dns-only", "detail": "egress[0]"}
    ]
    # a is not isolated for egress; b is isolated for ingress by the same policy (policyTypes
    # default to Ingress too) and it has no ingress rule.
    (egress,) = _steps(to_b, "egress policy")
    assert egress["verdict"] == "not isolated"
    (ingress,) = _steps(to_b, "ingress policy")
    assert ingress["verdict"] == "denied" and ingress["policies"] == ["open/egress-dns-only"]
    assert ingress["peer_rules"] == [] and ingress["port_rules"] == []


def test_policy_selectors_golden_case(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(GOLDEN / "policy-selectors/manifests.yaml")]
    pairs = [("prod/client", "prod/server", 8080), ("prod/client", "prod/server-canary", 9090),
             ("dev/client", "prod/server", 8080)]  # fmt: skip
    to_server, to_canary, from_dev = _json(capsys, *files, "--probes", _probes_file(GOLDEN, pairs))
    # The named port http is 8080 on server and 9090 on canary: the same rules allow both.
    for v in (to_server, to_canary):
        assert v["verdict"] == "allowed"
        assert [o for o in _decided(v) if o.startswith("NetworkPolicy")] == [
            "NetworkPolicy prod/client-out (egress[0])",
            "NetworkPolicy prod/server-in (ingress[0])",
        ]
    # dev/client is in a namespace env=dev: the AND peer (env=prod and app=client) does not match;
    # both rules name port 8080 (http, and the 8000-8099 range of the ipBlock rule).
    (ingress,) = _steps(from_dev, "ingress policy")
    assert ingress["verdict"] == "denied" and ingress["peer_rules"] == []
    assert [r["detail"] for r in ingress["port_rules"]] == ["ingress[0]", "ingress[1]"]


def _probes_file(tmp: Path, pairs: list[tuple[str, str]] | list[tuple[str, str, int]]) -> str:
    """A probes file for the pairs (port 80 unless given), in a fresh temporary directory."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="trace-probes-"))
    probes = [{"from": p[0], "to": p[1], "port": p[2] if len(p) > 2 else 80} for p in pairs]  # type: ignore[misc]
    path = folder / "probes.yaml"
    path.write_text(yaml.safe_dump(probes))
    return str(path)


# ---- the JSON schema ---------------------------------------------------------------------------
VERDICT_KEYS = {"from", "to", "port", "protocol", "verdict", "allowed", "rejected", "expect", "as_expected",
                "backend", "reason", "decided_by", "path"}  # fmt: skip
HOP_KEYS = {
    "node",
    "direction",
    "ingress_port",
    "egress_port",
    "delivered_to",
    "drop_reason",
    "tables",
    "steps",
}
OBJECT_KEYS = {"kind", "name", "detail"}
STEP_KEYS = {
    "in": {"port", "role", "pod", "facts"},
    "out": {"port", "role", "pod", "facts"},
    "service": {"frontend", "frontend_kind", "service", "port_name", "action", "table", "masquerade"},
    "backend": {"backend", "pod", "node_name", "conditions", "source", "backend_set"},
    "egress policy": {"verdict", "pod", "policies", "peer", "rule_bits", "rules", "peer_rules", "port_rules"},
    "ingress policy": {
        "verdict",
        "pod",
        "policies",
        "peer",
        "rule_bits",
        "rules",
        "peer_rules",
        "port_rules",
    },
    "reverse nat": {"frontend", "service"},
    "flow cache": set(),
    "drop": {"reason"},
}


def test_json_schema_is_stable(capsys: pytest.CaptureFixture[str]) -> None:
    """Every key the JSON output has, by level and stage (docs/trace.md); a new key is a
    documented addition, a missing or renamed one a break."""
    verdicts = _json(capsys, *SHOP, "--probes", str(ROOT / "examples/shop/probes.yaml"))
    stages: set[str] = set()
    for v in verdicts:
        assert set(v) == VERDICT_KEYS
        assert (
            v["verdict"] in ("allowed", "denied", "rejected")
            and v["expect"] is None
            and v["as_expected"] is None
        )
        for o in v["decided_by"]:
            assert set(o) == OBJECT_KEYS and all(isinstance(x, str) for x in o.values())
        for hop in v["path"]:
            assert set(hop) == HOP_KEYS
            for step in hop["steps"]:
                stage = step["stage"]
                stages.add(stage)
                keys = set(step) - {"stage", "text", "objects"}
                assert keys <= STEP_KEYS[stage], (stage, keys - STEP_KEYS[stage])
                assert isinstance(step["text"], str)
                assert all(set(o) == OBJECT_KEYS for o in step["objects"])
    assert stages == set(STEP_KEYS)


# ---- expectations and exit codes ---------------------------------------------------------------
def test_expect_gives_exit_1_when_a_verdict_differs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    one = ["--from", "shop/cart-7f8b6-pqrst", "--to", "shop/catalog-6d5f4-zabcd", "--port", "9090"]
    assert _trace(capsys, *SHOP, *one, "--expect", "denied")[0] == 0
    code, out, err = _trace(capsys, *SHOP, *one, "--expect", "allowed")
    assert code == 1
    assert out.splitlines()[0].endswith("[EXPECTED ALLOWED]")
    assert err == "offload-compile trace: 1 of 1 verdicts differ from what was expected\n"
    probes = tmp_path / "intent.yaml"
    probes.write_text(
        "- {from: shop/cart-7f8b6-pqrst, to: svc:data/redis, port: 6379, expect: allowed}\n"
        "- {from: shop/catalog-6d5f4-zabcd, to: data/postgres-0, port: 5432}\n"
    )
    # The file's expect: wins over --expect, which applies to the probes without one.
    assert _trace(capsys, *SHOP, "--probes", str(probes), "--expect", "denied")[0] == 0
    assert _trace(capsys, *SHOP, "--probes", str(probes), "--expect", "allowed")[0] == 1
    verdicts = _json(capsys, *SHOP, "--probes", str(probes), "--expect", "denied")
    assert [(v["expect"], v["as_expected"]) for v in verdicts] == [("allowed", True), ("denied", True)]


def test_rejected_meets_denied_and_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    case = GOLDEN / "reject-no-endpoints"
    files = sorted(str(p) for p in case.glob("*.yaml") if p.name != "node.yaml")
    node = ["--node", str(case / "node.yaml")] if (case / "node.yaml").exists() else []
    (v,) = _json(capsys, *files, *node, "--probes", _probes_file(GOLDEN, _reject_probe(case)))
    assert v["verdict"] == "rejected", v["reason"]
    (service,) = _steps(v, "service")
    assert service["action"] == "reject_no_endpoint" and "as kube-proxy does" in service["text"]
    probe = _reject_probe(case)[0]
    args = [*files, *node, "--from", probe[0], "--to", probe[1], "--port", str(probe[2])]
    assert _trace(capsys, *args, "--expect", "rejected")[0] == 0
    assert _trace(capsys, *args, "--expect", "denied")[0] == 0
    assert _trace(capsys, *args, "--expect", "allowed")[0] == 1


def _reject_probe(case: Path) -> list[tuple[str, str, int]]:
    """A client pod of the case and its Service without endpoints."""
    docs = [d for p in sorted(case.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    pod = next(d for d in docs if d.get("kind") == "Pod" and d.get("status", {}).get("podIP"))
    svc = next(d for d in docs if d.get("kind") == "Service")
    ref = lambda d: f"{d['metadata'].get('namespace', 'default')}/{d['metadata']['name']}"  # noqa: E731
    return [(ref(pod), f"svc:{ref(svc)}", svc["spec"]["ports"][0]["port"])]


@pytest.mark.parametrize("bad", ["maybe", "ALLOWED"])
def test_a_bad_expectation_is_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path, bad: str) -> None:
    probes = tmp_path / "p.yaml"
    probes.write_text(f"- {{from: shop/cart-7f8b6-pqrst, to: svc:data/redis, port: 6379, expect: {bad}}}\n")
    code, out, err = _trace(capsys, *SHOP, "--probes", str(probes))
    assert (code, out) == (2, "")
    assert f"[0]: expect: must be one of allowed, denied, rejected, got '{bad}'" in err
    assert _trace(capsys, *SHOP, "--from", "a/b", "--to", "c/d", "--port", "1", "--expect", bad)[0] == 2


# ---- random clusters against the reference -----------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects=clusters(), protocol=st.sampled_from(PROTOCOLS), port=st.integers(1, 36), data=st.data())
def test_named_rules_are_the_ones_the_reference_says_allow(
    tmp_path_factory: Any, objects: list[dict[str, Any]], protocol: str, port: int, data: st.DataObject
) -> None:
    """For every policy stage: not isolated exactly when no policy selects the pod; allowed by
    exactly the API rules the reference finds allowing; denied naming exactly the selecting
    policies, when the reference finds no rule."""
    path = tmp_path_factory.mktemp("cluster") / "cluster.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    result = compile_sources([str(path)])
    sim = interpreter_with(result.schema, result.lowered.bundle)
    tracer = Tracer(result.manifests, result.ir, result.schema, sim, result.lowered)
    ref = Cluster(objects)
    pods = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p for p in ref.pods}
    pairs = [(a, b) for a in pods for b in pods if a != b]
    if not pairs:
        return
    for src, dst in data.draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=4)):
        verdict = tracer.run(Probe(src, dst, port, Protocol(protocol)))
        for hop in verdict.path:
            for step in hop.steps:
                if (
                    step.stage not in ("egress policy", "ingress policy")
                    or step.fields["verdict"] == "not local"
                ):
                    continue
                direction = "Egress" if step.stage == "egress policy" else "Ingress"
                pod = pods[step.fields["pod"]]
                if step.fields["verdict"] == "not isolated":
                    assert ref.selecting(pod, direction) == []
                    continue
                peer_ip = step.fields["peer"]
                other = Endpoint(peer_ip, ref.pod_by_ip(peer_ip))
                allowing = ref.allowing_rules(pod, direction, other, protocol, port)
                way = direction.lower()
                if step.fields["verdict"] == "allowed":
                    named = {(r["name"], r["detail"]) for r in step.fields["rules"]}
                    assert named == {(p, f"{way}[{i}]") for p, i in allowing}, (src, dst, step.text)
                else:
                    assert allowing == [], (src, dst, step.text)
                    selecting = sorted(f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                                       for p in ref.selecting(pod, direction))  # fmt: skip
                    assert step.fields["policies"] == selecting
