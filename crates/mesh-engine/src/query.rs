//! Governed reads: SQL over the output ports a reader may read, with authorization applied in
//! the plan. Only the ports the reader may read are tables (`domain.product`, or
//! `domain.product__port` for a product's other ports); each is registered as a projection of its
//! Delta snapshot in which every column outside the reader's grant is masked, so `SELECT *`,
//! joins, subqueries, CTEs and views all see the masked values — there is no other way to the
//! data. DDL, DML and other statements are refused, files cannot be named as tables, and there
//! is no `information_schema`.

use std::sync::Arc;

pub use datafusion::arrow;
pub use datafusion::arrow::datatypes::SchemaRef;
pub use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
pub use datafusion::common::ParamValues;
use datafusion::execution::context::SQLOptions;
pub use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionConfig;
pub use datafusion::prelude::SessionContext;
use mesh_model::names::TableName;

pub use crate::error::QueryError;
use crate::error::QueryError as E;
pub use crate::mask::{Mask, MaskKey, MaskKeys, masked};

/// An output port a reader may read, and how.
#[derive(Debug, Clone)]
pub struct Readable {
    pub domain: String,
    /// The table name in the domain's schema.
    pub table: String,
    /// The Delta table and the version readers get.
    pub location: String,
    pub delta_version: i64,
    /// The columns shown as they are; `None`: all.
    pub columns: Option<Vec<String>>,
    /// How a masked column is hidden: per column, else `mask`.
    pub masks: Vec<(String, Mask)>,
    pub mask: Mask,
    /// The keys of hashed columns (a mask whose key is missing is refused).
    pub keys: MaskKeys,
}

impl Readable {
    /// The table's name, as references in a query are matched against it.
    pub fn name(&self) -> TableName {
        TableName {
            domain: self.domain.clone(),
            table: self.table.clone(),
        }
    }
}

fn bare() -> SessionContext {
    bare_with(None)
}

fn bare_with(memory: Option<&Memory>) -> SessionContext {
    let config = SessionConfig::new()
        .with_information_schema(false)
        .with_default_catalog_and_schema("mesh", "public");
    match memory {
        None => SessionContext::new_with_config(config),
        Some(memory) => {
            let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
                .with_memory_pool(memory.for_query())
                .build_arc();
            match runtime {
                Ok(runtime) => SessionContext::new_with_config_rt(config, runtime),
                Err(_) => SessionContext::new_with_config(config),
            }
        }
    }
}

/// The memory governed reads may hold in their operators (hash tables of joins and aggregates,
/// sort buffers): all of them together at most the server's pool, each at most its own limit.
/// Sorts and aggregates spill to disk past it; what cannot spill fails with a
/// [`QueryError::Resources`] that names the limit, never the process.
#[derive(Debug, Clone)]
pub struct Memory {
    server: Arc<dyn datafusion::execution::memory_pool::MemoryPool>,
    per_query: usize,
}

impl Memory {
    pub fn new(server_bytes: usize, per_query_bytes: usize) -> Memory {
        use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(server_bytes.max(1 << 20)),
            std::num::NonZeroUsize::new(3).unwrap_or(std::num::NonZeroUsize::MIN),
        );
        Memory {
            server: Arc::new(pool),
            per_query: per_query_bytes.max(1 << 20),
        }
    }

    /// Bytes the server's pool holds now.
    pub fn reserved(&self) -> usize {
        self.server.reserved()
    }

    fn for_query(&self) -> Arc<dyn datafusion::execution::memory_pool::MemoryPool> {
        Arc::new(QueryPool {
            server: Arc::clone(&self.server),
            limit: self.per_query,
            used: std::sync::atomic::AtomicUsize::new(0),
        })
    }
}

/// One query's share of the server's pool.
#[derive(Debug)]
struct QueryPool {
    server: Arc<dyn datafusion::execution::memory_pool::MemoryPool>,
    limit: usize,
    used: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Display for QueryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a query's share of the server's memory, at most {} bytes",
            self.limit
        )
    }
}

