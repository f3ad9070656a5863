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

Labels are ints; `MISS` is the table's default (no entry), `DONT_CARE` marks a prefix whose
addresses some other table answers first (the peer-class LPM's hosts, which an exact table holds):
its candidates are every label, so the table may give those addresses whatever saves entries. That
is ORTC's own dynamic program with a leaf allowed any label (a leaf's cost is 0 for each allowed
label and 1 otherwise, so the costs of a subtree still differ by at most one and the candidate
sets stay exact), hence still optimal. Used for the peer-class LPM tables and, with priority =
prefix length, for port ranges on targets that need value/mask keys.

`Ortc` is `compress` with two ways in, one result: without tracking, one batch `compress` of
the whole input; with tracking, the trie kept between updates (`_Trie`), so a changed prefix
re-runs the passes on its path to the root only (a property test compares it with `compress`).
"""

from __future__ import annotations

from collections.abc import Iterable

MISS = -1
DONT_CARE = -2
Prefix = tuple[int, int, int]
"""(value, prefix length, label); value has zeros past the prefix length."""


ANY: frozenset[int] = frozenset((DONT_CARE,))
"""The candidates of a don't-care leaf: every label (only ever compared by identity)."""


def _meet(a: frozenset[int], b: frozenset[int]) -> frozenset[int]:
    """Pass 2 at a node with candidate sets `a` and `b` below it."""
    if a is b or b is ANY:
        return a
    if a is ANY:
        return b
    both = a & b
    return both if both else a | b


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

    def single(lab: int) -> frozenset[int]:
        if lab == DONT_CARE:
            return ANY
        found = singles.get(lab)
        if found is None:
            found = singles[lab] = frozenset((lab,))
        return found

    cand: list[frozenset[int]] = [frozenset()] * n_nodes
    for n in reversed(order):
        lc, rc = left[n], right[n]
        if lc < 0 and rc < 0:
            cand[n] = single(in_force[n])
            continue
        a = cand[lc] if lc >= 0 else single(in_force[n])
        b = cand[rc] if rc >= 0 else single(in_force[n])
        cand[n] = _meet(a, b)
    # Pass 3, top-down with the inherited choice.
    out: list[Prefix] = []
    todo: list[tuple[int, int]] = [(0, MISS)]
    while todo:
        n, inherited = todo.pop()
        cn = cand[n]
        if cn is not ANY and inherited not in cn:
            inherited = _pick(cn)
            out.append((value[n], length[n], inherited))
        lc, rc = left[n], right[n]
        if lc >= 0:
            todo.append((lc, inherited))
            if rc < 0 and in_force[n] not in (inherited, DONT_CARE):
                # The implicit sibling leaf of a one-child node: covered by the node's own label.
                out.append((value[n] | (1 << (width - length[n] - 1)), length[n] + 1, in_force[n]))
        if rc >= 0:
            todo.append((rc, inherited))
            if lc < 0 and in_force[n] not in (inherited, DONT_CARE):
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


class Ortc:
    """`compress` of a changing input: `update` sets (value, prefix length) to a label or removes
    it (None) and returns the output entries that (appeared, disappeared)."""

    def __init__(self, width: int, track: bool = True) -> None:
        self.width = width
        self.trie: _Trie | None = _Trie(width) if track else None
        self.done = False

    def update(self, changes: Iterable[tuple[int, int, int | None]]) -> tuple[set[Prefix], set[Prefix]]:
        if self.trie is not None:
            return self.trie.update(changes)
        assert not self.done, "without tracking the whole input comes in one update"
        self.done = True
        inputs = sorted((v, p, label) for v, p, label in changes if label is not None)
        return set(compress(inputs, self.width)), set()


class _Out:
    """A subtree's entries: those of its root (its own and an implicit sibling leaf's), then its kids'."""

    __slots__ = ("here", "kids")

    def __init__(self, here: tuple[Prefix, ...], kids: tuple[_Out | None, _Out | None]) -> None:
        self.here = here
        self.kids = kids


class _Node:
    __slots__ = ("cand", "epoch", "kids", "label", "length", "out", "parent", "value")

    def __init__(self, value: int, length: int, parent: _Node | None) -> None:
        self.value = value
        self.length = length
        self.parent = parent
        self.kids: list[_Node | None] = [None, None]
        self.label: int | None = None
        self.cand: dict[int, frozenset[int]] = {}
        self.out: dict[tuple[int, int], _Out] = {}
        self.epoch = -1


