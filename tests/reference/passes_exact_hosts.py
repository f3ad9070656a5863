"""Pass `exact_hosts` (table entries): peer-class networks of 127 bits and more in the 128-bit key
(IPv4 /31 and /32, IPv6 /127 and /128) leave the LPM table for the exact `*_peer_host` table of
the same stage, one entry per address, carrying the class of the longest such network holding
it (an address's longest match in the LPM table it replaces). The program applies the host table
first and the LPM only on a miss (p4src/include/pipeline.p4), so the function is unchanged.
"""

from __future__ import annotations

from k8s_offload.compiler.bundle.model import Exact, Lpm, TableEntry
from tests.reference.passes_lpm_compress import is_class_table

HOST_MIN_LEN = 127
WIDTH = 128


def exact_hosts(entries: list[TableEntry]) -> list[TableEntry]:
    out: list[TableEntry] = []
    best: dict[tuple[str, str, int], tuple[int, TableEntry]] = {}  # (table, field, address) -> longest
    for e in entries:
        if is_class_table(e.table) and not e.is_default and e.match:
            ((field, m),) = e.match
            assert isinstance(m, Lpm)
            if m.prefix_len >= HOST_MIN_LEN:
                for address in range(m.value, m.value + (1 << (WIDTH - m.prefix_len))):
                    key = (e.table, field, address)
                    if key not in best or best[key][0] < m.prefix_len:
                        best[key] = (m.prefix_len, e)
                continue
        out.append(e)
    for (table, field, address), (_, e) in sorted(best.items()):
        host_table = table.removesuffix("_peer_class") + "_peer_host"
        out.append(TableEntry(host_table, ((field, Exact(address)),), e.action, origin=e.origin))
    return out
