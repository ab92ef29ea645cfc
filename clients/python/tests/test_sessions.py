from __future__ import annotations

import re

import pytest

from redis_patterns import CommandError

from .conftest import Api, v

INDEX = "sessions:{user:42}"


async def test_session_lifecycle(api: Api) -> None:
    s = api.p.sessions
    key = await v(s.create(INDEX, 1800000, 86400000, {"user": 42, "role": "admin"}))
    assert re.fullmatch(r"sessions:\{user:42\}:[A-Za-z0-9_-]{22}", key)
    assert await v(s.get(key)) == {"user": "42", "role": "admin"}
    assert await v(s.set(key, {"theme": "dark"})) is True
    assert await v(s.get(key)) == {"user": "42", "role": "admin", "theme": "dark"}
    assert await v(s.count(INDEX)) == 1
    rotated = await v(s.rotate(key))
    assert rotated != key and rotated.startswith(INDEX + ":")
    assert await v(s.get(key)) is None
    assert await v(s.set(key, {"a": 1})) is False
    assert await v(s.rotate(key)) is None
    assert await v(s.list(INDEX)) == [rotated]
    other = await v(s.create(INDEX, 60000, 60000, {}))
    assert await v(s.list(INDEX)) == [other, rotated]  # soonest to expire first
    assert await v(s.destroy(other)) is True
    assert await v(s.destroy(other)) is False
    await v(s.create(INDEX, 60000, 120000, {"x": "y"}))
    assert await v(s.destroy_all(INDEX)) == 2
    assert await v(s.count(INDEX)) == 0
    assert await v(s.list(INDEX)) == []


async def test_session_errors(api: Api) -> None:
    s = api.p.sessions
    with pytest.raises(CommandError, match="^ERR field names starting with __ are reserved$"):
        await v(s.create(INDEX, 1000, 2000, {"__x": 1}))
    with pytest.raises(CommandError, match="^ERR absolute_ms must be at least idle_ms$"):
        await v(s.create(INDEX, 2000, 1000, {}))
    assert api.raw.exists(INDEX) == 0


async def test_session_max_sessions(api: Api) -> None:
    s = api.p.sessions
    first = await v(s.create(INDEX, 60000, 60000, {"device": "a"}, max_sessions=2))
    second = await v(s.create(INDEX, 120000, 120000, {"device": "b"}, max_sessions=2))
    third = await v(s.create(INDEX, 180000, 180000, {"device": "c"}, max_sessions=2))
    assert await v(s.count(INDEX)) == 2
    assert await v(s.get(first)) is None  # the soonest to expire went
    assert set(await v(s.list(INDEX))) == {second, third}
    with pytest.raises(CommandError, match="^ERR MAX must be a positive integer$"):
        await v(s.create(INDEX, 1000, 2000, {}, max_sessions=0))
