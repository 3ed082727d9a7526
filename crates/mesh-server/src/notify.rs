//! Webhooks over HTTP: the [`Sender`] the service's webhooks post with, and the access events a
//! server sends to its access webhook (requests, decisions, revocations) after the catalog has
//! committed them.

use std::time::Duration;

use mesh_service::notify::Sender;
use serde::Serialize;

/// Posts JSON with reqwest: a 10 s timeout per attempt, the delivery id in `x-mesh-delivery`,
/// redirects not followed (a 3xx is a failed attempt).
#[derive(Debug, Clone)]
pub struct HttpSender {
    http: reqwest::Client,
}

impl HttpSender {
    pub fn new() -> HttpSender {
        let http = reqwest::Client::builder()
            .user_agent(concat!("mesh/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(10))
            // A receiver's redirect is its answer, never somewhere else to send the payload.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        HttpSender { http }
    }
}

impl Default for HttpSender {
    fn default() -> Self {
        HttpSender::new()
    }
}

#[async_trait::async_trait]
impl Sender for HttpSender {
    async fn post(
        &self,
        url: &str,
        delivery: &str,
        body: &serde_json::Value,
    ) -> Result<u16, String> {
        self.http
            .post(url)
            .header("x-mesh-delivery", delivery)
            .json(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    }
}

/// Sends an access event to the server's access webhook, if it has one.
pub(crate) fn send(state: &crate::AppState, event: &str, subject: &str, what: &impl Serialize) {
    if let Some(hook) = &state.webhook {
        hook.spawn(&state.catalog, event, subject, what);
    }
}