impl datafusion::execution::memory_pool::MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "mesh-query"
    }

    fn register(&self, consumer: &datafusion::execution::memory_pool::MemoryConsumer) {
        self.server.register(consumer);
    }

    fn unregister(&self, consumer: &datafusion::execution::memory_pool::MemoryConsumer) {
        self.server.unregister(consumer);
    }

    fn grow(
        &self,
        reservation: &datafusion::execution::memory_pool::MemoryReservation,
        additional: usize,
    ) {
        self.server.grow(reservation, additional);
        self.used
            .fetch_add(additional, std::sync::atomic::Ordering::Relaxed);
    }

    fn shrink(
        &self,
        reservation: &datafusion::execution::memory_pool::MemoryReservation,
        shrink: usize,
    ) {
        self.server.shrink(reservation, shrink);
        let _ = self.used.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |used| Some(used.saturating_sub(shrink)),
        );
    }

    fn try_grow(
        &self,
        reservation: &datafusion::execution::memory_pool::MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        use std::sync::atomic::Ordering;
        let used = self.used.load(Ordering::Relaxed);
        if used.saturating_add(additional) > self.limit {
            return Err(datafusion::error::DataFusionError::ResourcesExhausted(
                format!(
                    "the query needs more than the {} MiB of memory one query may hold (MESH_QUERY_MEMORY)",
                    self.limit >> 20
                ),
            ));
        }
        self.server.try_grow(reservation, additional).map_err(|_| {
            datafusion::error::DataFusionError::ResourcesExhausted(
                "the server's queries hold all the memory they may (MESH_SERVER_MEMORY); try again shortly".to_owned(),
            )
        })?;
        self.used.fetch_add(additional, Ordering::Relaxed);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A session for `sql` in which, of `readable`, exactly the tables the query names exist,
/// masked as their grants say. (Opening only those keeps a query fast however many ports a
/// reader may read, and a broken table affects only the queries that name it.)
pub async fn session(readable: &[Readable], sql: &str) -> Result<SessionContext, QueryError> {
    let named = named(sql);
    let wanted: Vec<&Readable> = readable
        .iter()
        .filter(|r| named.iter().any(|n| r.name().is_named_by(n)))
        .collect();
    session_with(&wanted).await
}

/// The longest statement a governed read takes, in bytes.
pub const MAX_SQL_BYTES: usize = 1 << 20;

/// The most operators a governed read's statement may chain (binary and set operators, joins,
/// casts, subscripts). Each one is a level of the statement's tree; the SQL parser, its span
/// computation and the planner walk that tree recursively, and a few thousand levels overflow a
/// thread's stack and abort the process. Parentheses are bounded by the parser (50 deep).
pub const MAX_SQL_OPERATORS: usize = 1_000;

/// Refuses a statement too big or too deep to plan safely, from its tokens alone (the tokenizer
/// does not recurse), before anything builds its tree.
pub fn within_limits(sql: &str) -> Result<(), QueryError> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword as K;
    use datafusion::sql::sqlparser::tokenizer::{Token as T, Tokenizer};
    if sql.len() > MAX_SQL_BYTES {
        return Err(QueryError::Invalid(format!(
            "the statement is {} bytes; a governed read takes at most {MAX_SQL_BYTES}",
            sql.len()
        )));
    }
    // SQL that does not tokenize is left to the parser, which says where.
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Ok(());
    };
    // Every token that is not a name, a literal or punctuation that lists (`,`, `(`, `.`) can
    // join what is left of it to what is right of it: counted, so that no operator — a known
    // one or a dialect's — is left out.
    let operators = tokens
        .iter()
        .filter(|t| match t {
            T::Word(w) => matches!(
                w.keyword,
                K::AND
                    | K::OR
                    | K::XOR
                    | K::NOT
                    | K::UNION
                    | K::INTERSECT
                    | K::EXCEPT
                    | K::MINUS
                    | K::JOIN
                    | K::LIKE
                    | K::ILIKE
                    | K::SIMILAR
                    | K::REGEXP
                    | K::RLIKE
                    | K::IS
                    | K::IN
                    | K::BETWEEN
                    | K::COLLATE
                    | K::AT
                    | K::OVERLAPS
                    | K::DIV
                    | K::OPERATOR
            ),
            T::EOF
            | T::Number(..)
            | T::Char(_)
            | T::SingleQuotedString(_)
            | T::DoubleQuotedString(_)
            | T::TripleSingleQuotedString(_)
            | T::TripleDoubleQuotedString(_)
            | T::DollarQuotedString(_)
            | T::SingleQuotedByteStringLiteral(_)
            | T::DoubleQuotedByteStringLiteral(_)
            | T::TripleSingleQuotedByteStringLiteral(_)
            | T::TripleDoubleQuotedByteStringLiteral(_)
            | T::SingleQuotedRawStringLiteral(_)
            | T::DoubleQuotedRawStringLiteral(_)
            | T::TripleSingleQuotedRawStringLiteral(_)
            | T::TripleDoubleQuotedRawStringLiteral(_)
            | T::NationalStringLiteral(_)
            | T::QuoteDelimitedStringLiteral(_)
            | T::NationalQuoteDelimitedStringLiteral(_)
            | T::EscapedStringLiteral(_)
            | T::UnicodeStringLiteral(_)
            | T::HexStringLiteral(_)
            | T::Whitespace(_)
            | T::Comma
            | T::LParen
            | T::RParen
            | T::Period
            | T::SemiColon
            | T::RBracket
            | T::Placeholder(_) => false,
            _ => true,
        })
        .count();
    if operators > MAX_SQL_OPERATORS {
        return Err(QueryError::Invalid(format!(
            "the statement chains {operators} operators (joins, set operations, casts and operators); a governed read takes at most {MAX_SQL_OPERATORS}: split it, or use IN lists and temporary results"
        )));
    }
    let shape = Shape::of(&tokens);
    if shape.nesting > MAX_SQL_NESTING {
        return Err(QueryError::Invalid(format!(
            "the statement nests {} constructs that keywords open (CASE, CAST(, ARRAY[, ...) inside each other; a governed read takes at most {MAX_SQL_NESTING}",
            shape.nesting
        )));
    }
    if shape.set_operations > MAX_SQL_SET_OPERATIONS {
        return Err(QueryError::Invalid(format!(
            "the statement has {} set operations (UNION, INTERSECT, EXCEPT); a governed read takes at most {MAX_SQL_SET_OPERATIONS}",
            shape.set_operations
        )));
    }
    if shape.widest_from > MAX_SQL_TABLES {
        return Err(QueryError::Invalid(format!(
            "one FROM of the statement reads {} tables; a governed read takes at most {MAX_SQL_TABLES} in one FROM",
            shape.widest_from
        )));
    }
    if shape.ctes > MAX_SQL_CTES {
        return Err(QueryError::Invalid(format!(
            "the statement defines {} common table expressions; a governed read takes at most {MAX_SQL_CTES}",
            shape.ctes
        )));
    }
    Ok(())
}

