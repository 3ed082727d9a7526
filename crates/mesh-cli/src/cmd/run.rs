//! `mesh run [DIR]`: write-audit-publish of a product's output port. The product's latest
//! published version runs: `transform.sql` over its sources (files) and input ports (the
//! upstream ports' current snapshots, read at their pinned Delta versions), the result written as
//! uncommitted Delta files under the workspace's storage, the port's contract checked on exactly
//! those files, and the commit made — and the catalog's snapshot moved — only if no blocking
//! check fails. A run left open by a process that died is settled first, from the Delta log.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use mesh_engine::pipeline::{self, Begun, Ledger, OpenRun, RunEnd, RunPlan};
use mesh_model::source::Node;

use crate::client::{Client, Failure};
use crate::files::load_bundle;
use crate::output::{self, ERROR, LOCATION, OK, WARNING, paint};
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The product folder (its descriptor, contracts and transform.sql).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Where the transform runs: `in-process` (DataFusion, all cores), `ballista` (a Ballista
    /// scheduler and executor in this process), or `ballista://HOST:PORT` (a cluster's
    /// scheduler, see `mesh cluster`).
    #[arg(long, default_value = "in-process", value_parser = ExecutorArg::parse)]
    executor: ExecutorArg,
    /// Also send the run's OpenLineage events to this endpoint (e.g. Marquez's
    /// http://host:5000/api/v1/lineage); they always go to the catalog.
    #[arg(long, env = "MESH_OPENLINEAGE_URL", value_name = "URL")]
    openlineage_url: Option<String>,
    /// Read incremental sources in full and replace the port's table, as on a first run.
    #[arg(long)]
    full_refresh: bool,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ExecutorArg {
    InProcess,
    #[cfg(feature = "ballista")]
    Ballista,
    #[cfg(feature = "ballista")]
    Cluster(String),
}

impl ExecutorArg {
    fn parse(value: &str) -> Result<ExecutorArg, String> {
        match value {
            "in-process" => Ok(ExecutorArg::InProcess),
            #[cfg(feature = "ballista")]
            "ballista" => Ok(ExecutorArg::Ballista),
            #[cfg(feature = "ballista")]
            other if other.starts_with("ballista://") => {
                let at = &other["ballista://".len()..];
                match mesh_engine::cluster::host_port(at) {
                    Some(_) => Ok(ExecutorArg::Cluster(at.to_owned())),
                    None => Err(format!(
                        "`{other}`: expected ballista://HOST:PORT, the address of `mesh cluster scheduler`"
                    )),
                }
            }
            #[cfg(feature = "ballista")]
            other => Err(format!(
                "`{other}`: expected in-process, ballista, or ballista://HOST:PORT"
            )),
            #[cfg(not(feature = "ballista"))]
            other => Err(format!(
                "`{other}`: this mesh runs transforms in-process only (Ballista needs a build with the `ballista` feature)"
            )),
        }
    }

    fn executor(&self) -> pipeline::Executor {
        match self {
            ExecutorArg::InProcess => pipeline::Executor::InProcess,
            #[cfg(feature = "ballista")]
            ExecutorArg::Ballista => pipeline::Executor::BallistaStandalone,
            #[cfg(feature = "ballista")]
            ExecutorArg::Cluster(at) => pipeline::Executor::Ballista(at.clone()),
        }
    }
}

/// The catalog (its database, or a server) as the pipeline's ledger.
struct CatalogLedger {
    client: Client,
    /// Where else OpenLineage events go.
    openlineage: Option<(String, reqwest::Client)>,
}

fn message(e: Failure) -> String {
    e.to_string()
}

#[async_trait::async_trait]
impl Ledger for CatalogLedger {
    async fn begin(&self, plan: &RunPlan) -> Result<Begun, String> {
        let start = mesh_service::pipeline::run_start(plan);
        self.client
            .begin_run(&start)
            .await
            .map(|r| Begun {
                run: r.id,
                location: r.location,
            })
            .map_err(message)
    }

    async fn committing(&self, run: &str, delta_version: i64) -> Result<(), String> {
        self.client
            .committing_run(run, delta_version)
            .await
            .map(|_| ())
            .map_err(message)
    }

    async fn finish(&self, run: &str, end: &RunEnd) -> Result<(), String> {
        let end = mesh_service::pipeline::run_end(end);
        self.client
            .finish_run(run, &end)
            .await
            .map(|_| ())
            .map_err(message)
    }

    async fn open_runs(&self, product: &str, port: &str) -> Result<Vec<OpenRun>, String> {
        self.client
            .runs(product, Some(port), true, 1000)
            .await
            .map(|runs| {
                runs.into_iter()
                    .map(|r| OpenRun {
                        id: r.id,
                        owner: r.owner,
                        heartbeat_at: r.heartbeat_at,
                        location: r.location,
                    })
                    .collect()
            })
            .map_err(message)
    }

    async fn settle(&self, run: &str, delta_version: Option<i64>) -> Result<(), String> {
        self.client
            .settle_run(run, delta_version)
            .await
            .map(|_| ())
            .map_err(message)
    }

    async fn heartbeat(&self, run: &str) -> Result<(), String> {
        self.client
            .heartbeat_run(run)
            .await
            .map(|_| ())
            .map_err(message)
    }

    async fn lineage(&self, event: &serde_json::Value) -> Result<(), String> {
        self.client.ingest_lineage(event).await.map_err(message)?;
        // An external endpoint that fails is reported, not fatal: the catalog has the event.
        if let Some((url, http)) = &self.openlineage {
            let sent = http.post(url).json(event).send().await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => output::warning(&format!(
                    "OpenLineage endpoint {url} answered {} to the {} event",
                    r.status(),
                    event["eventType"].as_str().unwrap_or("run")
                )),
                Err(e) => output::warning(&format!("OpenLineage endpoint {url}: {e}")),
            }
        }
        Ok(())
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let bundle = load_bundle(&args.dir)?;
    let product = crate::cmd::policy::parse(&bundle.descriptor.text, &bundle.descriptor.path)?;
    let text = |n: &Node, k: &str| n.get(k).and_then(Node::as_str).map(str::to_owned);
    let id = text(&product, "id").context("the descriptor has no `id`")?;
    if !id.contains('.') {
        bail!("product id `{id}` is not domain.product");
    }
    let outputs = product
        .get("outputPorts")
        .and_then(Node::as_seq)
        .unwrap_or_default();
    let [output] = outputs else {
        bail!(
            "{}: mesh run writes one output port per product for now; this one has {}",
            bundle.descriptor.path,
            outputs.len()
        );
    };
    let port = text(output, "name").context("the output port has no `name`")?;
    let contract_id = text(output, "contractId").context("the output port has no `contractId`")?;
    let contract_file = bundle
        .contracts
        .iter()
        .find(|c| {
            crate::cmd::policy::parse(&c.text, &c.path)
                .ok()
                .and_then(|n| text(&n, "id"))
                == Some(contract_id.clone())
        })
        .with_context(|| {
            format!(
                "the contract {contract_id} is not in {}",
                args.dir.display()
            )
        })?;
    let contract = match mesh_model::parse_document(&contract_file.path, &contract_file.text) {
        mesh_model::document::AnyParsed::Contract(parsed) => parsed.model,
        _ => None,
    }
    .with_context(|| format!("{} is not a readable data contract", contract_file.path))?;
    let transform_path = args.dir.join("transform.sql");
    let transform = std::fs::read_to_string(&transform_path)
        .with_context(|| format!("cannot read {}", transform_path.display()))?;
    let partition_by = mesh_service::pipeline::partitions(&contract);

    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        // What the sources read: the published version's, each in the product folder or under a
        // location registered for the domain (never another domain's tables).
        let allowed = client
            .pipeline_sources(&id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut inputs = mesh_service::pipeline::sources(allowed, Some(&args.dir))?;
        // What each input port reads, and which columns: decided by the catalog's one rule on
        // reads (another domain's port only through a grant to this product), locally or by the
        // server.
        let resolved = client
            .pipeline_inputs(&id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        inputs.extend(mesh_service::pipeline::input_ports(resolved)?);
        let openlineage = args
            .openlineage_url
            .as_ref()
            .map(|url| (url.clone(), reqwest::Client::new()));
        let ledger = CatalogLedger {
            client,
            openlineage,
        };
        let settled = pipeline::settle(&ledger, &id, &port, mesh_service::pipeline::dead).await?;
        if settled > 0 {
            output::warning(&format!(
                "settled {settled} run(s) of {id}.{port} left open by a process that is gone"
            ));
        }
        let plan = RunPlan {
            executor: args.executor.executor(),
            product: id.clone(),
            port: port.clone(),
            contract: contract_id.clone(),
            team: product
                .get("team")
                .and_then(|t| t.get("name"))
                .and_then(Node::as_str)
                .map(str::to_owned),
            // The catalog names the port's table.
            location: String::new(),
            inputs,
            owner: mesh_service::pipeline::owner(),
            full_refresh: args.full_refresh,
        };
        let spinner = Spinner::start(args.output == OutputFormat::Text);
        let stage = |s: pipeline::Stage| spinner.stage(&s.to_string());
        let started = std::time::SystemTime::now();
        let report =
            pipeline::run_port(&ledger, &plan, &transform, &contract, &partition_by, &stage)
                .await
                .map_err(|e| anyhow::anyhow!("{id}: {e}"));
        drop(spinner);
        let report = report?;
        // Old versions go once the product's retention has passed.
        if let (Some(days), Some(version)) = (
            mesh_service::pipeline::retention_days(&product.to_json()),
            report.delta_version,
        ) {
            match pipeline::vacuum(&report.location, days, version).await {
                Ok(0) => {}
                Ok(n) => output::warning(&format!(
                    "vacuumed {n} file(s) older than the product's {days}-day retention"
                )),
                Err(e) => output::warning(&format!("vacuum: {e}")),
            }
        }
        // Files a killed run wrote and never committed: this run is the port's only open one,
        // so whatever no version names and is older than it is garbage.
        if report.delta_version.is_some() {
            match pipeline::sweep_orphans(&report.location, started).await {
                Ok(0) => {}
                Ok(n) => output::warning(&format!(
                    "removed {n} file(s) a stopped run wrote and never committed"
                )),
                Err(e) => output::warning(&format!("sweeping uncommitted files: {e}")),
            }
        }
        print(args.output, &id, &port, &report.location, &report)
    })
}

/// What a run is doing, on standard error when it is a terminal.
struct Spinner(Option<indicatif::ProgressBar>);

impl Spinner {
    fn start(text: bool) -> Spinner {
        use std::io::IsTerminal as _;
        if !text || !std::io::stderr().is_terminal() {
            return Spinner(None);
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Spinner(Some(bar))
    }

    fn stage(&self, what: &str) {
        if let Some(bar) = &self.0 {
            bar.set_message(what.to_owned());
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

fn print(
    format: OutputFormat,
    id: &str,
    port: &str,
    location: &str,
    report: &pipeline::RunReport,
) -> anyhow::Result<Outcome> {
    let outcome = if report.delta_version.is_some() || report.skipped.is_some() {
        Outcome::Ok
    } else {
        Outcome::Findings
    };
    if format == OutputFormat::Json {
        let doc = serde_json::json!({
            "run": report.run,
            "product": id,
            "port": port,
            "location": location,
            "published": report.delta_version.is_some(),
            "deltaVersion": report.delta_version,
            "skipped": report.skipped,
            "rows": report.rows_out,
            "rowsIn": report.rows_in,
            "spilledBytes": report.spilled_bytes,
            "streamed": report.streamed,
            "bytes": report.bytes_out,
            "blocking": report.blocking.iter().map(|r| &r.check.key).collect::<Vec<_>>(),
            "checks": report.checks.iter().map(|r| serde_json::json!({
                "key": r.check.key, "result": r.outcome, "reason": r.reason,
            })).collect::<Vec<_>>(),
        });
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(outcome);
    }
    let mut out = output::stdout();
    for r in &report.checks {
        let (style, word) = match r.outcome {
            mesh_engine::Outcome::Passed => (OK, "passed"),
            mesh_engine::Outcome::Skipped => (LOCATION, "skipped"),
            mesh_engine::Outcome::Warning => (WARNING, "warning"),
            mesh_engine::Outcome::Failed => (ERROR, "failed"),
            mesh_engine::Outcome::Error => (ERROR, "error"),
        };
        if r.outcome != mesh_engine::Outcome::Passed {
            writeln!(
                out,
                "{:<8} {}  {}",
                paint(style, word),
                r.check.key,
                r.reason.as_deref().unwrap_or_default()
            )?;
        }
    }
    let passed = report
        .checks
        .iter()
        .filter(|r| r.outcome == mesh_engine::Outcome::Passed)
        .count();
    match report.delta_version {
        None if report.skipped.is_some() => writeln!(
            out,
            "{} {id}.{port}: {}; nothing was committed and readers keep the current snapshot (run {})",
            paint(OK, "Nothing new"),
            report.skipped.as_deref().unwrap_or_default(),
            report.run
        )?,
        Some(v) => writeln!(
            out,
            "{} {id}.{port}: Delta version {v}, {} rows, {} bytes ({passed} of {} checks passed; run {})",
            paint(OK, "Published"),
            report.rows_out,
            report.bytes_out,
            report.checks.len(),
            report.run
        )?,
        None => writeln!(
            out,
            "{} {id}.{port}: {} blocking check(s) failed on the new data; nothing was committed and readers keep the previous snapshot (run {})",
            paint(ERROR, "Not published"),
            report.blocking.len(),
            report.run
        )?,
    }
    writeln!(out, "  table: {location}")?;
    out.flush()?;
    Ok(outcome)
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunsArgs {
    /// The product: `domain.product`.
    product: String,
    /// Only this output port's runs.
    #[arg(long)]
    port: Option<String>,
    /// How many runs, newest first.
    #[arg(long, default_value_t = 20)]
    limit: i64,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// `mesh runs PRODUCT`: the snapshot readers get of each output port, and the run history.
pub(crate) fn runs(args: &RunsArgs) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let result = async {
            let snapshots = client.snapshots(&args.product).await?;
            let runs = client
                .runs(&args.product, args.port.as_deref(), false, args.limit)
                .await?;
            Ok::<_, Failure>((snapshots, runs))
        }
        .await;
        let result = result
            .map(|(snapshots, runs)| serde_json::json!({ "snapshots": snapshots, "runs": runs }));
        crate::cmd::show::finish(result, args.output, |doc| {
            let mut out = output::stdout();
            for s in doc["snapshots"].as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "{} {}@{} (major {}): Delta version {} from run {} at {}",
                    paint(LOCATION, "snapshot"),
                    s["port"].as_str().unwrap_or_default(),
                    s["version"].as_str().unwrap_or_default(),
                    s["major"],
                    s["delta_version"],
                    s["run"].as_str().unwrap_or_default(),
                    s["updated_at"].as_str().unwrap_or_default()
                )?;
            }
            for r in doc["runs"].as_array().into_iter().flatten() {
                let state = r["state"].as_str().unwrap_or_default();
                let style = match state {
                    "succeeded" => OK,
                    "failed" => ERROR,
                    _ => WARNING,
                };
                writeln!(
                    out,
                    "{}  {:<10} {} {}  rows {}  {}",
                    r["started_at"].as_str().unwrap_or_default(),
                    paint(style, state),
                    r["port"].as_str().unwrap_or_default(),
                    r["id"].as_str().unwrap_or_default(),
                    r["rows_out"],
                    r["error"].as_str().unwrap_or_default()
                )?;
            }
            out.flush()?;
            Ok(())
        })
    })
}

#[derive(Debug, clap::Args)]
pub(crate) struct RollbackArgs {
    /// The product: `domain.product`.
    product: String,
    /// The earlier run whose snapshot becomes current again.
    #[arg(long = "to", value_name = "RUN")]
    to: String,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// `mesh rollback PRODUCT --to RUN`: the port's snapshot goes back to what that run published —
/// a Delta RESTORE committed as a run of its own, so Delta readers and the catalog agree.
pub(crate) fn rollback(args: &RollbackArgs) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let target = match client.run(&args.to).await {
            Ok(run) => run,
            Err(e) => {
                output::error(&e.to_string());
                return Ok(Outcome::Findings);
            }
        };
        let problem = if target.product != args.product {
            Some(format!("run {} is a run of {}, not {}", target.id, target.product, args.product))
        } else if target.state != "succeeded" {
            Some(format!("run {} {}; only a published snapshot can be rolled back to", target.id, target.state))
        } else {
            None
        };
        if let Some(problem) = problem {
            output::error(&problem);
            return Ok(Outcome::Findings);
        }
        let Some(to_version) = target.delta_version else {
            bail!("run {} has no Delta version", target.id);
        };
        let ledger = CatalogLedger {
            client,
            openlineage: None,
        };
        pipeline::settle(&ledger, &target.product, &target.port, mesh_service::pipeline::dead).await?;
        let plan = RunPlan {
            executor: pipeline::Executor::InProcess,
            product: target.product.clone(),
            port: target.port.clone(),
            contract: String::new(),
            team: None,
            location: target.location.clone(),
            inputs: Vec::new(),
            owner: mesh_service::pipeline::owner(),
            full_refresh: false,
        };
        let version = pipeline::rollback(&ledger, &plan, to_version)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", target.product))?;
        if args.output == OutputFormat::Json {
            let doc = serde_json::json!({
                "product": target.product, "port": target.port, "restored": to_version,
                "deltaVersion": version, "from_run": target.id,
            });
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &doc)?;
            writeln!(out)?;
        } else {
            let mut out = output::stdout();
            writeln!(
                out,
                "{} {}.{} to the snapshot of run {} (Delta version {to_version}), as Delta version {version}",
                paint(OK, "Rolled back"),
                target.product,
                target.port,
                target.id
            )?;
            out.flush()?;
        }
        Ok(Outcome::Ok)
    })
}
