"""ECMP packing for Service backend groups: selector limits per target profile, fitting groups
above `max_group_size` over 2^k selector groups, and the Maglev lookup-table option.

Fitting (docs/passes.md, "ECMP packing"): a backend set larger than the profile's per-group limit
is dealt over 2^k groups, k minimal, in backend-id order (backend i goes to group i mod 2^k), so
the group sizes are floor(B/2^k) and ceil(B/2^k). The pipeline picks the group by k bits of a
second flow hash (the split mask of svc_options, p4src/README.md) and the group's selector picks
the member, so a backend's share of new flows is 1/(2^k * size of its group): the largest share
is at most ceil/floor <= 1 + 1/floor(B/2^k) times the smallest. Nothing is dropped.

Maglev (Eisenbud et al., NSDI 2016, section 3.4): per backend set a lookup table of M slots (M a
prime from `MAGLEV_SIZES`, the smallest with M >= MAGLEV_SLOTS_PER_BACKEND * B) filled by the
paper's permutation/populate procedure from each backend's stable identity. Each slot is a selector
member of its own whose action is set_backend4/set_backend6 with the owner's address and port; a
slot's member id depends only on the group and the slot index. When a backend comes or goes, M stays
(unless B crosses M / 10) and only the slots whose owner changed are rewritten (a member MODIFY
keeps its device handle), so flows of the other backends keep their slot, hence their backend. Which
hash index selects which slot (bmv2 picks members[hash % n] in member-handle order) does not matter:
the member set of the group never changes, so the index -> slot mapping is fixed whatever it is.
Cost: M members per distinct backend set instead of one member per backend shared by every set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from k8s_offload.compiler.bundle.schema import Schema

SELECTOR = "svc_selector"
MAX_SPLIT_BITS = 8
"""The split mask (svc_options) is 8 bits: at most 256 groups per frontend."""

MAGLEV_SIZES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071)
"""Primes near powers of two, as Cilium offers for its Maglev table size."""
MAGLEV_SLOTS_PER_BACKEND = 10
"""M >= 10 B: each backend owns floor(M/B) or ceil(M/B) >= 10 slots, a share imbalance <= 1.1.
The paper suggests M >= 100 B for near-minimal disruption; 10 keeps the member cost down."""

# The dpdk profile: the PNA top level (p4src/k8s_dp_pna.p4) declares `ActionSelector(hash, 1024, 16)`.
# p4c-dpdk turns it into a DPDK SWX selector with n_groups_max = the size argument and
# n_members_per_group_max = 2^outputWidth (SplitActionSelectorTable in backends/dpdk); the DPDK
# selector table (rte_swx_table_selector) rejects member ids >= n_members_per_group_max, so that
# is also the number of distinct members, normalises weights by their common divisors, and spreads
# every group over exactly n_members_per_group_max slots (memory: groups x slots x 4 bytes,
# 256 MiB here), giving the first (slots mod n) members one extra slot.
DPDK_SELECTOR_GROUPS = 1024
DPDK_SELECTOR_OUTPUT_WIDTH = 16


@dataclass(frozen=True, slots=True)
class SelectorLimits:
    profile: str
    max_group_size: int
    """Members (sum of weights) per group the compiler may use."""
    max_groups: int | None
    """Selector groups the target holds (None: only the svc_frontend table size bounds them)."""
    max_members: int
    """Distinct members the target holds."""
    weights: bool
    """Member weights other than 1 are accepted."""
    group_slots: int | None
    """dpdk: every group is spread over this many hash slots (None: members[hash % n])."""

    def slot_imbalance(self, n: int) -> float:
        """The target's own share imbalance for a group of n weight-1 members (1.0: none)."""
        if self.group_slots is None or n <= 0 or self.group_slots % n == 0:
            return 1.0
        return (self.group_slots // n + 1) / (self.group_slots // n)


def selector_limits(schema: Schema, profile: str) -> SelectorLimits:
    prof = schema.profile(SELECTOR)
    p4info_max = prof.max_group_size or prof.size
    if profile == "dpdk":
        slots = 1 << DPDK_SELECTOR_OUTPUT_WIDTH
        return SelectorLimits(
            "dpdk", min(p4info_max, slots), DPDK_SELECTOR_GROUPS, min(prof.size, slots), True, slots
        )
    # bmv2 through PI: weights are replicated member handles (p4lang/PI action_prof_mgr.cpp) and
    # the sum of weights is bounded by the group's max_size, else max_group_size.
    return SelectorLimits("bmv2", p4info_max, None, prof.size, True, None)


def split_bits(n: int, per_group: int) -> int | None:
    """Minimal k with n <= per_group * 2^k, or None when k would exceed MAX_SPLIT_BITS."""
    k = 0
    while n > per_group << k:
        k += 1
        if k > MAX_SPLIT_BITS:
            return None
    return k


def deal(members: tuple[int, ...], k: int) -> list[tuple[int, ...]]:
    """Members (in order) dealt round-robin over 2^k parts: sizes floor and ceil of n / 2^k. No
    part is ever empty, since an entry must never point at an empty group (bmv2 refuses it and a
    lookup of one runs no action): with fewer members than parts (only when max_group_size is 1)
    part b holds member b mod n, so some members serve two buckets."""
    parts = 1 << k
    return [members[b::parts] or members[b % len(members) : b % len(members) + 1] for b in range(parts)]


def split_imbalance(n: int, k: int) -> float:
    """Largest over smallest per-backend share of n backends dealt over 2^k hash-picked groups."""
    parts = 1 << k
    if 0 < n < parts:  # members repeated over the buckets: floor or ceil of parts / n buckets each
        return -(-parts // n) / (parts // n)
    lo, hi = n // parts, -(-n // parts)
    return hi / lo if lo else float("inf")


def maglev_size(n: int) -> int | None:
    """The table size for n backends, or None when none is large enough."""
    for m in MAGLEV_SIZES:
        if m >= MAGLEV_SLOTS_PER_BACKEND * n:
            return m
    return None


def _h(seed: bytes, ident: str) -> int:
    return int.from_bytes(hashlib.blake2b(ident.encode(), digest_size=8, key=seed).digest(), "big")


def maglev_table(idents: list[str], m: int) -> list[int]:
    """Owner (index into `idents`) of each of the m slots: Maglev's populate, each backend taking
    its next preferred free slot in turn; preferences are offset + j * skip (mod m) from two
    hashes of the backend's identity, so the table depends only on the identities."""
    n = len(idents)
    if n == 0:
        return []
    offset = [_h(b"maglev-offset", i) % m for i in idents]
    skip = [_h(b"maglev-skip", i) % (m - 1) + 1 for i in idents]
    nxt = [0] * n
    owner = [-1] * m
    filled = 0
    while True:
        for i in range(n):
            c = (offset[i] + nxt[i] * skip[i]) % m
            while owner[c] >= 0:
                nxt[i] += 1
                c = (offset[i] + nxt[i] * skip[i]) % m
            owner[c] = i
            nxt[i] += 1
            filled += 1
            if filled == m:
                return owner
