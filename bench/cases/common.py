"""What every family's rows share: the reply check of a row, validating rows before they are
measured, and a row's command line as shown in the report.
"""


def row_adder(cases, base):
    """A function that appends a row to `cases`: `base`'s fields, then the row's own."""
    def add(cid, path, command, argv, stat, kind, **kw):
        cases.append(dict(base, id=cid, path=path, command=command, family=cid.split(":")[0],
                          argv=argv, stat=stat, kind=kind, **kw))
    return add


def check_reply(case, reply):
    if case["kind"] == "int":
        ok = isinstance(reply, int)
    elif case["kind"] == "bulk":
        ok = isinstance(reply, bytes)
    elif case["kind"] == "ok":
        ok = reply == "OK"
    elif case["kind"] == "cache_hit":
        ok = isinstance(reply, list) and len(reply) == 3 and reply[0] == b"HIT"
    elif case["kind"] == "entries":
        ok = isinstance(reply, list) and len(reply) == 10 and all(
            isinstance(e, list) and len(e) == 3 and isinstance(e[0], int) for e in reply)
    elif case["kind"] == "flat20":
        ok = isinstance(reply, list) and len(reply) == 20 and all(
            isinstance(x, bytes) for x in reply)
    elif case["kind"] == "rank":
        ok = isinstance(reply, list) and len(reply) == 3 and isinstance(reply[0], int)
    elif case["kind"] == "pairs":
        from cases.session import SESSION_FIELDS  # cases.session imports this module
        ok = isinstance(reply, list) and len(reply) == len(SESSION_FIELDS) and all(
            isinstance(x, bytes) for x in reply)
    else:
        ok = isinstance(reply, list) and len(reply) == 5 and all(isinstance(x, int) for x in reply)
    if not ok:
        raise RuntimeError(f"{case['id']}: unexpected reply {reply!r} to {case['argv']}")


def validate(r, cases):
    for case in cases:
        if case.get("section") in ("sessions", "leaderboards", "cache", "locks"):
            continue
        argv = [a.replace("__rand_int__", "check") for a in case["argv"]]
        check_reply(case, r.pipeline([argv])[0])


def shown(case):
    """The command line as redis-benchmark gets it, with the SHA shortened."""
    argv = list(case["argv"])
    if argv[0] == "EVALSHA":
        argv[1] = argv[1][:10] + "…"
    return " ".join(argv)
