//! Notifications that reach people: the dispatcher follows the catalog's event log, turns the
//! events people subscribe to into notifications (a run that failed or recovered, an SLA
//! violated or met again, an access request awaiting a decision and the decision, a grant about
//! to expire, a deprecation or retirement), finds their recipients (the subscriptions of the
//! product, its domain and its team — and for deprecations, retirements and grants, of the
//! consuming products: those whose input ports read it and those holding a grant) and sends each
//! over its channel: the event as JSON to a webhook, `{"text": ...}` to a Slack-compatible
//! webhook, or an e-mail through the operator's SMTP relay.
//!
//! Each event is claimed in the catalog's ledger, so with N servers it is sent once; every
//! delivery is retried with backoff and logged; a receiver that is down never holds up a run or a
//! request (deliveries run in the background). Events appended while no server runs are sent by
//! the first server that starts within the next [`CATCH_UP`] events.

use std::sync::Arc;
use std::time::Duration;

use mesh_catalog::audit::Event;
use mesh_catalog::store::DeliveryRow;
use mesh_catalog::subscriptions::Subscription;
use mesh_catalog::{Catalog, Principal};

use crate::logging::log;
use crate::notify::{Outgoing, Sender, send_logged};

/// A server that starts looks this many events back for ones no server sent.
pub const CATCH_UP: i64 = 1000;

/// Sends an e-mail through the operator's SMTP relay.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Sends a plain-text message; the relay's refusal, or why it could not be reached.
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String>;
}

/// One notification: its kind, the products whose subscribers hear of it, and a line for
/// people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub kind: &'static str,
    pub products: Vec<String>,
    pub text: String,
}

/// The dispatcher of one server.
#[derive(Debug)]
pub struct Dispatcher {
    catalog: Catalog,
    http: Arc<dyn Sender>,
    mail: Option<Arc<dyn Mailer>>,
    server: String,
    /// Deliveries in flight at once.
    slots: Arc<tokio::sync::Semaphore>,
}

