//! Governed reads since the process started, per port: a latency histogram and a count of reads
//! that failed at the port, for `/metrics`. Every read path counts here ([`crate::read`]).

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};

/// Upper bounds (seconds) of the read-latency histogram's buckets.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The reads of one port: cumulative bucket counts, count and sum of the successful ones, and
/// the failed ones.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Histogram {
    pub buckets: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
    pub errors: u64,
}

/// Per `(product, port)`.
static READS: LazyLock<Mutex<BTreeMap<(String, String), Histogram>>> =
    LazyLock::new(Default::default);

/// Counts one governed read of a port.
pub fn observe_read(product: &str, port: &str, seconds: f64, failed: bool) {
    let mut reads = READS.lock().unwrap_or_else(|e| e.into_inner());
    let h = reads
        .entry((product.to_owned(), port.to_owned()))
        .or_default();
    if failed {
        h.errors += 1;
        return;
    }
    h.count += 1;
    h.sum += seconds;
    for (i, le) in BUCKETS.iter().enumerate() {
        if seconds <= *le {
            h.buckets[i] += 1;
        }
    }
}

/// Every port's reads so far.
pub fn reads() -> BTreeMap<(String, String), Histogram> {
    READS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}
