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
        let at = catalog.now();
        let body = serde_json::json!({
            "delivery": id, "event": event, "at": at, "subject": subject, "data": data,
        });
        let mut row = DeliveryRow {
            id,
            url: self.url.clone(),
            event: event.to_owned(),
            subject: subject.to_owned(),
            payload: body.to_string(),
            state: "pending".into(),
            attempts: 0,
            last_status: None,
            last_error: None,
            created_at: at.clone(),
            updated_at: at,
        };
        logged(catalog.log_delivery(&row, true).await);
        // Logged as pending at once; sent when one of the receiver's slots is free.
        let _slot = self.in_flight.acquire().await;
        let mut wait = Duration::from_millis(500);
        while row.attempts < ATTEMPTS {
            row.attempts += 1;
            match self.sender.post(&self.url, &row.id, &body).await {
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
                "{event} was not delivered to {} after {ATTEMPTS} attempts: {}",
                self.url,
                row.last_error.as_deref().unwrap_or_default()
            ));
        }
        row
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

fn logged(result: Result<(), StoreError>) {
    if let Err(e) = result {
        log(&format!("could not log a webhook delivery: {e}"));
    }
}
