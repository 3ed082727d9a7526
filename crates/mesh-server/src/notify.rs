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

/// Sends e-mail through the operator's SMTP relay (lettre): `smtp://host:port` (STARTTLS when the
/// relay offers it), `smtps://host:port` (TLS from the start), with `user:password@` when it
/// asks for a login; 20 s per message.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
    relay: String,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The relay's URL may hold a password: only its host.
        f.debug_struct("SmtpMailer")
            .field("relay", &self.relay)
            .finish()
    }
}

impl SmtpMailer {
    /// A mailer for the relay at `url`, sending as `from`; why not, when either is invalid.
    pub fn new(url: &str, from: &str) -> Result<SmtpMailer, String> {
        let from: lettre::message::Mailbox = from
            .parse()
            .map_err(|e| format!("--smtp-from {from:?}: {e}"))?;
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("--smtp-url: {e}"))?;
        if !matches!(parsed.scheme(), "smtp" | "smtps") || parsed.host_str().is_none() {
            return Err("--smtp-url: expected smtp://host[:port] or smtps://host[:port]".into());
        }
        let relay = format!(
            "{}://{}:{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default(),
            parsed
                .port()
                .unwrap_or(if parsed.scheme() == "smtps" { 465 } else { 25 })
        );
        let transport = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url)
            .map_err(|e| format!("--smtp-url: {e}"))?
            .timeout(Some(Duration::from_secs(20)))
            .build();
        Ok(SmtpMailer {
            transport,
            from,
            relay,
        })
    }
}

#[async_trait::async_trait]
impl mesh_service::dispatch::Mailer for SmtpMailer {
    async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), String> {
        use lettre::AsyncTransport as _;
        let to: lettre::message::Mailbox = to.parse().map_err(|e| format!("{to}: {e}"))?;
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| e.to_string())?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", self.relay))
    }
}

/// Sends an access event to the server's access webhook, if it has one.
pub(crate) fn send(state: &crate::AppState, event: &str, subject: &str, what: &impl Serialize) {
    if let Some(hook) = &state.webhook {
        hook.spawn(&state.catalog, event, subject, what);
    }
}
