//! The stores the suite runs on: a fresh SQLite file, and a fresh PostgreSQL database per test.
//! [`on_every_backend!`] turns each case of the suite into one test per backend, named
//! `sqlite_<case>` and `postgres_<case>`, so a failure on one never hides the other's result.

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

/// A fresh, migrated SQLite catalog in a temporary folder.
pub(crate) async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("catalog.db");
    let path = path.to_str().expect("utf-8 temp path").to_owned();
    let sqlite = SqliteStore::open(&path).await.expect("open SQLite catalog");
    TestStore {
        name: "sqlite",
        store: Arc::new(sqlite),
        url: format!("sqlite://{path}"),
        _dir: Some(dir),
    }
}

/// A fresh, migrated PostgreSQL database on the server `MESH_TEST_POSTGRES_URL` names; `None`
/// (with a notice) without one, a failure under `CI=true`.
pub(crate) async fn postgres() -> Option<TestStore> {
    let url = postgres_url()?;
    let (store, url) = fresh_postgres(&url).await;
    Some(TestStore {
        name: "postgres",
        store: Arc::new(store),
        url,
        _dir: None,
    })
}

/// One test per backend for each case: `sqlite_<case>` and `postgres_<case>`, each on a fresh
/// catalog. A case is `async fn case(t: TestStore)`.
macro_rules! on_every_backend {
    ($($case:ident),+ $(,)?) => {
        pastey::paste! {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn [<sqlite_ $case>]() {
                    $case($crate::backends::sqlite().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn [<postgres_ $case>]() {
                    if let Some(t) = $crate::backends::postgres().await {
                        $case(t).await;
                    }
                }
            )+
        }
    };
}
pub(crate) use on_every_backend;

fn postgres_url() -> Option<String> {
    match std::env::var("MESH_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                !mesh_testkit::ci(),
                "CI=true but MESH_TEST_POSTGRES_URL is not set: the PostgreSQL backend must be tested"
            );
            notice(
                "notice: MESH_TEST_POSTGRES_URL not set; the postgres_* tests pass without running",
            );
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

/// Prints once past the test harness's capture: a skipped backend must be seen.
fn notice(message: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| mesh_testkit::notice(message));
}