fn text_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl Dispatcher {
    pub fn new(
        catalog: Catalog,
        http: Arc<dyn Sender>,
        mail: Option<Arc<dyn Mailer>>,
        server: String,
    ) -> Dispatcher {
        Dispatcher {
            catalog,
            http,
            mail,
            server,
            slots: Arc::new(tokio::sync::Semaphore::new(16)),
        }
    }

    /// Follows the event log every `every`, sending in the background; each hour it also warns
    /// of grants that end within a week.
    pub async fn run(self: Arc<Self>, every: Duration) {
        let mut cursor = match self.catalog.last_event_seq().await {
            Ok(seq) => (seq - CATCH_UP).max(0),
            Err(e) => {
                log(&format!(
                    "the notification dispatcher cannot read the event log: {e}"
                ));
                0
            }
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_scan: Option<std::time::Instant> = None;
        loop {
            tick.tick().await;
            if last_scan.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                last_scan = Some(std::time::Instant::now());
                if let Err(e) = self
                    .catalog
                    .warn_expiring_grants(&self.server, chrono::Duration::days(7))
                    .await
                {
                    log(&format!("could not look for grants about to expire: {e}"));
                }
            }
            cursor = Arc::clone(&self).pass(cursor, true).await.0;
        }
    }

    /// Sends the notifications of the events after `after` that this server claims: awaited,
    /// or in the `background`. The new cursor and (when awaited) the deliveries.
    pub async fn pass(self: Arc<Self>, after: i64, background: bool) -> (i64, Vec<DeliveryRow>) {
        let who = Principal::system("mesh-notify");
        let mut cursor = after;
        let mut deliveries = Vec::new();
        loop {
            let events = match self.catalog.events(&who, cursor, 500, None).await {
                Ok(events) => events,
                Err(e) => {
                    log(&format!(
                        "the notification dispatcher cannot read the event log: {e}"
                    ));
                    return (cursor, deliveries);
                }
            };
            let Some(last) = events.last().map(|e| e.seq) else {
                return (cursor, deliveries);
            };
            for event in &events {
                let Some(notice) = self.notice(event).await else {
                    continue;
                };
                // Who hears of it first: an event nobody subscribed to is not claimed (the
                // ledger keeps a row per claim).
                let recipients = match self.catalog.recipients(notice.kind, &notice.products).await
                {
                    Ok(r) => r,
                    Err(e) => {
                        log(&format!(
                            "could not find who hears of event {}: {e}",
                            event.seq
                        ));
                        continue;
                    }
                };
                if recipients.is_empty() {
                    continue;
                }
                let claimed = self
                    .catalog
                    .claim_slot(
                        &format!("mesh:notify:{}", event.seq),
                        chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                        &self.server,
                        "notify",
                    )
                    .await;
                match claimed {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        log(&format!("could not claim event {}: {e}", event.seq));
                        continue;
                    }
                }
                for sub in recipients {
                    let (me, event, notice) = (Arc::clone(&self), event.clone(), notice.clone());
                    if background {
                        tokio::spawn(async move {
                            me.deliver(&sub, &event, &notice).await;
                        });
                    } else {
                        deliveries.push(me.deliver(&sub, &event, &notice).await);
                    }
                }
            }
            cursor = last;
            if events.len() < 500 {
                return (cursor, deliveries);
            }
        }
    }

    /// What an event tells people, if anything.
    async fn notice(&self, e: &Event) -> Option<Notice> {
        let p = &e.payload;
        let subject = e.subject.clone();
        let product_ids = |values: &[&serde_json::Value]| -> Vec<String> {
            values
                .iter()
                .filter_map(|v| v.as_str())
                .filter(|s| mesh_model::names::ProductId::parse(s).is_ok())
                .map(str::to_owned)
                .collect()
        };
        let (kind, mut products, text) = match e.kind.as_str() {
            // A scheduled run is reported once its slot has ended, after its retries.
            "run.failed" if e.actor.starts_with("mesh-orchestrator@") => return None,
            "run.failed" => (
                "run.failed",
                vec![subject.clone()],
                format!(
                    "a run of {subject}.{} by {} failed: {}",
                    text_of(&p["port"]),
                    e.actor,
                    text_of(&p["error"])
                ),
            ),
            "schedule.failed" => (
                "run.failed",
                vec![subject.clone()],
                format!(
                    "the scheduled run of {subject} (slot {}) failed after {} attempt(s): {}",
                    text_of(&p["slot"]),
                    text_of(&p["attempts"]),
                    text_of(&p["error"])
                ),
            ),
            "schedule.recovered" => (
                "run.recovered",
                vec![subject.clone()],
                format!(
                    "the scheduled run of {subject} (slot {}) {} again",
                    text_of(&p["slot"]),
                    text_of(&p["state"])
                ),
            ),
            "sla.violated" | "sla.recovered" => (
                if e.kind == "sla.violated" {
                    "sla.violated"
                } else {
                    "sla.recovered"
                },
                vec![subject.clone()],
                format!(
                    "{subject}.{}: the {} objective ({}) is {}; observed {}",
                    text_of(&p["port"]),
                    text_of(&p["property"]),
                    text_of(&p["objective"]),
                    if e.kind == "sla.violated" {
                        "violated"
                    } else {
                        "met again"
                    },
                    text_of(&p["observed"])
                ),
            ),
            "access.requested" => (
                "access.requested",
                vec![subject.clone()],
                format!(
                    "{} asks to read {subject}.{} (major {}) for {} days: {} — decide with: mesh access approve {}",
                    e.actor,
                    text_of(&p["port"]),
                    text_of(&p["major"]),
                    text_of(&p["days"]),
                    text_of(&p["purpose"]),
                    text_of(&p["request"])
                ),
            ),
            "access.approved" | "access.granted" | "access.denied" => (
                "access.decided",
                std::iter::once(subject.clone())
                    .chain(product_ids(&[&p["requester"], &p["grant"]["grantee"]]))
                    .collect(),
                format!(
                    "request {} to read {subject}.{}: {} by {}{}",
                    text_of(&p["request"]),
                    text_of(&p["port"]),
                    e.kind.trim_start_matches("access."),
                    e.actor,
                    p["reason"]
                        .as_str()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ),
            ),
            "access.revoked" => (
                "access.revoked",
                std::iter::once(subject.clone())
                    .chain(product_ids(&[&p["grantee"]]))
                    .collect(),
                format!(
                    "the grant of {} to read {subject}.{} was revoked by {}",
                    text_of(&p["grantee"]),
                    text_of(&p["port"]),
                    e.actor
                ),
            ),
            "grant.expiring" => (
                "grant.expiring",
                std::iter::once(subject.clone())
                    .chain(product_ids(&[&p["grantee"]]))
                    .collect(),
                format!(
                    "the grant of {} to read {subject}.{} ends at {}: ask again with mesh access request",
                    text_of(&p["grantee"]),
                    text_of(&p["port"]),
                    text_of(&p["expires_at"])
                ),
            ),
            // The product's own subscribers and its grant holders; the products whose input
            // ports read it hear of it through their own `consumer.notified` events.
            "version.deprecated" | "version.retired" => {
                let consumers: Vec<String> = p["consumers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["product"].as_str().map(str::to_owned))
                    .collect();
                let grantees = self
                    .catalog
                    .grantee_products(&subject)
                    .await
                    .unwrap_or_default();
                let deprecated = e.kind == "version.deprecated";
                (
                    if deprecated {
                        "product.deprecated"
                    } else {
                        "product.retired"
                    },
                    std::iter::once(subject.clone())
                        .chain(grantees.into_iter().filter(|g| !consumers.contains(g)))
                        .collect(),
                    if deprecated {
                        format!(
                            "{subject}@{} is deprecated; it is served until {}; migration: {}",
                            text_of(&p["version"]),
                            text_of(&p["sunset"]),
                            text_of(&p["migration_guide"])
                        )
                    } else {
                        format!("{subject}@{} is retired", text_of(&p["version"]))
                    },
                )
            }
            "consumer.notified" => (
                "product.deprecated",
                vec![subject.clone()],
                format!(
                    "{subject} reads {} through its input port `{}`, which is deprecated; it is served until {}; migration: {}",
                    text_of(&p["deprecated"]),
                    text_of(&p["input_port"]),
                    text_of(&p["sunset"]),
                    text_of(&p["migration_guide"])
                ),
            ),
            _ => return None,
        };
        products.dedup();
        Some(Notice {
            kind,
            products,
            text,
        })
    }

    /// Sends one notification over `sub`'s channel, retried and logged.
    async fn deliver(&self, sub: &Subscription, e: &Event, notice: &Notice) -> DeliveryRow {
        let id = uuid::Uuid::new_v4().to_string();
        let subject = e.subject.clone();
        match sub.channel.as_str() {
            "email" => {
                let title = format!("[mesh] {}: {subject}", notice.kind);
                let body = format!(
                    "{}\n\nEvent {} ({}) at {}, by {}:\n{}\n\nYou receive this because of subscription {} to {} `{}`; remove it with: mesh unsubscribe {}\n",
                    notice.text,
                    e.seq,
                    e.kind,
                    e.at,
                    e.actor,
                    serde_json::to_string_pretty(&e.payload).unwrap_or_default(),
                    sub.id,
                    sub.scope,
                    sub.subject,
                    sub.id
                );
                let outgoing = Outgoing {
                    id,
                    target: format!("mailto:{}", sub.target),
                    event: notice.kind.to_owned(),
                    subject,
                    payload: format!("Subject: {title}\n\n{body}"),
                };
                let mail = self.mail.clone();
                let (to, title, body) = (&sub.target, &title, &body);
                send_logged(&self.catalog, outgoing, Some(&self.slots), |_| {
                    let mail = mail.clone();
                    async move {
                        match &mail {
                            None => {
                                Err("no SMTP relay is configured (mesh serve --smtp-url)".into())
                            }
                            Some(m) => m.send(to, title, body).await.map(|()| 250),
                        }
                    }
                })
                .await
            }
            channel => {
                let body = if channel == "slack" {
                    serde_json::json!({ "text": format!("*{}* {}", notice.kind, notice.text) })
                } else {
                    serde_json::json!({
                        "delivery": id, "event": notice.kind, "at": e.at, "subject": subject,
                        "text": notice.text, "source": { "seq": e.seq, "kind": e.kind, "actor": e.actor },
                        "data": e.payload,
                    })
                };
                let outgoing = Outgoing {
                    id,
                    target: sub.target.clone(),
                    event: notice.kind.to_owned(),
                    subject,
                    payload: body.to_string(),
                };
                let (http, url, body) = (&self.http, &sub.target, &body);
                send_logged(
                    &self.catalog,
                    outgoing,
                    Some(&self.slots),
                    |id| async move { http.post(url, &id, body).await },
                )
                .await
            }
        }
    }
}
