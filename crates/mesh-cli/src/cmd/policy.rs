//! `mesh policy check [DIR...]`, `mesh policy test [DIR...]`, `mesh policy list`: governance as
//! code, locally and in CI, with the same engine the catalog runs at publish.
//!
//! The policies are the standard pack shipped in the binary, any global policies given with
//! `--policies DIR`, and the product's own domain policies in `DIR/policies/*.rego` (which may
//! add rules and, in `DIR/policies/overrides.yaml`, tighten global ones — never weaken them).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mesh_model::source::{Node, Span, Value};
use mesh_policy::{Decision, Enforcement, Overrides, PolicySet, Source};

use crate::cmd::lint::read_text;
use crate::cmd::publish::load_bundle;
use crate::output::{self, ERROR, HINT, LOCATION, OK, WARNING, paint};
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PolicyCommand {
    /// Evaluate the policies on product folders; exit 1 when a blocking policy is violated.
    Check(CheckArgs),
    /// Run the `test_` rules of the standard pack and of the given policy folders.
    Test(TestArgs),
    /// List the policies that apply, with their type and enforcement.
    List(ListArgs),
    /// Audit every product in the catalog: compliance per domain and per policy, kept as history.
    Audit(AuditArgs),
}

#[derive(Debug, clap::Args)]
struct AuditArgs {
    #[command(flatten)]
    catalog: crate::workspace::CatalogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Product folders (each with one *.odps.yaml, its contracts, optional policies/).
    #[arg(default_value = ".")]
    dirs: Vec<PathBuf>,
    /// Folders of global policies (*.rego) added to the standard pack.
    #[arg(long = "policies", value_name = "DIR")]
    policies: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
struct TestArgs {
    /// Folders of policies and their *_test.rego files.
    dirs: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Folders of global policies added to the standard pack.
    #[arg(long = "policies", value_name = "DIR")]
    policies: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    match &args.command {
        PolicyCommand::Check(a) => check(a),
        PolicyCommand::Test(a) => test(a),
        PolicyCommand::List(a) => list(a),
        PolicyCommand::Audit(a) => audit(a),
    }
}

/// The *.rego files of a folder (sorted); none when it does not exist.
pub(crate) fn rego_files(dir: &Path) -> anyhow::Result<Vec<Source>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "rego"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            Ok(Source {
                text: read_text(&p)?,
                path: p.display().to_string(),
            })
        })
        .collect()
}

pub(crate) fn global(dirs: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    let mut sources = mesh_policy::standard();
    for dir in dirs {
        anyhow::ensure!(dir.is_dir(), "--policies {}: not a folder", dir.display());
        sources.extend(rego_files(dir)?);
    }
    Ok(sources)
}

/// `policies/overrides.yaml`: `policy-id: block|warn|audit`.
pub(crate) fn overrides(dir: &Path) -> anyhow::Result<Overrides> {
    let path = dir.join("policies/overrides.yaml");
    if !path.is_file() {
        return Ok(Overrides::new());
    }
    let text = read_text(&path)?;
    let parsed = mesh_model::yaml::parse(&text);
    let root = parsed
        .root
        .with_context(|| format!("{}: not valid YAML", path.display()))?;
    let mut out = Overrides::new();
    for entry in root.as_map().unwrap_or_default() {
        let level = entry
            .value
            .as_str()
            .and_then(Enforcement::parse)
            .with_context(|| {
                let pos = entry.value.span.start;
                format!(
                    "{}:{}:{}: `{}` must be block, warn or audit",
                    path.display(),
                    pos.line,
                    pos.col,
                    entry.key.text
                )
            })?;
        out.insert(entry.key.text.clone(), level);
    }
    Ok(out)
}

pub(crate) fn load(
    set: anyhow::Result<Result<PolicySet, Vec<mesh_policy::PolicyError>>>,
) -> anyhow::Result<PolicySet> {
    set?.map_err(|errors| {
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("the policies do not load:\n  {}", all.join("\n  "))
    })
}

