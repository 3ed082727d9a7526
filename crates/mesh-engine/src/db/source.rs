//! A database table, or a read-only query, as a DataFusion table for `mesh run`: rows stream
//! in batches over one connection per scan, and the database gets the columns the plan needs and
//! the filters it can evaluate the way DataFusion would.
//!
//! Each scan is one read-only transaction (PostgreSQL: `REPEATABLE READ`), so a scan sees one
//! consistent state of the database. Values are cast by the `SELECT` itself to a few wire types
//! (64-bit integers, doubles, text, bytes, microseconds since the epoch) and then to the column's
//! Arrow type, so every driver decodes the same way.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array as _, ArrayRef, BinaryBuilder, Float64Builder, Int64Builder, StringBuilder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::scalar::ScalarValue;

use super::{Column, Conn, DbError, Kind, Target};

/// Rows per batch.
const BATCH_ROWS: usize = 8192;

/// A source of a pipeline in a database: where, and what.
#[derive(Debug, Clone)]
pub struct DbSource {
    pub target: Target,
    pub relation: Relation,
    /// A column that only grows as rows are added: each run reads the rows above the previous
    /// run's greatest value of it, and appends ([`crate::pipeline`]).
    pub incremental: Option<String>,
}

impl DbSource {
    /// The OpenLineage dataset it is: namespace `postgres://host:port` (`mysql://...`,
    /// `sqlite://path`), name `database.schema.table` (a query: `database.(query)`).
    pub fn dataset(&self) -> (String, String) {
        let t = &self.target;
        match t.kind {
            Kind::Sqlite => (
                format!("sqlite://{}", t.path.as_deref().unwrap_or_default()),
                match &self.relation {
                    Relation::Table(name) => name.clone(),
                    Relation::Query(_) => "(query)".to_owned(),
                },
            ),
            kind => {
                let namespace = format!(
                    "{}://{}:{}",
                    kind.name(),
                    t.host.as_deref().unwrap_or("localhost"),
                    t.port.unwrap_or(kind.default_port())
                );
                let database = t.database.as_deref().unwrap_or_default();
                let name = match (&self.relation, kind) {
                    (Relation::Table(name), Kind::Postgres) if !name.contains('.') => {
                        format!("{database}.public.{name}")
                    }
                    (Relation::Table(name), _) => format!("{database}.{name}"),
                    (Relation::Query(_), _) => format!("{database}.(query)"),
                };
                (namespace, name)
            }
        }
    }
}

/// What a source reads.
#[derive(Debug, Clone)]
pub enum Relation {
    /// A table: `orders` or `schema.orders` (PostgreSQL).
    Table(String),
    /// A read-only query in the database's dialect.
    Query(String),
}

/// How a column travels: the wire type the `SELECT` casts it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Int,
    UInt,
    Double,
    Text,
    Bytes,
    /// Microseconds since the epoch.
    Micros,
}

/// A table of a database server, read by DataFusion.
#[derive(Debug)]
pub struct DbTable {
    target: Target,
    /// What follows `FROM`: a quoted table, or the query as a derived table.
    from: String,
    columns: Vec<Column>,
    schema: SchemaRef,
    /// A condition every scan adds: the rows an incremental run reads ([`DbTable::window`]).
    window: Option<String>,
}

