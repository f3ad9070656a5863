"""Per-source token buckets, so one chatty or hostile neighbour cannot make the proxy flood the link.

The clock is passed in by the caller, which keeps this deterministic in tests.
"""

from __future__ import annotations

from collections import OrderedDict


class RateLimiter:
    """Allow ``rate`` replies per second per key with bursts up to ``burst``.

    At most ``max_keys`` buckets are kept; the least recently used is forgotten first, which only
    ever errs on the side of answering.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = 4096) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, time)

    def allow(self, key: str, now: float) -> bool:
        """Take one token from ``key``'s bucket if it has one."""
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed
