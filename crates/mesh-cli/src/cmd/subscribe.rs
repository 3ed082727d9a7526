//! `mesh subscribe`, `mesh subscriptions`, `mesh unsubscribe`: who hears of a domain's, a
//! team's or a product's run failures and recoveries, SLA violations, access requests and
//! decisions, grants about to expire, deprecations and retirements — over a webhook, a
//! Slack-compatible webhook or e-mail. The servers send them (`mesh serve`), each once.

use std::io::Write;

use mesh_catalog::subscriptions::{KINDS, NewSubscription, Subscription};

use crate::cmd::show::finish;
use crate::output;
use crate::workspace::CatalogArgs;
use crate::{Outcome, OutputFormat};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["product", "domain", "team"])))]
#[command(group(clap::ArgGroup::new("channel").required(true).args(["webhook", "slack", "email"])))]
pub(crate) struct SubscribeArgs {
    /// A product's notifications (`domain.product`).
    #[arg(long)]
    product: Option<String>,
    /// A whole domain's.
    #[arg(long)]
    domain: Option<String>,
    /// A team's products'.
    #[arg(long)]
    team: Option<String>,
    /// POST each notification as JSON to this URL.
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// POST `{"text": ...}` to this Slack-compatible incoming webhook.
    #[arg(long, value_name = "URL")]
    slack: Option<String>,
    /// E-mail each notification to this address (through the server's SMTP relay).
    #[arg(long, value_name = "ADDRESS")]
    email: Option<String>,
    /// Only these kinds (comma-separated); default all. Kinds: run.failed, run.recovered,
    /// sla.violated, sla.recovered, access.requested, access.decided, access.revoked,
    /// grant.expiring, product.deprecated, product.retired.
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

#[derive(Debug, clap::Args)]
pub(crate) struct UnsubscribeArgs {
    /// The subscription's id (`mesh subscriptions` lists them).
    id: String,
    #[command(flatten)]
    catalog: CatalogArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,
}

pub(crate) fn subscribe(args: &SubscribeArgs) -> anyhow::Result<Outcome> {
    let (scope, subject) = match (&args.product, &args.domain, &args.team) {
        (Some(p), _, _) => ("product", p),
        (_, Some(d), _) => ("domain", d),
        (_, _, Some(t)) => ("team", t),
        _ => anyhow::bail!("give --product, --domain or --team"),
    };
    let (channel, target) = match (&args.webhook, &args.slack, &args.email) {
        (Some(u), _, _) => ("webhook", u),
        (_, Some(u), _) => ("slack", u),
        (_, _, Some(a)) => ("email", a),
        _ => anyhow::bail!("give --webhook, --slack or --email"),
    };
    let new = NewSubscription {
        scope: scope.to_owned(),
        subject: subject.clone(),
        channel: channel.to_owned(),
        target: target.clone(),
        events: args.events.iter().map(|e| e.trim().to_owned()).collect(),
    };
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        finish(client.subscribe(&new).await, args.output, |s| {
            line("subscribed", s)
        })
    })
}

pub(crate) fn list(args: &ListArgs) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        finish(client.subscriptions().await, args.output, |all| {
            if all.is_empty() {
                let mut out = output::stdout();
                writeln!(
                    out,
                    "no subscriptions; add one with: mesh subscribe --product ID --webhook URL (kinds: {})",
                    KINDS.join(", ")
                )?;
                out.flush()?;
            }
            for s in all {
                line("", s)?;
            }
            Ok(())
        })
    })
}

pub(crate) fn unsubscribe(args: &UnsubscribeArgs) -> anyhow::Result<Outcome> {
    crate::runtime()?.block_on(async {
        let client = args.catalog.connect().await?;
        finish(client.unsubscribe(&args.id).await, args.output, |s| {
            line("unsubscribed", s)
        })
    })
}

fn line(what: &str, s: &Subscription) -> anyhow::Result<()> {
    let mut out = output::stdout();
    let target = if s.channel == "email" {
        s.target.clone()
    } else {
        // A webhook URL's path and query can be its secret: the host is enough to recognise it.
        let rest = s.target.split_once("://").map_or("", |(_, r)| r);
        format!(
            "{}://{}/…",
            s.target.split("://").next().unwrap_or("https"),
            rest.split('/').next().unwrap_or_default()
        )
    };
    writeln!(
        out,
        "{}{}{}  {} {}  {} {}  [{}]",
        what,
        if what.is_empty() { "" } else { " " },
        s.id,
        s.scope,
        s.subject,
        s.channel,
        target,
        s.events.join(",")
    )?;
    out.flush()?;
    Ok(())
}
