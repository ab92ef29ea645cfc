"""The server the bench runs: a minimal RESP2 client (stdlib only), redis-server on a free
loopback port with the module, and redis-cli.
"""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from config import MODULE


class ReplyError(Exception):
    pass


class Redis:
    def __init__(self, port, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def read(self):
        line = self.reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return ReplyError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.reader.read(n + 2)[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"unexpected reply line {line!r}")

    def pipeline(self, commands, chunk=500):
        """Replies in order; errors are returned as ReplyError values, not raised."""
        replies = []
        for i in range(0, len(commands), chunk):
            part = commands[i:i + chunk]
            self.sock.sendall(b"".join(self.encode(c) for c in part))
            replies.extend(self.read() for _ in part)
        return replies

    def call(self, *args):
        reply = self.pipeline([args])[0]
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    def info(self, section):
        text = self.call("INFO", section).decode()
        out = {}
        for line in text.splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v
        return out

    def close(self):
        try:
            self.reader.close()
            self.sock.close()
        except OSError:
            pass


def commandstats(r):
    stats = {}
    for k, v in r.info("commandstats").items():
        if k.startswith("cmdstat_"):
            stats[k[len("cmdstat_"):]] = dict(
                (a, float(b)) for a, b in (kv.split("=") for kv in v.split(",")))
    return stats


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    """Runs in the child before exec: SIGTERM it when this process dies (Linux prctl)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="patterns-bench-")
        self.proc = None
        self.port = None
        self.snapshots = {}  # a row's setup function -> (its RDB file, its placeholders)

    def start(self):
        for _ in range(5):
            self.port = free_port()
            self.argv = [
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--loadmodule", str(MODULE),
                # DEBUG RELOAD restores a row's set-up database between runs (measure.py).
                "--enable-debug-command", "local",
                "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log"),
                "--daemonize", "no",
            ]
            self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    r = Redis(self.port, timeout=2)
                    if r.call("PING") == "PONG":
                        return r
                except (OSError, ReplyError):
                    time.sleep(0.05)
            self.stop()
            if "already in use" not in self.log_tail():  # only a port race is worth a retry
                break
        raise RuntimeError("redis-server did not start; its log:\n" + self.log_tail())

    def log_tail(self):
        try:
            return Path(self.dir, "redis.log").read_text()[-3000:]
        except OSError:
            return "(no log)"

    def cpu_seconds(self):
        """utime + stime of the server process (all its threads)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_cli(port, *args, stdin_file=None):
    cmd = ["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
    if stdin_file is not None:
        cmd.append("-x")
    cmd.extend(args)
    with open(stdin_file, "rb") if stdin_file else open(os.devnull, "rb") as stdin:
        p = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, timeout=60)
    out = p.stdout.strip()
    if p.returncode != 0 or out.startswith("(error)") or out.startswith("ERR"):
        raise RuntimeError(f"{' '.join(cmd[:6])}... failed: {out} {p.stderr.strip()}")
    return out