/// The most tables one `FROM` may list (by commas and joins), and the most CTEs a statement
/// may define: DataFusion's SQL planner takes time quadratic in both (2,000 comma joins took 2.5
/// s to plan in a debug build, 2,000 chained CTEs 35 s), time a request would hold a server
/// thread for.
pub const MAX_SQL_TABLES: usize = 256;
pub const MAX_SQL_CTES: usize = 256;
/// The most set operations a statement may chain: each is a level of its plan, and planning
/// 1,000 took 2.5 s in a debug build.
pub const MAX_SQL_SET_OPERATIONS: usize = 250;

/// What makes a statement slow to plan, read from its tokens in one pass.
struct Shape {
    /// `UNION`, `INTERSECT` and `EXCEPT`.
    set_operations: usize,
    /// The most tables one `FROM` lists (commas and `JOIN`s at its own level of parentheses).
    widest_from: usize,
    /// CTEs (`name AS (`).
    ctes: usize,
    /// The most constructs a keyword opens (`CASE`, `CAST(`, `ARRAY[`, ...) open at once.
    nesting: usize,
}

/// How deep constructs that a keyword opens — `CASE ... END`, `CAST(`, `POSITION(`, `ARRAY[`
/// and every other keyword followed by a bracket — may nest. The SQL parser tries such a
/// construct one way, and on failure another, at every level: a statement nesting them without
/// closing them takes time exponential in the depth to refuse (20 `CASE WHEN 1 THEN`: 15 s; 16
/// `POSITION(`: 100 s), on a thread no timeout can interrupt.
pub const MAX_SQL_NESTING: usize = 10;

