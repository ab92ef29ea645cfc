"""Leaderboard rows (LB.*): LB.AROUND and LB.ADD natively and through the twin, ZREVRANK and
ZADD as baselines, on boards set up before each run.
"""

import os

from cases.common import check_reply, row_adder


# Leaderboards (LB.*), measured in the same run, on the same server, with the same method. Before
# every leaderboard run (after its FLUSHALL, outside the timing) one board per path is written
# with LB_MEMBERS members player:<i> (<i> 12 digits, as redis-benchmark writes __rand_int__),
# LB_TIES members per score: natively (LB.ADD), through the twin (FCALL lb_add) and with plain
# ZADD for the baselines. Reads pick a member with __rand_int__ (-r LB_MEMBERS: always present);
# LB.ADD gives a random member a random score (a new stamp nearly every time).
LB_SECONDS = float(os.environ.get("BENCH_LB_SECONDS", "1.5"))
LB_MEMBERS = 10000
LB_TIES = 10
LB_BOARDS = {"native": "bench:lb:{n}", "FCALL": "bench:lb:{f}", "EVALSHA": "bench:lb:{e}",
             "plain Redis": "bench:lb:{z}"}


def lb_player(i):
    return f"player:{i:012d}"


def build_leaderboard_cases(shas):
    """Rows of the Leaderboards section; every row gets fresh boards before each run."""
    base = dict(section="leaderboards", admit=None, seconds=LB_SECONDS, keyspace=LB_MEMBERS,
                setup=True, setup_fn=setup_leaderboards)
    cases = []
    add = row_adder(cases, base)
    player = "player:__rand_int__"
    add("lb_zrevrank", "plain Redis", "ZREVRANK",
        ["ZREVRANK", LB_BOARDS["plain Redis"], player], "zrevrank", "int")
    add("lb_zadd", "plain Redis", "ZADD",
        ["ZADD", LB_BOARDS["plain Redis"], "__rand_int__", player], "zadd", "int")
    # Reads on the plain board against the sorted-set commands they replace (issue 20).
    add("lb_zrevrange", "plain Redis", "ZREVRANGE 0 9 WITHSCORES",
        ["ZREVRANGE", LB_BOARDS["plain Redis"], "0", "9", "WITHSCORES"], "zrevrange", "flat20")
    add("lb_rank_plain", "native, plain board", "LB.RANK",
        ["LB.RANK", LB_BOARDS["plain Redis"], player], "lb.rank", "rank")
    add("lb_top_plain", "native, plain board", "LB.TOP 10",
        ["LB.TOP", LB_BOARDS["plain Redis"], "10"], "lb.top", "entries")
    # The rank with the write (issue 16): LB.INCR alone and WITHRANK, against ZINCRBY (the
    # seeds add ZREVRANK, a second call, for the rank).
    add("lb_zincrby", "plain Redis", "ZINCRBY",
        ["ZINCRBY", LB_BOARDS["plain Redis"], "1", player], "zincrby", "bulk")
    add("lb_incr", "native", "LB.INCR", ["LB.INCR", LB_BOARDS["native"], "1", player],
        "lb.incr", "bulk")
    add("lb_incr_rank", "native", "LB.INCR ... WITHRANK",
        ["LB.INCR", LB_BOARDS["native"], "1", player, "WITHRANK"], "lb.incr", "rank")
    for fam, name, fn, args, kind in (
            ("lb_around", "LB.AROUND", "lb_around", [player, "10"], "entries"),
            ("lb_add", "LB.ADD", "lb_add", ["__rand_int__", player], "int")):
        for path, argv0, stat in (("native", [name], name.lower()),
                                  ("FCALL", ["FCALL", fn, "1"], "fcall"),
                                  ("EVALSHA", ["EVALSHA", shas[fn], "1"], "evalsha")):
            add(f"{fam}:{path.lower()}", path, name, [*argv0, LB_BOARDS[path], *args], stat, kind)
    return cases


def setup_leaderboards(r):
    """On an empty database: one board of LB_MEMBERS members per path (LB_TIES per score)."""
    def score(i):
        return i // LB_TIES
    cmds = []
    for i in range(LB_MEMBERS):
        cmds.append(("LB.ADD", LB_BOARDS["native"], score(i), lb_player(i)))
        for path in ("FCALL", "EVALSHA"):
            cmds.append(("FCALL", "lb_add", "1", LB_BOARDS[path], score(i), lb_player(i)))
        cmds.append(("ZADD", LB_BOARDS["plain Redis"], score(i), lb_player(i)))
    for c, reply in zip(cmds, r.pipeline(cmds)):
        if reply != 1:
            raise RuntimeError(f"leaderboard setup: {c} -> {reply!r}")
    return {}


