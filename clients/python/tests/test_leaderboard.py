from __future__ import annotations

import pytest

from redis_patterns import CommandError, Entry, Page, Ranked

from .conftest import Api, v


async def test_board_as_in_the_readme(api: Api) -> None:
    lb = api.p.leaderboard("game:{s1}")
    assert await v(lb.add({"alice": 300, "bob": 250, "carol": 300, "dave": 120})) == 4
    assert await v(lb.incr("bob", 50)) == 300.0
    assert await v(lb.top(4, ranking="competition")) == [
        Entry(1, "alice", 300.0),
        Entry(1, "carol", 300.0),
        Entry(1, "bob", 300.0),
        Entry(4, "dave", 120.0),
    ]
    assert await v(lb.rank("bob")) == Entry(3, "bob", 300.0)
    assert await v(lb.around("bob", 3, ranking="dense")) == [
        Entry(1, "carol", 300.0),
        Entry(1, "bob", 300.0),
        Entry(2, "dave", 120.0),
    ]
    assert await v(lb.page(2, 3)) == Page(2, [Entry(4, "dave", 120.0)])
    assert await v(lb.percentile("bob")) == 25.0


async def test_board_orders_offsets_and_absent_members(api: Api) -> None:
    lb = api.p.leaderboard("weekly")
    await v(lb.add({"a": 1.5, "b": 2.5, "c": float("inf")}))
    assert await v(lb.top(2, offset=1)) == [Entry(2, "b", 2.5), Entry(3, "a", 1.5)]
    assert await v(lb.top(1, order="asc")) == [Entry(1, "a", 1.5)]
    assert await v(lb.rank("c")) == Entry(1, "c", float("inf"))
    assert await v(lb.rank("zed")) is None
    assert await v(lb.around("zed", 3)) is None
    assert await v(lb.percentile("zed")) is None
    assert await v(lb.percentile("a", order="asc")) == pytest.approx(200 / 3)
    assert await v(lb.page(5, 2)) == Page(2, [])
    assert await v(lb.remove("a", "zed")) == 1
    assert await v(lb.top(5)) == [Entry(1, "c", float("inf")), Entry(2, "b", 2.5)]
    with pytest.raises(CommandError, match="^ERR count must be a positive integer$"):
        await v(lb.top(0))


async def test_board_writes_with_rank(api: Api) -> None:
    lb = api.p.leaderboard("game:{s2}")
    assert await v(lb.add_with_rank({"alice": 300, "bob": 250}, ranking="competition")) == [
        Ranked(1, "alice", 300.0, 2),
        Ranked(2, "bob", 250.0, 2),
    ]
    assert await v(lb.add_with_rank({"carol": 300, "bob": 100}, order="asc")) == [
        Ranked(3, "carol", 300.0, 3),
        Ranked(1, "bob", 100.0, 3),
    ]
    assert await v(lb.incr_with_rank("dave", 300, ranking="competition")) == Ranked(
        1, "dave", 300.0, 4
    )
    assert await v(lb.incr_with_rank("bob", 500)) == Ranked(1, "bob", 600.0, 4)
    assert await v(lb.incr_with_rank("bob", -500, ranking="dense")) == Ranked(2, "bob", 100.0, 4)
