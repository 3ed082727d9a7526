//! The audit log and what is judged against the whole catalog: the event log read back
//! ([`Catalog::events`]), every governed read and refused read recorded
//! ([`Catalog::record_read`], [`Catalog::record_denied_reads`]), who reads what
//! ([`Catalog::usage`]), and the catalog-wide policy audit ([`Catalog::audit`]), kept in the log
//! as the compliance history.

use mesh_model::names::{DomainName, ProductId, TableName, VersionStatus, domain_of};
use serde::{Deserialize, Serialize};

use crate::access::ReadablePort;
use crate::auth::{Action, Principal};
use crate::catalog::{Catalog, latest_page, stamp};
use crate::error::{Denied, ErrorCode, Missing, ToProblem};
use crate::governance::GovernanceError;
use crate::store::{EventRow, NewEvent, StoreError, UsageRow};

/// Why the audit log could not be read or the audit run.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("not found: {0}")]
    NotFound(#[from] Missing),
    #[error("this catalog has no policies to audit with")]
    NoPolicies,
    #[error(transparent)]
    Policies(#[from] GovernanceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ToProblem for AuditError {
    fn code(&self) -> ErrorCode {
        match self {
            AuditError::Denied(_) => ErrorCode::Forbidden,
            AuditError::NotFound(_) => ErrorCode::NotFound,
            AuditError::NoPolicies => ErrorCode::BadRequest,
            AuditError::Policies(e) => e.code(),
            AuditError::Store(e) => e.code(),
        }
    }
}

/// A compliance report over the whole catalog: every product's latest version against the
/// policies, per domain and per policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditReport {
    pub at: String,
    pub products: usize,
    /// Products with no blocking violation.
    pub compliant: usize,
    pub by_domain: std::collections::BTreeMap<String, Compliance>,
    pub by_policy: std::collections::BTreeMap<String, Compliance>,
    /// Every violation found: product, version, policy, enforcement, message.
    pub violations: Vec<serde_json::Value>,
}

/// Counts for one domain or one policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Compliance {
    /// Products looked at (for a policy: products it found a violation in).
    pub products: usize,
    pub compliant: usize,
    pub blocking: usize,
    pub warnings: usize,
    pub audit: usize,
}

/// One entry of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub seq: i64,
    pub at: String,
    pub kind: String,
    pub subject: String,
    pub actor: String,
    pub payload: serde_json::Value,
}

impl From<EventRow> for Event {
    fn from(r: EventRow) -> Event {
        Event {
            seq: r.seq,
            at: r.at,
            kind: r.kind,
            subject: r.subject,
            actor: r.actor,
            payload: r.payload,
        }
    }
}

/// How much one reader has read of one output port (per major version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    pub reader: String,
    pub product: String,
    pub port: String,
    pub major: i64,
    pub reads: i64,
    pub rows_read: i64,
    pub first_at: String,
    pub last_at: String,
}

impl From<UsageRow> for Usage {
    fn from(r: UsageRow) -> Usage {
        Usage {
            reader: r.reader,
            product: r.product,
            port: r.port,
            major: r.major,
            reads: r.reads,
            rows_read: r.rows_read,
            first_at: r.first_at,
            last_at: r.last_at,
        }
    }
}

/// The domain whose owners and members may read an event: the domain of the product it is about,
/// or of the policies it publishes. Others (tokens, the global policies, the catalog-wide audit,
/// lineage reported from outside) are for admins.
fn event_domain(event: &EventRow) -> Option<&str> {
    if ProductId::parse(&event.subject).is_ok() {
        return Some(domain_of(&event.subject));
    }
    if event.kind.starts_with("policy.") && DomainName::parse(&event.subject).is_ok() {
        return Some(&event.subject);
    }
    None
}

