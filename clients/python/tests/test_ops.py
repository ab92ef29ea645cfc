"""The pure logic shared by both APIs: replies, headers, error texts, the twin's arguments."""

from __future__ import annotations

import re

import pytest
from redis.exceptions import NoPermissionError, ResponseError

from redis_patterns import (
    AllLimits,
    CommandError,
    FixedWindow,
    PermissionDeniedError,
    Ranked,
    RateLimit,
    RWLockInfo,
    SlidingWindow,
    TokenBucket,
    WrongTypeError,
    _api,
)
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


def test_new_options_arguments_and_replies() -> None:
    # SESSION.CREATE's MAX comes after the twin's id, before the timeouts.
    twin = next(ops.session_create(Twin(), "s:{u}", 10, 20, {"a": 1}, max_sessions=3))
    assert twin.args[1:] == ("MAX", 3, 10, 20, "a", 1)
    module = next(ops.session_create(Module(), "s:{u}", 10, 20, {}, max_sessions=3))
    assert module.module == ("SESSION.CREATE", "s:{u}", "MAX", 3, 10, 20)
    add = ops.lb_add_ranked(Module(), "b", {"x": 1.5, "y": 2}, "dense", "asc")
    assert next(add).module == (
        "LB.ADD",
        "b",
        "WITHRANK",
        "ASC",
        "RANKING",
        "DENSE",
        1.5,
        "x",
        2,
        "y",
    )
    with pytest.raises(StopIteration) as done:
        add.send([[2, b"1.5", 2], [1, b"2", 2]])
    assert done.value.value == [Ranked(2, "x", 1.5, 2), Ranked(1, "y", 2.0, 2)]
    incr = next(ops.lb_incr_ranked(Module(), "b", "x", 1, "ordinal", "desc"))
    assert incr.module == ("LB.INCR", "b", 1, "x", "WITHRANK", "DESC", "RANKING", "ORDINAL")
    blocking = next(ops.rwlock_acquire(Module(), "l", "o", 1000, "read", 500))
    assert blocking.module == ("RWLOCK.ACQUIRE", "l", "o", 1000, "READ", "WAIT", 500)
    assert blocking.wait_ms == 500
    polled = next(ops.rwlock_acquire(Twin(), "l", "o", 1000, "write", 500))
    assert polled.args == ("o", 1000, "WRITE") and polled.wait_ms is None
    info = ops.rwlock_info(Module(), "l")
    next(info)
    with pytest.raises(StopIteration) as read:
        info.send(
            [
                b"mode",
                b"read",
                b"owner",
                None,
                b"token",
                None,
                b"readers",
                2,
                b"ttl",
                5,
                b"waiters",
                1,
            ]
        )
    assert read.value.value == RWLockInfo("read", None, None, 2, 5, 1)
    with pytest.raises(ValueError):
        next(ops.rwlock_acquire(Module(), "l", "o", 1000, "shared", None))


def test_a_polled_wait_ends_when_its_background_operation_is_stopped() -> None:
    polled = ops.lock_acquire(Twin(), "l", "o", 1000, 0)  # 0: wait without limit
    assert isinstance(next(polled), ops.Call)
    assert isinstance(polled.send(None), ops.Sleep)
    assert isinstance(polled.send(False), ops.Call)  # a pause that ran out: poll again
    assert isinstance(polled.send(None), ops.Sleep)
    with pytest.raises(StopIteration) as stopped:
        polled.send(True)  # the pause ended because the driver stops the operation
    assert stopped.value.value is None


def test_lease_renewal_pauses_renews_and_marks_a_lost_lock() -> None:
    lock = _api.Lock(Module(), "l", 3000, None, "me", True)
    renewals = lock._renewals()
    assert next(renewals) == ops.Sleep(1.0)
    assert renewals.send(False).module == ("LOCK.EXTEND", "l", "me", 3000)
    assert renewals.send(1) == ops.Sleep(1.0)  # renewed: pause again
    renewals.send(False)
    with pytest.raises(StopIteration):
        renewals.send(0)  # no longer held
    assert lock.lost
    stopped = _api.Lock(Module(), "l", 3000, None, "me", True)._renewals()
    next(stopped)
    with pytest.raises(StopIteration):
        stopped.send(True)  # told to stop during its pause


def test_limits_are_blocks_on_the_module_and_keys_then_arguments_on_the_twin() -> None:
    limits = [TokenBucket("a", 10, 5, 1000, cost=2), SlidingWindow("b", 3, 60, exact=True)]
    call = next(ops.limit_all(limits))
    assert call.module == (
        "RL.ALL",
        *("TOKENBUCKET", "a", 10, 5, 1000, "COST", 2),
        *("SLIDINGWINDOW", "b", 3, 60, "COST", 1, "EXACT"),
    )
    assert (call.function, call.keys) == ("rl_all", ("a", "b"))
    assert call.args == (
        "TOKENBUCKET",
        10,
        5,
        1000,
        "COST",
        2,
        "SLIDINGWINDOW",
        3,
        60,
        "COST",
        1,
        "EXACT",
    )
    # The reply: 1-based `denied` on the wire, an index into `limits` here.
    decided = ops.limit_all(limits)
    next(decided)
    with pytest.raises(StopIteration) as done:
        decided.send([0, 2, [1, 10, 8, -1, 400], [0, 3, 0, 5, 60]])
    assert done.value.value == AllLimits(
        False, 1, [RateLimit(True, 10, 8, -1, 400), RateLimit(False, 3, 0, 5, 60)]
    )
    assert next(ops.refund([FixedWindow("c", 1, 10)])).module == (
        "RL.REFUND",
        *("FIXEDWINDOW", "c", 1, 10, "COST", 1),
    )
