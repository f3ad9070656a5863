"""kill -9 of offload-cni before each state-changing step of ADD and of DEL (tests/cni/faulty.py).

After every kill the runtime does what §3 of the CNI specification requires of it ("a delete must
still be executed even if the add fails"; DEL may be repeated): it runs DEL. Whatever step the
kill interrupted, DEL must succeed and leave every pool port back in the host namespace as it was
(name, MTU, up, no marker), no node facts record and no IPAM reservation, and the pool must still
serve a full ADD/DEL cycle. For kills before the port leaves the host namespace, GC must also be
able to recover it on its own (the runtime may never DEL a container it lost track of).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from k8s_offload.compiler.frontend.nodefacts import load_node_facts
from tests.cni.conftest import Node, faulty_prefix, require_reference_plugins
from tests.cni.runtime import Runtime

pytestmark = pytest.mark.root

ARGS = "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web"


def plugin_conf(node: Node, ipam: dict[str, Any] | None) -> dict[str, Any]:
    conf = node.conf(**({"ipam": ipam} if ipam else {}))
    del conf["cniVersion"], conf["name"]
    return conf


def faulty(node: Node, plugins: list[dict[str, Any]], log: Path, version: str = "1.0.0") -> Runtime:
    return node.runtime(
        plugins, version, prefix=faulty_prefix(), extra_env={"FAULT_LOG": str(log), "FAULT_STEP": "0"}
    )


def steps(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def assert_clean(node: Node) -> None:
    for name, _ in node.ports:
        assert node.port_state(name) == (1500, True, None), name
    assert node.pods_in_facts() == []
    if (node.tmp / "ipam").exists():
        assert node.reservations() == {}
    load_node_facts(node.facts)


def kill_then_delete(node: Node, rt: Runtime, command: str, n: int, container_id: str, netns: str) -> None:
    """Run ``command`` killed at step ``n``, then an undisturbed DEL; everything must be back."""
    log = Path(rt.extra_env["FAULT_LOG"])
    log.unlink(missing_ok=True)
    rt.extra_env["FAULT_STEP"] = str(n)
    run = rt.add if command == "ADD" else rt.delete
    out = run(container_id, netns, args=ARGS)
    assert out.code == -9, (n, out)
    killed_at = steps(log)[-1]
    rt.extra_env["FAULT_STEP"] = "0"
    out = rt.delete(container_id, netns, args=ARGS)
    assert out.code == 0, (killed_at, out)
    assert_clean(node)


def assert_pool_works(node: Node, rt: Runtime, pod: str) -> None:
    rt.extra_env["FAULT_STEP"] = "0"
    assert rt.add("ok", f"/run/netns/{pod}", args=ARGS).code == 0
    assert rt.delete("ok", f"/run/netns/{pod}", args=ARGS).code == 0
    assert_clean(node)


@pytest.mark.parametrize("ipam", ["static", "host-local"])
def test_add_killed_at_every_step_is_undone_by_del(node: Node, ipam: str) -> None:
    if ipam == "host-local":
        require_reference_plugins()
    log = node.tmp / "steps.log"
    rt = faulty(node, [plugin_conf(node, node.host_local() if ipam == "host-local" else None)], log)
    if ipam == "static":
        rt.conflist["plugins"][0]["runtimeConfig"] = {"ips": ["10.244.1.5/32", "fd00:10::5/128"]}
    pod = node.pod_ns("pod")
    netns = f"/run/netns/{pod}"
    # Learn the steps of an undisturbed ADD, then undo it.
    assert rt.add("probe", netns, args=ARGS).code == 0
    total = len(steps(log))
    assert rt.delete("probe", netns, args=ARGS).code == 0
    assert total >= 12, steps(log)
    for n in range(1, total + 1):
        kill_then_delete(node, rt, "ADD", n, f"c{n}", netns)
    assert_pool_works(node, rt, pod)


def test_del_killed_at_every_step_is_finished_by_the_next_del(node: Node) -> None:
    require_reference_plugins()
    log = node.tmp / "steps.log"
    rt = faulty(node, [plugin_conf(node, node.host_local())], log)
    pod = node.pod_ns("pod")
    netns = f"/run/netns/{pod}"
    assert rt.add("probe", netns, args=ARGS).code == 0
    log.unlink()
    assert rt.delete("probe", netns, args=ARGS).code == 0
    total = len(steps(log))
    assert total >= 6, steps(log)  # link down, rename, move, MTU, up, unmark, facts, IPAM DEL
    for n in range(1, total + 1):
        assert rt.add(f"c{n}", netns, args=ARGS).code == 0
        kill_then_delete(node, rt, "DEL", n, f"c{n}", netns)
    assert_pool_works(node, rt, pod)


def test_add_killed_before_the_move_is_recovered_by_gc_alone(node: Node) -> None:
    log = node.tmp / "steps.log"
    plugin = plugin_conf(node, None)
    plugin["runtimeConfig"] = {"ips": ["10.244.1.5/32"]}
    rt = faulty(node, [plugin], log, version="1.1.0")
    pod = node.pod_ns("pod")
    netns = f"/run/netns/{pod}"
    assert rt.add("probe", netns, args=ARGS).code == 0
    names = steps(log)
    assert rt.delete("probe", netns, args=ARGS).code == 0
    move = next(i for i, s in enumerate(names, 1) if "net_ns_fd" in s)
    for n in range(1, move + 1):  # up to and including the step that moves the port
        log.unlink()
        rt.extra_env["FAULT_STEP"] = str(n)
        assert rt.add(f"c{n}", netns, args=ARGS).code == -9
        rt.extra_env["FAULT_STEP"] = "0"
        assert [o.code for o in rt.gc([])] == [0]
        assert_clean(node)
    assert_pool_works(node, rt, pod)