/// One take from a token bucket that held `tokens` `elapsed` ago, refilling `per_minute` a
/// minute up to `burst`: the tokens left, and, when none was there to take, how long until one
/// is. The arithmetic of every rate limit, in the catalog and in a server's own buckets.
pub fn take_token(
    tokens: f64,
    elapsed: std::time::Duration,
    per_minute: u32,
    burst: u32,
) -> (f64, Option<std::time::Duration>) {
    let rate = f64::from(per_minute.max(1)) / 60.0;
    let tokens = (tokens + elapsed.as_secs_f64() * rate).min(f64::from(burst.max(1)));
    if tokens >= 1.0 {
        (tokens - 1.0, None)
    } else {
        let wait = std::time::Duration::from_secs_f64((1.0 - tokens) / rate);
        (tokens, Some(wait))
    }
}

/// The most `access.read_denied` events one refused read writes (one per product named).
pub const MAX_DENIED_EVENTS: usize = 10;
/// The most table names one `access.read_denied` event lists.
const MAX_DENIED_NAMES: usize = 20;
/// The most bytes of a statement the audit log keeps per event.
pub const MAX_AUDIT_SQL: usize = 4096;

/// `sql` as the audit log keeps it: whole, or its first [`MAX_AUDIT_SQL`] bytes and its size.
fn shown(sql: &str) -> String {
    if sql.len() <= MAX_AUDIT_SQL {
        return sql.to_owned();
    }
    let mut end = MAX_AUDIT_SQL;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &sql[..end], sql.len())
}

/// A read refused: the table as the reader named it, and how it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedRead {
    /// `domain.table` (or as the query wrote it).
    pub table: String,
    pub by: ReadBy,
}

/// How a read was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadBy {
    /// A query (HTTP, Flight SQL, the CLI), its SQL.
    Query(String),
    /// A pipeline, through this input port.
    Pipeline { input: String },
}

/// How a governed read went: for the audit log, usage, and the SLA monitor (availability, error
/// rate and latency of the ports it read).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOutcome<'a> {
    pub rows: u64,
    /// Every row was sent (false when the reader went away, or it failed).
    pub complete: bool,
    /// From the query's arrival to its last row (or failure).
    pub latency_ms: f64,
    /// Why reading the data failed (the ports' fault, not the caller's: a bad query is not
    /// recorded here).
    pub error: Option<&'a str>,
}

