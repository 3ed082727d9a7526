//! The peer of `mesh run` in bench/wap.sh: the same transform over the same source, written to a
//! Delta table by DataFusion and delta-rs with nothing around it — no catalog, no staging, no
//! contract checks, no lineage. What write-audit-publish costs is `mesh run`'s time over this.
//!
//!   wap_peer generate ROWS OUT.parquet            # the source: orders, as `mesh new` shapes them
//!   wap_peer write SOURCE.parquet TRANSFORM.sql TABLE_DIR
//!
//! `write` reads the source as table `raw_orders`, runs the transform and overwrites the table
//! with its result, and prints the wall time.

// A benchmark tool prints its figures.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::{Float64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use deltalake::protocol::SaveMode;

type Failure = Box<dyn std::error::Error + Send + Sync>;

fn generate(rows: usize, out: &str) -> Result<(), Failure> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("orders_id", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, true),
        Field::new(
            "updated_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let file = std::fs::File::create(out)?;
    let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), None)?;
    let labels = ["north", "south", "east", "west"];
    // 2026-11-01T00:00:00Z
    let base = 1_793_491_200_000_000i64;
    let chunk = 1_000_000;
    let mut start = 0;
    while start < rows {
        let end = (start + chunk).min(rows);
        let ids: StringArray = (start..end)
            .map(|i| Some(format!("orders-{i:09}")))
            .collect();
        let label: StringArray = (start..end).map(|i| Some(labels[i % 4])).collect();
        let amount: Float64Array = (start..end)
            .map(|i| Some((i % 100_000) as f64 / 100.0))
            .collect();
        let at = TimestampMicrosecondArray::from(
            (start..end)
                .map(|i| base + i as i64 * 1_000_000)
                .collect::<Vec<_>>(),
        )
        .with_timezone("UTC");
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(ids),
                Arc::new(label),
                Arc::new(amount),
                Arc::new(at),
            ],
        )?;
        writer.write(&batch)?;
        start = end;
    }
    writer.close()?;
    Ok(())
}

async fn write(source: &str, transform: &str, table: &str) -> Result<(), Failure> {
    let started = Instant::now();
    let ctx = SessionContext::new();
    ctx.register_parquet("raw_orders", source, ParquetReadOptions::default())
        .await?;
    let sql = std::fs::read_to_string(transform)?;
    let batches = ctx.sql(&sql).await?.collect().await?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    std::fs::create_dir_all(table)?;
    let url = url::Url::from_directory_path(std::fs::canonicalize(table)?)
        .map_err(|()| "not an absolute path")?;
    let table = deltalake::DeltaTable::try_from_url(url).await?;
    let table = table
        .write(batches)
        .with_save_mode(SaveMode::Overwrite)
        .await?;
    println!(
        "peer: {rows} rows, Delta version {}, {:.3} s",
        table.version().unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["generate", rows, out] => generate(rows.parse()?, out),
        ["write", source, transform, table] => write(source, transform, table).await,
        _ => Err("usage: wap_peer generate ROWS OUT.parquet | wap_peer write SOURCE.parquet TRANSFORM.sql TABLE_DIR".into()),
    }
}