class _Trie:
    """`compress` kept up to date as input prefixes come, go and change label: the trie of
    `compress` is kept between updates, with each node's results memoized (its candidate labels
    per label in force above it, and its output subtree per (label in force, label inherited from
    the entries above)). A changed prefix clears the memos on its path to the root only, so the
    next emit re-runs the passes on those paths and reuses every untouched subtree's result; the
    output difference is found by walking the old and new results together, skipping shared
    subtrees."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.root = _Node(0, 0, None)
        self.nodes: dict[tuple[int, int], _Node] = {(0, 0): self.root}
        self.output: set[Prefix] = set()
        self._last: _Out | None = None
        self._epoch = 0

    def update(self, changes: Iterable[tuple[int, int, int | None]]) -> tuple[set[Prefix], set[Prefix]]:
        """Set (value, prefix length) to a label, or remove it (None); returns the output entries
        that (appeared, disappeared)."""
        self._epoch += 1
        for value, plen, label in changes:
            node = self.nodes.get((value, plen))
            if label is None:
                if node is not None and node.label is not None:
                    node.label = None
                    self._prune(node)
                continue
            if node is None:
                node = self._insert(value, plen)
            if node.label != label:
                node.label = label
                self._dirty(node)
        new = self._emit(self.root, MISS, MISS)
        added: set[Prefix] = set()
        removed: set[Prefix] = set()
        self._diff(self._last, new, added, removed)
        self._last = new
        both = added & removed
        added -= both
        removed -= both
        self.output -= removed
        self.output |= added
        return added, removed

    # ---- trie ---------------------------------------------------------------------------------

    def _insert(self, value: int, plen: int) -> _Node:
        node = self.root
        for depth in range(plen):
            bit = (value >> (self.width - 1 - depth)) & 1
            nxt = node.kids[bit]
            if nxt is None:
                nxt = _Node(node.value | (bit << (self.width - depth - 1)), depth + 1, node)
                node.kids[bit] = nxt
                self.nodes[(nxt.value, nxt.length)] = nxt
            node = nxt
        return node

    def _dirty(self, node: _Node | None) -> None:
        while node is not None and node.epoch != self._epoch:
            # A node cleared in this update had its whole path to the root cleared with it.
            node.epoch = self._epoch
            node.cand = {}
            node.out = {}
            node = node.parent

    def _prune(self, node: _Node) -> None:
        """Remove nodes left with neither label nor kids, as `compress` never builds them."""
        while node.parent is not None and node.label is None and node.kids == [None, None]:
            parent = node.parent
            parent.kids[0 if parent.kids[0] is node else 1] = None
            del self.nodes[(node.value, node.length)]
            node = parent
        self._dirty(node)

    # ---- passes 2 and 3 -----------------------------------------------------------------------

    def _cand(self, node: _Node, above: int) -> frozenset[int]:
        found = node.cand.get(above)
        if found is not None:
            return found
        own = above if node.label is None else node.label
        k0, k1 = node.kids
        mine = ANY if own == DONT_CARE else frozenset((own,))
        if k0 is None and k1 is None:
            out = mine
        else:
            if k0 is not None and k1 is not None:
                a, b = self._cand(k0, own), self._cand(k1, own)
            else:
                kid = k0 if k0 is not None else k1
                assert kid is not None
                a, b = self._cand(kid, own), mine
            out = _meet(a, b)
        node.cand[above] = out
        return out

    def _emit(self, node: _Node, above: int, inherited: int) -> _Out:
        found = node.out.get((above, inherited))
        if found is not None:
            return found
        own = above if node.label is None else node.label
        cand = self._cand(node, above)
        here: list[Prefix] = []
        chosen = inherited
        if cand is not ANY and chosen not in cand:
            chosen = _pick(cand)
            here.append((node.value, node.length, chosen))
        kids: list[_Out | None] = [None, None]
        for bit in (0, 1):
            kid = node.kids[bit]
            if kid is not None:
                kids[bit] = self._emit(kid, own, chosen)
            elif node.kids[1 - bit] is not None and own not in (chosen, DONT_CARE):
                shift = self.width - node.length - 1
                here.append((node.value | (bit << shift), node.length + 1, own))
        out = _Out(tuple(here), (kids[0], kids[1]))
        node.out[(above, inherited)] = out
        return out

    def _diff(self, old: _Out | None, new: _Out | None, added: set[Prefix], removed: set[Prefix]) -> None:
        if old is new:
            return
        if old is not None:
            removed.update(old.here)
        if new is not None:
            added.update(new.here)
        for bit in (0, 1):
            self._diff(
                old.kids[bit] if old is not None else None,
                new.kids[bit] if new is not None else None,
                added,
                removed,
            )
