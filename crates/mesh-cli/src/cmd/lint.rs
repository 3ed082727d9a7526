//! `mesh lint PATH...`: finds contract and product files, lints them together, prints every
//! finding as `file:line:col: severity: message` (or JSON), and exits 1 when there is an error.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::bail;
use mesh_model::DocKind;
use mesh_model::diag::{Code, Diagnostic, Part, Severity};
use mesh_model::lint::{LintOptions, LintReport, SourceFile, lint};

use crate::cmd::policy;
use crate::files::read_text;
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

    /// Skip the governance policies (the standard pack, `--policies`, and each product's
    /// `policies/` folder), which otherwise run on every data product found.
    #[arg(long)]
    no_policies: bool,

    /// Folders of global policies (*.rego) added to the standard pack.
    #[arg(long = "policies", value_name = "DIR", conflicts_with = "no_policies")]
    policies: Vec<PathBuf>,

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
    let mut report = lint(
        &sources,
        LintOptions {
            strict: args.strict,
        },
    );
    if !args.no_policies {
        governance(&sources, &mut report, &args.policies, &mut problems)?;
    }
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

/// Runs the policies on every data product among `sources`, with the contracts of its output ports
/// found among the same files, and adds each violation to the file it concerns: blocking ones as
/// errors, warnings as warnings (audit-only rules are for `mesh policy check` and the catalog).
/// Policies that do not load go to `problems`.
fn governance(
    sources: &[SourceFile],
    report: &mut LintReport,
    extra: &[PathBuf],
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    use mesh_model::source::Node;
    use mesh_policy::{Enforcement, PolicySet};

    let global = policy::global(extra)?;
    let parsed: Vec<(&SourceFile, Option<DocKind>, Node)> = sources
        .iter()
        .filter_map(|s| {
            let root = mesh_model::yaml::parse(&s.text).root?;
            let kind = report
                .files
                .iter()
                .find(|f| f.path == s.path)
                .and_then(|f| f.kind);
            Some((s, kind, root))
        })
        .collect();
    // One policy set per product folder with its own policies; the rest share the global one.
    let mut sets: std::collections::HashMap<PathBuf, Option<PolicySet>> = Default::default();
    for (source, _, product) in parsed
        .iter()
        .filter(|(_, k, _)| *k == Some(DocKind::Product))
    {
        let dir = Path::new(&source.path)
            .parent()
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let own = dir.join("policies").is_dir();
        let key = if own { dir.clone() } else { PathBuf::new() };
        if !sets.contains_key(&key) {
            let domain = product
                .get("domain")
                .and_then(Node::as_str)
                .unwrap_or("unknown");
            let local = if own {
                policy::rego_files(&dir.join("policies"))?
            } else {
                Vec::new()
            };
            let set = match (own.then(|| policy::overrides(&dir)).transpose()).and_then(|o| {
                policy::load(Ok(PolicySet::load(
                    &global,
                    Some((domain, &local)),
                    &o.unwrap_or_default(),
                )))
            }) {
                Ok(set) => Some(set),
                Err(e) => {
                    problems.push(format!("{e:#}"));
                    None
                }
            };
            sets.insert(key.clone(), set);
        }
        let Some(set) = sets.get(&key).and_then(Option::as_ref) else {
            continue;
        };
        let ids: Vec<&str> = product
            .get("outputPorts")
            .and_then(Node::as_seq)
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p.get("contractId").and_then(Node::as_str))
            .collect();
        let contracts: Vec<(String, Node)> = parsed
            .iter()
            .filter(|(_, k, c)| {
                *k == Some(DocKind::Contract)
                    && c.get("id")
                        .and_then(Node::as_str)
                        .is_some_and(|id| ids.contains(&id))
            })
            .map(|(s, _, c)| (s.path.clone(), c.clone()))
            .collect();
        let jsons: Vec<serde_json::Value> = contracts.iter().map(|(_, c)| c.to_json()).collect();
        let input = mesh_policy::input(&product.to_json(), &jsons, serde_json::json!({}));
        let decision = set.evaluate(&input)?;
        for v in &decision.violations {
            let severity = match v.enforcement {
                Enforcement::Block => Severity::Error,
                Enforcement::Warn => Severity::Warning,
                Enforcement::Audit => continue,
            };
            let (file, span, pointer) = match policy::locate(
                v.path.as_deref(),
                &source.path,
                product,
                &input,
                &contracts,
            ) {
                Some(at) => (at.file.to_owned(), at.span, at.pointer),
                None => (source.path.clone(), product.span, String::new()),
            };
            let mut d = Diagnostic::error(
                Code::Policy,
                span,
                pointer,
                format!("[{}] {}", v.policy, v.message),
            )
            .with_hint(format!("policy `{}`: {}", v.policy, v.title));
            d.severity = severity;
            if let Some(f) = report.files.iter_mut().find(|f| f.path == file) {
                f.diagnostics.push(d);
                f.diagnostics
                    .sort_by_key(|d| (d.position().line, d.position().col));
            }
        }
    }
    Ok(())
}

#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) path: PathBuf,
    /// The path as printed: as the user typed it, without a leading `./`.
    pub(crate) display: String,
    pub(crate) explicit: bool,
}

/// Expands the command-line paths into the files to lint, in a stable order; paths that cannot
/// be read or searched go to `problems`.
pub(crate) fn discover(paths: &[PathBuf], problems: &mut Vec<String>) -> Vec<Found> {
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
