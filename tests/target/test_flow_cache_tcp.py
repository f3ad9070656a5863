"""TCP-aware flow-cache ageing (p4src/README.md, "State keeping").

Without it a closed connection holds its two slots for the whole TCP idle timeout (about 2 h), so
a busy node fills its cache with dead flows and new load-balanced flows can no longer commit
their reply slot. A FIN or RST ages the slot it hits to CT_TIMEOUT_CLOSING; a pure SYN reusing a
live tuple is a new connection, balanced afresh.
"""

from __future__ import annotations

from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from k8s_offload.target.interpreter import Interpreter

from .installer import Installer
from .test_packets import T0, VIP4, ip4, mapped, program, selector_index, send, sim, tcp4  # noqa: F401

UNIT = 1 << 20  # the flow cache's time unit in microseconds
CLIENT_PORT = 43210


def _backend(out_data: bytes) -> str:
    return str(Ether(out_data)[IP].dst)


def test_syn_reusing_a_live_tuple_is_balanced_again(sim: Interpreter) -> None:  # noqa: F811 (the fixture)
    first = send(sim, 1, tcp4(1, VIP4, CLIENT_PORT, 80), T0)
    chosen = selector_index(
        int(0xFFFF << 32 | int.from_bytes(bytes(map(int, ip4(1).split("."))), "big")), CLIENT_PORT, 6, 3
    )
    assert _backend(first.data) == ip4((2, 3, 4)[chosen])
    # Only one other backend remains; a mid-flow ACK still goes to the pinned one...
    others = [m for i, m in enumerate((1, 2, 3)) if i != chosen]
    Installer(sim).group("svc_selector", 100, others[:1], kind="MODIFY")
    ack = send(sim, 1, tcp4(1, VIP4, CLIENT_PORT, 80, flags="A"), T0 + UNIT)
    assert _backend(ack.data) == ip4((2, 3, 4)[chosen])
    # ...but a new SYN on the same tuple is a new connection and follows the group.
    again = send(sim, 1, tcp4(1, VIP4, CLIENT_PORT, 80), T0 + 2 * UNIT)
    assert _backend(again.data) == ip4((2, 3, 4)[others[0] - 1])
    assert again.trace.table("svc_frontend") is not None


def test_fin_frees_the_slot_after_the_closing_timeout(sim: Interpreter) -> None:  # noqa: F811 (the fixture)
    syn = send(sim, 1, tcp4(1, VIP4, CLIENT_PORT, 80), T0)
    backend = _backend(syn.data)
    send(sim, 1, tcp4(1, VIP4, CLIENT_PORT, 80, flags="FA"), T0 + UNIT)
    # Within CT_TIMEOUT_CLOSING (10 units) the slot still pins the flow...
    late_ack = send(sim, 1, tcp4(1, VIP4, CLIENT_PORT, 80, flags="A"), T0 + 5 * UNIT)
    assert late_ack.trace.table("svc_frontend") is None and _backend(late_ack.data) == backend
    # ...after it, the same tuple is a new flow again (the slot is free), long before 2 hours.
    after = send(sim, 1, tcp4(1, VIP4, CLIENT_PORT, 80, flags="A"), T0 + 20 * UNIT)
    assert after.trace.table("svc_frontend") is not None


def test_without_fin_the_slot_lives_for_the_tcp_timeout(sim: Interpreter) -> None:  # noqa: F811 (the fixture)
    send(sim, 1, tcp4(1, VIP4, CLIENT_PORT, 80), T0)
    later = send(sim, 1, tcp4(1, VIP4, CLIENT_PORT, 80, flags="A"), T0 + 3600 * UNIT)
    assert later.trace.table("svc_frontend") is None  # still established after an idle hour
