"""Where the bench finds things and how long it measures: paths, durations, sizes and targets
shared by every family (BENCH_* environment variables, see run.py).
"""

import os
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
DIST = ROOT / "dist"
MODULE = Path(os.environ.get("PATTERNS_MODULE") or ROOT / "target/release/libredis_patterns.so")
HANDWRITTEN = BENCH_DIR / "handwritten_tokenbucket.lua"
OUT = Path(os.environ.get("BENCH_OUT") or ROOT / "BENCHMARKS.md")
CHART = BENCH_DIR / "throughput.png"
PEER_CHART = BENCH_DIR / "peer.png"
RESULTS = BENCH_DIR / "results.json"
SECONDS = float(os.environ.get("BENCH_SECONDS", "2"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
BUDGET = float(os.environ.get("BENCH_BUDGET", "420"))
CLIENTS = 50
KEYSPACE = 10000
PIPELINES = (16, 1)
CALIBRATION_N = {16: 50000, 1: 10000}
MEMORY_KEYS = 1000
EXACT_FULL_LOG = 100  # requests per key for the "full log" EXACT memory row (= its limit)
MEMORY_PASSES = 3  # the used_memory growth is the median over passes (allocator noise, Lua GC)

# Targets (pipelined): native >= 0.75x INCR, native >= 4x its Lua twin (FCALL and EVALSHA).
TARGET_VS_INCR = 0.75
TARGET_VS_LUA = 4.0
PATHS = ("native", "FCALL", "EVALSHA")


def log(msg):
    print(msg, file=sys.stderr, flush=True)
