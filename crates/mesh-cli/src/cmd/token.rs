//! `mesh token create PRINCIPAL --role ROLE [--domain D]`: an API token for `mesh serve`, written
//! straight into the catalog (whoever can write the catalog is its admin). Shown once.

use std::io::Write;

use anyhow::{Context, bail};
use mesh_catalog::{Principal, Role};

use crate::Outcome;
use crate::workspace::CatalogArgs;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Create a token for a person or a service identity.
    Create(CreateArgs),
    /// Revoke a token (by its id, or the token itself), or with --principal a principal and
    /// everything it held (tokens, roles, grants, pending requests); at once.
    Revoke(RevokeArgs),
}

#[derive(Debug, clap::Args)]
struct RevokeArgs {
    /// The token's id (printed when it was created) or the token.
    #[arg(value_name = "ID|TOKEN", required_unless_present = "principal")]
    id: Option<String>,

    /// Revoke this principal instead: its tokens, credentials, roles and grants go, its pending
    /// requests are denied, and its identity provider's tokens issued until now are refused; a
    /// token issued under the name later starts with nothing.
    #[arg(long, conflicts_with = "id")]
    principal: Option<String>,

    #[command(flatten)]
    catalog: CatalogArgs,
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// Who the token is for.
    principal: String,

    /// Its role: admin, owner, member or consumer.
    #[arg(long)]
    role: String,

    /// The domain an owner or member works in.
    #[arg(long)]
    domain: Option<String>,

    /// Expiry date (YYYY-MM-DD, at 00:00 UTC); no expiry when absent.
    #[arg(long, value_name = "DATE")]
    expires: Option<String>,

    #[command(flatten)]
    catalog: CatalogArgs,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Outcome> {
    match &args.command {
        TokenCommand::Create(args) => create(args),
        TokenCommand::Revoke(args) => revoke(args),
    }
}

fn revoke(args: &RevokeArgs) -> anyhow::Result<Outcome> {
    if let Some(principal) = &args.principal {
        return crate::runtime()?.block_on(async {
            let catalog = args.catalog.open().await?;
            match catalog.revoke_principal(&Principal::local(), principal).await {
                Ok(r) => {
                    let mut err = anstream::stderr();
                    writeln!(
                        err,
                        "revoked principal {}: {} token(s), {} role(s), {} grant(s), {} pending request(s)",
                        r.principal,
                        r.tokens,
                        r.roles,
                        r.grants.len(),
                        r.requests.len()
                    )?;
                    Ok(Outcome::Ok)
                }
                Err(e) => {
                    crate::output::error(&e.to_string());
                    Ok(Outcome::Findings)
                }
            }
        });
    }
    let given = args.id.clone().unwrap_or_default();
    let id = if given.starts_with("mesh_") {
        mesh_catalog::auth::token_id(&given)
    } else {
        given
    };
    crate::runtime()?.block_on(async {
        let catalog = args.catalog.open().await?;
        match catalog.revoke_token(&Principal::local(), &id).await {
            Ok(()) => {
                let mut err = anstream::stderr();
                writeln!(err, "revoked token {id}")?;
                Ok(Outcome::Ok)
            }
            Err(e) => {
                crate::output::error(&e.to_string());
                Ok(Outcome::Findings)
            }
        }
    })
}

fn create(args: &CreateArgs) -> anyhow::Result<Outcome> {
    let Some(role) = Role::parse(&args.role) else {
        bail!(
            "--role `{}` is not one of admin, owner, member, consumer",
            args.role
        );
    };
    let expires = args
        .expires
        .as_deref()
        .map(|d| {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .with_context(|| format!("--expires `{d}` is not a date (YYYY-MM-DD)"))
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .transpose()?;
    crate::runtime()?.block_on(async {
        let catalog = args.catalog.open().await?;
        let result = catalog
            .issue_token(
                &Principal::local(),
                &args.principal,
                &[(role, args.domain.clone())],
                expires,
            )
            .await;
        match result {
            Ok(token) => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{token}")?;
                let mut err = anstream::stderr();
                writeln!(
                    err,
                    "token {} for {} ({role}{}): shown once, stored only as a hash",
                    mesh_catalog::auth::token_id(&token),
                    args.principal,
                    args.domain
                        .as_deref()
                        .map(|d| format!(" of {d}"))
                        .unwrap_or_default()
                )?;
                Ok(Outcome::Ok)
            }
            Err(e) => {
                crate::output::error(&e.to_string());
                Ok(Outcome::Error)
            }
        }
    })
}
