"""A bounded per-worker memory of predictions, keyed by a record's model inputs as sent.

Eviction is first in, first out, in constant time (``OrderedDict.popitem(last=False)``). A plain ``dict``
evicted by ``del d[next(iter(d))]`` was measured at 15-48 µs per insertion once full, growing with uptime
(the deleted slots at the front are walked again on every call until the dict is rebuilt); the
``OrderedDict`` stays at 0.2-0.3 µs at any age (measured in the README's serving performance section).

Only requests of at most ``MAX_CACHED_RECORDS`` records use the cache: a batch of new records would
pay for keys and insertions it never reads back, and per record the model is cheapest in batches.
"""

from __future__ import annotations

from collections import OrderedDict

Hit = tuple  # (probability, decision, the unknown fields flagged in the answer)
# Requests with more records skip the cache. Measured in-process (README, "Benchmarks"): keying,
# looking up and inserting records that all miss costs 2.6% of the model path for 1 record, 3.7% for 4,
# 5.1% for 8 and 6-8% from 16 records on; over HTTP the share is smaller still.
MAX_CACHED_RECORDS = 4


def cache_key(values: tuple) -> tuple | None:
    """A hashable cache key that tells ``1`` from ``"1"``, ``True`` and ``1.0``; None when unhashable."""
    for v in values:
        if type(v) is not str:
            break
    else:
        return values
    try:
        key = tuple(v if type(v) is str else (type(v).__name__, v) for v in values)
        hash(key)
    except TypeError:
        return None
    return key


class PredictionCache:
    """FIFO of at most ``max_entries`` (probability, decision) pairs; ``max_entries=0`` keeps nothing."""

    def __init__(self, max_entries: int, max_records: int = MAX_CACHED_RECORDS):
        self.max_entries, self.max_records = max_entries, max_records
        self.entries: OrderedDict[tuple, Hit] = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def serves(self, records: int) -> bool:
        """Whether a request of ``records`` records goes through the cache at all."""
        return self.max_entries > 0 and records <= self.max_records

    def get(self, key: tuple | None) -> Hit | None:
        return self.entries.get(key) if key is not None else None

    def put(self, key: tuple | None, hit: Hit) -> None:
        if key is None or self.max_entries <= 0:
            return
        entries = self.entries
        while len(entries) >= self.max_entries:
            try:
                entries.popitem(last=False)  # the oldest entry, in constant time
            except KeyError:  # another thread emptied it first
                break
        entries[key] = hit
