"""Rate-limiting rows (RL.*, CL.THROTTLE): natively, via FCALL and EVALSHA, INCR as the ceiling
and a hand-written Lua token bucket.
"""


# id, command as shown, Lua function, throughput arguments, memory arguments.
# Throughput: generous limits, so every request is admitted and writes its state, and keys stay
# alive between requests (the steady state of a limiter in use). The token buckets refill 1 per
# second with a capacity of 10^6: a faster refill (say 10^6 per second) refills a key completely
# between two of its requests (one every ~20 ms here), so it would expire 1 ms after each write
# and the run would measure key creation plus active expiry instead. The fixed window is 10^6
# per 1000 ms (keys expire at each window's end); EXACT uses a realistic 100 per 1000 ms, so the
# log stays small. Memory: hour-scale limits, so the keys outlive the measurement.
COMMANDS = [
    ("tokenbucket", "RL.TOKENBUCKET", "rl_tokenbucket",
     ["1000000", "1", "1000"], ["100", "100", "3600000"]),
    ("fixedwindow", "RL.FIXEDWINDOW", "rl_fixedwindow",
     ["1000000", "1000"], ["100", "86400000"]),
    ("slidingwindow", "RL.SLIDINGWINDOW", "rl_slidingwindow",
     ["1000000", "1000"], ["100", "3600000"]),
    ("slidingwindow_exact", "RL.SLIDINGWINDOW EXACT", "rl_slidingwindow",
     ["100", "1000", "EXACT"], ["100", "3600000", "EXACT"]),
    ("throttle", "CL.THROTTLE", "cl_throttle",
     ["1000000", "1", "1"], ["100", "100", "3600"]),
]
HANDWRITTEN_BENCH_ARGS = ["1000000", "1", "1000"]
HANDWRITTEN_MEMORY_ARGS = ["100", "100", "3600000"]


def build_cases(shas):
    cases = [dict(id="incr", path="INCR", command="INCR", family="ceiling",
                  argv=["INCR", "bench:incr:__rand_int__"], stat="incr", admit=None,
                  kind="int")]
    for cid, name, fn, args, _ in COMMANDS:
        native = name.split()[0]
        exact = "EXACT" in args
        cases.append(dict(id=f"{cid}:native", path="native", command=name, family=cid,
                          argv=[native, f"bench:n:{cid}:__rand_int__", *args],
                          stat=native.lower(), admit="zadd" if exact else None, kind="rl"))
        cases.append(dict(id=f"{cid}:fcall", path="FCALL", command=name, family=cid,
                          argv=["FCALL", fn, "1", f"bench:f:{cid}:__rand_int__", *args],
                          stat="fcall", admit="zadd" if exact else "set", kind="rl"))
        cases.append(dict(id=f"{cid}:evalsha", path="EVALSHA", command=name, family=cid,
                          argv=["EVALSHA", shas[fn], "1", f"bench:e:{cid}:__rand_int__", *args],
                          stat="evalsha", admit="zadd" if exact else "set", kind="rl"))
    cases.append(dict(id="handwritten", path="hand-written Lua (EVALSHA)",
                      command="token bucket (hash)", family="handwritten",
                      argv=["EVALSHA", shas["handwritten"], "1", "bench:h:__rand_int__",
                            *HANDWRITTEN_BENCH_ARGS],
                      stat="evalsha", admit=None, kind="rl"))
    return cases
