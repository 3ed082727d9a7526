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

/// How often an executor says it is alive, and how long the scheduler waits before it takes an
/// executor for dead and runs its tasks elsewhere (Ballista's defaults, 60 s and 180 s, would
/// leave a job waiting minutes for a killed executor).
const HEARTBEAT_SECONDS: u64 = 5;
const EXECUTOR_TIMEOUT_SECONDS: u64 = 20;

/// Runs a scheduler on `listen` until the process ends.
pub async fn scheduler(listen: SocketAddr) -> Result<(), String> {
    use ballista_scheduler::cluster::BallistaCluster;
    use ballista_scheduler::config::SchedulerConfig;
    let config = SchedulerConfig {
        bind_host: listen.ip().to_string(),
        external_host: listen.ip().to_string(),
        bind_port: listen.port(),
        scheduling_policy: TaskSchedulingPolicy::PullStaged,
        executor_timeout_seconds: EXECUTOR_TIMEOUT_SECONDS,
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
    let (host, port) = options
        .scheduler
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            format!(
                "--scheduler {}: expected HOST:PORT, e.g. 10.0.0.5:50050",
                options.scheduler
            )
        })?;
    let defaults = ExecutorProcessConfig::default();
    let config = ExecutorProcessConfig {
        bind_host: options.listen.ip().to_string(),
        external_host: Some(options.listen.ip().to_string()),
        port: options.listen.port(),
        scheduler_host: host,
        scheduler_port: port,
        scheduler_connect_timeout_seconds: 30,
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        work_dir: options
            .work_dir
            .as_ref()
            .map(|d| d.to_string_lossy().into_owned()),
        vcores: options.tasks.unwrap_or(defaults.vcores),
        executor_heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        ..defaults
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| format!("the executor: {e}"))
}
