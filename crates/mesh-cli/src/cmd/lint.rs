//! `mesh lint PATH...`: finds contract and product files, lints them together, prints every
//! finding as `file:line:col: severity: message` (or JSON), and exits 1 when there is an error.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use mesh_model::diag::{Diagnostic, Severity};
use mesh_model::lint::{LintOptions, LintReport, SourceFile, lint};

use crate::output::{self, ERROR, HINT, LOCATION, OK, WARNING, paint};
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Files or folders to check (folders are searched for *.odcs.yaml, *.odps.yaml and YAML files
    /// with `kind: DataContract` / `kind: DataProduct`, honouring .gitignore).
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,

    /// Treat platform-readiness warnings as errors (what `mesh publish` requires).
    #[arg(long)]
    strict: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    let files = discover(&args.paths)?;
    if files.is_empty() {
        let shown: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "no data contracts or data products found in {} (looked for *.odcs.yaml, *.odps.yaml and YAML files with `kind: DataContract` or `kind: DataProduct`)",
            shown.join(", ")
        );
    }
    let mut sources = Vec::with_capacity(files.len());
    for file in &files {
        sources.push(SourceFile {
            path: file.display.clone(),
            text: read_text(&file.path)?,
            explicit: file.explicit,
        });
    }
    let report = lint(
        &sources,
        LintOptions {
            strict: args.strict,
        },
    );
    match args.output {
        OutputFormat::Text => print_text(&report)?,
        OutputFormat::Json => print_json(&report)?,
    }
    Ok(if report.errors() > 0 {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}

#[derive(Debug)]
struct Found {
    path: PathBuf,
    /// The path as printed: as the user typed it, without a leading `./`.
    display: String,
    explicit: bool,
}

/// Expands the command-line paths into the files to lint, in a stable order.
fn discover(paths: &[PathBuf]) -> anyhow::Result<Vec<Found>> {
    let mut out: Vec<Found> = Vec::new();
    for path in paths {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_file() {
            out.push(Found {
                display: display(path),
                path: path.clone(),
                explicit: true,
            });
            continue;
        }
        let mut found = Vec::new();
        let walker = ignore::WalkBuilder::new(path).require_git(false).build();
        for entry in walker {
            let entry = entry.with_context(|| format!("cannot search {}", path.display()))?;
            if entry.file_type().is_some_and(|t| t.is_file()) && is_candidate(entry.path()) {
                found.push(Found {
                    display: display(entry.path()),
                    path: entry.into_path(),
                    explicit: false,
                });
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        out.extend(found);
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|f| seen.insert(f.path.clone()));
    Ok(out)
}

fn is_candidate(path: &Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    name.ends_with(".yaml")
        || name.ends_with(".yml")
        || name.ends_with(".odcs.json")
        || name.ends_with(".odps.json")
}

fn display(path: &Path) -> String {
    let text = path.display().to_string();
    text.strip_prefix("./").map(str::to_owned).unwrap_or(text)
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {}: not UTF-8 text (byte {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(text
        .strip_prefix('\u{feff}')
        .map(str::to_owned)
        .unwrap_or(text))
}

fn print_text(report: &LintReport) -> anyhow::Result<()> {
    let mut out = output::stdout();
    for file in &report.files {
        for d in &file.diagnostics {
            writeln!(out, "{}", styled(d, &file.path))?;
        }
    }
    let (errors, warnings) = (report.errors(), report.warnings());
    let files = report.files.len();
    let checked = format!("checked {files} file{}", if files == 1 { "" } else { "s" });
    if errors == 0 && warnings == 0 {
        writeln!(out, "{checked}: {}", paint(OK, "no problems"))?;
    } else {
        let e = format!("{errors} error{}", if errors == 1 { "" } else { "s" });
        let w = format!("{warnings} warning{}", if warnings == 1 { "" } else { "s" });
        let e = if errors > 0 { paint(ERROR, &e) } else { e };
        let w = if warnings > 0 { paint(WARNING, &w) } else { w };
        writeln!(out, "{checked}: {e}, {w}")?;
    }
    out.flush()?;
    Ok(())
}

/// [`Diagnostic::render`] with colours.
fn styled(d: &Diagnostic, file: &str) -> String {
    let pos = d.position();
    let severity = match d.severity {
        Severity::Error => paint(ERROR, "error"),
        Severity::Warning => paint(WARNING, "warning"),
    };
    let location = paint(LOCATION, &format!("{file}:{}:{}:", pos.line, pos.col));
    let mut line = format!("{location} {severity}: {}", d.message);
    if let Some(hint) = &d.hint {
        line.push_str(&format!("\n  = {}: {hint}", paint(HINT, "hint")));
    }
    line
}

fn print_json(report: &LintReport) -> anyhow::Result<()> {
    let files: Vec<serde_json::Value> = report
        .files
        .iter()
        .map(|f| {
            serde_json::json!({
                "path": f.path,
                "kind": f.kind,
                "errors": f.errors(),
                "warnings": f.warnings(),
                "diagnostics": f.diagnostics.iter().map(|d| d.to_json(&f.path)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "files": files,
        "summary": { "files": report.files.len(), "errors": report.errors(), "warnings": report.warnings() },
    });
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &doc)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use mesh_model::diag::Code;
    use mesh_model::source::{Pos, Span};

    use super::*;

    #[test]
    fn styled_text_without_colours_is_the_model_rendering() {
        let d = Diagnostic::error(
            Code::UnknownKey,
            Span::point(Pos::new(2, 3)),
            "/x",
            "unknown key `x`",
        )
        .with_hint("did you mean `y`?");
        let plain = anstream::adapter::strip_str(&styled(&d, "f.yaml")).to_string();
        assert_eq!(plain, d.render("f.yaml"));
    }
}