impl DbTable {
    /// Looks the relation up (its columns and their types); the data is read when scanned.
    pub async fn open(target: &Target, relation: &Relation) -> Result<DbTable, DbError> {
        let mut conn = target.connect().await?;
        let described = async {
            match relation {
                Relation::Table(name) => {
                    let (scoped, table) = target.locate(name);
                    let columns = scoped.columns(&mut conn, &table).await?.ok_or_else(|| {
                        target.error(
                            format!(
                                "there is no table `{name}` (names are case-sensitive{})",
                                if target.kind == Kind::Postgres {
                                    "; give the schema as `schema.table`"
                                } else {
                                    ""
                                }
                            ),
                            false,
                        )
                    })?;
                    Ok((scoped.table(&table), columns))
                }
                Relation::Query(sql) => {
                    // As the parser read it (MariaDB runs what `/*M! */` comments hold).
                    let sql = read_only_query(target.kind, sql, target.database.as_deref())
                        .map_err(|r| target.error(r, false))?;
                    let columns = describe(target, &mut conn, &sql).await?;
                    Ok((format!("({sql}) AS {}", target.kind.quote("q")), columns))
                }
            }
        }
        .await;
        conn.close().await;
        let (from, columns) = described?;
        let columns: Vec<Column> = columns
            .into_iter()
            .map(|c| Column {
                arrow: readable(&c.arrow),
                ..c
            })
            .collect();
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| {
                    Field::new(
                        &c.name,
                        c.arrow.clone(),
                        !c.not_null || zero_dated(target.kind, c),
                    )
                })
                .collect::<Vec<_>>(),
        ));
        Ok(DbTable {
            target: target.clone(),
            from,
            columns,
            schema,
            window: None,
        })
    }

    /// The column an incremental read is keyed on, by its exact name.
    fn watermark_column(&self, column: &str) -> Result<&Column, DbError> {
        self.columns
            .iter()
            .find(|c| c.name == column)
            .ok_or_else(|| {
                let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
                self.target.error(
                    format!(
                        "`incremental: {column}` names no column of it (its columns: {})",
                        names.join(", ")
                    ),
                    false,
                )
            })
    }

    /// The greatest value of `column` now, as the database writes it (its own text form, which
    /// it reads back exactly); `None` when no row has one.
    pub async fn high_water(&self, column: &str) -> Result<Option<String>, DbError> {
        let kind = self.target.kind;
        let q = kind.quote(&self.watermark_column(column)?.name);
        let sql = format!(
            "SELECT {} FROM {}",
            kind.text(&format!("MAX({q})")),
            self.from
        );
        let mut conn = self.target.connect().await?;
        let rows = conn.texts(&sql, 1).await;
        conn.close().await;
        let rows = rows.map_err(|e| self.target.query_error(&e))?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    /// Reads only the rows whose `column` is above `after` (when given) and at most `upto`
    /// (when given), compared by the database itself: the window of one incremental run.
    /// The marks are the database's own text forms ([`DbTable::high_water`]); a number is
    /// written as a number, anything else as an escaped string the database converts.
    pub fn window(
        mut self,
        column: &str,
        after: Option<&str>,
        upto: Option<&str>,
    ) -> Result<DbTable, DbError> {
        let kind = self.target.kind;
        let found = self.watermark_column(column)?;
        let numeric = found.arrow.is_numeric();
        let q = kind.quote(&found.name);
        let literal = |mark: &str| -> Result<String, DbError> {
            if !numeric {
                return Ok(kind.string(mark));
            }
            let number = mark.trim();
            let plain = !number.is_empty()
                && number
                    .trim_start_matches('-')
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
                && number.parse::<f64>().is_ok();
            if plain {
                Ok(number.to_owned())
            } else {
                Err(self.target.error(
                    format!("the mark `{mark}` of `incremental: {column}` is not a number"),
                    false,
                ))
            }
        };
        let mut conditions = Vec::new();
        if let Some(after) = after {
            conditions.push(format!("{q} > {}", literal(after)?));
        }
        if let Some(upto) = upto {
            conditions.push(format!("{q} <= {}", literal(upto)?));
        }
        self.window = (!conditions.is_empty()).then(|| conditions.join(" AND "));
        Ok(self)
    }

    /// The `SELECT` for `projection`, `filters` (those [`pushable`] accepts) and `limit`.
    fn select(&self, projection: &[usize], filters: &[Expr], limit: Option<usize>) -> String {
        let kind = self.target.kind;
        let list: Vec<String> = if projection.is_empty() {
            // `SELECT COUNT(*)`-shaped plans need rows, not columns.
            vec!["1".to_owned()]
        } else {
            projection
                .iter()
                .map(|&i| wire_expr(kind, &self.columns[i]))
                .collect()
        };
        let conditions: Vec<String> = self
            .window
            .iter()
            .cloned()
            .chain(
                filters
                    .iter()
                    .filter_map(|f| condition(kind, &self.columns, f)),
            )
            .collect();
        let mut sql = format!("SELECT {} FROM {}", list.join(", "), self.from);
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        sql
    }
}