def validate_leaderboards(r, cases):
    """Each leaderboard row once on fresh boards, __rand_int__ = 0: LB.AROUND must return 10
    entries, player 0 among them; LB.ADD (and ZADD) of player 0's own score adds nothing."""
    for case in cases:
        r.call("FLUSHALL", "SYNC")
        setup_leaderboards(r)
        argv = [a.replace("__rand_int__", "0" * 12) for a in case["argv"]]
        reply = r.pipeline([argv])[0]
        check_reply(case, reply)
        if case["family"] == "lb_around" and lb_player(0).encode() not in [e[1] for e in reply]:
            raise RuntimeError(f"{case['id']}: {argv} -> {reply!r}")
        if case["family"] in ("lb_add", "lb_zadd") and reply != 0:
            raise RuntimeError(f"{case['id']}: {argv} -> {reply!r}")


# Worst cases (issue 11, "long commands"): one call each, on boards of LB_WORST_MEMBERS members
# built with plain ZADD (1,000 pairs per ZADD), timed by the server itself (SLOWLOG, µs, the
# whole command); not a throughput figure. Rebuilt from scratch before each case.
LB_WORST_MEMBERS = int(os.environ.get("BENCH_LB_WORST_MEMBERS", "1000000"))
LB_WORST_STAMPED = 1000
LB_WORST_BOARD = "bench:lb:{w}"
LB_DENSE_MAX = 10_000  # patterns.lb-dense-max's default (core/src/leaderboard/mod.rs)


def zadd_board(r, n, score):
    """FLUSHALL, then a board of n members player:<i> scored score(i), with plain ZADD."""
    r.call("FLUSHALL", "SYNC")
    cmds = []
    for start in range(0, n, 1000):
        pairs = [x for i in range(start, min(start + 1000, n)) for x in (score(i), lb_player(i))]
        cmds.append(("ZADD", LB_WORST_BOARD, *pairs))
    r.pipeline(cmds, chunk=50)


def server_us(r, argv):
    """The server's own time for one call of argv (SLOWLOG), in µs."""
    before = r.call("CONFIG", "GET", "slowlog-log-slower-than")[1]
    r.call("CONFIG", "SET", "slowlog-log-slower-than", "0")
    r.call("SLOWLOG", "RESET")
    reply = r.pipeline([argv])[0]
    entries = r.call("SLOWLOG", "GET", "16")
    r.call("CONFIG", "SET", "slowlog-log-slower-than", before)
    check = str(argv[0]).encode().lower()
    times = [e[2] for e in entries if e[3] and e[3][0].lower() == check]
    if len(times) != 1 or isinstance(reply, Exception):
        raise RuntimeError(f"worst case {argv}: {reply!r}, slowlog {entries!r}")
    return times[0]


def measure_lb_worst_cases(r, log=print):
    """Rows (what, command, server µs): the first LB.ADD on a big ZADD board, and reads in a
    score shared by LB_WORST_MEMBERS unstamped members and LB_WORST_STAMPED stamped ones."""
    n = LB_WORST_MEMBERS
    rows = []
    log(f"leaderboard worst cases on {n:,} members ...")
    zadd_board(r, n, lambda i: i // LB_TIES)
    rows.append((f"first write to a {n:,}-member ZADD board ({LB_TIES} per score)",
                 "LB.ADD", server_us(r, ("LB.ADD", LB_WORST_BOARD, 7, lb_player(n // 2)))))
    # DENSE without :lb-scores scans the members above: the longest scan the default
    # patterns.lb-dense-max allows.
    at_limit = lb_player(max(n - LB_DENSE_MAX, 0))
    rows.append(("the same board", f"LB.RANK RANKING DENSE, {LB_DENSE_MAX - LB_TIES:,} above",
                 max(server_us(r, ("LB.RANK", LB_WORST_BOARD, at_limit, "RANKING", "DENSE"))
                     for _ in range(3))))
    zadd_board(r, n, lambda i: 0)
    # Stamped members whose names fall between the unstamped ones, all at score 0.
    step = max(n // LB_WORST_STAMPED, 1)
    r.pipeline([("LB.ADD", LB_WORST_BOARD, 0, lb_player(i) + "s")
                for i in range(0, n, step)], chunk=100)
    tie = f"{n:,} members at one score, {LB_WORST_STAMPED:,} of them stamped"
    middle = lb_player(n // 2 + 1)
    for what, argv in (
            ("LB.RANK", ("LB.RANK", LB_WORST_BOARD, middle)),
            ("LB.AROUND 10", ("LB.AROUND", LB_WORST_BOARD, middle, 10)),
            ("LB.TOP 10 OFFSET n/2", ("LB.TOP", LB_WORST_BOARD, 10, "OFFSET", n // 2))):
        rows.append((tie, what, max(server_us(r, argv) for _ in range(3))))
    r.call("FLUSHALL", "SYNC")
    return rows
