//! `mesh publish DIR...`: publishes data products to the catalog. Each folder holds a product
//! descriptor (*.odps.yaml) and the contracts of its output ports (*.odcs.yaml, anywhere below).
//! The catalog lints them strictly, checks every port's compatibility with its history, and
//! stores the version — or refuses with the reasons. Exits 1 when a product is refused.

use std::io::Write;
use std::path::PathBuf;

use mesh_catalog::{Bundle, PublishOutcome, PublishReport};
use mesh_model::changelog::Impact;

use crate::client::Failure;
use crate::files::load_bundle;
use crate::output::{self, ERROR, HINT, LOCATION, OK, WARNING, paint};
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Product folders, each with one *.odps.yaml and its contracts.
    #[arg(default_value = ".")]
    dirs: Vec<PathBuf>,

    /// Check everything (lint, compatibility, permissions) and store nothing.
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    catalog: CatalogArgs,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let runtime = crate::runtime()?;
    runtime.block_on(publish_all(args))
}

async fn publish_all(args: &Args) -> anyhow::Result<Outcome> {
    let mut bundles = Vec::new();
    for dir in &args.dirs {
        bundles.push(load_bundle(dir)?);
    }
    let client = args.catalog.connect().await?;
    let mut outcome = Outcome::Ok;
    let mut results = Vec::new();
    for bundle in &bundles {
        let result = client.publish(bundle, args.dry_run).await;
        outcome = outcome.max(match &result {
            Ok(_) => Outcome::Ok,
            Err(e) if e.is_refusal() => Outcome::Findings,
            Err(_) => Outcome::Error,
        });
        match args.output {
            OutputFormat::Text => print_text(bundle, &result)?,
            OutputFormat::Json => results.push(json_result(bundle, &result)),
        }
    }
    if args.output == OutputFormat::Json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "results": results }))?;
        writeln!(out)?;
    }
    Ok(outcome)
}

fn print_text(bundle: &Bundle, result: &Result<PublishReport, Failure>) -> anyhow::Result<()> {
    let mut out = output::stdout();
    match result {
        Ok(report) => {
            let at = format!("{}@{}", report.product, report.version);
            let line = match report.outcome {
                PublishOutcome::Published => format!("{} {at}", paint(OK, "Published")),
                PublishOutcome::Unchanged => format!(
                    "{} {at}: already published with the same content",
                    paint(OK, "Unchanged")
                ),
                PublishOutcome::Checked => {
                    format!("{} {at}: would publish (dry run)", paint(OK, "Checked"))
                }
            };
            writeln!(out, "{line}")?;
            for v in report
                .policy
                .as_ref()
                .and_then(|p| p["violations"].as_array())
                .into_iter()
                .flatten()
            {
                writeln!(
                    out,
                    "  {} [{}] {}",
                    paint(WARNING, v["enforcement"].as_str().unwrap_or("warn")),
                    v["policy"].as_str().unwrap_or("?"),
                    v["message"].as_str().unwrap_or("")
                )?;
            }
            for port in &report.ports {
                let (breaking, warning, info) = port.changes.counts();
                let against = match &port.previous {
                    Some(v) => format!(
                        "since {v}: {breaking} breaking, {warning} potentially breaking, {info} info"
                    ),
                    None => "first version of this port in its major version".to_owned(),
                };
                writeln!(
                    out,
                    "  port {} ({}): {against}",
                    port.port, port.compatibility
                )?;
                for change in port
                    .changes
                    .changes
                    .iter()
                    .filter(|c| c.impact == Impact::Warning)
                {
                    writeln!(
                        out,
                        "    {} {} {}: {}",
                        paint(WARNING, "warning"),
                        change.change,
                        change.path,
                        change.reason
                    )?;
                }
            }
        }
        Err(failure) => {
            out.flush()?;
            drop(out);
            print_refusal(bundle, failure);
        }
    }
    Ok(())
}

