//! The stores the suite runs on: a fresh SQLite file, and a fresh PostgreSQL database per test.

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;

use mesh_catalog::store::{CatalogStore, PostgresStore, SqliteStore};

/// A store and what keeps it alive (the temporary directory of a SQLite file).
pub(crate) struct TestStore {
    pub(crate) name: &'static str,
    pub(crate) store: Arc<dyn CatalogStore>,
    /// How to open the same database again, as another process would.
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    /// A second, independent store (its own connections) on the same database.
    pub(crate) async fn reopen(&self) -> Arc<dyn CatalogStore> {
        mesh_catalog::store::open(&self.url)
            .await
            .expect("reopen the catalog")
    }
}

/// Every backend available here, each empty and migrated.
pub(crate) async fn all() -> Vec<TestStore> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("catalog.db");
    let path = path.to_str().expect("utf-8 temp path").to_owned();
    let sqlite = SqliteStore::open(&path).await.expect("open SQLite catalog");
    let mut stores = vec![TestStore {
        name: "sqlite",
        store: Arc::new(sqlite),
        url: format!("sqlite://{path}"),
        _dir: Some(dir),
    }];
    if let Some(url) = postgres_url() {
        let (store, url) = fresh_postgres(&url).await;
        stores.push(TestStore {
            name: "postgres",
            store: Arc::new(store),
            url,
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
async fn fresh_postgres(url: &str) -> (PostgresStore, String) {
    let name = format!("mesh_test_{:016x}", rand_id());
    let url = PostgresStore::create_database(url, &name, false)
        .await
        .expect("create a test database through MESH_TEST_POSTGRES_URL");
    let store = PostgresStore::open(&url)
        .await
        .expect("open PostgreSQL catalog");
    (store, url)
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
