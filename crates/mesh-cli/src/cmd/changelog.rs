//! `mesh changelog OLD NEW`: every difference between two versions of a data contract, each
//! classified as breaking, potentially breaking or information for a reader of the old version.
//! Exits 1 when a change is breaking, so CI can gate on it.

use std::io::Write;
use std::path::{Path, PathBuf};

use mesh_model::DocKind;
use mesh_model::changelog::{Change, ChangeType, Changelog, Impact, diff};
use mesh_model::source::Node;

use crate::cmd::lint::styled;
use crate::files::read_text;
use crate::output::{self, ERROR, HINT, LOCATION, OK, WARNING, paint};
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The earlier version of the contract (*.odcs.yaml).
    old: PathBuf,
    /// The later version of the contract.
    new: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let (Some(old), Some(new)) = (load(&args.old), load(&args.new)) else {
        return Ok(Outcome::Error);
    };
    let log = diff(&old.root, &new.root);
    match args.output {
        OutputFormat::Text => print_text(&log, &old, &new)?,
        OutputFormat::Json => print_json(&log, &old, &new)?,
    }
    Ok(if log.impact() == Impact::Breaking {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}

/// One side of the comparison.
struct Side {
    display: String,
    root: Node,
}

/// Reads a contract; reports why not on standard error.
fn load(path: &Path) -> Option<Side> {
    let display = path.display().to_string();
    let text = match read_text(path) {
        Ok(text) => text,
        Err(e) => {
            output::error(&format!("{e:#}"));
            return None;
        }
    };
    let parsed = mesh_model::yaml::parse(&text);
    let mut err = anstream::stderr();
    for d in &parsed.diagnostics {
        let _ = writeln!(err, "{}", styled(d, &display));
    }
    let root = parsed.root?;
    if parsed.diagnostics.iter().any(|d| d.is_error()) {
        return None;
    }
    match DocKind::from_root(&root).or_else(|| DocKind::from_file_name(&display)) {
        Some(DocKind::Contract) => Some(Side { display, root }),
        _ => {
            output::error(&format!(
                "{display} is not a data contract (expected `kind: DataContract`)"
            ));
            None
        }
    }
}

fn impact_style(impact: Impact) -> anstyle::Style {
    match impact {
        Impact::Breaking => ERROR,
        Impact::Warning => WARNING,
        Impact::Info => HINT,
    }
}

fn value(v: Option<&serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn location(change: &Change, old: &Side, new: &Side) -> Option<String> {
    let file = if change.in_old {
        &old.display
    } else {
        &new.display
    };
    let pos = change.span.start;
    pos.is_known()
        .then(|| format!("{file}:{}:{}", pos.line, pos.col))
}

fn print_text(log: &Changelog, old: &Side, new: &Side) -> anyhow::Result<()> {
    let mut out = output::stdout();
    if log.is_empty() {
        writeln!(
            out,
            "{} {} and {} are the same contract",
            paint(OK, "no changes:"),
            old.display,
            new.display
        )?;
        out.flush()?;
        return Ok(());
    }
    let summary = log.summary();
    writeln!(out, "Summary ({} → {})", old.display, new.display)?;
    for line in &summary {
        let impact = format!("{:<8}", line.impact.as_str());
        writeln!(
            out,
            "  {}  {:<7}  {}",
            paint(impact_style(line.impact), &impact),
            line.change.as_str(),
            line.path,
        )?;
    }
    writeln!(out, "\nDetails")?;
    for change in &log.changes {
        let impact = format!("{:<8}", change.impact.as_str());
        let values = match change.change {
            ChangeType::Added if change.new.is_some() => {
                format!(": {}", value(change.new.as_ref()))
            }
            ChangeType::Removed if change.old.is_some() => {
                format!(": {}", value(change.old.as_ref()))
            }
            ChangeType::Updated => format!(
                ": {} → {}",
                value(change.old.as_ref()),
                value(change.new.as_ref())
            ),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {}  {:<7}  {}{values}",
            paint(impact_style(change.impact), &impact),
            change.change.as_str(),
            change.path,
        )?;
        if change.impact > Impact::Info {
            let at = location(change, old, new)
                .map(|l| format!("{}: ", paint(LOCATION, &l)))
                .unwrap_or_default();
            writeln!(out, "{:14}{at}{}", "", change.reason)?;
        }
    }
    let (breaking, warnings, info) = log.counts();
    let verdict = if breaking > 0 {
        paint(ERROR, "breaking:")
    } else {
        paint(OK, "compatible:")
    };
    writeln!(
        out,
        "\n{verdict} {breaking} breaking, {warnings} potentially breaking, {info} info ({} changes)",
        log.changes.len()
    )?;
    out.flush()?;
    Ok(())
}

fn print_json(log: &Changelog, old: &Side, new: &Side) -> anyhow::Result<()> {
    let (breaking, warnings, info) = log.counts();
    let entries: Vec<serde_json::Value> = log
        .changes
        .iter()
        .map(|c| {
            serde_json::json!({
                "path": c.path,
                "type": c.change,
                "old_value": c.old,
                "new_value": c.new,
                "impact": c.impact,
                "reason": c.reason,
                "location": location(c, old, new),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "v1": old.display,
        "v2": new.display,
        "impact": log.impact(),
        "counts": {"breaking": breaking, "warning": warnings, "info": info},
        "summary": log.summary(),
        "entries": entries,
    });
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &doc)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}
