//! The practical floor for `mesh test` on the peer benchmark's orders contract: one hand-written
//! DataFusion query computing the same measures (row count, null keys, duplicated keys and the
//! rows they span, amounts out of range, invalid currencies, missing emails) over the same file.
//!
//! `cargo run --release -p mesh-engine --example floor -- orders.parquet [--scan-only]` prints the
//! measures and the wall time; bench/contract-test.sh times it beside mesh and the peers.
//! `--scan-only` leaves out the duplicate keys: the cost of one aggregate scan, the floor under
//! any checker that reads the file.

// A benchmark tool prints its figures.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

const SCAN_ONLY: &str = "
SELECT
  count(*) AS rows,
  count(*) FILTER (WHERE order_id IS NULL) AS order_id_null,
  count(*) FILTER (WHERE amount < 0) AS amount_below_0,
  count(*) FILTER (WHERE amount > 1000000) AS amount_above_1e6,
  count(*) FILTER (WHERE currency IS NOT NULL AND currency NOT IN ('USD', 'EUR', 'GBP', 'JPY', 'CHF')) AS currency_invalid,
  count(*) FILTER (WHERE email IS NULL) AS email_null
FROM orders";

const QUERY: &str = "
WITH dup AS (
  SELECT count(*) AS dup_keys, coalesce(sum(n), 0) AS dup_rows
  FROM (SELECT order_id, count(*) AS n FROM orders WHERE order_id IS NOT NULL GROUP BY order_id HAVING count(*) > 1)
)
SELECT
  count(*) AS rows,
  count(*) FILTER (WHERE order_id IS NULL) AS order_id_null,
  count(*) FILTER (WHERE amount < 0) AS amount_below_0,
  count(*) FILTER (WHERE amount > 1000000) AS amount_above_1e6,
  count(*) FILTER (WHERE currency IS NOT NULL AND currency NOT IN ('USD', 'EUR', 'GBP', 'JPY', 'CHF')) AS currency_invalid,
  count(*) FILTER (WHERE email IS NULL) AS email_null,
  (SELECT dup_keys FROM dup) AS order_id_duplicate_keys,
  (SELECT dup_rows FROM dup) AS order_id_duplicate_rows
FROM orders";

#[tokio::main]
async fn main() -> datafusion::error::Result<()> {
    let path = std::env::args()
        .nth(1)
        .expect("usage: floor FILE.parquet [--scan-only]");
    let query = if std::env::args().any(|a| a == "--scan-only") {
        SCAN_ONLY
    } else {
        QUERY
    };
    let started = Instant::now();
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_batch_size(64 * 1024));
    ctx.register_parquet("orders", &path, ParquetReadOptions::default())
        .await?;
    let batches = ctx.sql(query).await?.collect().await?;
    let elapsed = started.elapsed();
    println!(
        "{}",
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)?
    );
    println!("floor query: {:.3} s", elapsed.as_secs_f64());
    Ok(())
}
