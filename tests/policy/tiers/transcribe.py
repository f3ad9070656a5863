"""Regenerate upstream_v1alpha*.yaml's data from a checkout of kubernetes-sigs/network-policy-api.

Not a test: the helper that wrote the transcription, kept so that a new upstream version can be
transcribed the same way and the diff reviewed. It reads conformance/tests/*.go and the base
manifests with `git show` and recognises the few forms the suite uses: GetPod, PokeServer (server
pod's podIP, port or HostNetworkPorts[i], shouldConnect), rule swaps, an action set to Pass, a
priority set, a rule's ports replaced by a named port, a rule prepended to egress (its value is
the one upstream builds, written here), the NetworkPolicy deleted and a Namespace relabelled.
Anything else is printed as UNHANDLED for a human to transcribe. The header comment of each data
file is kept by hand.

Usage: python -m tests.policy.tiers.transcribe REPO REF VERSION OUT
       (REF release-0.1 with VERSION v1alpha1; REF main with VERSION v1alpha2)
"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import yaml

PREFIX = "network-policy-conformance-"
HOST_NETWORK_PORTS = list(range(34345, 34353))  # the suite's default HostNetworkPortRangeStart and 8 ports

TOKEN = re.compile(
    r'(?P<run>t\.Run\("(?P<title>[^"]+)")'
    r'|(?P<getpod>(?P<var>\w+) :?= kubernetes\.GetPod\(t, s\.Client, "(?P<gns>[^"]+)", "(?P<gpod>[^"]+)")'
    r'|(?P<poke>kubernetes\.PokeServer\([^"]*"(?P<cns>[^"]+)", "(?P<cpod>[^"]+)", "(?P<proto>\w+)",\s*'
    r"(?P<svar>\w+)\.Status\.PodIP, int32\((?P<port>[^)]+)\)\)?, s\.TimeoutConfig, (?P<exp>true|false)\))"
    r"|(?P<swap>(?P<tmp>\w+) := mutate\.Spec\.(?P<dir>Ingress|Egress)\[(?P<i>\d)\]\s*"
    r"mutate\.Spec\.(?P=dir)\[(?P=i)\] = mutate\.Spec\.(?P=dir)\[(?P<j>\d)\]\s*"
    r"mutate\.Spec\.(?P=dir)\[(?P=j)\] = (?P=tmp))"
    r"|(?P<setaction>mutate\.Spec\.(?P<adir>Ingress|Egress)\[(?P<ai>\d)\]\.Action = \S+Pass\b)"
    r"|(?P<prio>mutate\.Spec\.Priority = (?P<pv>\d+))"
    r"|(?P<named>(?P<nvar>\w+) := mutate(?:\.DeepCopy\(\))?\.Spec\.(?P<ndir>Ingress|Egress)\[(?P<ni>\d)\]\s*"
    r'\w+ := "(?P<pname>\w+)")'
    r"|(?P<prepend>mutate\.Spec\.Egress = append\(newRule, mutate\.Spec\.Egress\.\.\.\))"
    r"|(?P<delete>s\.Client\.Delete\(ctx, np\))"
    r'|(?P<nslabels>mutateNamespace\.SetLabels\(map\[string\]string\{"(?P<lk>[^"]+)": "(?P<lv>[^"]+)"\}\))'
    r"|(?P<getpol>Get(?:AdminNetworkPolicy|BaselineAdminNetworkPolicy|ClusterNetworkPolicy)"
    r'\(t, s\.Client, "(?P<gname>[^"]+)")'
    r'|(?P<getns>GetNamespace\(t, s\.Client, "(?P<nsname>[^"]+)")'
    r"|(?P<writeback>mutate\.Spec\.(?:Ingress|Egress)\[\d\] = \w+Rule$)"
    r"|(?P<other>mutate\.Spec\.[^\n]*)",
    re.MULTILINE,
)


def git_show(repo: str, ref: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", repo, "show", f"{ref}:{path}"], capture_output=True, text=True, check=True
    ).stdout


def git_ls(repo: str, ref: str, folder: str) -> list[str]:
    out = subprocess.run(
        ["git", "-C", repo, "ls-tree", "--name-only", ref, folder + "/"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def templated(text: str) -> str:
    return re.sub(
        r"\{\{ index \.HostNetworkPorts (\d) \}\}", lambda m: str(HOST_NETWORK_PORTS[int(m[1])]), text
    )


def short(ns: str) -> str:
    assert ns.startswith(PREFIX), ns
    return ns[len(PREFIX) :]


def mutation(g: dict[str, Any], pol: dict[str, Any], objects: list[Any], version: str, ns: str | None) -> Any:
    """The data form of one recognised mutation, or None."""
    if g["swap"]:
        return {"swap": {**pol, "field": g["dir"].lower(), "i": int(g["i"]), "j": int(g["j"])}}
    if g["setaction"]:
        return {"set": {**pol, "path": ["spec", g["adir"].lower(), int(g["ai"]), "action"], "value": "Pass"}}
    if g["prio"]:
        return {"set": {**pol, "path": ["spec", "priority"], "value": int(g["pv"])}}
    if g["named"]:
        field, value = (
            ("ports", [{"namedPort": g["pname"]}])
            if version == "v1alpha1"
            else ("protocols", [{"destinationNamedPort": g["pname"]}])
        )
        return {"set": {**pol, "path": ["spec", g["ndir"].lower(), int(g["ni"]), field], "value": value}}
    if g["prepend"]:
        peers = ["$host_cidr:ravenclaw/luna-lovegood-0", "$host_cidr:hufflepuff/cedric-diggory-0"]
        rule = {
            "name": "allow-egress-to-specific-podIPs",
            "action": "Allow" if version == "v1alpha1" else "Accept",
            "to": [{"networks": peers}],
        }
        return {"insert": {**pol, "path": ["spec", "egress"], "index": 0, "value": rule}}
    if g["delete"]:
        (np,) = [o for o in objects if o["kind"] == "NetworkPolicy"]
        meta = np["metadata"]
        return {"delete": {"kind": "NetworkPolicy", "namespace": meta["namespace"], "name": meta["name"]}}
    if g["nslabels"]:
        return {"namespace_labels": {"name": ns, "labels": {g["lk"]: g["lv"]}}}
    return None


def transcribe(repo: str, ref: str, version: str) -> list[dict[str, Any]]:
    out = []
    for path in sorted(git_ls(repo, ref, "conformance/tests")):
        if path.endswith("main.go"):
            continue
        src = "\n".join(
            line for line in git_show(repo, ref, path).splitlines() if not line.strip().startswith("//")
        )
        for block in re.split(r"\nvar (?=\w+ = suite\.ConformanceTest\{)", src)[1:]:
            name = re.search(r'ShortName:\s*"(\w+)"', block)[1]  # type: ignore[index]
            manifest = re.search(r'Manifests: \[\]string\{"([^"]+)"\}', block)[1]  # type: ignore[index]
            objects = [
                o for o in yaml.safe_load_all(templated(git_show(repo, ref, "conformance/" + manifest))) if o
            ]
            kinds = {o["metadata"]["name"]: o["kind"] for o in objects}
            servers: dict[str, str] = {}
            steps: list[dict[str, Any]] = []
            policy = namespace = None
            for m in TOKEN.finditer(block):
                g = m.groupdict()
                if g["run"]:
                    steps.append({"run": g["title"], "mutations": [], "probes": []})
                elif g["getpod"]:
                    servers[g["var"]] = f"{short(g['gns'])}/{g['gpod']}"
                elif g["getpol"]:
                    policy = g["gname"]
                elif g["getns"]:
                    namespace = g["nsname"]
                elif g["writeback"]:
                    pass  # the named-port rule written back: recognised with its read
                elif g["poke"]:
                    hp = re.fullmatch(r"s\.HostNetworkPorts\[(\d)\]", g["port"])
                    port = HOST_NETWORK_PORTS[int(hp[1])] if hp else int(g["port"])
                    client = f"{short(g['cns'])}/{g['cpod']}"
                    steps[-1]["probes"].append(
                        [client, servers[g["svar"]], g["proto"].upper(), port, g["exp"] == "true"]
                    )
                else:
                    op = mutation(
                        g, {"kind": kinds.get(str(policy)), "name": policy}, objects, version, namespace
                    )
                    if op is None:
                        print("UNHANDLED", name, m[0], file=sys.stderr)
                    elif steps[-1]["probes"]:  # patched again after probing: a new state, same t.Run
                        steps.append({"run": steps[-1]["run"], "mutations": [op], "probes": []})
                    else:
                        steps[-1]["mutations"].append(op)
            for step in steps:
                if not step["mutations"]:
                    del step["mutations"]
            out.append(
                {
                    "test": name,
                    "source": path,
                    "manifests": ["conformance/" + manifest],
                    "objects": objects,
                    "steps": steps,
                }
            )
    return out


def main() -> None:
    repo, ref, version, dest = sys.argv[1:]
    tests = transcribe(repo, ref, version)
    with open(dest, "w", encoding="utf-8") as f:
        yaml.safe_dump({"tests": tests}, f, sort_keys=False, default_flow_style=None, width=110)
    probes = sum(len(s["probes"]) for t in tests for s in t["steps"])
    print(f"{len(tests)} tests, {sum(len(t['steps']) for t in tests)} steps, {probes} probes")


if __name__ == "__main__":
    main()