/// What a bracket or `CASE` opened, for [`Shape::nesting`].
#[derive(Clone, Copy, PartialEq)]
enum Opened {
    /// A bracket; `true` when a keyword opened it (`CAST(`).
    Bracket(bool),
    Case,
}

impl Shape {
    fn of(tokens: &[datafusion::sql::sqlparser::tokenizer::Token]) -> Shape {
        use datafusion::sql::sqlparser::keywords::Keyword as K;
        use datafusion::sql::sqlparser::tokenizer::Token as T;
        let mut shape = Shape {
            set_operations: 0,
            widest_from: 0,
            ctes: 0,
            nesting: 0,
        };
        let mut opened: Vec<Opened> = Vec::new();
        let mut keyword_opened = 0usize;
        let mut previous_keyword = false;
        // Per level of parentheses: the tables of the FROM being read there, if one is. The
        // outermost level stays, whatever the parentheses.
        let mut levels: Vec<Option<usize>> = vec![None];
        let mut previous_as = false;
        for token in tokens.iter().filter(|t| !matches!(t, T::Whitespace(_))) {
            if previous_as && matches!(token, T::LParen) {
                shape.ctes += 1;
            }
            previous_as = matches!(token, T::Word(w) if w.keyword == K::AS);
            match token {
                T::LParen | T::LBracket => {
                    opened.push(Opened::Bracket(previous_keyword));
                    keyword_opened += usize::from(previous_keyword);
                }
                T::RParen | T::RBracket => {
                    // Closes its bracket, and any CASE left open inside it.
                    while let Some(o) = opened.pop() {
                        if o != Opened::Bracket(false) {
                            keyword_opened -= 1;
                        }
                        if matches!(o, Opened::Bracket(_)) {
                            break;
                        }
                    }
                }
                T::Word(w) if w.keyword == K::CASE => {
                    opened.push(Opened::Case);
                    keyword_opened += 1;
                }
                T::Word(w) if w.keyword == K::END && opened.last() == Some(&Opened::Case) => {
                    opened.pop();
                    keyword_opened -= 1;
                }
                _ => {}
            }
            shape.nesting = shape.nesting.max(keyword_opened);
            previous_keyword =
                matches!(token, T::Word(w) if w.keyword != K::NoKeyword && w.quote_style.is_none());
            match token {
                T::LParen => levels.push(None),
                T::RParen if levels.len() > 1 => {
                    levels.pop();
                }
                _ => {
                    if let Some(level) = levels.last_mut() {
                        match token {
                            T::Word(w) => match w.keyword {
                                K::FROM => *level = Some(1),
                                K::JOIN => *level = level.map(|n| n + 1),
                                K::UNION | K::INTERSECT | K::EXCEPT => {
                                    shape.set_operations += 1;
                                    *level = None;
                                }
                                K::WHERE
                                | K::GROUP
                                | K::HAVING
                                | K::ORDER
                                | K::LIMIT
                                | K::OFFSET
                                | K::WINDOW
                                | K::QUALIFY
                                | K::SELECT => *level = None,
                                _ => {}
                            },
                            T::Comma => *level = level.map(|n| n + 1),
                            _ => {}
                        }
                    }
                }
            }
            let here = levels.last().copied().flatten().unwrap_or(0);
            shape.widest_from = shape.widest_from.max(here);
        }
        shape
    }
}

fn explain_refused() -> QueryError {
    QueryError::Invalid(
        "`EXPLAIN` is not supported: a governed read's plan holds how columns are masked and where tables are stored; ask the owning domain or the platform team".into(),
    )
}

