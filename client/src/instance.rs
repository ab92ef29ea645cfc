//! One independent lock server, seen through the three LOCK.* commands Redlock needs.
//!
//! The algorithm ([`crate::Redlock`]) only knows the [`Instance`] trait, so it is tested with fake
//! instances and an injected clock; [`RedisInstance`] is the real thing: a `redis-server` or
//! `valkey-server` with the redis-patterns module loaded.

use std::fmt;
use std::time::Duration;

/// A lock server. Every call must return within a bounded time (the instance's timeout): Redlock
/// contacts the instances one after the other, so an instance that hangs would stall the whole
/// acquisition and eat the lock's validity.
pub trait Instance {
    /// `LOCK.ACQUIRE resource owner ttl_ms`: `Some(fencing token)` when granted, `None` when
    /// another owner holds it.
    fn acquire(
        &mut self,
        resource: &str,
        owner: &str,
        ttl_ms: u64,
    ) -> Result<Option<u64>, InstanceError>;

    /// `LOCK.EXTEND resource owner ttl_ms`: `true` when `owner` holds it (its TTL is now `ttl_ms`).
    fn extend(&mut self, resource: &str, owner: &str, ttl_ms: u64) -> Result<bool, InstanceError>;

    /// `LOCK.RELEASE resource owner`: `true` when one of `owner`'s holds was dropped.
    fn release(&mut self, resource: &str, owner: &str) -> Result<bool, InstanceError>;
}

/// Why an instance gave no answer. For an acquire, the command may still have been executed: the
/// caller must treat the instance as possibly locked (and release it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstanceError {
    /// No reply within the instance's timeout.
    Timeout,
    /// Could not connect, or the connection broke.
    Unreachable(String),
    /// The server answered with an error or an unexpected reply (e.g. the module is not loaded).
    Server(String),
    /// The instance cannot be used as given: a malformed URL or a zero timeout.
    Config(String),
}

impl fmt::Display for InstanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstanceError::Timeout => f.write_str("timed out"),
            InstanceError::Unreachable(e) => write!(f, "unreachable: {e}"),
            InstanceError::Server(e) => write!(f, "server error: {e}"),
            InstanceError::Config(e) => write!(f, "invalid instance: {e}"),
        }
    }
}

impl std::error::Error for InstanceError {}

impl From<redis::RedisError> for InstanceError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_timeout() {
            InstanceError::Timeout
        } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            InstanceError::Unreachable(e.to_string())
        } else {
            InstanceError::Server(e.to_string())
        }
    }
}

/// A server with the redis-patterns module, over one lazily (re)opened connection whose connect,
/// write and read each time out after `timeout`.
pub struct RedisInstance {
    client: redis::Client,
    timeout: Duration,
    conn: Option<redis::Connection>,
}

impl RedisInstance {
    /// Parses `url` (e.g. `redis://10.0.0.1:6379/`); connects on first use. `timeout` must be
    /// positive and small next to the locks' TTLs: each of the N instances may take that long.
    pub fn open(url: &str, timeout: Duration) -> Result<Self, InstanceError> {
        if timeout.is_zero() {
            return Err(InstanceError::Config("timeout must be positive".into()));
        }
        let client =
            redis::Client::open(url).map_err(|e| InstanceError::Config(format!("{url}: {e}")))?;
        Ok(Self {
            client,
            timeout,
            conn: None,
        })
    }

    /// Runs `cmd`, connecting first if needed. Any failure drops the connection: after a timeout
    /// its reply may still arrive and would be read as the answer to the next command.
    fn call<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Result<T, InstanceError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let reply = cmd.query(&mut conn)?;
        self.conn = Some(conn);
        Ok(reply)
    }

    fn connect(&self) -> Result<redis::Connection, InstanceError> {
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }
}

impl Instance for RedisInstance {
    fn acquire(
        &mut self,
        resource: &str,
        owner: &str,
        ttl_ms: u64,
    ) -> Result<Option<u64>, InstanceError> {
        let mut cmd = redis::cmd("LOCK.ACQUIRE");
        cmd.arg(resource).arg(owner).arg(ttl_ms);
        self.call(&cmd)
    }

    fn extend(&mut self, resource: &str, owner: &str, ttl_ms: u64) -> Result<bool, InstanceError> {
        let mut cmd = redis::cmd("LOCK.EXTEND");
        cmd.arg(resource).arg(owner).arg(ttl_ms);
        self.call(&cmd)
    }

    fn release(&mut self, resource: &str, owner: &str) -> Result<bool, InstanceError> {
        let mut cmd = redis::cmd("LOCK.RELEASE");
        cmd.arg(resource).arg(owner);
        self.call(&cmd)
    }
}
