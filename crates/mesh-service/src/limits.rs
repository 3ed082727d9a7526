//! What one consumer may spend on reads: queries per minute (a token bucket per principal, with
//! a burst) and how long one query may run. Every way in takes from the same buckets.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How much querying a consumer may do: queries per minute (with this burst), and how long one
/// query may run.
#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    pub per_minute: u32,
    pub burst: u32,
    pub timeout: Duration,
    /// Bytes one query may hold in its operators (joins, sorts, aggregates).
    pub query_memory: usize,
    /// Bytes all queries together may hold.
    pub server_memory: usize,
    /// Bytes (as Arrow data) one query's result may have.
    pub result_memory: usize,
    /// Flight SQL calls a caller may make per minute (the burst is a tenth of it).
    pub calls_per_minute: u32,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            per_minute: 120,
            burst: 20,
            timeout: Duration::from_secs(60),
            query_memory: 1 << 30,
            server_memory: 4 << 30,
            result_memory: 1 << 30,
            calls_per_minute: 600,
        }
    }
}

/// Per-consumer token buckets, and the limits they follow.
#[derive(Debug)]
pub struct Limits {
    pub limits: QueryLimits,
    buckets: Buckets,
    calls: Buckets,
    /// The catalog whose buckets every server on it shares; without it (or while it cannot be
    /// reached), this process's own buckets.
    shared: Option<mesh_catalog::Catalog>,
}

type Buckets = Mutex<HashMap<String, (f64, Instant)>>;

/// Takes one token from `who`'s bucket in `buckets` (`per_minute` on average, `burst` at once):
/// `None`, or how long until the next one.
fn take(buckets: &Buckets, who: &str, per_minute: u32, burst: u32) -> Option<Duration> {
    let now = Instant::now();
    let Ok(mut buckets) = buckets.lock() else {
        return None;
    };
    if buckets.len() > 100_000 {
        buckets.clear();
    }
    let (tokens, at) = buckets
        .entry(who.to_owned())
        .or_insert((f64::from(burst.max(1)), now));
    let (left, wait) =
        mesh_catalog::audit::take_token(*tokens, now.duration_since(*at), per_minute, burst);
    *tokens = left;
    *at = now;
    wait
}

/// A consumer that has used up its queries, and how long until the next one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{who} has used up {per_minute} {what} a minute; try again in {} s", .wait.as_secs() + 1)]
pub struct RateLimited {
    pub who: String,
    pub per_minute: u32,
    /// What was counted: `queries` or `calls`.
    pub what: &'static str,
    pub wait: Duration,
}

/// A query stopped because it ran longer than the limit.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the query ran longer than {} s and was stopped", .limit.as_secs_f64())]
pub struct TimedOut {
    pub limit: Duration,
}

impl mesh_catalog::ToProblem for RateLimited {
    fn code(&self) -> mesh_catalog::ErrorCode {
        mesh_catalog::ErrorCode::RateLimited
    }
}

impl mesh_catalog::ToProblem for TimedOut {
    fn code(&self) -> mesh_catalog::ErrorCode {
        mesh_catalog::ErrorCode::Timeout
    }
}

impl Limits {
    pub fn new(limits: QueryLimits) -> Limits {
        Limits {
            limits,
            buckets: Mutex::default(),
            calls: Mutex::default(),
            shared: None,
        }
    }

    /// These limits, counted in `catalog`'s buckets: N servers on one catalog enforce one limit.
    pub fn shared(mut self, catalog: mesh_catalog::Catalog) -> Limits {
        self.shared = Some(catalog);
        self
    }

    /// Takes one query from `who`'s bucket, or says how long to wait.
    pub async fn take(&self, who: &str) -> Result<(), RateLimited> {
        let (per_minute, burst) = (self.limits.per_minute, self.limits.burst);
        self.take_from(&self.buckets, who, per_minute, burst, "queries")
            .await
    }

    /// Takes one call (any Flight SQL call) from `who`'s bucket of calls, or says how long to
    /// wait. Calls that plan or read a statement also take a query ([`Limits::take`]).
    pub async fn call(&self, who: &str) -> Result<(), RateLimited> {
        let per_minute = self.limits.calls_per_minute;
        let burst = (per_minute / 10).max(10);
        self.take_from(&self.calls, who, per_minute, burst, "calls")
            .await
    }

    async fn take_from(
        &self,
        buckets: &Buckets,
        who: &str,
        per_minute: u32,
        burst: u32,
        what: &'static str,
    ) -> Result<(), RateLimited> {
        let shared = match &self.shared {
            Some(catalog) => catalog
                .take_rate(&format!("{what}:{who}"), per_minute, burst)
                .await
                .inspect_err(|e| {
                    crate::logging::log(&format!(
                        "the shared rate limits cannot be read ({e}); this server counts {what} on its own"
                    ));
                })
                .ok(),
            None => None,
        };
        let wait = shared.unwrap_or_else(|| take(buckets, who, per_minute, burst));
        match wait {
            None => Ok(()),
            Some(wait) => Err(RateLimited {
                who: who.to_owned(),
                per_minute,
                what,
                wait,
            }),
        }
    }

    pub fn timed_out(&self) -> TimedOut {
        TimedOut {
            limit: self.limits.timeout,
        }
    }
}