/// Whether `sql` is a read: one query (`SELECT`, `WITH`, `VALUES`). Anything else — DDL, DML,
/// `SET`, `COPY`, external tables — is refused with what it is, and so is `EXPLAIN`: a governed
/// read's plan holds its masking (a keyed hash's pads are the masking key) and the storage
/// paths of the tables it reads, neither of which is the reader's to see. SQL that does not
/// parse, or holds several statements, is left to planning, which says why.
pub fn read_only(sql: &str) -> Result<(), QueryError> {
    use datafusion::sql::parser::{DFParser, Statement as DF};
    use datafusion::sql::sqlparser::ast::Statement as S;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    within_limits(sql)?;
    let Ok(statements) = DFParser::parse_sql_with_dialect(sql, &GenericDialect {}) else {
        return Ok(());
    };
    let (1, Some(statement)) = (statements.len(), statements.front()) else {
        return Ok(());
    };
    let read = match statement {
        DF::Statement(s) => match &**s {
            S::Query(_) => true,
            S::Explain { .. } => return Err(explain_refused()),
            _ => false,
        },
        DF::Explain(_) => return Err(explain_refused()),
        DF::CreateExternalTable(_) | DF::CopyTo(_) | DF::Reset(_) => false,
    };
    if read {
        return Ok(());
    }
    let what: Vec<String> = sql
        .split_whitespace()
        .take(2)
        .map(str::to_ascii_uppercase)
        .collect();
    Err(QueryError::Invalid(format!(
        "`{}` is not supported: a governed read is one query (SELECT, WITH, VALUES); DDL, DML and other statements are refused",
        what.join(" ")
    )))
}

/// The tables `sql` names (see [`tables_named`]), without the table functions it calls
/// (`generate_series(1, 10)` is not a table). None for a statement beyond [`within_limits`]
/// (which [`read_only`] refuses).
pub fn named(sql: &str) -> Vec<String> {
    if within_limits(sql).is_err() {
        return Vec::new();
    }
    let ctx = bare();
    let state = ctx.state();
    let functions = state.table_functions();
    tables_named(&ctx, sql)
        .into_iter()
        .filter(|n| n.contains('.') || !functions.contains_key(n.as_str()))
        .collect()
}

/// A session in which exactly `readable` exist, masked as their grants say.
pub async fn session_with(readable: &[&Readable]) -> Result<SessionContext, QueryError> {
    session_within(readable, None).await
}

/// [`session_with`], its operators' memory drawn from `memory`.
pub async fn session_within(
    readable: &[&Readable],
    memory: Option<&Memory>,
) -> Result<SessionContext, QueryError> {
    let ctx = bare_with(memory);
    let internal = |e: datafusion::error::DataFusionError| E::Internal(e.to_string());
    let catalog = ctx
        .catalog("mesh")
        .ok_or_else(|| E::Internal("no catalog `mesh`".into()))?;
    for &r in readable {
        let schema = match catalog.schema(&r.domain) {
            Some(s) => s,
            None => {
                let s: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
                catalog
                    .register_schema(&r.domain, Arc::clone(&s))
                    .map_err(internal)?;
                s
            }
        };
        let at = crate::error::DeltaError::at(&r.location);
        let mut table = crate::delta::open(&r.location).await?;
        table
            .load_version(r.delta_version.max(0) as u64)
            .await
            .map_err(&at)?;
        table.update_datafusion_session(&ctx.state()).map_err(&at)?;
        let provider = table.table_provider().await.map_err(E::of)?;
        let df = ctx.read_table(provider).map_err(E::of)?;
        let mask_of = |name: &str| {
            r.masks
                .iter()
                .find(|(c, _)| c == name)
                .map_or(r.mask, |(_, m)| *m)
        };
        let view = masked(df, r.columns.as_deref(), &mask_of, &r.keys)
            .map_err(internal)?
            .into_view();
        schema
            .register_table(r.table.clone(), view)
            .map_err(internal)?;
    }
    Ok(ctx)
}

/// The schema of each of `readable` as its reader sees it, in order.
pub async fn table_schemas(readable: &[&Readable]) -> Result<Vec<SchemaRef>, QueryError> {
    let ctx = session_with(readable).await?;
    let mut out = Vec::with_capacity(readable.len());
    for r in readable {
        let table =
            datafusion::common::TableReference::full("mesh", r.domain.as_str(), r.table.as_str());
        let df = ctx.table(table).await.map_err(E::of)?;
        out.push(Arc::new(df.schema().as_arrow().clone()));
    }
    Ok(out)
}

