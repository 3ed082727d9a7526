//! `mesh sla`: the service levels of each output port as the platform measured them (freshness,
//! completeness, availability, error rate, latency, volume) against the contracts'
//! `slaProperties`; `mesh sla check` records violations and recoveries and tells a webhook (for
//! cron or CI; `mesh serve` runs the same pass on a schedule). Both exit 1 while a port is in
//! violation.

use std::io::Write;

use mesh_catalog::sla::{Delivery, Violation};
use mesh_catalog::sla::{PortSla, SlaReport};

use crate::cmd::show::finish;
use crate::output::{self, ERROR, HINT, OK, WARNING};
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Only this product (e.g. `ecommerce.orders`); with it, its violation history too.
    product: Option<String>,
    /// The rolling window of availability, error rate, latency and volume.
    #[arg(long, default_value = "28d")]
    window: String,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format: a table, or JSON.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// One monitor pass: probe every served snapshot, evaluate every product, open and close
    /// violations (events `sla.violated` / `sla.recovered`), and POST each to the webhook.
    Check(CheckArgs),
    /// Violations, open and closed, the most recently started first.
    Violations(ListArgs),
    /// Webhook deliveries (SLA and access events): attempts and the receiver's last answer.
    Deliveries(ListArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The rolling window of availability, error rate, latency and volume.
    #[arg(long, default_value = "28d")]
    window: String,
    /// POST each violation and recovery here as JSON (retried with backoff, logged).
    #[arg(long, value_name = "URL", env = "MESH_SLA_WEBHOOK")]
    webhook: Option<String>,
    /// Do not probe the served snapshots first.
    #[arg(long)]
    no_probes: bool,
    #[command(flatten)]
    catalog: CatalogArgs,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only this product's (violations).
    product: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: i64,
    #[command(flatten)]
    catalog: CatalogArgs,
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    match &args.command {
        None => status(args),
        Some(Command::Check(check)) => run_check(check),
        Some(Command::Violations(list)) => violations(list),
        Some(Command::Deliveries(list)) => deliveries(list),
    }
}

fn status(args: &Args) -> anyhow::Result<Outcome> {
    if let Err(e) = mesh_service::monitor::parse_window(&args.window) {
        output::error(&format!("--window: {e}"));
        return Ok(Outcome::Findings);
    }
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let report = client.sla(args.product.as_deref(), &args.window).await;
        let history = match (&report, &args.product) {
            (Ok(_), Some(p)) => client.sla_violations(Some(p), 10).await.unwrap_or_default(),
            _ => Vec::new(),
        };
        let violated = report.as_ref().is_ok_and(|r| r.violated > 0);
        let outcome = finish(report, args.output, |r| {
            let mut out = output::stdout();
            print_report(&mut out, r)?;
            if !history.is_empty() {
                writeln!(out, "\nviolations (latest first):")?;
                for v in &history {
                    print_violation(&mut out, v)?;
                }
            }
            out.flush()?;
            Ok(())
        })?;
        Ok(with_violations(outcome, violated))
    })
}

fn run_check(args: &CheckArgs) -> anyhow::Result<Outcome> {
    let window = match mesh_service::monitor::parse_window(&args.window) {
        Ok(w) => w,
        Err(e) => {
            output::error(&format!("--window: {e}"));
            return Ok(Outcome::Findings);
        }
    };
    let options = mesh_service::monitor::MonitorOptions {
        interval: None,
        window,
        webhook: args.webhook.clone(),
        probes: !args.no_probes,
    };
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        if client.is_remote() {
            let ignored: Vec<&str> = [
                (args.webhook.is_some(), "--webhook"),
                (args.window != "28d", "--window"),
                (args.no_probes, "--no-probes"),
            ]
            .into_iter()
            .filter_map(|(given, flag)| given.then_some(flag))
            .collect();
            if !ignored.is_empty() {
                output::warning(&format!(
                    "{} apply to a local catalog; the server's pass uses its own --sla-* settings",
                    ignored.join(", ")
                ));
            }
        }
        let result = client
            .sla_check(&options)
            .await
            .map(|(report, deliveries)| Checked { report, deliveries });
        let violated = result.as_ref().is_ok_and(|c| c.report.violated > 0);
        let outcome = finish(result, args.output, |Checked { report, deliveries }| {
            let mut out = output::stdout();
            print_report(&mut out, report)?;
            for v in &report.opened {
                writeln!(out, "{} {}", output::paint(ERROR, "violated:"), line(v))?;
            }
            for v in &report.recovered {
                writeln!(out, "{} {}", output::paint(OK, "recovered:"), line(v))?;
            }
            for d in deliveries {
                print_delivery(&mut out, d)?;
            }
            out.flush()?;
            Ok(())
        })?;
        Ok(with_violations(outcome, violated))
    })
}

/// What `mesh sla check` found: the pass, and the webhook deliveries it made.
#[derive(serde::Serialize)]
struct Checked {
    report: SlaReport,
    deliveries: Vec<Delivery>,
}

