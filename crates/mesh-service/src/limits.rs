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
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            per_minute: 120,
            burst: 20,
            timeout: Duration::from_secs(60),
        }
    }
}

/// Per-consumer token buckets, and the limits they follow.
#[derive(Debug)]
pub struct Limits {
    pub limits: QueryLimits,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// A consumer that has used up its queries, and how long until the next one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{who} has used up {per_minute} queries a minute; try again in {} s", .wait.as_secs() + 1)]
pub struct RateLimited {
    pub who: String,
    pub per_minute: u32,
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
        }
    }

    /// Takes one query from `who`'s bucket, or says how long to wait.
    pub fn take(&self, who: &str) -> Result<(), RateLimited> {
        let rate = f64::from(self.limits.per_minute.max(1)) / 60.0;
        let burst = f64::from(self.limits.burst.max(1));
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() > 100_000 {
            buckets.clear();
        }
        let (tokens, at) = buckets.entry(who.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(RateLimited {
                who: who.to_owned(),
                per_minute: self.limits.per_minute,
                wait: Duration::from_secs_f64((1.0 - *tokens) / rate),
            })
        }
    }

    pub fn timed_out(&self) -> TimedOut {
        TimedOut {
            limit: self.limits.timeout,
        }
    }
}
