//! `mesh access request | list | approve | deny | grants | revoke | credentials`: cross-domain
//! access to output ports — asked for with a purpose, decided by the owning domain, granted for
//! a time — and the credentials a grantee's services read with.

use std::io::Write;

use anyhow::Context;
use mesh_catalog::access::{AccessAsk, AccessDecision, GrantView, RequestView};
use mesh_catalog::credentials::{CredentialAsk, CredentialView};

use crate::cmd::show::finish;
use crate::output::{self, ERROR, LOCATION, OK, WARNING, paint};
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t, global = true)]
    output: OutputFormat,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Ask to read an output port: `domain.product.port` (or `...port@MAJOR`).
    Request {
        port: String,
        /// What the data is for (owners judge by it; required for classified columns).
        #[arg(long)]
        purpose: String,
        /// Only these columns (comma-separated; default: all).
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        /// For how long.
        #[arg(long, default_value_t = 30)]
        days: i64,
        /// Ask for a consuming product's service identity (`domain.product`).
        #[arg(long = "for", value_name = "PRODUCT")]
        consumer: Option<String>,
    },
    /// Access requests: yours, or a product's when you own it.
    List {
        #[arg(long)]
        product: Option<String>,
        /// pending, approved or denied.
        #[arg(long)]
        state: Option<String>,
    },
    /// Approve a request, perhaps narrower: fewer columns, fewer days.
    Approve {
        request: String,
        #[arg(long, value_delimiter = ',')]
        columns: Vec<String>,
        #[arg(long)]
        days: Option<i64>,
    },
    /// Deny a request, saying why.
    Deny {
        request: String,
        #[arg(long)]
        reason: String,
    },
    /// Grants: yours, or a product's when you own it.
    Grants {
        #[arg(long)]
        product: Option<String>,
    },
    /// Revoke a grant at once.
    Revoke {
        grant: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Who reads a product's output ports through the query port: reads, rows, first and last.
    Usage { product: String },
    /// Credentials for grants: list them (yours, or your products'), mint one, revoke one.
    Credentials {
        #[command(subcommand)]
        action: Option<CredentialsCommand>,
        /// Only this grant's credentials.
        #[arg(long)]
        grant: Option<String>,
    },
}

#[derive(Debug, clap::Subcommand)]
enum CredentialsCommand {
    /// Mint a credential for a grant: its service reads the grant's port and columns with it,
    /// and nothing else. The secret is printed this once.
    Mint {
        grant: String,
        /// What holds it, e.g. `dashboard-prod`.
        #[arg(long)]
        label: Option<String>,
        /// How long it lives (never past the grant's end; default: until then).
        #[arg(long)]
        days: Option<i64>,
    },
    /// Revoke a credential at once (its grant stays).
    Revoke { credential: String },
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        match &args.command {
            Command::Request {
                port,
                purpose,
                columns,
                days,
                consumer,
            } => {
                let (address, major) = match port.split_once('@') {
                    Some((a, m)) => (
                        a,
                        Some(m.trim_start_matches('v').parse::<i64>().with_context(|| {
                            format!("`{port}`: the major version after @ is a number")
                        })?),
                    ),
                    None => (port.as_str(), None),
                };
                let (product, port_name) = address
                    .rsplit_once('.')
                    .with_context(|| format!("`{port}` is not domain.product.port"))?;
                let ask = AccessAsk {
                    product: product.to_owned(),
                    port: port_name.to_owned(),
                    major,
                    purpose: purpose.clone(),
                    columns: columns.clone(),
                    days: *days,
                    consumer: consumer.clone(),
                };
                let result = client.request_access(&ask).await;
                if let Err(e) = &result {
                    for (policy, enforcement, message) in e.violations() {
                        output::error(&format!("{policy} ({enforcement}): {message}"));
                    }
                }
                finish(result, args.output, print_request)
            }
            Command::List { product, state } => {
                let result = client
                    .access_requests(product.as_deref(), state.as_deref())
                    .await;
                finish(result, args.output, |all| {
                    for r in all {
                        print_request(r)?;
                    }
                    Ok(())
                })
            }
            Command::Approve {
                request,
                columns,
                days,
            } => {
                let decision = AccessDecision::Approve {
                    columns: (!columns.is_empty()).then(|| columns.clone()),
                    days: *days,
                };
                let result = client.decide_access(request, &decision).await;
                finish(result, args.output, print_request)
            }
            Command::Deny { request, reason } => {
                let decision = AccessDecision::Deny {
                    reason: reason.clone(),
                };
                let result = client.decide_access(request, &decision).await;
                finish(result, args.output, print_request)
            }
            Command::Grants { product } => {
                let result = client.access_grants(product.as_deref()).await;
                finish(result, args.output, |all| {
                    for g in all {
                        print_grant(g)?;
                    }
                    Ok(())
                })
            }
            Command::Revoke { grant, reason } => {
                let result = client.revoke_access(grant, reason).await;
                finish(result, args.output, print_grant)
            }
            Command::Credentials { action, grant } => match action {
                None => {
                    let result = client.credentials(grant.as_deref()).await;
                    finish(result, args.output, |all| {
                        for c in all {
                            print_credential(c)?;
                        }
                        Ok(())
                    })
                }
                Some(CredentialsCommand::Mint { grant, label, days }) => {
                    let ask = CredentialAsk {
                        label: label.clone(),
                        days: *days,
                    };
                    let result = client.mint_credential(grant, &ask).await;
                    finish(result, args.output, |minted| {
                        print_credential(&minted.credential)?;
                        let mut out = output::stdout();
                        writeln!(out, "{}", minted.secret)?;
                        out.flush()?;
                        output::warning(
                            "the secret above is shown this once: keep it in the service's secret store",
                        );
                        Ok(())
                    })
                }
                Some(CredentialsCommand::Revoke { credential }) => {
                    let result = client.revoke_credential(credential).await;
                    finish(result, args.output, print_credential)
                }
            },
            Command::Usage { product } => {
                let result = client.usage(product).await;
                finish(result, args.output, |rows| {
                    let mut out = output::stdout();
                    for u in rows {
                        writeln!(
                            out,
                            "{} {}.{}@{}: {} reads, {} rows, {} to {}",
                            paint(LOCATION, &u.reader),
                            u.product,
                            u.port,
                            u.major,
                            u.reads,
                            u.rows_read,
                            u.first_at,
                            u.last_at
                        )?;
                    }
                    out.flush()?;
                    Ok(())
                })
            }
        }
    })
}