impl Catalog {
    /// The event log after `after`, oldest first.
    pub async fn events(
        &self,
        who: &Principal,
        after: i64,
        limit: i64,
        subject: Option<&str>,
    ) -> Result<Vec<Event>, AuditError> {
        Self::allow(who, Action::ReadEvents)?;
        let limit = limit.clamp(1, 1000);
        let everything = who.may(Action::Administer);
        let mut tx = self.store.read().await?;
        let mut out = Vec::new();
        let mut after = after;
        // Pages of the log until `limit` events the caller may see (or its end).
        loop {
            let rows = tx.events(after, limit, subject).await?;
            let full = rows.len() as i64 == limit;
            for row in rows {
                after = row.seq;
                if everything
                    || event_domain(&row).is_some_and(|d| who.may(Action::Publish { domain: d }))
                {
                    out.push(Event::from(row));
                    if out.len() as i64 == limit {
                        return Ok(out);
                    }
                }
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// Records a read in the audit log: who read which ports, how many rows, and whether the
    /// reader took the whole result (`complete`) or stopped early; it counts in the ports' usage
    /// and, as an observation, in their service levels.
    pub async fn record_read(
        &self,
        reader: &str,
        ports: &[ReadablePort],
        read: &ReadOutcome<'_>,
        sql: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.store.write().await?;
        let at = stamp(self.clock.now());
        let rows = i64::try_from(read.rows).unwrap_or(i64::MAX);
        let mut observed = Vec::with_capacity(ports.len());
        for p in ports {
            let mut payload = serde_json::json!({
                "port": p.port, "major": p.major, "through": p.through,
                "masked": p.columns.is_some(), "rows": read.rows, "complete": read.complete,
                "query": shown(sql), "latency_ms": read.latency_ms,
            });
            if let Some(e) = read.error {
                payload["error"] = e.into();
            }
            tx.append_event(&NewEvent {
                at: at.clone(),
                kind: "access.read".into(),
                subject: p.product.clone(),
                actor: reader.to_owned(),
                payload,
            })
            .await?;
            tx.record_usage(&crate::store::UsageRow {
                reader: reader.to_owned(),
                product: p.product.clone(),
                port: p.port.clone(),
                major: p.major,
                reads: 1,
                rows_read: rows,
                first_at: at.clone(),
                last_at: at.clone(),
            })
            .await?;
            observed.push(crate::store::ObservationRow {
                product: p.product.clone(),
                port: p.port.clone(),
                major: p.major,
                at: at.clone(),
                kind: "read".into(),
                latency_ms: read.latency_ms,
                rows_read: Some(rows),
                error: read.error.map(str::to_owned),
            });
        }
        tx.insert_observations(&observed).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records reads refused (to the reader, what it named does not exist): one event per
    /// product the names would be (its subject, so that product's domain sees it), each with
    /// the names and the SQL; at most [`MAX_DENIED_EVENTS`] per refusal, however many names a
    /// statement holds, and the SQL cut to [`MAX_AUDIT_SQL`] bytes.
    pub async fn record_denied_reads(
        &self,
        reader: &str,
        denied: &[DeniedRead],
    ) -> Result<(), StoreError> {
        if denied.is_empty() {
            return Ok(());
        }
        // By product, in the order first named.
        let mut by_product: Vec<(String, Vec<&str>, &ReadBy)> = Vec::new();
        for d in denied {
            let table = d.table.strip_prefix("mesh.").unwrap_or(&d.table);
            let product = TableName::product_of(table);
            match by_product
                .iter_mut()
                .find(|(p, _, by)| *p == product && *by == &d.by)
            {
                Some((_, tables, _)) => {
                    if !tables.contains(&table) {
                        tables.push(table);
                    }
                }
                None => by_product.push((product, vec![table], &d.by)),
            }
        }
        let more = by_product.len().saturating_sub(MAX_DENIED_EVENTS);
        by_product.truncate(MAX_DENIED_EVENTS);
        let last = by_product.len() - 1;
        let mut tx = self.store.write().await?;
        let at = stamp(self.clock.now());
        for (i, (product, tables, by)) in by_product.into_iter().enumerate() {
            let mut payload = serde_json::json!({
                "table": tables[0],
                "tables": tables.iter().take(MAX_DENIED_NAMES).collect::<Vec<_>>(),
            });
            match by {
                ReadBy::Query(sql) => payload["query"] = shown(sql).into(),
                ReadBy::Pipeline { input } => payload["input"] = input.as_str().into(),
            }
            if i == last && more > 0 {
                payload["more_products"] = more.into();
            }
            tx.append_event(&NewEvent {
                at: at.clone(),
                kind: "access.read_denied".into(),
                subject: product,
                actor: reader.to_owned(),
                payload,
            })
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Takes one token from the shared bucket `key` (`per_minute` on average, `burst` at once),
    /// kept in the catalog so that every server on it counts against one limit. `None` when
    /// taken; otherwise how long until the next token.
    pub async fn take_rate(
        &self,
        key: &str,
        per_minute: u32,
        burst: u32,
    ) -> Result<Option<std::time::Duration>, StoreError> {
        let now = self.clock.now().timestamp_millis();
        let mut tx = self.store.write().await?;
        let (tokens, at) = tx.rate_bucket(key, (f64::from(burst.max(1)), now)).await?;
        // A server whose clock is behind another's does not take tokens back.
        let elapsed = std::time::Duration::from_millis((now - at).max(0) as u64);
        let (left, answer) = take_token(tokens, elapsed, per_minute, burst);
        tx.put_rate_bucket(key, left, now.max(at)).await?;
        tx.commit().await?;
        Ok(answer)
    }

    /// Who has read a product's output ports, how often and how much, most recent first: for
    /// the people of its domain (members, owners) and admins.
    pub async fn usage(&self, who: &Principal, product: &str) -> Result<Vec<Usage>, AuditError> {
        let mut tx = self.store.read().await?;
        let row = tx.product(product).await?.ok_or_else(|| Missing::Product {
            product: product.to_owned(),
        })?;
        Self::allow(
            who,
            Action::Publish {
                domain: &row.domain,
            },
        )?;
        let rows = tx.usage(Some(product), None, 1000).await?;
        Ok(rows.into_iter().map(Usage::from).collect())
    }

    /// Audits the whole catalog: every product's latest version against the policies, with a
    /// compliance report per domain and per policy, kept in the event log (`policy.audit`) as
    /// the history.
    pub async fn audit(&self, who: &Principal) -> Result<AuditReport, AuditError> {
        Self::allow(who, Action::ReadEvents)?;
        let mut report = AuditReport {
            at: self.now(),
            ..AuditReport::default()
        };
        let mut tx = self.store.read().await?;
        let bundles = self.current_bundles(tx.as_mut()).await?;
        if self.base_policies.is_none() && bundles.is_empty() {
            return Err(AuditError::NoPolicies);
        }
        let mut after: Option<String> = None;
        while let Some((upto, page)) = latest_page(tx.as_mut(), after.as_deref(), 500).await? {
            for (product, version) in page {
                let contracts: Vec<serde_json::Value> =
                    version.contracts.iter().map(|(_, c)| c.clone()).collect();
                let descriptor = &version.descriptor;
                if version.status == VersionStatus::Retired.as_str() {
                    continue;
                }
                let Some((policies, _)) = self.policy_set_from(&bundles, &product.domain).await?
                else {
                    continue;
                };
                let input = mesh_policy::input(descriptor, &contracts, serde_json::json!({}));
                let decision = policies.evaluate(&input).map_err(GovernanceError::from)?;
                report.products += 1;
                let ok = !decision.blocked();
                report.compliant += usize::from(ok);
                let domain = report.by_domain.entry(product.domain.clone()).or_default();
                domain.products += 1;
                domain.compliant += usize::from(ok);
                for v in &decision.violations {
                    let level = v.enforcement;
                    for c in [
                        report.by_domain.entry(product.domain.clone()).or_default(),
                        report.by_policy.entry(v.policy.clone()).or_default(),
                    ] {
                        match level {
                            mesh_policy::Enforcement::Block => c.blocking += 1,
                            mesh_policy::Enforcement::Warn => c.warnings += 1,
                            mesh_policy::Enforcement::Audit => c.audit += 1,
                        }
                    }
                    report.violations.push(serde_json::json!({
                        "product": product.id, "version": version.version, "policy": v.policy,
                        "enforcement": v.enforcement, "message": v.message, "path": v.path,
                    }));
                }
                let mut hit: Vec<&str> = decision
                    .violations
                    .iter()
                    .map(|v| v.policy.as_str())
                    .collect();
                hit.sort_unstable();
                hit.dedup();
                for policy in hit {
                    report
                        .by_policy
                        .entry(policy.to_owned())
                        .or_default()
                        .products += 1;
                }
            }
            after = Some(upto);
        }
        drop(tx);
        let mut tx = self.store.write().await?;
        tx.append_event(&NewEvent {
            at: report.at.clone(),
            kind: "policy.audit".into(),
            subject: "*".into(),
            actor: who.name.clone(),
            payload: serde_json::json!({
                "products": report.products, "compliant": report.compliant,
                "by_domain": report.by_domain, "by_policy": report.by_policy,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(report)
    }
}