fn check(args: &CheckArgs) -> anyhow::Result<Outcome> {
    let global = global(&args.policies)?;
    let mut outcome = Outcome::Ok;
    let mut results = Vec::new();
    for dir in &args.dirs {
        let bundle = load_bundle(dir)?;
        let product = parse(&bundle.descriptor.text, &bundle.descriptor.path)?;
        let contracts: Vec<(String, Node)> = bundle
            .contracts
            .iter()
            .map(|c| Ok((c.path.clone(), parse(&c.text, &c.path)?)))
            .collect::<anyhow::Result<_>>()?;
        let domain = product
            .get("domain")
            .and_then(Node::as_str)
            .unwrap_or("unknown")
            .to_owned();
        let local = rego_files(&dir.join("policies"))?;
        let set = load(Ok(PolicySet::load(
            &global,
            Some((domain.as_str(), &local)),
            &overrides(dir)?,
        )))?;
        let jsons: Vec<serde_json::Value> = contracts.iter().map(|(_, n)| n.to_json()).collect();
        let input = mesh_policy::input(&product.to_json(), &jsons, serde_json::json!({}));
        let decision = set.evaluate(&input)?;
        if decision.blocked() {
            outcome = Outcome::Findings;
        }
        let place = |path: &Option<String>| {
            locate(
                path.as_deref(),
                &bundle.descriptor.path,
                &product,
                &input,
                &contracts,
            )
            .and_then(|l| l.text())
        };
        match args.output {
            OutputFormat::Text => print_text(&bundle.descriptor.path, &decision, place)?,
            OutputFormat::Json => {
                let violations: Vec<serde_json::Value> = decision
                    .violations
                    .iter()
                    .map(|v| {
                        let mut j = serde_json::to_value(v).unwrap_or_default();
                        j["location"] = serde_json::json!(place(&v.path));
                        j
                    })
                    .collect();
                results.push(serde_json::json!({
                    "product": bundle.descriptor.path,
                    "evaluated": decision.evaluated,
                    "blocked": decision.blocked(),
                    "violations": violations,
                }));
            }
        }
    }
    if args.output == OutputFormat::Json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "results": results }))?;
        writeln!(out)?;
    }
    Ok(outcome)
}

pub(crate) fn parse(text: &str, path: &str) -> anyhow::Result<Node> {
    let parsed = mesh_model::yaml::parse(text);
    parsed.root.with_context(|| {
        let why = parsed
            .diagnostics
            .first()
            .map(|d| d.render(path))
            .unwrap_or_else(|| format!("{path}: empty document"));
        format!("cannot read {why}")
    })
}

/// Where a violation is: the file, the span of the value its path names, and that value's JSON
/// pointer. `contracts.<port>...` is in that port's contract, anything else in the descriptor;
/// list items are found by their name (or property, id, channel). A path that goes further than
/// the document does points at the last value it reached.
pub(crate) struct Located<'a> {
    pub(crate) file: &'a str,
    pub(crate) span: Span,
    pub(crate) pointer: String,
}

impl Located<'_> {
    /// `file:line:col`, when the position is known.
    pub(crate) fn text(&self) -> Option<String> {
        let pos = self.span.start;
        pos.is_known()
            .then(|| format!("{}:{}:{}", self.file, pos.line, pos.col))
    }
}

pub(crate) fn locate<'a>(
    path: Option<&str>,
    descriptor: &'a str,
    product: &'a Node,
    input: &serde_json::Value,
    contracts: &'a [(String, Node)],
) -> Option<Located<'a>> {
    let path = path?;
    let mut segs: Vec<&str> = path.split('.').collect();
    let (file, mut node) = if segs.first() == Some(&"contracts") && segs.len() >= 2 {
        let id = input["contracts"][segs[1]]["id"].as_str()?;
        let (file, node) = contracts
            .iter()
            .find(|(_, n)| n.get("id").and_then(Node::as_str) == Some(id))?;
        segs.drain(..2);
        (file.as_str(), node)
    } else {
        (descriptor, product)
    };
    let mut pointer = String::new();
    for seg in segs {
        let next = match &node.value {
            Value::Map(_) => node
                .get(seg)
                .map(|n| (n, seg.replace('~', "~0").replace('/', "~1"))),
            Value::Seq(items) => items.iter().enumerate().find_map(|(i, item)| {
                ["name", "property", "id", "channel"]
                    .iter()
                    .any(|k| item.get(k).and_then(Node::as_str) == Some(seg))
                    .then(|| (item, i.to_string()))
            }),
            _ => None,
        };
        match next {
            Some((n, step)) => {
                node = n;
                pointer.push('/');
                pointer.push_str(&step);
            }
            None => break,
        }
    }
    Some(Located {
        file,
        span: node.span,
        pointer,
    })
}