/// A command's outcome, and exit 1 while a port is in violation.
fn with_violations(outcome: Outcome, violated: bool) -> Outcome {
    if violated {
        outcome.max(Outcome::Findings)
    } else {
        outcome
    }
}

fn violations(args: &ListArgs) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let result = client
            .sla_violations(args.product.as_deref(), args.limit)
            .await;
        finish(result, args.output, |rows| {
            let mut out = output::stdout();
            for v in rows {
                print_violation(&mut out, v)?;
            }
            writeln!(out, "({} violations)", rows.len())?;
            out.flush()?;
            Ok(())
        })
    })
}

fn deliveries(args: &ListArgs) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let result = client.deliveries(args.limit).await;
        finish(result, args.output, |rows| {
            let mut out = output::stdout();
            for d in rows {
                print_delivery(&mut out, d)?;
            }
            writeln!(out, "({} deliveries)", rows.len())?;
            out.flush()?;
            Ok(())
        })
    })
}

fn line(v: &Violation) -> String {
    format!(
        "{}.{} v{} {} {} (observed: {})",
        v.product, v.port, v.major, v.property, v.objective, v.observed
    )
}

fn print_violation(out: &mut impl Write, v: &Violation) -> anyhow::Result<()> {
    let until = match &v.ended_at {
        Some(end) => format!("until {end}"),
        None => output::paint(ERROR, "open"),
    };
    writeln!(out, "  {}  from {} {until}", line(v), v.started_at)?;
    Ok(())
}

fn print_delivery(out: &mut impl Write, d: &Delivery) -> anyhow::Result<()> {
    let state = match d.state.as_str() {
        "delivered" => output::paint(OK, &d.state),
        "failed" => output::paint(ERROR, &d.state),
        _ => output::paint(WARNING, &d.state),
    };
    writeln!(
        out,
        "  {} {:<14} {:<24} {} after {} attempt{}{}",
        d.created_at,
        d.event,
        d.subject,
        state,
        d.attempts,
        if d.attempts == 1 { "" } else { "s" },
        d.last_error
            .as_deref()
            .map(|e| format!(" (last: {e})"))
            .unwrap_or_default()
    )?;
    Ok(())
}

fn print_report(out: &mut impl Write, report: &SlaReport) -> anyhow::Result<()> {
    for p in &report.ports {
        print_port(out, p)?;
    }
    let count = |s: &str| report.ports.iter().filter(|p| p.status == s).count();
    writeln!(
        out,
        "{} ports at {}: {} met, {} violated, {} not measured yet (window {})",
        report.ports.len(),
        report.at,
        count("met"),
        count("violated"),
        count("unknown"),
        mesh_catalog::sla::human(report.window_seconds as f64)
    )?;
    Ok(())
}

fn print_port(out: &mut impl Write, p: &PortSla) -> anyhow::Result<()> {
    let status = match p.status.as_str() {
        "met" => output::paint(OK, "met"),
        "violated" => output::paint(ERROR, "VIOLATED"),
        _ => output::paint(HINT, "not measured yet"),
    };
    writeln!(
        out,
        "{}.{} v{} ({})  {status}",
        p.product, p.port, p.major, p.version
    )?;
    for o in &p.objectives {
        let state = match o.status.as_str() {
            "met" => output::paint(OK, "met"),
            "violated" => output::paint(ERROR, "violated"),
            _ => output::paint(HINT, "unknown"),
        };
        let mut extra = String::new();
        if let Some(since) = &o.since {
            extra.push_str(&format!(" (violated from {since})"));
        }
        if let Some(b) = o.budget_remaining {
            extra.push_str(&format!(" · error budget left {:.0}%", b * 100.0));
        }
        writeln!(
            out,
            "  {:<20} {:<34} {:<9} {}{extra}",
            o.property,
            o.objective,
            state,
            o.observed.as_deref().unwrap_or_default()
        )?;
    }
    let m = &p.metrics;
    let mut facts = Vec::new();
    if let Some(f) = m.freshness_seconds {
        facts.push(format!("published {} ago", mesh_catalog::sla::human(f)));
    }
    if let Some(rows) = m.rows {
        facts.push(format!("{rows} rows"));
    }
    if m.reads > 0 {
        facts.push(format!("{} reads ({} failed)", m.reads, m.read_errors));
    }
    if m.probes > 0 {
        facts.push(format!("{} probes ({} failed)", m.probes, m.probe_errors));
    }
    if let (Some(a), Some(b), Some(c)) = (m.latency_p50_ms, m.latency_p95_ms, m.latency_p99_ms) {
        facts.push(format!(
            "latency p50 {a:.0} ms, p95 {b:.0} ms, p99 {c:.0} ms"
        ));
    }
    if !facts.is_empty() {
        writeln!(out, "  {}", facts.join(" · "))?;
    }
    Ok(())
}
