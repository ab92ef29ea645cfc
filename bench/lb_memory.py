#!/usr/bin/env python3
"""Where a tie-break board's bytes go (issue 20): MEMORY USAGE ... SAMPLES 0 of a board and each
of its tie-break keys, against the same members written with plain ZADD.

    PATTERNS_MODULE=path/to/libredis_patterns.so python3 bench/lb_memory.py [TIES ...]

For each TIES (default 10 and 100): 100,000 members `player:<12 digits>`, TIES per score
(member i scored i // TIES), written one LB.ADD per member (pipelined) on a fresh redis-server
with the module, and one ZADD per member to a plain board. Prints a Markdown table: bytes per
key, per member, and the tie-break board's total as a multiple of the plain board.
"""

import sys

from server import Server

MEMBERS = 100_000
BOARD, PLAIN = "mem:{b}", "mem:{p}"
SUFFIXES = ["lb-order", "lb-stamps", "lb-scores", "lb-names"]


def usage(r, key):
    return r.call("MEMORY", "USAGE", key, "SAMPLES", "0") or 0


def measure(ties):
    server = Server()
    r = server.start()
    try:
        cmds = []
        for i in range(MEMBERS):
            member = f"player:{i:012d}"
            cmds.append(("LB.ADD", BOARD, i // ties, member))
            cmds.append(("ZADD", PLAIN, i // ties, member))
        r.pipeline(cmds)
        keys = {"board": BOARD, **{s: f"{BOARD}:{s}" for s in SUFFIXES}}
        sizes = {name: usage(r, key) for name, key in keys.items()}
        return usage(r, PLAIN), sizes
    finally:
        server.cleanup()


def main():
    ties_list = [int(a) for a in sys.argv[1:]] or [10, 100]
    print("| members per score | plain board | tie-break board | " + " | ".join(
        f"`:{s}`" for s in SUFFIXES) + " | total | ratio |")
    print("|---:|---:|---:|" + "---:|" * len(SUFFIXES) + "---:|---:|")
    for ties in ties_list:
        plain, sizes = measure(ties)
        total = sum(sizes.values())
        cells = [f"{sizes[s] / 1e6:.2f} MB" for s in SUFFIXES]
        print(f"| {ties} | {plain / 1e6:.2f} MB ({plain / MEMBERS:.0f} B/member) | "
              f"{sizes['board'] / 1e6:.2f} MB | " + " | ".join(cells) +
              f" | {total / 1e6:.2f} MB ({total / MEMBERS:.0f} B/member) | "
              f"**{total / plain:.2f}x** |")


if __name__ == "__main__":
    main()
