//! `mesh run [DIR]`: write-audit-publish of a product's output port. The product's latest
//! published version runs: `transform.sql` over its sources (files) and input ports (the
//! upstream ports' current snapshots, read at their pinned Delta versions), the result written as
//! uncommitted Delta files under the workspace's storage, the port's contract checked on exactly
//! those files, and the commit made — and the catalog's snapshot moved — only if no blocking
//! check fails. A run left open by a process that died is settled first, from the Delta log.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use mesh_catalog::runs::{RunEnd as CatalogEnd, RunInput, RunStart};
use mesh_engine::Location;
use mesh_engine::mask::Mask;
use mesh_engine::pipeline::{self, Begun, Input, Ledger, OpenRun, RunEnd, RunPlan};
use mesh_model::names::props;
use mesh_model::source::Node;
use mesh_service::ResolvedSource;

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
    /// Where the transform runs: DataFusion in this process, or Ballista (standalone: a
    /// scheduler and an executor in this process).
    #[arg(long, value_enum, default_value_t = ExecutorArg::InProcess)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ExecutorArg {
    InProcess,
    #[cfg(feature = "ballista")]
    Ballista,
}

impl ExecutorArg {
    fn executor(self) -> pipeline::Executor {
        match self {
            ExecutorArg::InProcess => pipeline::Executor::InProcess,
            #[cfg(feature = "ballista")]
            ExecutorArg::Ballista => pipeline::Executor::BallistaStandalone,
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
        let start = RunStart {
            product: plan.product.clone(),
            port: plan.port.clone(),
            location: (!plan.location.is_empty()).then(|| plan.location.clone()),
            inputs: plan
                .inputs
                .iter()
                .map(|i| RunInput {
                    name: i.name.clone(),
                    product: i.product.clone(),
                    location: i.location.target.clone(),
                    delta_version: i.delta_version,
                })
                .collect(),
            owner: plan.owner.clone(),
        };
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
        let end = CatalogEnd {
            delta_version: end.delta_version,
            rows_in: end.rows_in,
            rows_out: end.rows_out,
            bytes_out: end.bytes_out,
            checks: end.checks.clone(),
            error: end.error.clone(),
            skipped: end.skipped.clone(),
        };
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

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Whether the process that owns an open run is gone: on this host, its pid is not running;
/// elsewhere, it has not been heard of for ten minutes.
fn dead(run: &OpenRun) -> bool {
    let (run_host, pid) = run
        .owner
        .rsplit_once(':')
        .unwrap_or((run.owner.as_str(), ""));
    if run_host == host() {
        return match pid.parse::<u32>() {
            Ok(pid) => pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists(),
            Err(_) => true,
        };
    }
    chrono::DateTime::parse_from_rfc3339(&run.heartbeat_at)
        .map(|at| chrono::Utc::now().signed_duration_since(at) > chrono::Duration::minutes(10))
        .unwrap_or(true)
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
    let partition_by = partitions(&contract);

    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        // What the sources read: the published version's, each in the product folder or under a
        // location registered for the domain (never another domain's tables).
        let allowed = client
            .pipeline_sources(&id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut inputs = sources(allowed, &args.dir)?;
        // What each input port reads, and which columns: decided by the catalog's one rule on
        // reads (another domain's port only through a grant to this product), locally or by the
        // server.
        let resolved = client
            .pipeline_inputs(&id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for input in resolved {
            inputs.push(Input {
                location: Location::from_path(&input.location, Some("delta"))?,
                delta_version: Some(input.delta_version),
                masks: input
                    .masks
                    .iter()
                    .filter_map(|(c, m)| Some((c.clone(), Mask::parse(m)?)))
                    .collect(),
                mask: input
                    .masks
                    .get("*")
                    .and_then(|m| Mask::parse(m))
                    .unwrap_or_default(),
                keys: input.mask_keys(),
                columns: input.columns,
                name: input.name,
                product: Some(input.product),
                contract: Some(input.contract),
                database: None,
            });
        }
        let openlineage = args
            .openlineage_url
            .as_ref()
            .map(|url| (url.clone(), reqwest::Client::new()));
        let ledger = CatalogLedger {
            client,
            openlineage,
        };
        let settled = pipeline::settle(&ledger, &id, &port, dead).await?;
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
            owner: format!("{}:{}", host(), std::process::id()),
            full_refresh: args.full_refresh,
        };
        let spinner = Spinner::start(args.output == OutputFormat::Text);
        let stage = |s: pipeline::Stage| spinner.stage(s.as_str());
        let started = std::time::SystemTime::now();
        let report =
            pipeline::run_port(&ledger, &plan, &transform, &contract, &partition_by, &stage)
                .await
                .map_err(|e| anyhow::anyhow!("{id}: {e}"));
        drop(spinner);
        let report = report?;
        // Old versions go once the product's retention has passed.
        if let (Some(days), Some(version)) = (retention_days(&product), report.delta_version) {
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

/// The product's `retentionDays` custom property.
fn retention_days(product: &Node) -> Option<i64> {
    product
        .get("customProperties")
        .and_then(Node::as_seq)
        .unwrap_or_default()
        .iter()
        .find(|cp| cp.get("property").and_then(Node::as_str) == Some(props::RETENTION_DAYS))
        .and_then(|cp| cp.get("value"))
        .and_then(|v| match &v.value {
            mesh_model::source::Value::Int(i) => Some(*i),
            _ => None,
        })
}

/// The columns the contract partitions by (`partitioned: true`, in `partitionKeyPosition`
/// order).
fn partitions(contract: &mesh_model::odcs::Contract) -> Vec<String> {
    let mut keyed: Vec<(i64, String)> = contract
        .schema
        .first()
        .map(|o| {
            o.properties
                .iter()
                .filter(|p| p.partitioned == Some(true))
                .map(|p| {
                    (
                        p.partition_key_position.unwrap_or(i64::MAX),
                        p.name().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    keyed.sort();
    keyed.into_iter().map(|(_, n)| n).collect()
}

/// A product's sources as the catalog allowed them (from its published version): a relative
/// path must stay in the product folder once links are resolved, and an absolute one under the
/// registered location the catalog found it under.
fn sources(allowed: Vec<ResolvedSource>, dir: &Path) -> anyhow::Result<Vec<Input>> {
    let root = std::fs::canonicalize(dir)
        .with_context(|| format!("cannot open the product folder {}", dir.display()))?;
    let mut out = Vec::new();
    for source in allowed {
        // A database (the catalog checked its URL is under a location registered for the
        // domain): a table or a read-only query there.
        if let Some(relation) = database_relation(&source)? {
            let target = mesh_engine::db::Target::from_url(&source.path, &source.name)
                .map_err(|e| anyhow::anyhow!("source `{}`: {}", source.name, e.reason))?;
            out.push(Input {
                location: Location::from_path(&source.path, Some("parquet"))?,
                name: source.name,
                product: None,
                contract: None,
                delta_version: None,
                columns: None,
                masks: Vec::new(),
                mask: Mask::Null,
                keys: Default::default(),
                database: Some(mesh_engine::db::source::DbSource {
                    target,
                    relation,
                    incremental: source.incremental.clone(),
                }),
            });
            continue;
        }
        // Absolute, so the run records (and OpenLineage names) where the data really is.
        let local = source.path.strip_prefix("file://").unwrap_or(&source.path);
        let path = match (&source.location_url, local.contains("://")) {
            (_, true) => source.path.clone(),
            (Some(location), false) => {
                let name = source.location.as_deref().unwrap_or_default();
                let folder = location.strip_prefix("file://").with_context(|| {
                    format!(
                        "source `{}`: location `{name}` ({location}) is not a folder",
                        source.name
                    )
                })?;
                let folder = std::fs::canonicalize(folder)
                    .with_context(|| format!("location `{name}`: cannot read {folder}"))?;
                confine(&source.name, Path::new(local), &folder, &|real| {
                    format!(
                        "leads to {}, outside location `{name}` ({location}); a platform admin registers locations with: mesh location add NAME URL --domain DOMAIN",
                        real.display()
                    )
                })?
            }
            (None, false) => confine(&source.name, &root.join(&source.path), &root, &|real| {
                format!(
                    "leads to {}, outside the product folder; data elsewhere is read from a registered location: mesh location add NAME URL --domain DOMAIN",
                    real.display()
                )
            })?,
        };
        out.push(Input {
            name: source.name,
            product: None,
            contract: None,
            location: Location::from_path(&path, source.format.as_deref())?,
            delta_version: None,
            columns: None,
            masks: Vec::new(),
            mask: Mask::Null,
            keys: Default::default(),
            database: None,
        });
    }
    Ok(out)
}

/// What a database source reads: its `table`, or its `query` (one read-only query); `None` for
/// a source of files.
fn database_relation(
    source: &ResolvedSource,
) -> anyhow::Result<Option<mesh_engine::db::source::Relation>> {
    use mesh_engine::db::source::Relation;
    let scheme = source
        .path
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase());
    let database = matches!(
        scheme.as_deref(),
        Some("postgres" | "postgresql" | "mysql" | "mariadb" | "sqlite")
    );
    if !database {
        if source.table.is_some() || source.query.is_some() || source.incremental.is_some() {
            bail!(
                "source `{}`: `table`, `query` and `incremental` are for database sources (postgres://, mysql://, sqlite://)",
                source.name
            );
        }
        return Ok(None);
    }
    match (&source.table, &source.query) {
        (Some(table), None) => Ok(Some(Relation::Table(table.clone()))),
        (None, Some(query)) => Ok(Some(Relation::Query(query.clone()))),
        _ => bail!(
            "source `{}` reads a database: give it a `table` or a `query` (not both)",
            source.name
        ),
    }
}

/// `path` (a file, a folder or a glob) as the engine should read it, once everything it could
/// read — the path itself, and every file and folder under it, links followed — is known to be
/// inside `root`; `outside` says why not. (Links are checked now; one made between this check and
/// the read is not: keep writes to source folders to their domain.)
fn confine(
    source: &str,
    path: &Path,
    root: &Path,
    outside: &dyn Fn(&Path) -> String,
) -> anyhow::Result<String> {
    /// Past this many entries under one source, the walk stops (a source that large belongs in
    /// object storage).
    const MAX_ENTRIES: usize = 1_000_000;
    let text = path.display().to_string();
    // A glob reads what matches under the folder before its first pattern character.
    let (base, pattern) = match text.find(['*', '?', '[']) {
        Some(i) => {
            let cut = text[..i].rfind('/').unwrap_or(0);
            (text[..cut].to_owned(), text[cut..].to_owned())
        }
        None => (text.clone(), String::new()),
    };
    let real = std::fs::canonicalize(&base)
        .with_context(|| format!("source `{source}`: cannot read {base}"))?;
    if !real.starts_with(root) {
        bail!("source `{source}` {}", outside(&real));
    }
    let mut folders = vec![real.clone()];
    let mut seen = std::collections::HashSet::new();
    let mut entries = 0;
    while let Some(folder) = folders.pop() {
        if !folder.is_dir() || !seen.insert(folder.clone()) {
            continue;
        }
        for entry in std::fs::read_dir(&folder)
            .with_context(|| format!("source `{source}`: cannot read {}", folder.display()))?
        {
            entries += 1;
            if entries > MAX_ENTRIES {
                bail!("source `{source}` holds more than {MAX_ENTRIES} files and folders");
            }
            let entry = entry
                .with_context(|| format!("source `{source}`: cannot read {}", folder.display()))?;
            // A link that leads nowhere reads nothing.
            let Ok(target) = std::fs::canonicalize(entry.path()) else {
                continue;
            };
            if !target.starts_with(root) {
                bail!(
                    "source `{source}`: {} {}",
                    entry.path().display(),
                    outside(&target)
                );
            }
            if target.is_dir() {
                folders.push(target);
            }
        }
    }
    Ok(format!("{}{pattern}", real.display()))
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
        pipeline::settle(&ledger, &target.product, &target.port, dead).await?;
        let plan = RunPlan {
            executor: pipeline::Executor::InProcess,
            product: target.product.clone(),
            port: target.port.clone(),
            contract: String::new(),
            team: None,
            location: target.location.clone(),
            inputs: Vec::new(),
            owner: format!("{}:{}", host(), std::process::id()),
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