#[async_trait::async_trait]
impl TableProvider for DbTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Inexact: DataFusion filters again, so a database that compares differently (a
        // case-insensitive collation's `=`) can only return more rows, never fewer.
        Ok(filters
            .iter()
            .map(|f| {
                if condition(self.target.kind, &self.columns, f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..self.columns.len()).collect();
        let projection = projection.unwrap_or(&all);
        let sql = self.select(projection, filters, limit);
        let columns: Vec<Column> = projection
            .iter()
            .map(|&i| self.columns[i].clone())
            .collect();
        let schema = Arc::new(self.schema.project(projection)?);
        let scan = Arc::new(Scan {
            target: self.target.clone(),
            sql,
            columns,
            schema: Arc::clone(&schema),
        });
        Ok(Arc::new(DbScanExec::new(scan)))
    }
}

/// The plan node that reads a database: one partition, its `SELECT` shown by `EXPLAIN`, its
/// rows counted (a run's `rowsIn`).
#[derive(Debug)]
struct DbScanExec {
    scan: Arc<Scan>,
    properties: Arc<datafusion::physical_plan::PlanProperties>,
    metrics: datafusion::physical_plan::metrics::ExecutionPlanMetricsSet,
}

impl DbScanExec {
    fn new(scan: Arc<Scan>) -> DbScanExec {
        use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
        let properties = datafusion::physical_plan::PlanProperties::new(
            datafusion::physical_expr::EquivalenceProperties::new(Arc::clone(&scan.schema)),
            datafusion::physical_plan::Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        DbScanExec {
            scan,
            properties: Arc::new(properties),
            metrics: Default::default(),
        }
    }
}

impl datafusion::physical_plan::DisplayAs for DbScanExec {
    fn fmt_as(
        &self,
        _t: datafusion::physical_plan::DisplayFormatType,
        f: &mut std::fmt::Formatter,
    ) -> std::fmt::Result {
        write!(
            f,
            "DbScanExec: {}, sql={}",
            self.scan.target.describe(),
            self.scan.sql
        )
    }
}

impl ExecutionPlan for DbScanExec {
    fn name(&self) -> &str {
        "DbScanExec"
    }

    fn properties(&self) -> &Arc<datafusion::physical_plan::PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> Result<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "a database scan has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        ctx: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        use futures::StreamExt as _;
        let baseline =
            datafusion::physical_plan::metrics::BaselineMetrics::new(&self.metrics, partition);
        let counted = self.scan.execute(ctx).map(move |batch| {
            if let Ok(b) = &batch {
                baseline.record_output(b.num_rows());
            }
            batch
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.scan.schema),
            counted,
        )))
    }

    fn metrics(&self) -> Option<datafusion::physical_plan::metrics::MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One scan's query, run when DataFusion executes the plan.
#[derive(Debug)]
struct Scan {
    target: Target,
    sql: String,
    columns: Vec<Column>,
    schema: SchemaRef,
}

impl Scan {
    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        // A reader task fills a small channel: the database is read as fast as the plan
        // consumes, and dropping the plan stops the read.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
        let target = self.target.clone();
        let sql = self.sql.clone();
        let columns = self.columns.clone();
        let schema = Arc::clone(&self.schema);
        tokio::spawn(async move {
            let failed = tx.clone();
            if let Err(e) = read(&target, &sql, &columns, &schema, tx).await {
                let _ = failed
                    .send(Err(DataFusionError::External(Box::new(e))))
                    .await;
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

/// Reads the rows of `sql` in batches into `tx`, in one read-only transaction.
async fn read(
    target: &Target,
    sql: &str,
    columns: &[Column],
    schema: &SchemaRef,
    tx: tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> Result<(), DbError> {
    use futures::TryStreamExt as _;
    let mut conn = target.connect().await?;
    let begin = match target.kind {
        Kind::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        Kind::MySql => "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        Kind::Sqlite => "BEGIN",
    };
    conn.execute(begin)
        .await
        .map_err(|e| target.query_error(&e))?;
    let mut batch = Batch::new(columns);
    macro_rules! drain {
        ($c:expr) => {{
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch($c);
            loop {
                // The plan went away (a LIMIT was met, the run failed): stop reading now, not
                // at the next full batch.
                let next = tokio::select! {
                    next = rows.try_next() => next,
                    () = tx.closed() => return Ok(()),
                };
                let Some(row) = next.map_err(|e| target.query_error(&e))? else {
                    break;
                };
                batch.push(&row).map_err(|e| target.query_error(&e))?;
                if batch.rows == BATCH_ROWS {
                    let done = batch
                        .finish(schema)
                        .map_err(|e| target.error(e.to_string(), false))?;
                    if tx.send(Ok(done)).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }};
    }
    match &mut conn {
        Conn::Postgres(c) => drain!(&mut *c),
        Conn::MySql(c) => drain!(&mut *c),
        Conn::Sqlite(c) => drain!(&mut *c),
    }
    if batch.rows > 0 {
        let done = batch
            .finish(schema)
            .map_err(|e| target.error(e.to_string(), false))?;
        let _ = tx.send(Ok(done)).await;
    }
    let _ = conn.execute("ROLLBACK").await;
    conn.close().await;
    Ok(())
}

impl Conn {
    async fn execute(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        match self {
            Conn::Postgres(c) => sqlx::query(sql).execute(c).await.map(|_| ()),
            Conn::MySql(c) => sqlx::query(sql).execute(c).await.map(|_| ()),
            Conn::Sqlite(c) => sqlx::query(sql).execute(c).await.map(|_| ()),
        }
    }
}

/// Column builders for one batch.
struct Batch {
    wires: Vec<Wire>,
    builders: Vec<Builder>,
    rows: usize,
}

enum Builder {
    Int(Int64Builder),
    UInt(UInt64Builder),
    Double(Float64Builder),
    Text(StringBuilder),
    Bytes(BinaryBuilder),
}

impl Batch {
    fn new(columns: &[Column]) -> Batch {
        let wires: Vec<Wire> = columns.iter().map(|c| wire(&c.arrow)).collect();
        Batch {
            builders: wires.iter().map(|w| builder(*w)).collect(),
            wires,
            rows: 0,
        }
    }

    fn push<R: sqlx::Row>(&mut self, row: &R) -> Result<(), sqlx::Error>
    where
        usize: sqlx::ColumnIndex<R>,
        for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    {
        for (i, b) in self.builders.iter_mut().enumerate() {
            match b {
                Builder::Int(b) => b.append_option(row.try_get::<Option<i64>, _>(i)?),
                // Unsigned BIGINT arrives as text: no driver decodes it as u64 the same way.
                Builder::UInt(b) => b.append_option(
                    row.try_get::<Option<String>, _>(i)?
                        .and_then(|s| s.trim().parse::<u64>().ok()),
                ),
                Builder::Double(b) => b.append_option(row.try_get::<Option<f64>, _>(i)?),
                Builder::Text(b) => b.append_option(row.try_get::<Option<String>, _>(i)?),
                Builder::Bytes(b) => b.append_option(row.try_get::<Option<Vec<u8>>, _>(i)?),
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The batch so far, in `schema`'s types; the builders start again.
    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.builders.len());
        for ((b, wire), field) in self
            .builders
            .iter_mut()
            .zip(&self.wires)
            .zip(schema.fields())
        {
            let raw: ArrayRef = match b {
                Builder::Int(b) => Arc::new(b.finish()),
                Builder::UInt(b) => Arc::new(b.finish()),
                Builder::Double(b) => Arc::new(b.finish()),
                Builder::Text(b) => Arc::new(b.finish()),
                Builder::Bytes(b) => Arc::new(b.finish()),
            };
            let array = match (wire, field.data_type()) {
                (Wire::Micros, DataType::Timestamp(TimeUnit::Microsecond, tz)) => {
                    let micros = datafusion::arrow::array::AsArray::as_primitive::<
                        datafusion::arrow::datatypes::Int64Type,
                    >(&raw);
                    let values = datafusion::arrow::array::TimestampMicrosecondArray::new(
                        micros.values().clone(),
                        micros.nulls().cloned(),
                    )
                    .with_timezone_opt(tz.clone());
                    Arc::new(values) as ArrayRef
                }
                (_, DataType::Boolean) => {
                    datafusion::arrow::compute::cast(&raw, &DataType::Boolean)?
                }
                (_, target) if raw.data_type() == target => raw,
                (_, target) => {
                    let options = datafusion::arrow::compute::CastOptions {
                        safe: false,
                        ..Default::default()
                    };
                    datafusion::arrow::compute::cast_with_options(&raw, target, &options).map_err(
                        |e| {
                            DataFusionError::Execution(format!(
                                "column `{}`: a value does not read as {target}: {e}",
                                field.name()
                            ))
                        },
                    )?
                }
            };
            arrays.push(array);
        }
        let rows = std::mem::take(&mut self.rows);
        // A scan with no columns (`COUNT(*)`) still has rows.
        let options =
            datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(schema),
            arrays,
            &options,
        )?)
    }
}

fn builder(wire: Wire) -> Builder {
    match wire {
        Wire::Int | Wire::Micros => Builder::Int(Int64Builder::with_capacity(BATCH_ROWS)),
        Wire::UInt => Builder::UInt(UInt64Builder::with_capacity(BATCH_ROWS)),
        Wire::Double => Builder::Double(Float64Builder::with_capacity(BATCH_ROWS)),
        Wire::Text => Builder::Text(StringBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16)),
        Wire::Bytes => Builder::Bytes(BinaryBuilder::with_capacity(BATCH_ROWS, BATCH_ROWS * 16)),
    }
}

/// The Arrow type a source column is read as: what [`super::arrow_type`] says, with arrays,
/// structs and wide decimals read as text (their database spellings differ too much).
fn readable(dt: &DataType) -> DataType {
    match dt {
        DataType::List(_) | DataType::Struct(_) | DataType::Decimal256(..) => DataType::Utf8,
        other => other.clone(),
    }
}

fn wire(dt: &DataType) -> Wire {
    match dt {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Wire::Int,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => Wire::Int,
        DataType::UInt64 => Wire::UInt,
        DataType::Boolean => Wire::Int,
        DataType::Float32 | DataType::Float64 => Wire::Double,
        DataType::Binary => Wire::Bytes,
        DataType::Timestamp(..) => Wire::Micros,
        _ => Wire::Text,
    }
}

/// Whether a column may read as null although the database declares it `NOT NULL`: MySQL's
/// dates and times, whose zero value (`0000-00-00`) reads as null.
fn zero_dated(kind: Kind, column: &Column) -> bool {
    kind == Kind::MySql && matches!(column.arrow, DataType::Date32 | DataType::Timestamp(..))
}

/// The select-list expression that brings a column over the wire in its [`Wire`] type.
fn wire_expr(kind: Kind, column: &Column) -> String {
    let q = kind.quote(&column.name);
    match (wire(&column.arrow), kind) {
        (Wire::Int, Kind::Postgres) if column.arrow == DataType::Boolean => {
            format!("CAST(CAST({q} AS INT) AS BIGINT)")
        }
        (Wire::Int, Kind::Postgres) => format!("CAST({q} AS BIGINT)"),
        (Wire::Int, Kind::MySql) => format!("CAST({q} AS SIGNED)"),
        (Wire::Int, Kind::Sqlite) => format!("CAST({q} AS INTEGER)"),
        (Wire::UInt, _) => kind.text(&q),
        (Wire::Double, _) => kind.double(&q),
        // MySQL's zero date (allowed by a lax `sql_mode`) means no date, as its connectors read it.
        (Wire::Text, Kind::MySql) if column.arrow == DataType::Date32 => {
            format!("NULLIF({}, '0000-00-00')", kind.text(&q))
        }
        (Wire::Text, _) => kind.text(&q),
        (Wire::Bytes, _) => q,
        (Wire::Micros, Kind::Postgres) => {
            format!("CAST(EXTRACT(EPOCH FROM {q}) * 1000000 AS BIGINT)")
        }
        (Wire::Micros, Kind::MySql) => {
            format!("TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {q})")
        }
        (Wire::Micros, Kind::Sqlite) => format!(
            "(CASE WHEN typeof({q}) IN ('integer', 'real') THEN CAST({q} * 1000000 AS INTEGER) \
             ELSE CAST(ROUND(unixepoch({q}, 'subsec') * 1000000) AS INTEGER) END)"
        ),
    }
}

/// A filter as a condition the database evaluates as DataFusion would, or `None`: comparisons
/// of numbers, booleans and dates with literals, equality and `IN` on text (a case-insensitive
/// collation only lets more rows through, which DataFusion filters again), `IS [NOT] NULL`, and
/// `AND`/`OR`/`NOT` of those. Text ranges are left to DataFusion: collations order text
/// differently.
///
/// The database must never drop a row DataFusion keeps, so it compares the value as the read
/// brings it ([`compared`]): on MySQL and SQLite the read converts (SQLite's `'abc'` in an
/// INTEGER column reads as 0, a boolean stored as 2 reads as true, a JSON document as its text).
fn condition(kind: Kind, columns: &[Column], expr: &Expr) -> Option<String> {
    let column_of = |e: &Expr| -> Option<&Column> {
        match e {
            Expr::Column(c) => columns.iter().find(|col| col.name == c.name),
            _ => None,
        }
    };
    let literal = |v: &ScalarValue, column: &Column| -> Option<String> {
        if v.is_null() {
            return None;
        }
        let text_column = matches!(column.arrow, DataType::Utf8) && plain_text(kind, column);
        // Numbers compare as numbers only when they travel as numbers (a decimal read as text
        // would compare as text on SQLite).
        let numeric_column = column.arrow.is_numeric()
            && (kind == Kind::Postgres || matches!(wire(&column.arrow), Wire::Int | Wire::Double));
        match v {
            ScalarValue::Int8(Some(_))
            | ScalarValue::Int16(Some(_))
            | ScalarValue::Int32(Some(_))
            | ScalarValue::Int64(Some(_))
            | ScalarValue::UInt8(Some(_))
            | ScalarValue::UInt16(Some(_))
            | ScalarValue::UInt32(Some(_))
            | ScalarValue::UInt64(Some(_))
                if numeric_column =>
            {
                Some(v.to_string())
            }
            ScalarValue::Float64(Some(f)) if numeric_column && f.is_finite() => {
                Some(format!("{f:?}"))
            }
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
                if text_column =>
            {
                Some(kind.string(s))
            }
            // Elsewhere a boolean is any integer, read as `<> 0`.
            ScalarValue::Boolean(Some(b))
                if column.arrow == DataType::Boolean && kind == Kind::Postgres =>
            {
                Some(if *b { "TRUE" } else { "FALSE" }.to_owned())
            }
            ScalarValue::Date32(Some(_)) if column.arrow == DataType::Date32 => {
                Some(kind.string(&v.to_string()))
            }
            _ => None,
        }
    };
    match expr {
        Expr::BinaryExpr(b) => match b.op {
            Operator::And | Operator::Or => {
                let l = condition(kind, columns, &b.left)?;
                let r = condition(kind, columns, &b.right)?;
                let op = if b.op == Operator::And { "AND" } else { "OR" };
                Some(format!("({l} {op} {r})"))
            }
            Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq => {
                let (column, value, flipped) = match (&*b.left, &*b.right) {
                    (l, Expr::Literal(v, _)) => (column_of(l)?, v, false),
                    (Expr::Literal(v, _), r) => (column_of(r)?, v, true),
                    _ => return None,
                };
                let ordering = !matches!(b.op, Operator::Eq | Operator::NotEq);
                // Text is compared for equality only (collations order it differently), and
                // `<>` under a case-insensitive collation would drop rows DataFusion keeps.
                if matches!(column.arrow, DataType::Utf8) && b.op != Operator::Eq {
                    return None;
                }
                if ordering && column.arrow == DataType::Boolean {
                    return None;
                }
                let lit = literal(value, column)?;
                let op = match (b.op, flipped) {
                    (Operator::Eq, _) => "=",
                    (Operator::NotEq, _) => "<>",
                    (Operator::Lt, false) | (Operator::Gt, true) => "<",
                    (Operator::LtEq, false) | (Operator::GtEq, true) => "<=",
                    (Operator::Gt, false) | (Operator::Lt, true) => ">",
                    (Operator::GtEq, false) | (Operator::LtEq, true) => ">=",
                    _ => return None,
                };
                Some(format!("{} {op} {lit}", compared(kind, column)))
            }
            _ => None,
        },
        Expr::Not(inner) => {
            // NOT of a text equality would be a text inequality.
            let inner_sql = condition(kind, columns, inner)?;
            if contains_text(columns, inner) {
                return None;
            }
            Some(format!("NOT ({inner_sql})"))
        }
        Expr::IsNull(e) => Some(format!("{} IS NULL", compared(kind, column_of(e)?))),
        Expr::IsNotNull(e) => Some(format!("{} IS NOT NULL", compared(kind, column_of(e)?))),
        Expr::InList(list) if !list.negated => {
            let column = column_of(&list.expr)?;
            let values: Option<Vec<String>> = list
                .list
                .iter()
                .map(|e| match e {
                    Expr::Literal(v, _) => literal(v, column),
                    _ => None,
                })
                .collect();
            let values = values?;
            if values.is_empty() {
                return None;
            }
            Some(format!(
                "{} IN ({})",
                compared(kind, column),
                values.join(", ")
            ))
        }
        _ => None,
    }
}

/// What a pushed condition compares: the column itself on PostgreSQL (the read converts nothing
/// that compares differently, and an index still serves), else the value exactly as the read
/// selects it.
fn compared(kind: Kind, column: &Column) -> String {
    match kind {
        Kind::Postgres => kind.quote(&column.name),
        _ => wire_expr(kind, column),
    }
}

/// Whether text literals may be compared with `column` in the database: on PostgreSQL only
/// character types (`uuid`, `json`, `inet`... read a literal as their own type, and fail on one
/// that is not); elsewhere the comparison is on the text the read brings ([`compared`]).
fn plain_text(kind: Kind, column: &Column) -> bool {
    if kind != Kind::Postgres {
        return true;
    }
    let t = column.db_type.to_ascii_lowercase();
    t == "text"
        || t == "name"
        || t == "citext"
        || t.starts_with("character")
        || t.starts_with("varchar")
        || t.starts_with("char")
        || t.starts_with("bpchar")
}

fn contains_text(columns: &[Column], expr: &Expr) -> bool {
    expr.column_refs().iter().any(|c| {
        columns
            .iter()
            .any(|col| col.name == c.name && matches!(col.arrow, DataType::Utf8))
    })
}

/// The columns a query returns, as the database describes them.
async fn describe(target: &Target, conn: &mut Conn, sql: &str) -> Result<Vec<Column>, DbError> {
    use sqlx::{Column as _, Executor as _, TypeInfo as _};
    let sql = sql.trim().trim_end_matches(';');
    let columns: Vec<(String, String)> = match conn {
        Conn::Postgres(c) => c
            .describe(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
                sql.to_owned(),
            )))
            .await
            .map(|d| {
                d.columns()
                    .iter()
                    .map(|c| (c.name().to_owned(), c.type_info().name().to_owned()))
                    .collect()
            }),
        Conn::MySql(c) => c
            .describe(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
                sql.to_owned(),
            )))
            .await
            .map(|d| {
                d.columns()
                    .iter()
                    .map(|c| (c.name().to_owned(), c.type_info().name().to_owned()))
                    .collect()
            }),
        Conn::Sqlite(c) => c
            .describe(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
                sql.to_owned(),
            )))
            .await
            .map(|d| {
                d.columns()
                    .iter()
                    .map(|c| (c.name().to_owned(), c.type_info().name().to_owned()))
                    .collect()
            }),
    }
    .map_err(|e| target.query_error(&e))?;
    if columns.is_empty() {
        return Err(target.error("the source query returns no columns", false));
    }
    Ok(columns
        .into_iter()
        .map(|(name, db_type)| Column {
            arrow: super::arrow_type(target.kind, &db_type),
            name,
            db_type,
            not_null: false,
        })
        .collect())
}

