//! `mesh publish DIR...`: publishes data products to the catalog. Each folder holds a product
//! descriptor (*.odps.yaml) and the contracts of its output ports (*.odcs.yaml, anywhere below).
//! The catalog lints them strictly, checks every port's compatibility with its history, and
//! stores the version — or refuses with the reasons. Exits 1 when a product is refused.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use mesh_catalog::{Bundle, CatalogError, PublishOutcome, PublishReport, Source};
use mesh_model::changelog::Impact;

use crate::client::Failure;
use crate::cmd::lint::{read_text, styled};
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

/// Reads a product folder (or a descriptor file and its folder) into a bundle.
pub(crate) fn load_bundle(path: &Path) -> anyhow::Result<Bundle> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (dir, descriptor) = if meta.is_file() {
        (
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            path.to_path_buf(),
        )
    } else {
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && has_suffix(p, ".odps.yaml"))
            .collect();
        found.sort();
        match found.len() {
            1 => (path.to_path_buf(), found.remove(0)),
            0 => bail!(
                "no data product descriptor (*.odps.yaml) in {}",
                path.display()
            ),
            _ => bail!(
                "more than one data product descriptor in {}: {}",
                path.display(),
                found
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    };
    let mut contracts = Vec::new();
    for entry in ignore::WalkBuilder::new(&dir).require_git(false).build() {
        let entry = entry.with_context(|| format!("cannot search {}", dir.display()))?;
        let p = entry.path();
        if p.is_file() && has_suffix(p, ".odcs.yaml") {
            contracts.push(Source {
                path: shown(p),
                text: read_text(p)?,
            });
        }
    }
    contracts.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Bundle {
        descriptor: Source {
            path: shown(&descriptor),
            text: read_text(&descriptor)?,
        },
        contracts,
    })
}

fn has_suffix(path: &Path, suffix: &str) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(suffix) || n.ends_with(&suffix.replace(".yaml", ".yml")))
}

fn shown(path: &Path) -> String {
    let text = path.display().to_string();
    text.strip_prefix("./").map(str::to_owned).unwrap_or(text)
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
        Err(Failure::Catalog(e)) => {
            out.flush()?;
            drop(out);
            print_refusal(bundle, e);
        }
        Err(other) => {
            out.flush()?;
            drop(out);
            print_remote_refusal(bundle, other);
        }
    }
    Ok(())
}

/// Prints why the catalog refused a bundle, with file:line:col where the documents say it.
pub(crate) fn print_refusal(bundle: &Bundle, e: &CatalogError) {
    let mut err = anstream::stderr();
    match e {
        CatalogError::PolicyViolation { violations, .. } => {
            for v in violations {
                let _ = writeln!(
                    err,
                    "{} [{}] {}{}",
                    paint(
                        if v.enforcement == mesh_policy::Enforcement::Block {
                            ERROR
                        } else {
                            WARNING
                        },
                        v.enforcement.as_str()
                    ),
                    v.policy,
                    v.message,
                    v.path
                        .as_deref()
                        .map(|p| format!(" ({p})"))
                        .unwrap_or_default()
                );
            }
        }
        CatalogError::Invalid(findings) => {
            for (path, d) in findings {
                let _ = writeln!(err, "{}", styled(d, path));
            }
        }
        CatalogError::Incompatible { ports, .. } => {
            for port in ports {
                for failure in &port.failures {
                    let _ = writeln!(
                        err,
                        "port {} ({}): {} changes against {} ({}):",
                        port.port,
                        port.mode,
                        failure.changes.len(),
                        failure.against,
                        match failure.direction {
                            mesh_model::changelog::Direction::Backward =>
                                "readers of it would break",
                            mesh_model::changelog::Direction::Forward =>
                                "it could not be rolled back to",
                        }
                    );
                    for change in &failure.changes {
                        // The old contract comes from the catalog: a removal shows at the
                        // nearest node that is still in the new file.
                        let pos = if change.in_old {
                            change.anchor
                        } else {
                            change.span
                        }
                        .start;
                        let at = if pos.is_known() {
                            let at = format!("{}:{}:{}", port.source, pos.line, pos.col);
                            format!("{}: ", paint(LOCATION, &at))
                        } else {
                            String::new()
                        };
                        let _ = writeln!(
                            err,
                            "  {at}{} {} {}: {}",
                            paint(ERROR, "breaking"),
                            change.change,
                            change.path,
                            change.reason
                        );
                    }
                }
            }
            for port in ports {
                let hurt = &port.affected;
                if !hurt.products.is_empty()
                    || !hurt.columns.is_empty()
                    || !hurt.external.is_empty()
                {
                    let mut who: Vec<&str> = hurt.products.iter().map(String::as_str).collect();
                    who.extend(hurt.external.iter().map(String::as_str));
                    who.extend(hurt.columns.iter().map(String::as_str));
                    let _ = writeln!(
                        err,
                        "  port {} is read downstream by: {}",
                        port.port,
                        who.join(", ")
                    );
                }
            }
            let _ = writeln!(
                err,
                "  = {}: publish the change under a new major version; the current one stays served until you deprecate it",
                paint(HINT, "hint")
            );
        }
        _ => {}
    }
    output::error(&format!("{}: {e}", bundle.descriptor.path));
}

/// Prints a server's refusal: its findings and breaking changes, from the problem document.
fn print_remote_refusal(bundle: &Bundle, failure: &Failure) {
    let mut err = anstream::stderr();
    let problem = failure.to_json();
    for d in problem["diagnostics"].as_array().into_iter().flatten() {
        let at = format!(
            "{}:{}:{}:",
            d["file"].as_str().unwrap_or("?"),
            d["line"].as_u64().unwrap_or(0),
            d["column"].as_u64().unwrap_or(0)
        );
        let _ = writeln!(
            err,
            "{} {}: {}",
            paint(LOCATION, &at),
            paint(ERROR, d["severity"].as_str().unwrap_or("error")),
            d["message"].as_str().unwrap_or("")
        );
    }
    for v in problem["violations"].as_array().into_iter().flatten() {
        let _ = writeln!(
            err,
            "{} [{}] {}",
            paint(ERROR, v["enforcement"].as_str().unwrap_or("block")),
            v["policy"].as_str().unwrap_or("?"),
            v["message"].as_str().unwrap_or("")
        );
    }
    for port in problem["ports"].as_array().into_iter().flatten() {
        let affected: Vec<&str> = ["products", "external", "columns"]
            .iter()
            .flat_map(|k| port["affected"][k].as_array().into_iter().flatten())
            .filter_map(|v| v.as_str())
            .collect();
        if !affected.is_empty() {
            let _ = writeln!(
                err,
                "port {} is read downstream by: {}",
                port["port"].as_str().unwrap_or("?"),
                affected.join(", ")
            );
        }
        for failure in port["failures"].as_array().into_iter().flatten() {
            let _ = writeln!(
                err,
                "port {} ({}): breaking changes against {} ({}):",
                port["port"].as_str().unwrap_or("?"),
                port["mode"].as_str().unwrap_or("?"),
                failure["against"].as_str().unwrap_or("?"),
                failure["direction"].as_str().unwrap_or("?")
            );
            for change in failure["changes"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    err,
                    "  {} {} {}: {}",
                    paint(ERROR, "breaking"),
                    change["type"].as_str().unwrap_or("?"),
                    change["path"].as_str().unwrap_or("?"),
                    change["reason"].as_str().unwrap_or("")
                );
            }
        }
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