/// Prints why the catalog refused a bundle — the local catalog or a server, from the one problem
/// document both give — with file:line:col where the documents say it.
pub(crate) fn print_refusal(bundle: &Bundle, failure: &Failure) {
    let mut err = anstream::stderr();
    let problem = failure.to_json();
    let text = |v: &serde_json::Value, k: &str, or: &'static str| -> String {
        v[k].as_str().unwrap_or(or).to_owned()
    };
    for d in problem["diagnostics"].as_array().into_iter().flatten() {
        let at = format!(
            "{}:{}:{}:",
            text(d, "file", "?"),
            d["line"].as_u64().unwrap_or(1),
            d["column"].as_u64().unwrap_or(1)
        );
        let severity = text(d, "severity", "error");
        let style = if severity == "warning" {
            WARNING
        } else {
            ERROR
        };
        let _ = writeln!(
            err,
            "{} {}: {}",
            paint(LOCATION, &at),
            paint(style, &severity),
            text(d, "message", "")
        );
        if let Some(hint) = d["hint"].as_str() {
            let _ = writeln!(err, "  = {}: {hint}", paint(HINT, "hint"));
        }
    }
    for v in problem["violations"].as_array().into_iter().flatten() {
        let enforcement = text(v, "enforcement", "block");
        let _ = writeln!(
            err,
            "{} [{}] {}{}",
            paint(
                if enforcement == "block" {
                    ERROR
                } else {
                    WARNING
                },
                &enforcement
            ),
            text(v, "policy", "?"),
            text(v, "message", ""),
            v["path"]
                .as_str()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        );
    }
    let ports = problem["ports"].as_array().cloned().unwrap_or_default();
    for port in &ports {
        for failure in port["failures"].as_array().into_iter().flatten() {
            let changes = failure["changes"].as_array().cloned().unwrap_or_default();
            let _ = writeln!(
                err,
                "port {} ({}): {} changes against {} ({}):",
                text(port, "port", "?"),
                text(port, "mode", "?"),
                changes.len(),
                text(failure, "against", "?"),
                match failure["direction"].as_str() {
                    Some("forward") => "it could not be rolled back to",
                    _ => "readers of it would break",
                }
            );
            for change in &changes {
                let at = match (change["line"].as_u64(), change["column"].as_u64()) {
                    (Some(line), Some(col)) => {
                        let at = format!("{}:{line}:{col}", text(port, "source", "?"));
                        format!("{}: ", paint(LOCATION, &at))
                    }
                    _ => String::new(),
                };
                let _ = writeln!(
                    err,
                    "  {at}{} {} {}: {}",
                    paint(ERROR, "breaking"),
                    text(change, "type", "?"),
                    text(change, "path", "?"),
                    text(change, "reason", "")
                );
            }
        }
    }
    for port in &ports {
        let hurt: Vec<&str> = ["products", "external", "columns"]
            .iter()
            .flat_map(|k| port["affected"][k].as_array().into_iter().flatten())
            .filter_map(|v| v.as_str())
            .collect();
        if !hurt.is_empty() {
            let _ = writeln!(
                err,
                "  port {} is read downstream by: {}",
                text(port, "port", "?"),
                hurt.join(", ")
            );
        }
    }
    if !ports.is_empty() {
        let _ = writeln!(
            err,
            "  = {}: publish the change under a new major version; the current one stays served until you deprecate it",
            paint(HINT, "hint")
        );
    }
    output::error(&format!("{}: {failure}", bundle.descriptor.path));
}

fn json_result(bundle: &Bundle, result: &Result<PublishReport, Failure>) -> serde_json::Value {
    match result {
        Ok(report) => serde_json::json!({
            "descriptor": bundle.descriptor.path,
            "outcome": report.outcome,
            "report": report,
        }),
        Err(e) => serde_json::json!({
            "descriptor": bundle.descriptor.path,
            "outcome": "refused",
            "error": e.to_json(),
        }),
    }
}
