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