fn print_text(
    product: &str,
    decision: &Decision,
    place: impl Fn(&Option<String>) -> Option<String>,
) -> anyhow::Result<()> {
    let mut out = output::stdout();
    for v in &decision.violations {
        let style = match v.enforcement {
            Enforcement::Block => ERROR,
            Enforcement::Warn => WARNING,
            Enforcement::Audit => HINT,
        };
        let at = place(&v.path)
            .map(|l| format!("{} ", paint(LOCATION, &format!("{l}:"))))
            .unwrap_or_default();
        writeln!(
            out,
            "{at}{} [{}] {}",
            paint(style, v.enforcement.as_str()),
            v.policy,
            v.message
        )?;
    }
    let verdict = if decision.blocked() {
        paint(ERROR, "blocked:")
    } else {
        paint(OK, "compliant:")
    };
    writeln!(
        out,
        "{verdict} {product}: {} policies, {} blocking, {} warnings, {} audit",
        decision.evaluated,
        decision.count(Enforcement::Block),
        decision.count(Enforcement::Warn),
        decision.count(Enforcement::Audit)
    )?;
    out.flush()?;
    Ok(())
}

fn test(args: &TestArgs) -> anyhow::Result<Outcome> {
    let mut sources = mesh_policy::standard();
    for dir in &args.dirs {
        anyhow::ensure!(dir.is_dir(), "{}: not a folder", dir.display());
        sources.extend(rego_files(dir)?);
    }
    let set = load(Ok(PolicySet::load(&sources, None, &Overrides::new())))?;
    let results = set.run_tests();
    let mut out = output::stdout();
    let mut failed = 0;
    for r in &results {
        match &r.outcome {
            Ok(()) => writeln!(out, "{} {}", paint(OK, "PASS"), r.test)?,
            Err(why) => {
                failed += 1;
                writeln!(out, "{} {}: {why}", paint(ERROR, "FAIL"), r.test)?;
            }
        }
    }
    writeln!(out, "\n{} passed, {failed} failed", results.len() - failed)?;
    out.flush()?;
    Ok(if failed > 0 {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}

fn list(args: &ListArgs) -> anyhow::Result<Outcome> {
    let set = load(Ok(PolicySet::load(
        &global(&args.policies)?,
        None,
        &Overrides::new(),
    )))?;
    if args.output == OutputFormat::Json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, set.policies())?;
        writeln!(out)?;
        return Ok(Outcome::Ok);
    }
    let mut out = output::stdout();
    for p in set.policies() {
        writeln!(
            out,
            "{:<24} {:<16} {:<6} {}",
            paint(LOCATION, &p.id),
            p.kind,
            p.enforcement.as_str(),
            p.title
        )?;
    }
    out.flush()?;
    Ok(Outcome::Ok)
}

fn audit(args: &AuditArgs) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let catalog = args.catalog.open().await?;
        let report = match catalog.audit(&mesh_catalog::Principal::local()).await {
            Ok(report) => report,
            Err(e) => {
                output::error(&e.to_string());
                return Ok(Outcome::Error);
            }
        };
        let outcome = if report.compliant < report.products {
            Outcome::Findings
        } else {
            Outcome::Ok
        };
        if args.output == OutputFormat::Json {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
            return Ok(outcome);
        }
        let mut out = output::stdout();
        writeln!(
            out,
            "{} of {} products compliant ({})",
            report.compliant, report.products, report.at
        )?;
        for (title, table) in [("domain", &report.by_domain), ("policy", &report.by_policy)] {
            writeln!(
                out,
                "\n{:<28} {:>8} {:>9} {:>8} {:>8} {:>6}",
                paint(LOCATION, title),
                "products",
                "compliant",
                "blocking",
                "warnings",
                "audit"
            )?;
            for (name, c) in table {
                writeln!(
                    out,
                    "{name:<28} {:>8} {:>9} {:>8} {:>8} {:>6}",
                    c.products, c.compliant, c.blocking, c.warnings, c.audit
                )?;
            }
        }
        out.flush()?;
        Ok(outcome)
    })
}
