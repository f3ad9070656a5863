"""`ortc.compress` kept up to date as input prefixes come, go and change label.

The trie of `compress` is kept between updates, with each node's results memoized: its candidate
labels per label in force above it (pass 2) and its output subtree per (label in force, label
inherited from the entries above) (pass 3). A changed prefix clears the memos on its path to the
root only, so recomputing the root re-runs the passes on those paths and reuses every untouched
subtree's result as is; the output difference is found by walking the old and new results
together and skipping shared subtrees. The output always equals `compress` of the current input
(a property test in tests/compiler/incremental compares them).
"""

from __future__ import annotations

from collections.abc import Iterable

from k8s_offload.compiler.passes.ortc import MISS, Prefix, _pick


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


class IncrementalOrtc:
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
        if k0 is None and k1 is None:
            out = frozenset((own,))
        else:
            if k0 is not None and k1 is not None:
                a, b = self._cand(k0, own), self._cand(k1, own)
            else:
                kid = k0 if k0 is not None else k1
                assert kid is not None
                a, b = self._cand(kid, own), frozenset((own,))
            both = a & b
            out = both if both else a | b
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
        if chosen not in cand:
            chosen = _pick(cand)
            here.append((node.value, node.length, chosen))
        kids: list[_Out | None] = [None, None]
        for bit in (0, 1):
            kid = node.kids[bit]
            if kid is not None:
                kids[bit] = self._emit(kid, own, chosen)
            elif node.kids[1 - bit] is not None and own != chosen:
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
