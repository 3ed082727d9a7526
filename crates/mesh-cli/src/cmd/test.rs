//! `mesh test CONTRACT`: checks a data contract against its data (the contract's server, or
//! `--data PATH`) and reports every check — as a table, datacontract-cli's JSON, or JUnit XML.
//! Exit 0 when nothing failed (warnings allowed), 1 when a check failed, 2 on errors.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use mesh_engine::checks::Categories;
use mesh_engine::{Outcome, Run, TestOptions};
use mesh_model::diag::Severity;

use crate::Outcome as Exit;
use crate::output::{self, ERROR, HINT, OK, WARNING, paint};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The data contract (*.odcs.yaml).
    contract: PathBuf,

    /// The contract server whose data to test (default: the first server).
    #[arg(long)]
    server: Option<String>,

    /// Test this file, folder or glob instead of a server (local path or s3://...).
    #[arg(long)]
    data: Option<String>,

    /// The format of --data: parquet, csv, json (NDJSON) or delta (default: from the extension).
    #[arg(long)]
    format: Option<String>,

    /// Only this schema object.
    #[arg(long)]
    model: Option<String>,

    /// Which checks to run: any of schema, quality, servicelevel, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "schema,quality,servicelevel"
    )]
    checks: Vec<String>,

    /// Only check rows matching this SQL predicate, e.g. "order_date >= '2024-01-01'".
    #[arg(long)]
    filter: Option<String>,

    /// Only the quality rules with this `id` (repeatable).
    #[arg(long = "quality-id", value_name = "ID")]
    quality_ids: Vec<String>,

    /// Only the quality rules with this tag (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,

    /// Only the quality rules of this dimension, e.g. completeness (repeatable).
    #[arg(long = "dimension", value_name = "DIMENSION")]
    dimensions: Vec<String>,

    /// Include up to N offending rows per failed check (columns classified as sensitive are left out).
    #[arg(long, value_name = "N", default_value_t = 0)]
    include_failed_samples: usize,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: TestOutput,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
enum TestOutput {
    /// A table, one line per check.
    #[default]
    Text,
    /// datacontract-cli's Run result.
    Json,
    /// JUnit XML for CI systems.
    Junit,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Exit> {
    let categories = categories(&args.checks)?;
    let text = std::fs::read_to_string(&args.contract)
        .with_context(|| format!("cannot read {}", args.contract.display()))?;
    let parsed = mesh_model::parse_contract(&text);
    let shown = args.contract.display().to_string();
    let errors: Vec<_> = parsed
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    let Some(contract) = parsed.model else {
        for d in &errors {
            output::error(&d.render(&shown));
        }
        bail!("{shown} is not a data contract that can be tested");
    };
    if !errors.is_empty() {
        let mut err = anstream::stderr();
        let _ = writeln!(
            err,
            "mesh: {}: {shown} has {} lint error(s) (see `mesh lint {shown}`); testing it as read",
            paint(WARNING, "warning"),
            errors.len()
        );
    }
    let progress = std::sync::Arc::new(mesh_engine::progress::Progress::default());
    let options = TestOptions {
        server: args.server.clone(),
        data: args.data.clone(),
        format: args.format.clone(),
        model: args.model.clone(),
        categories,
        filter: args.filter.clone(),
        failed_samples: args.include_failed_samples,
        select: mesh_engine::Selection {
            quality_ids: args.quality_ids.clone(),
            tags: args.tags.clone(),
            dimensions: args.dimensions.clone(),
        },
        progress: Some(std::sync::Arc::clone(&progress)),
    };
    let base = args
        .contract
        .parent()
        .map_or_else(|| Path::new(".").to_path_buf(), Path::to_path_buf);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let started = std::time::Instant::now();
    let bar = ProgressBar::start(progress);
    let run = runtime.block_on(mesh_engine::test_contract(&contract, &base, &options));
    bar.finish();
    let run = match run {
        Ok(run) => run,
        // A database that cannot be used: point at the server entry.
        Err(mesh_engine::error::EngineError::Database(e)) => {
            let at = server_position(parsed.root.as_ref(), &e.server)
                .map(|p| format!("{shown}:{}:{}: ", p.line, p.col))
                .unwrap_or_else(|| format!("{shown}: "));
            bail!("{at}{e}");
        }
        Err(e) => return Err(e.into()),
    };
    let elapsed = started.elapsed();
    match args.output {
        TestOutput::Text => print_text(&run, elapsed)?,
        TestOutput::Json => {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &run.to_json())?;
            writeln!(out)?;
        }
        TestOutput::Junit => {
            let mut out = std::io::stdout().lock();
            out.write_all(run.to_junit().as_bytes())?;
        }
    }
    Ok(match run.outcome() {
        Outcome::Passed | Outcome::Skipped | Outcome::Warning => Exit::Ok,
        Outcome::Failed => Exit::Findings,
        Outcome::Error => Exit::Error,
    })
}

