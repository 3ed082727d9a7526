//! A Ballista cluster from this binary: `mesh cluster scheduler` and `mesh cluster executor` run
//! Ballista 55's own scheduler and executor (the `ballista-scheduler` and `ballista-executor`
//! crates), so that every process of a cluster is the same build as the `mesh run` that submits
//! to it: Ballista refuses a client of another version, and the plans mesh sends carry its own
//! table providers, which only a process built with mesh's codecs can read.
//!
//! Tasks are pulled by the executors (Ballista's pull-staged policy): an executor needs to reach
//! the scheduler and the other executors' Flight port (for shuffles), and no one needs to reach
//! an executor's task port.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::SessionConfigExt as _;
use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::prelude::SessionConfig;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use object_store::ObjectStore;

use crate::pinned::PinnedFiles;

/// How often an executor says it is alive, and how long the scheduler waits before it takes an
/// executor for dead and runs its tasks elsewhere (Ballista's defaults, 60 s and 180 s, would
/// leave a job waiting minutes for a killed executor).
const HEARTBEAT_SECONDS: u64 = 5;
const EXECUTOR_TIMEOUT_SECONDS: u64 = 20;

/// Runs a scheduler on `listen` until the process ends.
pub async fn scheduler(listen: SocketAddr) -> Result<(), String> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    let stores = Arc::new(EnvStores::default());
    let config = SchedulerConfig {
        bind_host: listen.ip().to_string(),
        external_host: listen.ip().to_string(),
        bind_port: listen.port(),
        scheduling_policy: TaskSchedulingPolicy::PullStaged,
        executor_timeout_seconds: EXECUTOR_TIMEOUT_SECONDS,
        expire_dead_executor_interval_seconds: HEARTBEAT_SECONDS,
        override_config_producer: Some(Arc::new(session_config)),
        override_session_builder: Some(Arc::new(move |config| {
            let state = ballista_core::utils::default_session_builder(config)?;
            let runtime = runtime(Arc::clone(&stores) as _, None)?;
            Ok(SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(runtime)
                .build())
        })),
        override_logical_codec: Some(Arc::new(MeshLogicalCodec::default())),
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| format!("the scheduler's state: {e}"))?;
    ballista_scheduler::scheduler_process::start_server(cluster, listen, Arc::new(config))
        .await
        .map_err(|e| format!("the scheduler on {listen}: {e}"))
}

/// Where an executor listens and whom it works for.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `HOST:PORT`.
    pub scheduler: String,
    /// The address of its Flight port (shuffle data and results are fetched from it).
    pub listen: SocketAddr,
    /// Where shuffle files go (a temporary directory when `None`).
    pub work_dir: Option<std::path::PathBuf>,
    /// Tasks at once (the cores, when `None`).
    pub tasks: Option<usize>,
    /// Bytes its tasks share before they spill (Ballista's default, 70% of the machine's
    /// memory, when `None`).
    pub memory: Option<usize>,
}

/// `HOST:PORT` split, for the address of a scheduler (`None` when it is not one).
pub fn host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    Some((host, port.parse().ok()?)).filter(|(host, _)| !host.is_empty())
}

/// Runs an executor until the process ends or its scheduler tells it to stop.
pub async fn executor(options: ExecutorOptions) -> Result<(), String> {
    use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
    if options.listen.port() == 0 {
        return Err(format!(
            "--listen {}: an executor needs a fixed port (the scheduler tells the others where to fetch from)",
            options.listen
        ));
    }
    let (host, port) = host_port(&options.scheduler).ok_or_else(|| {
        format!(
            "--scheduler {}: expected HOST:PORT, e.g. 10.0.0.5:50050",
            options.scheduler
        )
    })?;
    let defaults = ExecutorProcessConfig::default();
    let stores: Arc<dyn ObjectStoreRegistry> = Arc::new(EnvStores::default());
    let work_dir = options.work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: options.listen.ip().to_string(),
        external_host: Some(options.listen.ip().to_string()),
        port: options.listen.port(),
        scheduler_host: host.to_owned(),
        scheduler_port: port,
        scheduler_connect_timeout_seconds: 30,
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        work_dir: options
            .work_dir
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned()),
        vcores: options.tasks.unwrap_or(defaults.vcores),
        memory_pool_size: options
            .memory
            .map(|m| m as u64)
            .or(defaults.memory_pool_size),
        executor_heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        override_config_producer: Some(Arc::new(session_config)),
        override_runtime_producer: Some(Arc::new(move |_| {
            runtime(Arc::clone(&stores), work_dir.as_deref())
        })),
        override_logical_codec: Some(Arc::new(MeshLogicalCodec::default())),
        ..defaults
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| format!("the executor: {e}"))
}

