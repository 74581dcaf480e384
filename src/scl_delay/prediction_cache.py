"""A bounded per-worker memory of predictions, keyed by a record's model inputs as sent."""

from __future__ import annotations

Hit = tuple[float, bool]


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

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self.entries: dict[tuple, Hit] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: tuple | None) -> Hit | None:
        return self.entries.get(key) if key is not None else None

    def put(self, key: tuple | None, hit: Hit) -> None:
        if key is None:
            return
        entries = self.entries
        if len(entries) >= self.max_entries:
            try:
                del entries[next(iter(entries))]  # the oldest entry (dicts keep insertion order)
            except (RuntimeError, KeyError, StopIteration):  # another thread got there first
                pass
        entries[key] = hit
