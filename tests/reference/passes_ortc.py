"""The fewest longest-prefix-match entries that compute a given address -> label function.

ORTC (Draves, King, Venkatachary, Zill, "Constructing Optimal IP Routing Tables", INFOCOM 1999),
written from the paper's description: (1) complete the binary trie of the input prefixes so every
node has zero or two children, each added leaf carrying the label that was in force there; (2)
bottom-up, a node's candidate labels are A∩B of its children's if that is not empty, else A∪B;
(3) top-down, a node needs an entry only when the label inherited from above is not a candidate.
The result is optimal in entry count for LPM semantics, which folds CIDR aggregation (siblings
with one label become their parent), `except` holes (a /16 and the /24 cut from it instead of
the eight prefixes left by subtraction) and redundancy (children with the parent's label) into
one step. The trie is kept implicit for one-child nodes' missing siblings.

Labels are ints; `MISS` is the table's default (no entry). Used for the peer-class LPM tables and,
with priority = prefix length, for port ranges on targets that need value/mask keys.

`DONT_CARE` (added with the `exact_hosts` pass) labels prefixes another table answers first: a leaf
that may take any label, i.e. the universal candidate set (None below) in the paper's dynamic
program, where it is the identity of the intersection step; no entry is ever made for it.
"""

from __future__ import annotations

from collections.abc import Iterable

MISS = -1
DONT_CARE = -2
Prefix = tuple[int, int, int]
"""(value, prefix length, label); value has zeros past the prefix length."""


def _pick(candidates: frozenset[int]) -> int:
    """Deterministic choice; MISS first, so no entry is spent on the default."""
    return MISS if MISS in candidates else min(candidates)


def compress(entries: Iterable[Prefix], width: int) -> list[Prefix]:
    """Entries with LPM semantics in, an equivalent minimal list out (sorted by value, length).

    Two input entries with the same prefix are an error (the table could not hold both)."""
    # Trie as parallel lists; node 0 is the root (length 0, value 0).
    left: list[int] = [-1]
    right: list[int] = [-1]
    label: list[int | None] = [None]
    value: list[int] = [0]
    length: list[int] = [0]
    full = (1 << width) - 1
    # The walk resumes where the previous entry's path leaves this one's: entries come mostly in
    # address order and share most of their 128 bits, so each walks only its own few levels
    # (the same nodes, created in the same order, as walking from the root every time).
    path = [0]  # path[d]: the node at depth d on the previous entry's path
    prev_val = prev_len = 0
    for val, plen, lab in entries:
        common = min(plen, prev_len, width - (val ^ prev_val).bit_length())
        del path[common + 1 :]
        node = path[common]
        for depth in range(common, plen):
            side = right if (val >> (width - 1 - depth)) & 1 else left
            nxt = side[node]
            if nxt < 0:
                nxt = side[node] = len(left)
                left.append(-1)
                right.append(-1)
                label.append(None)
                value.append(val & ~((1 << (width - depth - 1)) - 1) & full)
                length.append(depth + 1)
            node = nxt
            path.append(node)
        prev_val, prev_len = val, plen
        if label[node] is not None:
            raise ValueError(f"two entries for prefix {val:#x}/{plen}")
        label[node] = lab
    # Pre-order with the labels in force (pass 1), then candidates bottom-up (pass 2).
    n_nodes = len(left)
    order: list[int] = []
    in_force = [MISS] * n_nodes
    stack = [0]
    while stack:
        n = stack.pop()
        order.append(n)
        own = label[n]
        force = in_force[n] if own is None else own
        in_force[n] = force
        c = left[n]
        if c >= 0:
            in_force[c] = force
            stack.append(c)
        c = right[n]
        if c >= 0:
            in_force[c] = force
            stack.append(c)
    singles: dict[int, frozenset[int]] = {}  # one object per label: equal children are `is`

    def single(lab: int) -> frozenset[int] | None:
        if lab == DONT_CARE:
            return None  # every label
        found = singles.get(lab)
        if found is None:
            found = singles[lab] = frozenset((lab,))
        return found

    cand: list[frozenset[int] | None] = [frozenset()] * n_nodes
    for n in reversed(order):
        lc, rc = left[n], right[n]
        if lc < 0 and rc < 0:
            cand[n] = single(in_force[n])
            continue
        a = cand[lc] if lc >= 0 else single(in_force[n])
        b = cand[rc] if rc >= 0 else single(in_force[n])
        if a is None or b is None or a is b:
            cand[n] = b if a is None else a
            continue
        both = a & b
        cand[n] = both if both else a | b
    # Pass 3, top-down with the inherited choice.
    out: list[Prefix] = []
    todo: list[tuple[int, int]] = [(0, MISS)]
    while todo:
        n, inherited = todo.pop()
        cn = cand[n]
        if cn is not None and inherited not in cn:
            inherited = _pick(cn)
            out.append((value[n], length[n], inherited))
        lc, rc = left[n], right[n]
        if lc >= 0:
            todo.append((lc, inherited))
            if rc < 0 and in_force[n] != inherited and in_force[n] != DONT_CARE:
                # The implicit sibling leaf of a one-child node: covered by the node's own label.
                out.append((value[n] | (1 << (width - length[n] - 1)), length[n] + 1, in_force[n]))
        if rc >= 0:
            todo.append((rc, inherited))
            if lc < 0 and in_force[n] != inherited and in_force[n] != DONT_CARE:
                out.append((value[n], length[n] + 1, in_force[n]))
    out.sort(key=lambda e: (e[0], e[1]))
    return out


def lookup(entries: Iterable[Prefix], width: int, address: int) -> int:
    """The label LPM gives `address` (MISS when nothing matches): the reference for tests."""
    best = (-1, MISS)
    for val, plen, lab in entries:
        if address >> (width - plen) == val >> (width - plen) if plen else True:
            best = max(best, (plen, lab))
    return best[1]


def blocks(low: int, high: int, width: int) -> list[tuple[int, int]]:
    """The fewest aligned blocks (value, prefix length) covering [low, high]: what one
    value/mask entry each can express."""
    out: list[tuple[int, int]] = []
    while low <= high:
        size = (low & -low) if low else 1 << width
        while size > high - low + 1:
            size >>= 1
        out.append((low, width - (size.bit_length() - 1)))
        low += size
    return out
