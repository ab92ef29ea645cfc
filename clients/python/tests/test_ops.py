"""The pure logic shared by both APIs: replies, headers, error texts, the twin's arguments."""

from __future__ import annotations

import re

import pytest
from redis.exceptions import NoPermissionError, ResponseError

from redis_patterns import CommandError, PermissionDeniedError, RateLimit, WrongTypeError
from redis_patterns import _ops as ops
from redis_patterns._errors import from_response


def test_headers_round_up_and_retry_only_when_it_can_succeed() -> None:
    allowed = RateLimit(True, 10, 9, -1, 1001)
    assert allowed.headers() == {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "9",
        "RateLimit-Reset": "2",
    }
    assert RateLimit(False, 10, 0, 1, 0).headers()["Retry-After"] == "1"
    assert "Retry-After" not in RateLimit(False, 10, 10, -1, 0).headers()
    assert ops.throttle_limit([1, 16, 0, 3, 4]) == RateLimit(False, 16, 0, 3000, 4000)


def test_error_texts_are_the_servers() -> None:
    # redis-py strips "ERR "; an upper-case first word is still part of the message.
    assert str(from_response(ResponseError("BETA must be a number"))) == "ERR BETA must be a number"
    wrong = from_response(ResponseError("WRONGTYPE Operation against a key"))
    assert isinstance(wrong, WrongTypeError) and wrong.code == "WRONGTYPE"
    denied = from_response(NoPermissionError("this user has no permissions"))
    assert isinstance(denied, PermissionDeniedError)
    assert str(denied) == "NOPERM this user has no permissions"
    crossslot = from_response(ResponseError("CROSSSLOT Keys in request don't hash"))
    assert type(crossslot) is CommandError and crossslot.code == "CROSSSLOT"


def test_module_list_and_function_list_replies() -> None:
    assert ops.module_loaded([{b"name": b"patterns", b"ver": 1}])
    assert ops.module_loaded([["name", "patterns", "ver", 1]])
    assert not ops.module_loaded([{"name": "search"}])
    assert ops.library_code([[b"library_name", b"patterns", b"library_code", b"x"]]) == "x"
    assert ops.library_code([{"library_name": "other", "library_code": "y"}]) is None


class Twin(ops.Context):
    twin = True


class Module(ops.Context):
    twin = False


def test_twin_calls_take_ids_leases_draws_and_tags_as_keys() -> None:
    call = next(ops.session_create(Twin(), "sessions:{u}", 10, 20, {"a": 1}))
    assert (call.function, call.keys) == ("session_create", ("sessions:{u}",))
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", call.args[0]) and call.args[1:] == (10, 20, "a", 1)
    get = ops.cache_get_call(Twin(), "k", 1.0, None)
    draw, lease = get.args[0], get.args[1]
    assert isinstance(draw, int) and 1 <= draw <= 2**53 and len(str(lease)) == 22
    assert get.args[2:] == ("BETA", 1.0)
    store = ops.cache_store(Module(), "CACHE.SET", "k", (), "v", 100, 0, 0, ["t1", "t2"])
    assert store.module == ("CACHE.SET", "k", "v", 100, "DELTA", 0, "GRACE", 0, "TAGS", "t1", "t2")
    assert (store.keys, store.args) == (("k", "t1", "t2"), ("v", 100, "DELTA", 0, "GRACE", 0))


def test_twin_waits_are_polled_and_module_waits_block() -> None:
    blocking = next(ops.lock_acquire(Module(), "l", "o", 1000, 500))
    assert blocking.module[-2:] == ("WAIT", 500) and blocking.wait_ms == 500
    polled = ops.lock_acquire(Twin(), "l", "o", 1000, 500)
    first = next(polled)
    assert "WAIT" not in first.args and first.wait_ms is None
    assert isinstance(polled.send(None), ops.Sleep)  # not granted: back off, then retry
    assert isinstance(polled.send(None), ops.Call)
    with pytest.raises(StopIteration) as granted:
        polled.send(7)
    assert granted.value.value == 7
