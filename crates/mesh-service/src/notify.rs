//! Events to webhooks: access requests and decisions (to the owning domain's chat or tickets),
//! SLA violations and recoveries (to whoever is on call). Sent after the catalog has committed,
//! retried with backoff, and every delivery is logged in the catalog: what was sent where, how
//! many attempts it took, the receiver's last answer.
//!
//! How a body reaches a URL is a [`Sender`] the caller provides (the server's is an HTTP client),
//! so this crate stays free of HTTP.

use std::sync::Arc;
use std::time::Duration;

use mesh_catalog::Catalog;

use crate::logging::log;
use mesh_catalog::store::{DeliveryRow, StoreError};
use serde::Serialize;

/// Attempts per event: the first, then after 0.5, 1 and 2 seconds.
const ATTEMPTS: i64 = 4;

/// Deliveries in flight to one receiver at most (each retries on its own).
const IN_FLIGHT: usize = 8;

/// Posts a JSON body to a URL; the receiver's status, or why it could not be reached.
#[async_trait::async_trait]
pub trait Sender: Send + Sync + std::fmt::Debug {
    async fn post(
        &self,
        url: &str,
        delivery: &str,
        body: &serde_json::Value,
    ) -> Result<u16, String>;
}

/// One receiver of events.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: String,
    sender: Arc<dyn Sender>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl Webhook {
    pub fn new(url: String, sender: Arc<dyn Sender>) -> Webhook {
        Webhook {
            url,
            sender,
            in_flight: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT)),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// POSTs `{delivery, event, at, subject, data}` until the receiver answers 2xx or the
    /// attempts run out, logging each attempt in the catalog. The delivery as it ended.
    pub async fn deliver(
        &self,
        catalog: &Catalog,
        event: &str,
        subject: &str,
        data: &impl Serialize,
    ) -> DeliveryRow {
        let id = uuid::Uuid::new_v4().to_string();
        let body = serde_json::json!({
            "delivery": id, "event": event, "at": catalog.now(), "subject": subject, "data": data,
        });
        // Logged as pending at once; sent when one of the receiver's slots is free.
        let outgoing = Outgoing {
            id,
            target: self.url.clone(),
            event: event.to_owned(),
            subject: subject.to_owned(),
            payload: body.to_string(),
        };
        let (url, sender, slots, body) = (&self.url, &self.sender, &self.in_flight, &body);
        send_logged(catalog, outgoing, Some(slots), |id| async move {
            sender.post(url, &id, body).await
        })
        .await
    }

    /// [`Webhook::deliver`] in the background: the caller's answer never waits for a receiver.
    pub fn spawn(
        self: &Arc<Self>,
        catalog: &Catalog,
        event: &str,
        subject: &str,
        data: &impl Serialize,
    ) {
        let (hook, catalog) = (Arc::clone(self), catalog.clone());
        let (event, subject) = (event.to_owned(), subject.to_owned());
        let data = serde_json::to_value(data).unwrap_or_default();
        tokio::spawn(async move {
            hook.deliver(&catalog, &event, &subject, &data).await;
        });
    }
}

/// One delivery to log and send.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: String,
    /// Where it goes: a URL, or `mailto:ADDRESS`.
    pub target: String,
    pub event: String,
    pub subject: String,
    /// What is sent, as logged.
    pub payload: String,
}

/// Sends `outgoing` with `send` (the receiver's status, or why it could not be reached) until it
/// is accepted (2xx) or the attempts run out, waiting 0.5, 1 and 2 s between them, with every
/// attempt logged in the catalog. The delivery as it ended.
pub async fn send_logged<F, Fut>(
    catalog: &Catalog,
    outgoing: Outgoing,
    slots: Option<&tokio::sync::Semaphore>,
    send: F,
) -> DeliveryRow
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<u16, String>>,
{
    let at = catalog.now();
    let mut row = DeliveryRow {
        id: outgoing.id,
        url: outgoing.target,
        event: outgoing.event,
        subject: outgoing.subject,
        payload: outgoing.payload,
        state: "pending".into(),
        attempts: 0,
        last_status: None,
        last_error: None,
        created_at: at.clone(),
        updated_at: at,
    };
    logged(catalog.log_delivery(&row, true).await);
    let _slot = match slots {
        Some(slots) => slots.acquire().await.ok(),
        None => None,
    };
    let mut wait = Duration::from_millis(500);
    while row.attempts < ATTEMPTS {
        row.attempts += 1;
        match send(row.id.clone()).await {
            Ok(status) => {
                row.last_status = Some(i64::from(status));
                row.last_error = (!(200..300).contains(&status))
                    .then(|| format!("the receiver answered {status}"));
            }
            Err(e) => {
                row.last_status = None;
                row.last_error = Some(e);
            }
        }
        let done = row.last_error.is_none();
        row.state = match (done, row.attempts < ATTEMPTS) {
            (true, _) => "delivered",
            (false, true) => "pending",
            (false, false) => "failed",
        }
        .into();
        row.updated_at = catalog.now();
        logged(catalog.log_delivery(&row, false).await);
        if done {
            break;
        }
        if row.attempts < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    if row.state == "failed" {
        log(&format!(
            "{} was not delivered to {} after {ATTEMPTS} attempts: {}",
            row.event,
            row.url,
            row.last_error.as_deref().unwrap_or_default()
        ));
    }
    row
}

fn logged(result: Result<(), StoreError>) {
    if let Err(e) = result {
        log(&format!("could not log a webhook delivery: {e}"));
    }
}
