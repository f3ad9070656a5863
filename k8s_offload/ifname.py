"""Linux network interface names, as the kernel's dev_valid_name() accepts them."""

from __future__ import annotations

IFNAMSIZ = 16
# Bytes the kernel refuses: '/', ':' and what its isspace() calls space (which includes 0xa0, a
# byte that occurs inside many UTF-8 encoded letters), and NUL.
_BAD_BYTES = frozenset(b"/: \t\n\v\f\r\xa0\0")


def valid_ifname(name: str) -> bool:
    """1..15 bytes of UTF-8, not ``.`` or ``..``, without ``/``, ``:`` or whitespace."""
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from undecodable environment or argv bytes
        return False
    return 0 < len(raw) < IFNAMSIZ and name not in (".", "..") and not _BAD_BYTES.intersection(raw)
