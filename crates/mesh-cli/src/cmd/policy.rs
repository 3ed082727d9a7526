//! `mesh policy check [DIR...]`, `mesh policy test [DIR...]`, `mesh policy list`: governance as
//! code, locally and in CI, with the same engine the catalog runs at publish.
//!
//! The policies are the standard pack shipped in the binary, any global policies given with
//! `--policies DIR`, and the product's own domain policies in `DIR/policies/*.rego` (which may
//! add rules and, in `DIR/policies/overrides.yaml`, tighten global ones — never weaken them).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mesh_catalog::governance::{PolicyBundle, PolicyFile, PolicyScope};
use mesh_model::source::{Node, Span, Value};
use mesh_policy::{Decision, Enforcement, Overrides, PolicySet, Source};

use crate::cmd::show::finish;
use crate::files::{load_bundle, read_text};
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
    /// Publish a folder of policies to the catalog as the next version of a domain's policies
    /// (or, for admins, the global ones); the catalog judges every publish by them.
    Publish(PublishArgs),
    /// The versions of a domain's (or the global) policies in the catalog.
    Versions(VersionsArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["domain", "global"])))]
struct PublishArgs {
    /// The folder: *.rego (with *_test.rego unit tests) and, for a domain, overrides.yaml.
    dir: PathBuf,
    /// The domain whose policies these are.
    #[arg(long)]
    domain: Option<String>,
    /// The platform's global policies (added to the standard pack).
    #[arg(long)]
    global: bool,
    /// Check everything (load, federation, Rego tests) and store nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    catalog: crate::workspace::CatalogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
struct VersionsArgs {
    /// `global` or a domain name.
    scope: String,
    #[command(flatten)]
    catalog: crate::workspace::CatalogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
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
    #[arg(long = "policies", value_name = "DIR", conflicts_with = "domain")]
    policies: Vec<PathBuf>,
    /// The policies the catalog judges this domain's products by (its own, the published global
    /// ones and the standard pack), with the versions they come from.
    #[arg(long)]
    domain: Option<String>,
    #[command(flatten)]
    catalog: crate::workspace::CatalogArgs,
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
        PolicyCommand::Publish(a) => publish(a),
        PolicyCommand::Versions(a) => versions(a),
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

/// A product folder's `policies/overrides.yaml`: `policy-id: block|warn|audit`.
pub(crate) fn overrides(dir: &Path) -> anyhow::Result<Overrides> {
    overrides_file(&dir.join("policies/overrides.yaml"))
}

/// An overrides file (none when it does not exist).
fn overrides_file(path: &Path) -> anyhow::Result<Overrides> {
    if !path.is_file() {
        return Ok(Overrides::new());
    }
    let text = read_text(path)?;
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
    if let Some(domain) = &args.domain {
        return crate::runtime()?.block_on(async {
            let client = args.catalog.connect().await?;
            let result = client.effective_policies(Some(domain)).await;
            finish(result, args.output, |effective| {
                let mut out = output::stdout();
                let version = |v: Option<i64>| v.map_or("none".to_owned(), |v| format!("v{v}"));
                writeln!(
                    out,
                    "policies of domain {domain}: global bundle {}, domain bundle {}",
                    version(effective.versions.global),
                    version(effective.versions.domain)
                )?;
                for p in &effective.policies {
                    writeln!(
                        out,
                        "{:<24} {:<16} {:<6} {:<8} {:<10} {}",
                        paint(LOCATION, &p.id),
                        p.kind,
                        p.enforcement,
                        p.on,
                        p.scope,
                        p.title
                    )?;
                }
                out.flush()?;
                Ok(())
            })
        });
    }
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
            "{:<24} {:<16} {:<6} {:<8} {}",
            paint(LOCATION, &p.id),
            p.kind,
            p.enforcement.as_str(),
            p.on.as_str(),
            p.title
        )?;
    }
    out.flush()?;
    Ok(Outcome::Ok)
}

fn audit(args: &AuditArgs) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let report = match client.audit().await {
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

/// A folder of policies as a bundle: its *.rego files (by file name) and `overrides.yaml`.
pub(crate) fn bundle(dir: &Path) -> anyhow::Result<PolicyBundle> {
    anyhow::ensure!(dir.is_dir(), "{}: not a folder", dir.display());
    let files = rego_files(dir)?
        .into_iter()
        .map(|s| PolicyFile {
            path: Path::new(&s.path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(s.path),
            text: s.text,
        })
        .collect();
    // overrides.yaml sits beside the files (in a product folder's `policies/`).
    let overrides = overrides_file(&dir.join("overrides.yaml"))?
        .into_iter()
        .map(|(id, level)| (id, level.as_str().to_owned()))
        .collect();
    Ok(PolicyBundle { files, overrides })
}

fn publish(args: &PublishArgs) -> anyhow::Result<Outcome> {
    let scope = match &args.domain {
        Some(d) => PolicyScope::parse(d).map_err(|e| anyhow::anyhow!("--domain: {e}"))?,
        None => PolicyScope::Global,
    };
    let bundle = bundle(&args.dir)?;
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let result = client.publish_policies(&scope, bundle, args.dry_run).await;
        if let Err(e) = &result {
            let problems = e.problems();
            if !problems.is_empty() && args.output == OutputFormat::Text {
                output::error(&format!("the {} policies are refused:", scope.name()));
                let mut err = std::io::stderr().lock();
                for p in problems {
                    writeln!(err, "  {p}")?;
                }
                return Ok(Outcome::Findings);
            }
        }
        finish(result, args.output, |report| {
            let mut out = output::stdout();
            let what = match report.outcome.as_str() {
                "published" => paint(OK, "Published"),
                "unchanged" => "Unchanged:".to_owned(),
                _ => paint(OK, "Checked"),
            };
            writeln!(
                out,
                "{what} {} policies v{} ({} files, {} tests passed)",
                scope.name(),
                report.bundle.version,
                report.bundle.paths.len(),
                report.tests
            )?;
            for p in report.policies.iter().filter(|p| p.scope == scope.name()) {
                writeln!(
                    out,
                    "  {:<24} {:<16} {:<6} {:<8} {}",
                    paint(LOCATION, &p.id),
                    p.kind,
                    p.enforcement,
                    p.on,
                    p.title
                )?;
            }
            for (id, level) in &report.bundle.overrides {
                writeln!(out, "  override: {id} is {level} in this domain")?;
            }
            out.flush()?;
            Ok(())
        })
    })
}

fn versions(args: &VersionsArgs) -> anyhow::Result<Outcome> {
    let scope = PolicyScope::parse(&args.scope).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        let result = client.policy_versions(&scope).await;
        finish(result, args.output, |versions| {
            let mut out = output::stdout();
            if versions.is_empty() {
                writeln!(out, "no {} policies published", scope.name())?;
            }
            for v in versions {
                writeln!(
                    out,
                    "v{:<4} {}  {:<16} {}  {}",
                    v.version,
                    v.published_at,
                    v.published_by,
                    &v.digest[..12.min(v.digest.len())],
                    v.paths.join(", ")
                )?;
            }
            out.flush()?;
            Ok(())
        })
    })
}