/// The session configuration every process of a cluster starts from: Ballista's, with mesh's
/// codec (the submitter encodes plans with it, the scheduler decodes them).
///
/// Ballista's adaptive planner is off: with it (Ballista 55's default), a job whose executor dies
/// after finishing a map task never ends — the scheduler resets the lost task, runs it again,
/// and then refuses its result ("Can't find active stage to update stage outputs"), so the
/// submitter waits forever (upstream: apache/datafusion-ballista#1986, the adaptive path has no
/// executor-failure recovery yet). The static planner runs the lost tasks again and finishes.
pub fn session_config() -> SessionConfig {
    SessionConfig::new_with_ballista()
        .set_bool(
            ballista_core::config::BALLISTA_ADAPTIVE_PLANNER_ENABLED,
            false,
        )
        .with_ballista_logical_extension_codec(Arc::new(MeshLogicalCodec::default()))
}

/// The session a transform is submitted from, to a scheduler at `url` (`df://HOST:PORT`) or,
/// without one, to a scheduler and an executor started in this process.
pub async fn session(url: Option<&str>) -> Result<datafusion::prelude::SessionContext> {
    use ballista::prelude::SessionContextExt as _;
    use datafusion::prelude::SessionContext;
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(session_config())
        .with_runtime_env(runtime(Arc::new(EnvStores::default()), None)?)
        .build();
    match url {
        Some(url) => SessionContext::remote_with_state(url, state).await,
        None => SessionContext::standalone_with_state(state).await,
    }
}

/// A runtime whose object stores are `stores`, spilling to `spill` (the system's temporary
/// directory when `None`).
fn runtime(
    stores: Arc<dyn ObjectStoreRegistry>,
    spill: Option<&std::path::Path>,
) -> Result<Arc<RuntimeEnv>> {
    let mut builder = RuntimeEnvBuilder::new().with_object_store_registry(stores);
    if let Some(dir) = spill {
        builder = builder.with_temp_file_path(dir);
    }
    Ok(Arc::new(builder.build()?))
}

/// Object stores by URL, where an `s3://bucket` not registered yet is configured from this
/// process's `AWS_*` environment, as everywhere else in mesh. Credentials therefore never travel
/// in plans: each process of a cluster uses its own (environment, instance role).
#[derive(Debug, Default)]
pub struct EnvStores {
    known: DefaultObjectStoreRegistry,
}

impl ObjectStoreRegistry for EnvStores {
    fn register_store(
        &self,
        url: &url::Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &url::Url) -> Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &url::Url) -> Result<Arc<dyn ObjectStore>> {
        if let Ok(store) = self.known.get_store(url) {
            return Ok(store);
        }
        if !matches!(url.scheme(), "s3" | "s3a") {
            return self.known.get_store(url);
        }
        let bucket = url.host_str().unwrap_or_default();
        let store: Arc<dyn ObjectStore> = Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?,
        );
        let root = url::Url::parse(&format!("{}://{bucket}", url.scheme()))
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        self.known.register_store(&root, Arc::clone(&store));
        Ok(store)
    }
}

/// Ballista's logical codec, which also carries a pinned Delta snapshot's files
/// ([`PinnedFiles`]) to the scheduler. Everything else is Ballista's.
#[derive(Debug, Default)]
pub struct MeshLogicalCodec {
    ballista: BallistaLogicalExtensionCodec,
}

/// What a pinned snapshot's encoding starts with (Ballista's own encodings are protobuf).
const PINNED: &[u8] = b"mesh.pinned-delta.v1\n";

impl LogicalExtensionCodec for MeshLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match buf.strip_prefix(PINNED) {
            Some(listing) => Ok(Arc::new(PinnedFiles::decode(listing, schema)?)),
            None => self
                .ballista
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        match node.downcast_ref::<PinnedFiles>() {
            Some(pinned) => {
                buf.extend_from_slice(PINNED);
                buf.extend_from_slice(&pinned.encode()?);
                Ok(())
            }
            None => self
                .ballista
                .try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_port() {
        use super::host_port;
        assert_eq!(host_port("10.0.0.5:50050"), Some(("10.0.0.5", 50050)));
        assert_eq!(host_port("[::1]:50050"), Some(("[::1]", 50050)));
        for bad in ["", "nowhere", ":50050", "host:", "host:99999", "host:port"] {
            assert_eq!(host_port(bad), None, "{bad}");
        }
    }
}
