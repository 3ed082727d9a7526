//! Access events to a webhook: the owning domain hears of a request where it works (chat,
//! tickets), not only in the event log. Sent after the catalog has committed, in the
//! background, retried with backoff; a webhook that stays down is logged, never a failed call.

use std::time::Duration;

use serde::Serialize;

use crate::AppState;

/// Attempts per event: the first, then after 0.5, 1 and 2 seconds.
const ATTEMPTS: u32 = 4;

#[derive(Debug)]
pub(crate) struct Webhook {
    url: String,
    http: reqwest::Client,
}

impl Webhook {
    pub(crate) fn new(url: String) -> Webhook {
        let http = reqwest::Client::builder()
            .user_agent(concat!("mesh/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Webhook { url, http }
    }
}

/// Sends `{event, at, <what>}` to the server's access webhook, if it has one.
pub(crate) fn send(state: &AppState, event: &str, what: &impl Serialize) {
    let Some(hook) = state.webhook.clone() else {
        return;
    };
    let body = serde_json::json!({
        "event": event,
        "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "data": what,
    });
    let event = event.to_owned();
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=ATTEMPTS {
            let sent = hook.http.post(&hook.url).json(&body).send().await;
            match sent {
                Ok(r) if r.status().is_success() => return,
                Ok(r) if attempt == ATTEMPTS => {
                    log(&format!("{event}: {} answered {}", hook.url, r.status()));
                }
                Err(e) if attempt == ATTEMPTS => log(&format!("{event}: {}: {e}", hook.url)),
                _ => {}
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    });
}

#[allow(clippy::print_stderr)]
fn log(message: &str) {
    eprintln!(
        "mesh serve: the access webhook was not delivered after {ATTEMPTS} attempts: {message}"
    );
}