/// Where the server entry named `name` starts in the contract.
fn server_position(
    root: Option<&mesh_model::source::Node>,
    name: &str,
) -> Option<mesh_model::source::Pos> {
    root?
        .get("servers")?
        .as_seq()?
        .iter()
        .find(|s| s.get("server").and_then(|n| n.as_str()) == Some(name))
        .map(|s| s.span.start)
}

fn categories(names: &[String]) -> anyhow::Result<Categories> {
    let mut c = Categories {
        schema: false,
        quality: false,
        servicelevel: false,
    };
    for name in names {
        match name.trim() {
            "schema" => c.schema = true,
            "quality" => c.quality = true,
            "servicelevel" | "sla" => c.servicelevel = true,
            other => bail!("unknown check category `{other}` (use schema, quality, servicelevel)"),
        }
    }
    Ok(c)
}

fn print_text(run: &Run, elapsed: std::time::Duration) -> anyhow::Result<()> {
    let mut out = output::stdout();
    let width = run
        .results
        .iter()
        .map(|r| r.check.key.len())
        .max()
        .unwrap_or(5)
        .min(60);
    for r in &run.results {
        let (style, word) = match r.outcome {
            Outcome::Passed => (OK, "passed "),
            Outcome::Skipped => (HINT, "skipped"),
            Outcome::Warning => (WARNING, "warning"),
            Outcome::Failed => (ERROR, "failed "),
            Outcome::Error => (ERROR, "error  "),
        };
        let reason = r.reason.as_deref().unwrap_or("");
        writeln!(
            out,
            "{} {:width$}  {reason}",
            paint(style, word),
            r.check.key
        )?;
        if let Some(samples) = &r.failed_samples {
            for s in samples {
                writeln!(out, "          {s}")?;
            }
        }
    }
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let summary = format!(
        "{} passed, {} failed, {}, {}, {} skipped",
        run.count(Outcome::Passed),
        run.count(Outcome::Failed),
        plural(run.count(Outcome::Warning), "warning"),
        plural(run.count(Outcome::Error), "error"),
        run.count(Outcome::Skipped),
    );
    let verdict = match run.outcome() {
        Outcome::Passed | Outcome::Skipped => paint(OK, "passed"),
        Outcome::Warning => paint(WARNING, "passed with warnings"),
        Outcome::Failed => paint(ERROR, "failed"),
        Outcome::Error => paint(ERROR, "error"),
    };
    writeln!(
        out,
        "{summary} — {verdict} in {:.2} s",
        elapsed.as_secs_f64()
    )?;
    out.flush()?;
    Ok(())
}

/// A progress bar on standard error for scans that take a while: shown only on a terminal and
/// only after half a second, so quick runs and piped output stay clean.
struct ProgressBar {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    drawer: Option<std::thread::JoinHandle<()>>,
}

impl ProgressBar {
    fn start(progress: std::sync::Arc<mesh_engine::progress::Progress>) -> Self {
        use std::io::IsTerminal;
        use std::sync::atomic::Ordering;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let drawer = std::io::stderr().is_terminal().then(|| {
            let done = std::sync::Arc::clone(&done);
            std::thread::spawn(move || {
                let wait = std::time::Instant::now();
                while wait.elapsed() < std::time::Duration::from_millis(500) {
                    if done.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                let total = progress.total();
                let bar = if total > 0 {
                    indicatif::ProgressBar::new(total).with_style(
                        indicatif::ProgressStyle::with_template(
                            "{spinner} checking [{bar:30}] {bytes}/{total_bytes} read, {elapsed}",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    )
                } else {
                    indicatif::ProgressBar::new_spinner().with_message("checking")
                };
                while !done.load(Ordering::Relaxed) {
                    bar.set_position(progress.read().min(total.max(1)));
                    bar.tick();
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                bar.finish_and_clear();
            })
        });
        ProgressBar { done, drawer }
    }

    fn finish(self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(drawer) = self.drawer {
            let _ = drawer.join();
        }
    }
}
