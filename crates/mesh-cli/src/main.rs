//! `mesh`: one binary for data products — scaffold, lint, test, publish, run, discover, govern.
//!
//! This crate turns flags into validated arguments and calls the libraries; it holds no business
//! rules. Exit codes (ripgrep's convention): 0 = ok, 1 = the check ran and found problems,
//! 2 = usage or runtime error. A closed pipe (`mesh lint | head`) is not an error.

mod client;
mod cmd;
mod files;
mod monitoring;
mod output;
mod platform;
mod workspace;

use std::io;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Data products with contracts enforced end to end: ODPS products, ODCS contracts, Rego
/// governance, Delta Lake output ports — one binary, zero services on a laptop.
#[derive(Debug, Parser)]
#[command(name = "mesh", version, max_term_width = 100)]
struct Cli {
    /// When to colour output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a whole example mesh in a fresh folder (two domains, five products, policies, a
    /// cross-domain grant, every pipeline run, a first SLA pass) and serve it.
    Demo(cmd::demo::Args),
    /// Create a mesh workspace: settings file and the local `.mesh/` catalog and data folder.
    Init(cmd::init::Args),
    /// Scaffold a data product a team can lint, publish and run as generated.
    New(cmd::new::Args),
    /// The workspace's CI: write the GitHub Actions workflow, list the products a change touched.
    Ci(cmd::ci::Args),
    /// Check data contracts (*.odcs.yaml) and data products (*.odps.yaml): schema, semantics and
    /// platform readiness, every finding with file:line:col.
    Lint(cmd::lint::Args),
    /// Check a data contract against its data: schema, quality rules and SLAs, on Parquet, CSV,
    /// JSON, locally or on S3.
    Test(Box<cmd::test::Args>),
    /// Compare two versions of a data contract: every change, classified as breaking,
    /// potentially breaking or info for its readers. Exits 1 on a breaking change.
    Changelog(cmd::changelog::Args),
    /// Write an ODCS contract from what exists: a PostgreSQL, MySQL/MariaDB or SQLite table
    /// (columns, types, keys, comments), data files (their schema), SQL DDL, a JSON Schema, an
    /// Avro schema, a Protobuf file or a dbt manifest.
    Import(cmd::import::Args),
    /// Write a data contract as SQL DDL (per dialect), JSON Schema, Avro, Protobuf, dbt models YAML, a
    /// Great Expectations suite, SodaCL checks, a Markdown/HTML data sheet, or ODCS in any version;
    /// what the format cannot carry is listed.
    Export(cmd::export::Args),
    /// Publish data products to the catalog: strict lint, compatibility of every output port's
    /// contract with its history, then a new version — or the reasons it was refused.
    Publish(cmd::publish::Args),
    /// Run a product's pipeline: transform, write its output port as uncommitted Delta files,
    /// check the contract on them, and commit (and move the catalog's snapshot) only if it holds.
    Run(cmd::run::Args),
    /// A product's runs, newest first, and the snapshot readers get of each output port.
    Runs(cmd::run::RunsArgs),
    /// Each data product's schedule (its `schedule` custom property) and next slots.
    Schedule(cmd::schedule::Args),
    /// Make an earlier run's snapshot of a product's output port current again.
    Rollback(cmd::run::RollbackArgs),
    /// Show a data product (or one version, with its output ports and contracts).
    Show(cmd::show::ShowArgs),
    /// List the versions of a data product, newest first, with their lifecycle.
    Versions(cmd::show::VersionsArgs),
    /// Deprecate a version: served until its sunset date; its consumers are notified.
    Deprecate(cmd::lifecycle::DeprecateArgs),
    /// Retire a deprecated version once its sunset date has come.
    Retire(cmd::lifecycle::RetireArgs),
    /// Governance as code: check products against Rego policies, run policy tests, list them.
    Policy(cmd::policy::Args),
    /// Lineage of a product or one of its columns: upstream, downstream, as text, JSON, DOT or
    /// Mermaid.
    Lineage(cmd::lineage::Args),
    /// Search data products: ranked, typo-tolerant, with facets (domain, tag, type,
    /// classification, status).
    Search(cmd::search::Args),
    /// Serve the catalog's HTTP API (OpenAPI document at /openapi.json).
    Serve(Box<cmd::serve::Args>),
    /// API tokens for `mesh serve`.
    Token(cmd::token::Args),
    /// The processes of a Ballista cluster: a scheduler, and executors that work for it.
    #[cfg(feature = "ballista")]
    Cluster(cmd::cluster::Args),
    /// The deployment's masking key (`hash` masks are HMAC-SHA256 under it): show, rotate.
    MaskingKey(cmd::masking_key::Args),
    /// External locations where a domain's sources may read: add (admins), list, remove.
    Location(cmd::location::Args),
    /// Compare the repository's platform files and products with the catalog: every change,
    /// its policy decision, what would be refused (exit 0: none, 2: changes, 1: error).
    Plan(cmd::plan::PlanArgs),
    /// Carry out a plan (saved with `mesh plan --out`, or fresh and confirmed), step by step.
    Apply(cmd::plan::ApplyArgs),
    /// Send a product's, a domain's or a team's notifications (run failures, SLA violations,
    /// access requests and decisions, expiring grants, deprecations) to a webhook, Slack or
    /// e-mail.
    Subscribe(cmd::subscribe::SubscribeArgs),
    /// The subscriptions you may see.
    Subscriptions(cmd::subscribe::ListArgs),
    /// Remove a subscription.
    Unsubscribe(cmd::subscribe::UnsubscribeArgs),
    /// Cross-domain access: request, approve or deny, list, revoke.
    Access(cmd::access::Args),
    /// A governed read: SQL over the output ports you may read, columns outside your grant
    /// masked.
    Query(cmd::query::Args),
    /// The catalog's append-only audit log: access requests, decisions, grants, revocations,
    /// every read and refused read, policy decisions, publishes.
    Audit(cmd::audit::Args),
    /// Service levels per output port as the platform measured them (freshness, completeness,
    /// availability, error rate, latency, volume) against the contracts; `check` records
    /// violations and tells a webhook. Exits 1 while a port is in violation.
    Sla(cmd::sla::Args),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// How a command prints its results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// For people.
    #[default]
    Text,
    /// For machines: one JSON document on stdout.
    Json,
}

