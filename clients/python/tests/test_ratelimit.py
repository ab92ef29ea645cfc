from __future__ import annotations

import pytest

from redis_patterns import (
    AllLimits,
    CommandError,
    FixedWindow,
    RateLimit,
    SlidingWindow,
    TokenBucket,
    WrongTypeError,
)

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


async def test_limit_all_admits_and_consumes_every_limit(api: Api) -> None:
    p = api.p
    result = await v(
        p.limit_all(
            [
                TokenBucket("rl:{u1}:tb", 10, 1, 60000, cost=2),
                FixedWindow("rl:{u1}:fw", 3, 60000),
                SlidingWindow("rl:{u1}:sw", 5, 60000, cost=2, exact=True),
            ]
        )
    )
    assert result and result.denied is None
    tb, fw, sw = result.limits
    assert tb == RateLimit(True, 10, 8, -1, 120000)
    assert (fw.allowed, fw.limit, fw.remaining, fw.retry_after_ms) == (True, 3, 2, -1)
    assert 0 < fw.reset_after_ms <= 60000
    assert sw == RateLimit(True, 5, 3, -1, 60000)
    # Each consumed as its own command would have: a peek (COST 0) sees what is left.
    assert (await v(p.token_bucket("rl:{u1}:tb", 10, 1, 60000, cost=0))).remaining == 8
    assert (await v(p.fixed_window("rl:{u1}:fw", 3, 60000, cost=0))).remaining == 2
    assert api.raw.zcard("rl:{u1}:sw") == 2


async def test_limit_all_denied_consumes_nothing(api: Api) -> None:
    p = api.p
    for _ in range(2):
        await v(p.fixed_window("rl:{u2}:fw", 2, 60000))
    await v(p.sliding_window("rl:{u2}:sw", 5, 60000, exact=True))

    def stored() -> object:
        return api.raw.get("rl:{u2}:fw"), api.raw.zrange("rl:{u2}:sw", 0, -1, withscores=True)

    before = stored()
    limits = [
        TokenBucket("rl:{u2}:tb", 10, 1, 60000, cost=4),
        SlidingWindow("rl:{u2}:sw", 5, 60000, cost=2, exact=True),
        FixedWindow("rl:{u2}:fw", 2, 60000),
        FixedWindow("rl:{u2}:fw2", 1, 60000, cost=2),
    ]
    result = await v(p.limit_all(limits))
    assert isinstance(result, AllLimits) and not result
    assert result.denied == 2  # the first that denied: the full window, not the cost over 1
    tb, sw, fw, never = result.limits
    # Those that would have admitted say so, with what would have remained after this cost.
    assert tb == RateLimit(True, 10, 6, -1, 240000)
    assert (sw.allowed, sw.remaining) == (True, 2)
    assert (fw.allowed, fw.remaining) == (False, 0) and 0 < fw.retry_after_ms <= 60000
    assert (never.allowed, never.retry_after_ms) == (False, -1)
    assert api.raw.exists("rl:{u2}:tb", "rl:{u2}:fw2") == 0
    assert stored() == before


async def test_refund_gives_back_never_past_full(api: Api) -> None:
    p = api.p
    await v(p.token_bucket("rl:{u3}:tb", 5, 1, 60000, cost=3))
    await v(p.fixed_window("rl:{u3}:fw", 3, 60000, cost=2))
    for _ in range(3):
        await v(p.sliding_window("rl:{u3}:sw", 4, 60000, exact=True))
    refunded = await v(
        p.refund(
            [
                TokenBucket("rl:{u3}:tb", 5, 1, 60000, cost=1),
                FixedWindow("rl:{u3}:fw", 3, 60000, cost=5),
                SlidingWindow("rl:{u3}:sw", 4, 60000, cost=2, exact=True),
            ]
        )
    )
    assert refunded == [3, 3, 3]
    assert api.raw.zcard("rl:{u3}:sw") == 1  # the two most recent admissions are gone
    assert await v(p.refund([TokenBucket("rl:{u3}:tb", 5, 1, 60000, cost=9)])) == [5]
    assert (await v(p.token_bucket("rl:{u3}:tb", 5, 1, 60000, cost=0))).remaining == 5
    # A refund on a missing key writes nothing.
    assert await v(p.refund([FixedWindow("rl:{u3}:none", 3, 60000)])) == [3]
    assert api.raw.exists("rl:{u3}:none") == 0


async def test_limits_errors_are_the_servers(api: Api) -> None:
    p = api.p
    twice = [FixedWindow("rl:{u4}", 1, 1000), TokenBucket("rl:{u4}", 1, 1, 1000)]
    with pytest.raises(CommandError) as error:
        await v(p.limit_all(twice))
    assert str(error.value) == "ERR a key may appear only once in a call"
    with pytest.raises(CommandError) as error:
        await v(p.refund([TokenBucket("rl:{u4}:tb", 0, 1, 1000)]))
    assert str(error.value) == "ERR capacity must be a positive integer"
    with pytest.raises(CommandError) as error:
        await v(p.limit_all([]))
    assert str(error.value) == "ERR wrong number of arguments for 'rl.all' command"