/// Runs one read-only query: no DDL, no DML, no `SET`/`COPY` or other statements.
pub async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
    Ok(run_with_schema(ctx, sql).await?.1)
}

/// [`run`], with the result's schema (known even when there are no rows).
pub async fn run_with_schema(
    ctx: &SessionContext,
    sql: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
    let df = plan(ctx, sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(E::of)?;
    Ok((schema, batches))
}

/// The schema `sql`'s result will have, without running it.
pub async fn schema_of(ctx: &SessionContext, sql: &str) -> Result<SchemaRef, QueryError> {
    Ok(Arc::new(plan(ctx, sql).await?.schema().as_arrow().clone()))
}

/// The most parameters a statement may have (PostgreSQL's limit).
pub const MAX_PARAMETERS: usize = 65_535;

/// The result schema of `sql` and the types of its parameters (`$1`, `$2`, ... in order; `None`
/// where the statement does not say), without running it: what a prepared statement describes.
pub async fn describe(
    ctx: &SessionContext,
    sql: &str,
) -> Result<
    (
        SchemaRef,
        Vec<Option<datafusion::arrow::datatypes::DataType>>,
    ),
    QueryError,
> {
    let df = plan(ctx, sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let types = df.logical_plan().get_parameter_types().map_err(E::of)?;
    let mut numbered: Vec<(usize, Option<datafusion::arrow::datatypes::DataType>)> = types
        .into_iter()
        .filter_map(|(id, t)| Some((id.trim_start_matches('$').parse::<usize>().ok()?, t)))
        .collect();
    numbered.sort_by_key(|(n, _)| *n);
    let count = numbered.last().map_or(0, |(n, _)| *n);
    // PostgreSQL's own limit: a `$4000000000` names no parameter anyone can bind.
    if count > MAX_PARAMETERS {
        return Err(QueryError::Invalid(format!(
            "the statement names parameter ${count}; at most ${MAX_PARAMETERS}"
        )));
    }
    let mut out = vec![None; count];
    for (n, t) in numbered {
        if n >= 1 {
            out[n - 1] = t;
        }
    }
    Ok((schema, out))
}

/// [`run`], streamed: batches come as the plan produces them.
pub async fn stream(
    ctx: &SessionContext,
    sql: &str,
) -> Result<(SchemaRef, SendableRecordBatchStream), QueryError> {
    stream_with(ctx, sql, None).await
}

/// [`stream`] of a statement with parameters (`$1`, ...), bound to `params`.
pub async fn stream_with(
    ctx: &SessionContext,
    sql: &str,
    params: Option<ParamValues>,
) -> Result<(SchemaRef, SendableRecordBatchStream), QueryError> {
    let mut df = plan(ctx, sql).await?;
    if let Some(params) = params {
        df = df.with_param_values(params).map_err(E::of)?;
    }
    let schema = Arc::new(df.schema().as_arrow().clone());
    let stream = df.execute_stream().await.map_err(E::of)?;
    Ok((schema, stream))
}

/// The plan of a read-only statement: DDL, DML, `SET`, `COPY` and the like are refused.
async fn plan(
    ctx: &SessionContext,
    sql: &str,
) -> Result<datafusion::dataframe::DataFrame, QueryError> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await.map_err(E::of)?;
    // Deep plans (many joins, chained CTEs) overflow the optimizer's recursion: refused before
    // it runs. The depth is measured with DataFusion's own traversal, which grows its stack.
    let depth = plan_depth(df.logical_plan()).map_err(E::of)?;
    if depth > MAX_PLAN_DEPTH {
        return Err(QueryError::Invalid(format!(
            "the statement plans {depth} levels deep (joins, CTEs reading CTEs, subqueries); a governed read takes at most {MAX_PLAN_DEPTH}"
        )));
    }
    Ok(df)
}

/// How deep a governed read's plan may be: far beyond a 50-table join, far below what the
/// optimizer's recursion can take on a server thread.
pub const MAX_PLAN_DEPTH: usize = 500;

/// The depth of `plan`, subqueries included.
fn plan_depth(plan: &datafusion::logical_expr::LogicalPlan) -> datafusion::error::Result<usize> {
    use datafusion::common::tree_node::{TreeNodeRecursion, TreeNodeVisitor};
    use datafusion::logical_expr::LogicalPlan;
    #[derive(Default)]
    struct Depth {
        now: usize,
        max: usize,
    }
    impl<'n> TreeNodeVisitor<'n> for Depth {
        type Node = LogicalPlan;
        fn f_down(&mut self, _: &'n LogicalPlan) -> datafusion::error::Result<TreeNodeRecursion> {
            self.now += 1;
            self.max = self.max.max(self.now);
            Ok(TreeNodeRecursion::Continue)
        }
        fn f_up(&mut self, _: &'n LogicalPlan) -> datafusion::error::Result<TreeNodeRecursion> {
            self.now -= 1;
            Ok(TreeNodeRecursion::Continue)
        }
    }
    let mut depth = Depth::default();
    plan.visit_with_subqueries(&mut depth)?;
    Ok(depth.max)
}

/// The tables a query names, as `schema.table` (or `table`, or `catalog.schema.table`).
pub fn tables_named(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let state = ctx.state();
    let Ok(statement) = state.sql_to_statement(sql, &datafusion::config::Dialect::Generic) else {
        return Vec::new();
    };
    state
        .resolve_table_references(&statement)
        .map(|refs| {
            refs.into_iter()
                .map(|r| match (r.catalog(), r.schema()) {
                    (Some(catalog), Some(schema)) => format!("{catalog}.{schema}.{}", r.table()),
                    (None, Some(schema)) => format!("{schema}.{}", r.table()),
                    _ => r.table().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `batch` with its string and binary views holding only the bytes they show. A filter over
/// Parquet data yields views into whole data pages; sent as they are (Arrow IPC, Flight), each
/// batch would carry every page it points into: 200 MB for 100k short rows out of 10M.
pub fn compact(batch: RecordBatch) -> Result<RecordBatch, QueryError> {
    use datafusion::arrow::array::{Array, ArrayRef, AsArray};
    let needs = batch.columns().iter().any(|c| {
        matches!(
            c.data_type(),
            datafusion::arrow::datatypes::DataType::Utf8View
                | datafusion::arrow::datatypes::DataType::BinaryView
        )
    });
    if !needs {
        return Ok(batch);
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| -> ArrayRef {
            if let Some(v) = c.as_string_view_opt() {
                Arc::new(v.gc())
            } else if let Some(v) = c.as_binary_view_opt() {
                Arc::new(v.gc())
            } else {
                Arc::clone(c)
            }
        })
        .collect();
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| E::Internal(e.to_string()))
}

/// Record batches as JSON rows.
pub fn json_rows(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>, QueryError> {
    let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    writer.write_batches(&refs).map_err(|e| encoding(&e))?;
    writer.finish().map_err(|e| encoding(&e))?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&bytes).map_err(|e| encoding(&e))
}

/// How query results are returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultFormat {
    /// `{columns, rows}`.
    #[default]
    Json,
    /// With a header line.
    Csv,
    /// The Arrow IPC stream format (`application/vnd.apache.arrow.stream`).
    Arrow,
    Parquet,
}

impl ResultFormat {
    pub fn parse(text: &str) -> Option<ResultFormat> {
        match text {
            "json" => Some(ResultFormat::Json),
            "csv" => Some(ResultFormat::Csv),
            "arrow" => Some(ResultFormat::Arrow),
            "parquet" => Some(ResultFormat::Parquet),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ResultFormat::Json => "application/json",
            ResultFormat::Csv => "text/csv",
            ResultFormat::Arrow => "application/vnd.apache.arrow.stream",
            ResultFormat::Parquet => "application/vnd.apache.parquet",
        }
    }
}

/// Results in a binary or text format, all at once.
pub fn encode(
    batches: &[RecordBatch],
    schema: SchemaRef,
    format: ResultFormat,
) -> Result<Vec<u8>, QueryError> {
    let mut encoder = Encoder::new(format, schema)?;
    let mut out = Vec::new();
    for batch in batches {
        out.extend(encoder.push(batch)?);
    }
    out.extend(encoder.finish()?);
    Ok(out)
}

/// Encodes a result batch by batch, so it can be sent as it is produced: each [`Encoder::push`]
/// returns the bytes ready so far, [`Encoder::finish`] the rest. JSON is `{columns, rows}`
/// (nulls omitted, as Arrow's JSON writer does), CSV has a header line.
pub struct Encoder {
    buf: Shared,
    inner: Inner,
}

enum Inner {
    Json { header: Option<Vec<u8>>, rows: u64 },
    Csv(Box<datafusion::arrow::csv::Writer<Shared>>),
    Arrow(Box<datafusion::arrow::ipc::writer::StreamWriter<Shared>>),
    Parquet(Box<datafusion::parquet::arrow::ArrowWriter<Shared>>),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let format = match self.inner {
            Inner::Json { .. } => "json",
            Inner::Csv(_) => "csv",
            Inner::Arrow(_) => "arrow",
            Inner::Parquet(_) => "parquet",
        };
        f.debug_struct("Encoder").field("format", &format).finish()
    }
}

/// A buffer the writers write into and the encoder drains.
#[derive(Clone, Default)]
struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

impl Shared {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut b| std::mem::take(&mut *b))
            .unwrap_or_default()
    }
}

impl std::io::Write for Shared {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("result buffer poisoned"))?
            .extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn encoding(e: &dyn std::fmt::Display) -> QueryError {
    E::Internal(format!("encoding the result: {e}"))
}

impl Encoder {
    pub fn new(format: ResultFormat, schema: SchemaRef) -> Result<Encoder, QueryError> {
        let buf = Shared::default();
        let inner = match format {
            ResultFormat::Json => {
                let columns: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
                let mut header = b"{\"columns\":".to_vec();
                serde_json::to_writer(&mut header, &columns).map_err(|e| encoding(&e))?;
                header.extend_from_slice(b",\"rows\":[");
                Inner::Json {
                    header: Some(header),
                    rows: 0,
                }
            }
            ResultFormat::Csv => Inner::Csv(Box::new(
                datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(buf.clone()),
            )),
            ResultFormat::Arrow => Inner::Arrow(Box::new(
                datafusion::arrow::ipc::writer::StreamWriter::try_new(buf.clone(), &schema)
                    .map_err(|e| encoding(&e))?,
            )),
            ResultFormat::Parquet => Inner::Parquet(Box::new(
                datafusion::parquet::arrow::ArrowWriter::try_new(buf.clone(), schema, None)
                    .map_err(|e| encoding(&e))?,
            )),
        };
        Ok(Encoder { buf, inner })
    }

    /// Encodes `batch`; the bytes that are ready.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, QueryError> {
        match &mut self.inner {
            Inner::Json { header, rows } => {
                let mut out = header.take().unwrap_or_default();
                let mut writer =
                    datafusion::arrow::json::LineDelimitedWriter::new(Vec::with_capacity(1024));
                writer.write(batch).map_err(|e| encoding(&e))?;
                writer.finish().map_err(|e| encoding(&e))?;
                for line in writer.into_inner().split(|&b| b == b'\n') {
                    if line.is_empty() {
                        continue;
                    }
                    if *rows > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(line);
                    *rows += 1;
                }
                return Ok(out);
            }
            Inner::Csv(w) => w.write(batch).map_err(|e| encoding(&e))?,
            Inner::Arrow(w) => w.write(batch).map_err(|e| encoding(&e))?,
            Inner::Parquet(w) => w.write(batch).map_err(|e| encoding(&e))?,
        }
        Ok(self.buf.take())
    }

    /// The bytes that end the result.
    pub fn finish(self) -> Result<Vec<u8>, QueryError> {
        match self.inner {
            Inner::Json { header, .. } => {
                let mut out = header.unwrap_or_default();
                out.extend_from_slice(b"]}");
                return Ok(out);
            }
            Inner::Csv(w) => drop(w),
            Inner::Arrow(mut w) => w.finish().map_err(|e| encoding(&e))?,
            Inner::Parquet(w) => {
                w.close().map_err(|e| encoding(&e))?;
            }
        }
        Ok(self.buf.take())
    }
}
