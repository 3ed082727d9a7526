//! `mesh plan` and `mesh apply`: the platform's state as code. `plan` compares the repository
//! (`platform/` and the product folders) with the catalog and prints every change, with the
//! policy decision each would get and the steps the caller may not take; exit 0 when there is
//! nothing to do, 2 when there are changes, 1 on an error, as Terraform's `-detailed-exitcode`
//! does. `apply` carries out exactly a plan — a saved one (refused when the repository or the
//! catalog changed since), or a fresh one confirmed at a prompt or with `--yes` — step by step,
//! stopping at the first step refused or failing.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use crate::output::{self, ERROR, OK, WARNING, paint};
use crate::platform::{self, Applied, Plan};
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct PlanArgs {
    /// The repository's root (holding `platform/` and the product folders).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Also save the plan to this file, for `mesh apply FILE`.
    #[arg(long = "out", value_name = "FILE", conflicts_with = "import")]
    out: Option<PathBuf>,
    /// Write the drift (what the catalog has where a file manages a kind and the file lacks)
    /// into the platform files instead of planning it away; then print the plan that is left.
    #[arg(long)]
    import: bool,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ApplyArgs {
    /// A plan saved by `mesh plan --out FILE`; without it, a fresh plan is made and confirmed.
    plan: Option<PathBuf>,
    /// The repository's root (holding `platform/` and the product folders).
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Apply without asking (for CI).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

/// Errors exit 1 here (2 says "changes"): reported, then `Findings`.
fn reported(result: anyhow::Result<Outcome>) -> anyhow::Result<Outcome> {
    match result {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            for line in format!("{e:#}").lines() {
                output::error(line);
            }
            Ok(Outcome::Findings)
        }
    }
}

pub(crate) fn plan(args: &PlanArgs) -> anyhow::Result<Outcome> {
    reported(crate::runtime().and_then(|rt| {
        rt.block_on(async {
            let mut repo = platform::load(&args.root)?;
            let client = args.catalog.connect().await?;
            let mut plan = platform::plan(client.as_ref(), &repo).await?;
            if args.import {
                let imported = platform::import(client.as_ref(), &args.root, &repo, &plan).await?;
                report_imported(&imported, args.output)?;
                repo = platform::load(&args.root)?;
                plan = platform::plan(client.as_ref(), &repo).await?;
            }
            if let Some(path) = &args.out {
                save(&plan, path)?;
            }
            match args.output {
                OutputFormat::Text => print_plan(&plan)?,
                OutputFormat::Json => {
                    let mut out = std::io::stdout().lock();
                    serde_json::to_writer_pretty(&mut out, &plan)?;
                    writeln!(out)?;
                }
            }
            Ok(if plan.steps.is_empty() {
                Outcome::Ok
            } else {
                Outcome::Changes
            })
        })
    }))
}

/// What `--import` wrote, on standard error (standard output is the plan).
fn report_imported(imported: &[platform::Imported], format: OutputFormat) -> anyhow::Result<()> {
    let mut err = anstream::stderr().lock();
    if format == OutputFormat::Json {
        serde_json::to_writer(&mut err, &serde_json::json!({ "imported": imported }))?;
        writeln!(err)?;
        return Ok(());
    }
    if imported.is_empty() {
        writeln!(err, "no drift to import")?;
    }
    for i in imported {
        if i.at.is_empty() {
            writeln!(err, "{} {}", paint(WARNING, "skipped"), i.what)?;
        } else {
            writeln!(err, "{} {}: {}", paint(OK, "imported"), i.at, i.what)?;
        }
    }
    Ok(())
}

pub(crate) fn apply(args: &ApplyArgs) -> anyhow::Result<Outcome> {
    reported(crate::runtime().and_then(|rt| {
        rt.block_on(async {
            let repo = platform::load(&args.root)?;
            let client = args.catalog.connect().await?;
            let fresh = platform::plan(client.as_ref(), &repo).await?;
            let plan = match &args.plan {
                Some(path) => {
                    let saved = load(path)?;
                    let changes = |p: &Plan| -> Vec<platform::Change> {
                        p.steps.iter().map(|s| s.change.clone()).collect()
                    };
                    if changes(&saved) != changes(&fresh) {
                        anyhow::bail!(
                            "{}: the repository or the catalog changed since this plan was made ({} step(s) then, {} now); plan again",
                            path.display(),
                            saved.steps.len(),
                            fresh.steps.len()
                        );
                    }
                    fresh
                }
                None => {
                    if args.output == OutputFormat::Text {
                        print_plan(&fresh)?;
                    }
                    if !fresh.steps.is_empty() && !args.yes && !confirmed(fresh.steps.len())? {
                        anyhow::bail!("not applied");
                    }
                    fresh
                }
            };
            let applied = platform::apply(client.as_ref(), &repo, &plan).await;
            let stopped = applied.iter().any(|a| a.result != "applied");
            match args.output {
                OutputFormat::Text => print_applied(&applied, plan.steps.len())?,
                OutputFormat::Json => {
                    let mut out = std::io::stdout().lock();
                    serde_json::to_writer_pretty(
                        &mut out,
                        &serde_json::json!({
                            "principal": plan.principal,
                            "planned": plan.steps.len(),
                            "steps": applied,
                        }),
                    )?;
                    writeln!(out)?;
                }
            }
            Ok(if stopped {
                Outcome::Findings
            } else {
                Outcome::Ok
            })
        })
    }))
}

fn confirmed(steps: usize) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(
            "{steps} change(s) to apply and no terminal to confirm them: pass --yes, or apply a saved plan (mesh plan --out FILE; mesh apply FILE)"
        );
    }
    let mut out = output::stdout();
    write!(out, "Apply these {steps} change(s)? Only `yes` applies: ")?;
    out.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

