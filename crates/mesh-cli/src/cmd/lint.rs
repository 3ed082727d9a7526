//! `mesh lint PATH...`: finds contract and product files, lints them together, prints every
//! finding as `file:line:col: severity: message` (or JSON), and exits 1 when there is an error.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use mesh_model::DocKind;
use mesh_model::diag::{Diagnostic, Part, Severity};
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
    // Problems with the inputs themselves (a missing path, an unreadable file) are reported and
    // the rest is still linted, as ripgrep does; they make the exit code 2.
    let mut problems = Vec::new();
    let files = discover(&args.paths, &mut problems);
    let mut sources = Vec::with_capacity(files.len());
    for file in files {
        match read_text(&file.path) {
            Ok(text) => sources.push(SourceFile {
                path: file.display,
                text,
                explicit: file.explicit,
            }),
            // A discovered `*.yaml` we cannot read may well not be ours.
            Err(_) if !file.explicit && DocKind::from_file_name(&file.display).is_none() => {}
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    let report = lint(
        &sources,
        LintOptions {
            strict: args.strict,
        },
    );
    for problem in &problems {
        output::error(problem);
    }
    if report.files.is_empty() {
        if problems.is_empty() {
            let shown: Vec<String> = args.paths.iter().map(|p| p.display().to_string()).collect();
            bail!(
                "no data contracts or data products found in {} (looked for *.odcs.yaml, *.odps.yaml and YAML files with `kind: DataContract` or `kind: DataProduct`)",
                shown.join(", ")
            );
        }
        return Ok(Outcome::Error);
    }
    match args.output {
        OutputFormat::Text => print_text(&report)?,
        OutputFormat::Json => print_json(&report)?,
    }
    Ok(if !problems.is_empty() {
        Outcome::Error
    } else if report.errors() > 0 {
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

/// Expands the command-line paths into the files to lint, in a stable order; paths that cannot
/// be read or searched go to `problems`.
fn discover(paths: &[PathBuf], problems: &mut Vec<String>) -> Vec<Found> {
    let mut out: Vec<Found> = Vec::new();
    for path in paths {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) => {
                problems.push(format!("cannot read {}: {e}", path.display()));
                continue;
            }
        };
        if meta.is_file() {
            out.push(Found {
                display: display(path),
                path: path.clone(),
                explicit: true,
            });
            continue;
        }
        let mut found = Vec::new();
        for entry in ignore::WalkBuilder::new(path).require_git(false).build() {
            match entry {
                Ok(entry)
                    if entry.file_type().is_some_and(|t| t.is_file())
                        && is_candidate(entry.path()) =>
                {
                    found.push(Found {
                        display: display(entry.path()),
                        path: entry.into_path(),
                        explicit: false,
                    });
                }
                Ok(_) => {}
                Err(e) => problems.push(format!("cannot search {}: {e}", path.display())),
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        out.extend(found);
    }
    // The same file named twice (`a.yaml` and `./dir/` containing it) is linted once.
    let mut seen = std::collections::HashSet::new();
    out.retain(|f| seen.insert(std::fs::canonicalize(&f.path).unwrap_or_else(|_| f.path.clone())));
    out
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

pub(crate) fn read_text(path: &Path) -> anyhow::Result<String> {
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
pub(crate) fn styled(d: &Diagnostic, file: &str) -> String {
    d.render_with(file, |part, text| {
        let style = match part {
            Part::Location => LOCATION,
            Part::Severity(Severity::Error) => ERROR,
            Part::Severity(Severity::Warning) => WARNING,
            Part::Hint => HINT,
        };
        paint(style, text)
    })
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
