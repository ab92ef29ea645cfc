from __future__ import annotations

import pytest

from redis_patterns import CommandError, RateLimit, WrongTypeError

from .conftest import Api, v


async def test_token_bucket(api: Api) -> None:
    p = api.p
    assert await v(p.token_bucket("api:alice", 10, 5, 1000)) == RateLimit(True, 10, 9, -1, 200)
    # A cost that can never fit: denied, nothing consumed, no retry.
    never = await v(p.token_bucket("api:alice", 10, 5, 1000, cost=20))
    assert never == RateLimit(False, 10, 9, -1, never.reset_after_ms)
    assert "Retry-After" not in never.headers()
    # COST 0 peeks: an absent key stays absent.
    assert await v(p.token_bucket("api:bob", 10, 5, 1000, cost=0)) == RateLimit(True, 10, 10, -1, 0)
    assert api.raw.exists("api:bob") == 0


async def test_fixed_window_denies_with_headers(api: Api) -> None:
    p = api.p
    first = await v(p.fixed_window("login:bob", 2, 60000))
    assert (first.allowed, first.limit, first.remaining, first.retry_after_ms) == (True, 2, 1, -1)
    await v(p.fixed_window("login:bob", 2, 60000))
    denied = await v(p.fixed_window("login:bob", 2, 60000))
    assert not denied and denied.remaining == 0 and 0 < denied.retry_after_ms <= 60000
    headers = denied.headers()
    assert headers["RateLimit-Limit"] == "2" and headers["RateLimit-Remaining"] == "0"
    assert int(headers["Retry-After"]) == -(-denied.retry_after_ms // 1000)
    assert int(headers["RateLimit-Reset"]) == -(-denied.reset_after_ms // 1000)


async def test_sliding_window_weighted_and_exact(api: Api) -> None:
    p = api.p
    assert await v(p.sliding_window("search:carol", 100, 60000, cost=3, exact=True)) == RateLimit(
        True, 100, 97, -1, 60000
    )
    assert api.raw.type("search:carol") == "zset"
    weighted = await v(p.sliding_window("search:dan", 5, 60000, cost=5))
    assert (weighted.allowed, weighted.remaining) == (True, 0)
    assert api.raw.type("search:dan") == "string"
    assert not await v(p.sliding_window("search:dan", 5, 60000))


async def test_throttle_in_ms(api: Api) -> None:
    # redis-cell's README example: 0, 16, 15, -1, 2 (seconds).
    assert await v(api.p.throttle("user123", 15, 30, 60, 1)) == RateLimit(True, 16, 15, -1, 2000)
    denied = await v(api.p.throttle("user9", 0, 1, 60))
    assert denied.allowed
    denied = await v(api.p.throttle("user9", 0, 1, 60))
    assert not denied.allowed and denied.retry_after_ms == 60000


async def test_errors_keep_the_server_message(api: Api) -> None:
    with pytest.raises(CommandError) as error:
        await v(api.p.token_bucket("api:alice", 0, 5, 1000))
    assert str(error.value) == "ERR capacity must be a positive integer"
    assert error.value.code == "ERR"
    api.raw.hset("h", "a", 1)
    with pytest.raises(WrongTypeError) as wrong:
        await v(api.p.fixed_window("h", 1, 1000))
    assert str(wrong.value) == "WRONGTYPE Operation against a key holding the wrong kind of value"