// mimalloc rather than the system allocator: DataFusion's plans and the policy VM allocate many
// small values, and both run measurably faster on it (crates/mesh-policy/examples/policy_bench.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process, as databases do. mimalloc returns freed
/// memory to the kernel a few pages at a time; under THP each page faulted back in is a 2 MiB
/// huge page the kernel zeroes whole. A 10-million-row `mesh run` spent over a second of
/// system time on that alone (bench/wap.sh); 4 KiB pages cost a third of it.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // Refused only by kernels older than 3.15: then nothing changes.
        let _ = nix::sys::prctl::set_thp_disable(true);
    }
}

/// What a command found, mapped to the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    /// Ran, nothing wrong.
    Ok,
    /// Ran, and found problems in the user's files.
    Findings,
    /// Could not do all it was asked (a path missing, a file unreadable); already reported.
    Error,
    /// `mesh plan` found changes to make (exit 2, as Terraform's `-detailed-exitcode`).
    Changes,
}

fn main() -> ExitCode {
    no_huge_pages();
    // A panic is a bug: one line that says so and where (the full report with RUST_BACKTRACE
    // set). One in a library's background task — deltalake 1.1's clean-up after a write that
    // failed for lack of space panics so — does not change the outcome the command reports.
    if std::env::var_os("RUST_BACKTRACE").is_none() {
        std::panic::set_hook(Box::new(|info| {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr().lock(),
                "mesh: internal error (a bug; please report it): {info}"
            );
        }));
    }
    let cli = Cli::parse();
    match cli.color {
        ColorChoice::Auto => {}
        ColorChoice::Always => anstream::ColorChoice::Always.write_global(),
        ColorChoice::Never => anstream::ColorChoice::Never.write_global(),
    }
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(&args),
        Command::Init(args) => cmd::init::run(&args),
        Command::New(args) => cmd::new::run(&args),
        Command::Ci(args) => cmd::ci::run(&args),
        Command::Lint(args) => cmd::lint::run(&args),
        Command::Test(args) => workspace::engine_limits().and_then(|()| cmd::test::run(&args)),
        Command::Changelog(args) => cmd::changelog::run(&args),
        Command::Import(args) => cmd::import::run(&args),
        Command::Export(args) => cmd::export::run(&args),
        Command::Publish(args) => cmd::publish::run(&args),
        Command::Run(args) => workspace::engine_limits().and_then(|()| cmd::run::run(&args)),
        Command::Runs(args) => cmd::run::runs(&args),
        Command::Schedule(args) => cmd::schedule::run(&args),
        Command::Rollback(args) => cmd::run::rollback(&args),
        Command::Show(args) => cmd::show::show(&args),
        Command::Versions(args) => cmd::show::versions(&args),
        Command::Deprecate(args) => cmd::lifecycle::deprecate(&args),
        Command::Retire(args) => cmd::lifecycle::retire(&args),
        Command::Search(args) => cmd::search::run(&args),
        Command::Lineage(args) => cmd::lineage::run(&args),
        Command::Policy(args) => cmd::policy::run(&args),
        Command::Serve(args) => workspace::engine_limits().and_then(|()| cmd::serve::run(&args)),
        Command::Token(args) => cmd::token::run(&args),
        #[cfg(feature = "ballista")]
        Command::Cluster(args) => cmd::cluster::run(&args),
        Command::MaskingKey(args) => cmd::masking_key::run(&args),
        Command::Location(args) => cmd::location::run(&args),
        Command::Plan(args) => cmd::plan::plan(&args),
        Command::Apply(args) => cmd::plan::apply(&args),
        Command::Subscribe(args) => cmd::subscribe::subscribe(&args),
        Command::Subscriptions(args) => cmd::subscribe::list(&args),
        Command::Unsubscribe(args) => cmd::subscribe::unsubscribe(&args),
        Command::Access(args) => cmd::access::run(&args),
        Command::Query(args) => workspace::engine_limits().and_then(|()| cmd::query::run(&args)),
        Command::Audit(args) => cmd::audit::run(&args),
        Command::Sla(args) => cmd::sla::run(&args),
    };
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Ok(Outcome::Error) => ExitCode::from(2),
        Ok(Outcome::Changes) => ExitCode::from(2),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            output::error(&format!("{err:#}"));
            ExitCode::from(2)
        }
    }
}

/// The async runtime for commands that talk to the catalog or read data.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Planning SQL recurses over the statement's tree: room for the deepest one a governed
        // read takes (mesh_engine::query::MAX_SQL_OPERATORS) in debug builds too, with margin.
        .thread_stack_size(8 << 20)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        let kind = e
            .downcast_ref::<io::Error>()
            .map(io::Error::kind)
            .or_else(|| e.downcast_ref::<serde_json::Error>()?.io_error_kind());
        kind == Some(io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
