"""The prediction cache: bounded, first in first out, never confusing keys, skipped by large batches."""

import time

from scl_delay.prediction_cache import MAX_CACHED_RECORDS, PredictionCache, cache_key


def test_cache_never_holds_more_than_its_size():
    cache = PredictionCache(100)
    for i in range(1000):
        cache.put(cache_key((f"r{i}",)), (i / 1000, False))
        assert len(cache) <= 100
    assert len(cache) == 100


def test_cache_evicts_the_oldest_entry_first():
    cache = PredictionCache(3)
    for name in ("a", "b", "c", "d"):
        cache.put((name,), (0.5, True))
    assert cache.get(("a",)) is None
    assert [cache.get((k,)) for k in ("b", "c", "d")] == [(0.5, True)] * 3


def test_cache_answers_what_was_put_for_that_key_only():
    cache = PredictionCache(10)
    cache.put(cache_key(("2017-01-01 10:00:00", "Sky Airline")), (0.25, False))
    cache.put(cache_key(("2017-01-01 10:00:00", "Grupo LATAM")), (0.75, True))
    assert cache.get(cache_key(("2017-01-01 10:00:00", "Sky Airline"))) == (0.25, False)
    assert cache.get(cache_key(("2017-01-01 10:00:00", "Grupo LATAM"))) == (0.75, True)
    assert cache.get(cache_key(("2017-01-01 10:00:01", "Sky Airline"))) is None


def test_cache_keys_tell_types_apart():
    keys = {cache_key(v) for v in (("1",), (1,), (1.0,), (True,))}
    assert len(keys) == 4
    assert cache_key(([1],)) is None  # unhashable values are never cached
    cache = PredictionCache(10)
    cache.put(None, (0.5, True))
    assert len(cache) == 0 and cache.get(None) is None


def test_cache_of_size_zero_keeps_nothing_and_serves_nothing():
    cache = PredictionCache(0)
    cache.put(("a",), (0.5, True))
    assert len(cache) == 0
    assert not cache.serves(1)


def test_only_requests_up_to_the_batch_limit_use_the_cache():
    cache = PredictionCache(10)
    assert cache.serves(1) and cache.serves(MAX_CACHED_RECORDS)
    assert not cache.serves(MAX_CACHED_RECORDS + 1)


def test_inserting_into_a_full_cache_costs_about_what_filling_it_did():
    """Issue 15: a dict evicted from the front cost 30-100x more per insertion once full, growing with
    uptime. Compares the cache with itself (filling vs full, best of several rounds), so load cancels out;
    a complexity check, not a speed floor."""
    cache = PredictionCache(20_000)

    def round_cost(start: int) -> float:
        began = time.process_time()
        for i in range(start, start + 20_000):
            cache.put((i,), (0.5, True))
        return time.process_time() - began

    filling = round_cost(0)
    full = min(round_cost(20_000 * k) for k in range(1, 8))
    assert len(cache) == 20_000
    assert full < filling * 3 + 0.005, (filling, full)
