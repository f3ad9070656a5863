"""Bounds on what the front end reads, so any input costs bounded memory and time.

Each limit, its value and the reason for it are listed in docs/failure-modes.md; change both together.
Input beyond a limit is bad input (exit status 2) reported with its file, document and field path.
"""

from __future__ import annotations

MAX_SOURCE_BYTES = 128 * 1024 * 1024
"""Bytes read from one source (a file, a FIFO or stdin). Parsed JSON takes up to about 25 times its
size in memory, so this keeps one source under about 3 GiB at worst; the largest benchmark cluster
(100,000 pods, bench/synth.py size M) is a third of it."""

MAX_YAML_NODES = 8_000_000
"""YAML nodes (scalars, mappings, sequences; an alias counts once) built from one source. YAML is
built node by node in Python, so this bounds its time (tens of seconds) and memory (about 1 GiB)
before the byte limit would."""

MAX_DEPTH = 999
"""Nesting of mappings and sequences: the deepest YAML libyaml reads in every style (it refuses a
1000th level of block mappings), and JSON gets the same bound. The deepest field the compiler reads
is about 12 levels down (a List item's NetworkPolicy peer)."""

MAX_ERRORS = 1000
"""Problems recorded in one run; the rest are counted in one last line. Bounds the output and the
memory of reports on inputs where every one of millions of objects is wrong."""

MAX_OBJECTS = 1_000_000
"""Objects (documents and List items) in one run: several times Kubernetes' tested scale (150,000
pods, 10,000 Services per cluster), so only a broken or hostile input reaches it."""

MAX_SHOWN_CHARS = 80
"""Characters of an input value echoed in a message; longer values are cut and their length given."""

# The alias rule of gopkg.in/yaml.v2 (decode.go, allowedAliasRatio), which kubectl and the API server
# use through sigs.k8s.io/yaml: a document may owe up to 99% of its decoded nodes to alias expansion
# while it has at most 400,000 of them, only 10% beyond 4,000,000, and a share falling linearly
# between the two.
ALIAS_RATIO_RANGE_LOW = 400_000
ALIAS_RATIO_RANGE_HIGH = 4_000_000


def allowed_alias_ratio(decoded: int) -> float:
    if decoded <= ALIAS_RATIO_RANGE_LOW:
        return 0.99
    if decoded >= ALIAS_RATIO_RANGE_HIGH:
        return 0.10
    span = ALIAS_RATIO_RANGE_HIGH - ALIAS_RATIO_RANGE_LOW
    return 0.99 - 0.89 * ((decoded - ALIAS_RATIO_RANGE_LOW) / span)


def excessive_aliasing(decoded: int, aliased: int) -> bool:
    """yaml.v2's test, made after each decoded node: more aliased nodes than the ratio allows."""
    return aliased > 100 and decoded > 1000 and aliased / decoded > allowed_alias_ratio(decoded)