fn columns(list: &[String]) -> String {
    if list.is_empty() {
        "all columns".to_owned()
    } else {
        list.join(", ")
    }
}

fn print_request(r: &RequestView) -> anyhow::Result<()> {
    let mut out = output::stdout();
    let style = match r.state.as_str() {
        "approved" => OK,
        "denied" => ERROR,
        _ => WARNING,
    };
    writeln!(
        out,
        "{} {} {}.{}@{} by {}: {} for {} days — {}",
        paint(style, &r.state),
        paint(LOCATION, &r.id),
        r.product,
        r.port,
        r.major,
        r.consumer.as_deref().unwrap_or(&r.requester),
        columns(&r.columns),
        r.days,
        r.purpose
    )?;
    if r.state == "pending" {
        writeln!(out, "  approvals {} of {}", r.approvals.len(), r.needed)?;
    }
    if let Some(reason) = &r.reason {
        writeln!(out, "  reason: {reason}")?;
    }
    if let Some(g) = &r.grant {
        writeln!(
            out,
            "  grant {}: {} until {}",
            g.id,
            columns(&g.columns),
            g.expires_at
        )?;
    }
    out.flush()?;
    Ok(())
}

fn print_grant(g: &GrantView) -> anyhow::Result<()> {
    let mut out = output::stdout();
    let state = if g.active {
        paint(OK, "active")
    } else if g.revoked_at.is_some() {
        paint(ERROR, "revoked")
    } else {
        paint(WARNING, "expired")
    };
    writeln!(
        out,
        "{state} {} {}.{}@{} to {}: {} until {}",
        paint(LOCATION, &g.id),
        g.product,
        g.port,
        g.major,
        g.grantee,
        columns(&g.columns),
        g.expires_at
    )?;
    out.flush()?;
    Ok(())
}

fn print_credential(c: &CredentialView) -> anyhow::Result<()> {
    let mut out = output::stdout();
    let state = if c.active {
        paint(OK, "active")
    } else if c.revoked_at.is_some() {
        paint(ERROR, "revoked")
    } else {
        paint(WARNING, "ended")
    };
    writeln!(
        out,
        "{state} {} {} for {}.{}@{} as {} (grant {}): {} until {}",
        paint(LOCATION, &c.id),
        c.label.as_deref().unwrap_or("-"),
        c.product,
        c.port,
        c.major,
        c.principal,
        c.grant,
        columns(&c.columns),
        c.expires_at
    )?;
    out.flush()?;
    Ok(())
}