fn save(plan: &Plan, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(plan)?;
    std::fs::write(path, text + "\n")
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

fn load(path: &Path) -> anyhow::Result<Plan> {
    let text = crate::files::read_text(path)?;
    if text.len() > 64 << 20 {
        anyhow::bail!("{}: a plan is at most 64 MiB", path.display());
    }
    let plan: Plan = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}:{}:{}: not a mesh plan: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    if plan.format != platform::FORMAT {
        anyhow::bail!(
            "{}: plan format {} (this mesh reads format {}); plan again",
            path.display(),
            plan.format,
            platform::FORMAT
        );
    }
    Ok(plan)
}

fn sign(action: &str) -> String {
    match action {
        "create" => paint(OK, "+"),
        "update" => paint(WARNING, "~"),
        _ => paint(ERROR, "-"),
    }
}

fn print_plan(plan: &Plan) -> anyhow::Result<()> {
    let mut out = output::stdout();
    for note in &plan.notes {
        writeln!(out, "{} {note}", paint(WARNING, "note:"))?;
    }
    if plan.steps.is_empty() {
        writeln!(
            out,
            "{}: the catalog matches the repository.",
            paint(OK, "No changes")
        )?;
        return Ok(());
    }
    for s in &plan.steps {
        let origin = s.source.as_deref().map_or_else(
            || "(drift: not in the repository)".to_owned(),
            str::to_owned,
        );
        writeln!(
            out,
            "{} {} {}  {origin}",
            sign(&s.action),
            s.action,
            s.change.describe()
        )?;
        if let Some(d) = &s.decision
            && !d.is_null()
        {
            writeln!(out, "    decision: {d}")?;
        }
        if let Some(r) = &s.refused {
            writeln!(out, "    {} {r}", paint(ERROR, "would be refused:"))?;
        }
    }
    let count = |a: &str| plan.steps.iter().filter(|s| s.action == a).count();
    writeln!(
        out,
        "\nPlan: {} to create, {} to update, {} to delete{} (as {}).",
        count("create"),
        count("update"),
        count("delete"),
        match plan.refused() {
            0 => String::new(),
            n => format!(", {n} would be refused"),
        },
        plan.principal
    )?;
    out.flush()?;
    Ok(())
}

fn print_applied(applied: &[Applied], planned: usize) -> anyhow::Result<()> {
    let mut out = output::stdout();
    for a in applied {
        let mark = match a.result.as_str() {
            "applied" => paint(OK, "applied"),
            other => paint(ERROR, other),
        };
        writeln!(out, "{mark} {} {}", a.step.action, a.step.change.describe())?;
        if let Some(d) = &a.detail {
            writeln!(out, "    {d}")?;
        }
    }
    let done = applied.iter().filter(|a| a.result == "applied").count();
    if done == planned {
        writeln!(out, "Apply complete: {done} change(s).")?;
    } else {
        writeln!(
            out,
            "Stopped after {done} of {planned} change(s); the rest were not tried."
        )?;
    }
    out.flush()?;
    Ok(())
}
