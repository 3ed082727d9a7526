//! `mesh cluster scheduler|executor`: the processes of a Ballista cluster, from this binary (so
//! they are the same build as the `mesh run --executor ballista://HOST:PORT` that submits).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use crate::Outcome;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run a Ballista scheduler: `mesh run --executor ballista://HOST:PORT` submits to it.
    Scheduler {
        /// Where it listens (gRPC, for submitters and executors).
        #[arg(long, default_value = "127.0.0.1:50050", env = "MESH_CLUSTER_LISTEN")]
        listen: SocketAddr,
    },
    /// Run a Ballista executor: it asks the scheduler for tasks and serves its results and
    /// shuffle data to the others on its Flight port.
    Executor {
        /// The scheduler, HOST:PORT.
        #[arg(long, env = "MESH_CLUSTER_SCHEDULER")]
        scheduler: String,
        /// Its Flight port, as the others reach it (a fixed port).
        #[arg(long, default_value = "127.0.0.1:50051", env = "MESH_CLUSTER_LISTEN")]
        listen: SocketAddr,
        /// Where shuffle files go (a temporary directory by default).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
        /// Tasks at once (the cores, by default).
        #[arg(long)]
        tasks: Option<usize>,
        /// Memory its tasks share (`8GiB`, `512MiB`); past it they spill to the work
        /// directory. By default 70% of the machine's memory (Ballista's rule).
        #[arg(long, value_name = "SIZE", value_parser = crate::workspace::parse_size)]
        memory_limit: Option<usize>,
    },
}

/// What a cluster process says on stderr: Ballista's own log (jobs, stages, tasks, executors
/// joining and lost), at the level `RUST_LOG` names (`error`, `warn`, `info` — the default —,
/// `debug`, `trace`). A long-running process that says nothing cannot be operated.
struct StderrLog(log::LevelFilter);

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.0
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
            let _ = writeln!(
                std::io::stderr().lock(),
                "{now} {:<5} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

fn start_logging() {
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|l| l.parse::<log::LevelFilter>().ok())
        .unwrap_or(log::LevelFilter::Info);
    if log::set_boxed_logger(Box::new(StderrLog(level))).is_ok() {
        log::set_max_level(level);
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    start_logging();
    let runtime = crate::runtime()?;
    let result = match &args.command {
        Command::Scheduler { listen } => {
            writeln!(
                anstream::stderr(),
                "mesh cluster scheduler: listening on {listen} (ballista://{listen})"
            )?;
            runtime.block_on(mesh_engine::cluster::scheduler(*listen))
        }
        Command::Executor {
            scheduler,
            listen,
            work_dir,
            tasks,
            memory_limit,
        } => {
            writeln!(
                anstream::stderr(),
                "mesh cluster executor: working for {scheduler}, Flight on {listen}"
            )?;
            runtime.block_on(mesh_engine::cluster::executor(
                mesh_engine::cluster::ExecutorOptions {
                    scheduler: scheduler.clone(),
                    listen: *listen,
                    work_dir: work_dir.clone(),
                    tasks: *tasks,
                    memory: *memory_limit,
                },
            ))
        }
    };
    result.map_err(anyhow::Error::msg)?;
    Ok(Outcome::Ok)
}
