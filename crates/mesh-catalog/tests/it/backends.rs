//! The stores the suite runs on: a fresh SQLite file, and a fresh PostgreSQL database per test.

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;

use mesh_catalog::store::{CatalogStore, PostgresStore, SqliteStore};

/// A store and what keeps it alive (the temporary directory of a SQLite file).
pub(crate) struct TestStore {
    pub(crate) name: &'static str,
    pub(crate) store: Arc<dyn CatalogStore>,
    _dir: Option<tempfile::TempDir>,
}

/// Every backend available here, each empty and migrated.
pub(crate) async fn all() -> Vec<TestStore> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("catalog.db");
    let sqlite = SqliteStore::open(path.to_str().expect("utf-8 temp path"))
        .await
        .expect("open SQLite catalog");
    let mut stores = vec![TestStore {
        name: "sqlite",
        store: Arc::new(sqlite),
        _dir: Some(dir),
    }];
    if let Some(url) = postgres_url() {
        stores.push(TestStore {
            name: "postgres",
            store: Arc::new(fresh_postgres(&url).await),
            _dir: None,
        });
    }
    stores
}

fn postgres_url() -> Option<String> {
    match std::env::var("MESH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "CI=true but MESH_TEST_POSTGRES_URL is not set: the PostgreSQL backend must be tested"
            );
            notice("notice: MESH_TEST_POSTGRES_URL not set; catalog tests run on SQLite only");
            None
        }
    }
}

/// A new, empty database on the server `url` points at.
async fn fresh_postgres(url: &str) -> PostgresStore {
    use sqlx::Connection;
    let name = format!("mesh_test_{:016x}", rand_id());
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to MESH_TEST_POSTGRES_URL");
    // `name` is ours: hex digits after a fixed prefix.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let (base, _) = url.rsplit_once('/').expect("URL names a database");
    PostgresStore::open(&format!("{base}/{name}"))
        .await
        .expect("open PostgreSQL catalog")
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Prints past the test harness's capture: a skipped backend must be seen.
fn notice(message: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            let _ = writeln!(std::fs::File::from(fd), "{message}");
        }
    });
}
