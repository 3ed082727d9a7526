//! Fuzzing the SQL of governed reads (issue 19): whatever statement a reader sends, the limits,
//! the table-name extraction and the read-only check finish without panicking, and a statement
//! within the limits plans (or is refused) on a thread with the server's stack size — a stack
//! overflow aborts this test process, as it would abort the server.

use mesh_engine::query;
use mesh_testkit::fuzz;

const TOKENS: &[&str] = &[
    "SELECT ",
    "FROM ",
    "WHERE ",
    " JOIN ",
    " ON ",
    "UNION ALL ",
    "WITH c AS (",
    ")",
    "(",
    ",",
    " + 1",
    " * ",
    "::BIGINT",
    " AS x",
    "CASE WHEN 1 THEN ",
    " END",
    "'",
    "\"",
    "--",
    "/*",
    "*/",
    ";",
    "ecommerce.orders",
    "generate_series(1, 3)",
    "array_agg(",
    "repeat('x', 3)",
    " #> '{a}'",
    " IN (1, 2)",
    " BETWEEN 1 AND 2",
    " OVER (PARTITION BY a)",
    "EXPLAIN ",
    "COPY ",
    "CREATE TABLE t ",
    "INSERT INTO t ",
    "VALUES (1)",
    "$1",
    "@",
    "\\",
    "\u{0}",
    "\u{1F600}",
    "1e999",
    "-",
    "NOT ",
    "IS NULL",
    "LIKE '%'",
    "ORDER BY 1",
    "LIMIT 1",
];

/// The threads that serve requests have this stack (`mesh serve`'s runtime).
const SERVER_STACK: usize = 8 << 20;

fn check(sql: &str) {
    let limited = query::within_limits(sql);
    let _ = query::read_only(sql);
    let named = query::named(sql);
    if limited.is_err() {
        assert!(
            named.is_empty(),
            "a statement past the limits names no table"
        );
        return;
    }
    if sql.len() > 4_000 {
        return;
    }
    let sql = sql.to_owned();
    std::thread::Builder::new()
        .stack_size(SERVER_STACK)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if query::read_only(&sql).is_ok()
                    && let Ok(ctx) = query::session(&[], &sql).await
                {
                    let _ = query::schema_of(&ctx, &sql).await;
                }
            });
        })
        .unwrap()
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

#[test]
fn governed_read_sql_never_panics_or_overflows() {
    fuzz::campaign("sql", fuzz::cases(400), TOKENS, check);
}

/// Found by the campaign above: a statement of nested constructs the parser tries one way and
/// then another — `CASE`, `CAST(`, `POSITION(`, `ARRAY[`, `SUBSTRING(`... — that never closes
/// makes it backtrack at every level: 20 unclosed `CASE WHEN 1 THEN` (340 bytes) took 15 s to
/// refuse, 16 `POSITION(` 100 s, each level doubling or tripling it, on a server thread no
/// timeout can interrupt. Such nesting is refused from the tokens, before parsing; nesting
/// that real queries use is read.
#[test]
fn deep_keyword_nesting_is_refused_before_the_parser_backtracks() {
    for (what, sql) in [
        (
            "CASE",
            format!("SELECT {} 1", "CASE WHEN 1 THEN ".repeat(30)),
        ),
        ("CAST(", format!("SELECT {} 1", "CAST(".repeat(30))),
        ("POSITION(", format!("SELECT {} 1", "POSITION(".repeat(30))),
        ("ARRAY[", format!("SELECT {} 1", "ARRAY[".repeat(30))),
        (
            "SUBSTRING(",
            format!("SELECT {} 1", "SUBSTRING(".repeat(30)),
        ),
        ("TRY_CAST(", format!("SELECT {} 1", "TRY_CAST(".repeat(30))),
    ] {
        let e = query::within_limits(&sql).expect_err(what).to_string();
        assert!(e.contains("nests"), "{what}: {e}");
        assert!(query::named(&sql).is_empty());
    }
    // What queries do: nested a few deep, or many side by side.
    for sql in [
        "SELECT CASE WHEN a > 1 THEN CASE WHEN b THEN 'x' ELSE 'y' END ELSE 'z' END AS c FROM t"
            .to_owned(),
        "SELECT CAST(CAST(CAST(x AS INT) AS BIGINT) AS VARCHAR) AS c FROM t".to_owned(),
        "SELECT coalesce(nullif(trim(lower(upper(substring(x, 1, 3)))), ''), 'none') AS c FROM t"
            .to_owned(),
        format!(
            "SELECT {} FROM t",
            (0..200)
                .map(|i| format!("CASE WHEN c{i} THEN CAST(c{i} AS INT) END AS x{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ] {
        assert!(query::within_limits(&sql).is_ok(), "{sql}");
    }
}
