//! `mesh schedule [PATHS | PRODUCTS]`: each data product's schedule as its descriptor declares
//! it, and its next slots — what the orchestrator will run, checked before anything is
//! published; for a product id (`domain.product`), the published schedule from the catalog, its
//! next slots and how its last slots ended.

use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use mesh_model::Diagnostic;
use mesh_model::document::{AnyParsed, parse_document};
use mesh_model::schedule::Schedule;

use crate::cmd::lint::{discover, styled};
use crate::files::read_text;
use crate::output::{self, LOCATION, paint};
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Files or folders holding data product descriptors (`*.odps.yaml`), honouring .gitignore,
    /// or published products (`domain.product`, not a path here).
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,
    /// How many of a published product's last slots to show.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=1000))]
    last: u32,
    #[command(flatten)]
    catalog: crate::workspace::CatalogArgs,
    /// The instant the next slots follow (RFC 3339, e.g. 2026-12-05T10:00:00Z); default now.
    #[arg(long, value_parser = parse_instant)]
    at: Option<DateTime<Utc>>,
    /// How many next slots to show per product.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(0..=1000))]
    next: u16,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("`{text}` is not an RFC 3339 instant ({e}), e.g. 2026-12-05T10:00:00Z")
        })
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let mut problems = Vec::new();
    // A product id that is not a path here is looked up in the catalog.
    let (published, paths): (Vec<&PathBuf>, Vec<&PathBuf>) = args.paths.iter().partition(|p| {
        !p.exists()
            && p.to_str()
                .is_some_and(|t| mesh_model::names::ProductId::parse(t).is_ok())
    });
    let paths: Vec<PathBuf> = paths.into_iter().cloned().collect();
    let files = if paths.is_empty() {
        Vec::new()
    } else {
        discover(&paths, &mut problems)
    };
    let at = args.at.unwrap_or_else(Utc::now);
    let mut products = Vec::new();
    if !published.is_empty() {
        let ids: Vec<String> = published.iter().map(|p| p.display().to_string()).collect();
        products.extend(from_catalog(args, &ids, &mut problems)?);
    }
    let mut findings = Vec::new();
    for file in files {
        let text = match read_text(&file.path) {
            Ok(text) => text,
            Err(e) if file.explicit => {
                problems.push(format!("{e:#}"));
                continue;
            }
            Err(_) => continue,
        };
        let AnyParsed::Product(parsed) = parse_document(&file.display, &text) else {
            continue;
        };
        let (Some(root), Some(product)) = (&parsed.root, &parsed.model) else {
            continue;
        };
        let id = product.id.clone().unwrap_or_default();
        let Some((index, value)) = mesh_model::schedule::property(root) else {
            products
                .push(serde_json::json!({ "product": id, "file": file.display, "schedule": null }));
            continue;
        };
        match Schedule::read(value) {
            Ok(schedule) => {
                let mut next = Vec::new();
                let mut from = at;
                for _ in 0..args.next {
                    let Some(slot) = schedule.next_after(from) else {
                        break;
                    };
                    next.push(serde_json::json!({
                        "at": slot.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        "local": slot.with_timezone(&schedule.timezone).format("%Y-%m-%d %H:%M %Z").to_string(),
                    }));
                    from = slot;
                }
                products.push(serde_json::json!({
                    "product": id,
                    "file": file.display,
                    "schedule": {
                        "cron": schedule.cron.as_ref().map(|c| c.as_str().to_owned()),
                        "timezone": schedule.timezone.name(),
                        "upstream": schedule.upstream,
                        "retries": schedule.retries,
                    },
                    "next": next,
                }));
            }
            Err(found) => {
                let base = format!("/customProperties/{index}/value");
                findings.extend(
                    found
                        .into_iter()
                        .map(|p| (file.display.clone(), p.diagnostic(&base))),
                );
            }
        }
    }
    let doc = serde_json::json!({
        "at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "products": products,
        "errors": findings.iter().map(|(file, d)| d.to_json(file)).collect::<Vec<_>>(),
        "problems": problems,
    });
    match args.output {
        OutputFormat::Json => {
            let mut out = output::stdout();
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
            out.flush()?;
        }
        OutputFormat::Text => print_text(&findings, &doc)?,
    }
    for p in &problems {
        output::error(p);
    }
    Ok(if !problems.is_empty() {
        Outcome::Error
    } else if !findings.is_empty() {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}

/// The published schedules of `ids`, their next slots and their last ones.
fn from_catalog(
    args: &Args,
    ids: &[String],
    problems: &mut Vec<String>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let mut out = Vec::new();
        for id in ids {
            match client.schedule(id, args.next, args.last).await {
                Ok(view) => {
                    let tz: chrono_tz::Tz = view
                        .schedule
                        .as_ref()
                        .and_then(|s| s.timezone.parse().ok())
                        .unwrap_or(chrono_tz::UTC);
                    let next: Vec<serde_json::Value> = view
                        .next
                        .iter()
                        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| {
                            serde_json::json!({
                                "at": t.with_timezone(&Utc).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                                "local": t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string(),
                            })
                        })
                        .collect();
                    out.push(serde_json::json!({
                        "product": view.product,
                        "version": view.version,
                        "schedule": view.schedule,
                        "next": next,
                        "last": view.last,
                    }));
                }
                Err(e) => problems.push(format!("{id}: {e}")),
            }
        }
        Ok(out)
    })
}

fn print_text(findings: &[(String, Diagnostic)], doc: &serde_json::Value) -> anyhow::Result<()> {
    let mut out = output::stdout();
    for (file, d) in findings {
        writeln!(out, "{}", styled(d, file))?;
    }
    for p in doc["products"].as_array().into_iter().flatten() {
        let id = p["product"].as_str().unwrap_or_default();
        let s = &p["schedule"];
        if s.is_null() {
            writeln!(out, "{}: not scheduled", paint(LOCATION, id))?;
            continue;
        }
        let mut how = Vec::new();
        if let Some(cron) = s["cron"].as_str() {
            how.push(format!(
                "cron `{cron}` in {}",
                s["timezone"].as_str().unwrap_or("UTC")
            ));
        }
        if s["upstream"].as_bool() == Some(true) {
            how.push("when an input port's snapshot moves".to_owned());
        }
        writeln!(
            out,
            "{}: {}; {} retries",
            paint(LOCATION, id),
            how.join(", and "),
            s["retries"]
        )?;
        for n in p["next"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "  next {} ({})",
                n["local"].as_str().unwrap_or_default(),
                n["at"].as_str().unwrap_or_default()
            )?;
        }
        for l in p["last"].as_array().into_iter().flatten() {
            let state = l["state"].as_str().unwrap_or_default();
            let style = match state {
                "succeeded" => crate::output::OK,
                "failed" => crate::output::ERROR,
                _ => crate::output::WARNING,
            };
            writeln!(
                out,
                "  last {} {:<9} {} on {}, {} attempt(s){}{}",
                l["slot_at"].as_str().unwrap_or_default(),
                paint(style, state),
                l["cause"].as_str().unwrap_or("cron"),
                l["claimed_by"].as_str().unwrap_or_default(),
                l["attempts"],
                l["run_id"]
                    .as_str()
                    .map(|r| format!(", run {r}"))
                    .unwrap_or_default(),
                l["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