/// A source query must be one query that only reads, and (MySQL) only tables of its own
/// database, the one the registered location names; returns it as the parser read it.
pub fn read_only_query(kind: Kind, sql: &str, database: Option<&str>) -> Result<String, String> {
    let statements = super::checks::one_read_only_query(kind, sql, "a source query")?;
    // On MySQL a database is a schema the same connection reads (`other.table`): a source
    // reads only the database its location names.
    if kind == Kind::MySql {
        let mut elsewhere = None;
        let _ = datafusion::sql::sqlparser::ast::visit_relations(&statements, |name| {
            if name.0.len() > 1 {
                let db = name.0[0]
                    .as_ident()
                    .map(|i| i.value.clone())
                    .unwrap_or_default();
                if database != Some(db.as_str()) {
                    elsewhere = Some(name.to_string());
                    return std::ops::ControlFlow::Break(());
                }
            }
            std::ops::ControlFlow::Continue(())
        });
        if let Some(table) = elsewhere {
            return Err(format!(
                "a source query reads only its own database: `{table}` is in another one \
                 (register a location for it)"
            ));
        }
    }
    Ok(statements[0].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    fn columns() -> Vec<Column> {
        let c = |name: &str, db_type: &str, arrow: DataType| Column {
            name: name.to_owned(),
            db_type: db_type.to_owned(),
            not_null: false,
            arrow,
        };
        vec![
            c("amount", "double precision", DataType::Float64),
            c("label", "text", DataType::Utf8),
            c("day", "date", DataType::Date32),
            c("id", "uuid", DataType::Utf8),
            c("flag", "boolean", DataType::Boolean),
            c("price", "numeric(12,2)", DataType::Decimal128(12, 2)),
        ]
    }

    #[test]
    fn only_filters_the_database_reads_as_datafusion_does_are_pushed() {
        let cols = columns();
        let pushed = |e: Expr| condition(Kind::Postgres, &cols, &e);
        assert_eq!(
            pushed(col("amount").gt(lit(5.5f64))).as_deref(),
            Some("\"amount\" > 5.5")
        );
        assert_eq!(
            pushed(lit(3i64).lt_eq(col("amount"))).as_deref(),
            Some("\"amount\" >= 3")
        );
        assert_eq!(
            pushed(col("label").eq(lit("it's"))).as_deref(),
            Some("\"label\" = 'it''s'")
        );
        // Collations order and compare text their own way.
        assert_eq!(pushed(col("label").gt(lit("m"))), None);
        assert_eq!(pushed(col("label").not_eq(lit("m"))), None);
        assert_eq!(pushed(Expr::Not(Box::new(col("label").eq(lit("m"))))), None);
        // A literal of another type, or a function, stays in DataFusion.
        assert_eq!(pushed(col("amount").gt(lit("5"))), None);
        assert_eq!(
            pushed(datafusion::functions::expr_fn::abs(col("amount")).gt(lit(1.0f64))),
            None
        );
        assert_eq!(
            pushed(col("amount").is_null().or(col("amount").lt(lit(0.0f64)))).as_deref(),
            Some("(\"amount\" IS NULL OR \"amount\" < 0.0)")
        );
        assert_eq!(
            condition(
                Kind::MySql,
                &cols,
                &col("label").in_list(vec![lit("a"), lit("b\\")], false)
            )
            .as_deref(),
            Some("CAST(`label` AS CHAR) IN ('a', 'b\\\\')")
        );
        // A uuid (or json...) reads a text literal as its own type, and fails on other text.
        assert_eq!(pushed(col("id").eq(lit("not-a-uuid"))), None);
        assert_eq!(
            pushed(col("flag").eq(lit(true))).as_deref(),
            Some("\"flag\" = TRUE")
        );
        // MySQL and SQLite compare the value as read: SQLite's 'abc' in an INTEGER column
        // reads as 0, a boolean is any integer, a decimal travels as text.
        let sqlite = |e: Expr| condition(Kind::Sqlite, &cols, &e);
        assert_eq!(
            sqlite(col("amount").lt(lit(5.0f64))).as_deref(),
            Some("CAST(\"amount\" AS REAL) < 5.0")
        );
        assert_eq!(sqlite(col("flag").eq(lit(true))), None);
        assert_eq!(sqlite(col("price").gt(lit(1i64))), None);
        assert_eq!(
            sqlite(col("label").is_null()).as_deref(),
            Some("CAST(\"label\" AS TEXT) IS NULL")
        );
    }
}
