"""Token buckets per source MAC and for all sources together, so that neither one chatty or
hostile neighbour nor many of them (or one rotating its source MAC) can make the proxy flood the
link. The clock is passed in by the caller, which keeps this deterministic in tests.
"""

from __future__ import annotations

from collections import OrderedDict


class _Bucket:
    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.last = rate, burst, burst, now

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = now


class RateLimiter:
    """Allow ``rate`` replies per second per key with bursts up to ``burst``, and at most
    ``global_rate`` (bursts of ``global_burst``) over all keys.

    At most ``max_keys`` per-key buckets are kept, the least recently used forgotten first; that
    errs on the side of answering, and the global bucket bounds what such forgetting can cost.
    """

    def __init__(
        self, rate: float, burst: int, global_rate: float, global_burst: int, max_keys: int = 4096
    ) -> None:
        for name, value in (("rate", rate), ("global_rate", global_rate)):
            if not value > 0 or value == float("inf"):  # also refuses NaN
                raise ValueError(f"{name} must be a positive finite number")
        if burst < 1 or global_burst < 1:
            raise ValueError("bursts must be >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._global = _Bucket(global_rate, float(global_burst), 0.0)
        self._global_started = False
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, key: str, now: float) -> str | None:
        """Take one token from ``key``'s bucket and the global one if both have one.

        Returns None when allowed, else which limit refused: ``"source"`` or ``"global"``.
        """
        if not self._global_started:
            self._global.last, self._global_started = now, True
        bucket = self._buckets.pop(key, None) or _Bucket(self.rate, self.burst, now)
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        bucket.refill(now)
        self._global.refill(now)
        if bucket.tokens < 1.0:
            return "source"
        if self._global.tokens < 1.0:
            return "global"
        bucket.tokens -= 1.0
        self._global.tokens -= 1.0
        return None
