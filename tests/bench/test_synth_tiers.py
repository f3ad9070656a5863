"""bench/synth.py's tier sizes: the base size's cluster unchanged, plus valid tier policies."""

from __future__ import annotations

import ipaddress

from bench.synth import SIZES, cluster


def test_tier_size_is_its_base_plus_tier_policies() -> None:
    base, tiered = cluster(SIZES["XS"], 1), cluster(SIZES["XST"], 1)
    assert {k: v for k, v in tiered.items() if k not in ("tiers", "nodes")} == base
    tiers = tiered["tiers"]
    admin = [p for p in tiers if p["spec"]["tier"] == "Admin"]
    baseline = [p for p in tiers if p["spec"]["tier"] == "Baseline"]
    assert (len(admin), len(baseline)) == (SIZES["XST"].admin_policies, SIZES["XST"].baseline_policies)
    for group in (admin, baseline):
        prios = [p["spec"]["priority"] for p in group]
        assert len(set(prios)) == len(prios) and all(0 <= n <= 1000 for n in prios)
    assert cluster(SIZES["XST"], 1) == tiered  # seeded: the same objects every time
    nodes = {n["metadata"]["name"] for n in tiered["nodes"]}
    assert {p["spec"]["nodeName"] for p in tiered["pods"]} <= nodes


def test_tier_policies_follow_the_crd() -> None:
    """Actions per tier, at most 25 rules per direction, and no destinationNamedPort in a rule
    with networks or nodes peers (the v1alpha2 CRD's validation rule); Node addresses are IPs."""
    m = cluster(SIZES["MT"], 1)
    addresses = [a["address"] for n in m["nodes"] for a in n["status"]["addresses"]]
    assert len({ipaddress.ip_address(a) for a in addresses}) == len(addresses) == len(m["nodes"])
    for pol in m["tiers"]:
        spec = pol["spec"]
        allowed = {"Accept", "Deny", "Pass"} if spec["tier"] == "Admin" else {"Accept", "Deny"}
        for field, side in (("ingress", "from"), ("egress", "to")):
            rules = spec.get(field, [])
            assert len(rules) <= 25
            for rule in rules:
                assert rule["action"] in allowed and rule[side]
                if any(k in ("networks", "nodes") for p in rule[side] for k in p):
                    assert not any("destinationNamedPort" in p for p in rule.get("protocols", []))
                if field == "ingress":
                    assert all(k in ("namespaces", "pods") for p in rule[side] for k in p)
