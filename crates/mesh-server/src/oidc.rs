//! People sign in to the portal through the company's identity provider: the OpenID Connect
//! authorization-code flow with PKCE (S256). `GET /signin/oidc` keeps a random `state`, `nonce`
//! and code verifier on the server (ten minutes, single use, a bounded number), ties the flow to
//! the browser with a cookie holding only the state, and sends the browser to the provider;
//! `GET /oidc/callback` checks the state against the cookie, trades the code and the verifier for
//! tokens, verifies the ID token like every IdP token (issuer, audience, expiry, signature) and
//! its nonce, and opens a portal session holding it — the browser keeps only the session id.
//! Sign-out ends the session here and, when the provider has an end-session endpoint, there.

use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

/// The cookie tying a sign-in in flight to the browser that started it.
const FLOW_COOKIE: &str = "mesh_oidc";
/// How long a sign-in may take at the provider.
const FLOW_TTL: Duration = Duration::from_secs(600);
/// Sign-ins in flight kept at most (the oldest go first past it): starting sign-ins in a loop
/// cannot fill the server's memory.
const MAX_FLOWS: usize = 10_000;

/// Sign-ins in flight: state → what the callback checks.
#[derive(Debug)]
pub(crate) struct Flows(crate::portal::Expiring<Flow>);

impl Default for Flows {
    fn default() -> Self {
        Flows(crate::portal::Expiring::new(MAX_FLOWS))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Flow {
    nonce: String,
    verifier: String,
    /// The portal page to land on afterwards.
    next: String,
}

impl Flows {
    fn start(&self, next: String) -> (String, Flow) {
        let state = crate::portal::random_id();
        let flow = Flow {
            nonce: crate::portal::random_id(),
            // 64 hex digits: within RFC 7636's 43 to 128 unreserved characters.
            verifier: crate::portal::random_id(),
            next,
        };
        self.0.insert(state.clone(), flow.clone(), FLOW_TTL);
        (state, flow)
    }

    /// The flow of `state`, once: a replayed callback finds nothing.
    fn take(&self, state: &str) -> Option<Flow> {
        self.0.take(state)
    }
}

/// RFC 7636's S256 challenge of a verifier.
fn challenge(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/signin/oidc", get(start))
        .route("/oidc/callback", get(callback))
        .route("/signout", axum::routing::post(signout))
        .layer(axum::middleware::from_fn(crate::portal::security_headers))
}

/// Where the provider sends the browser back: the server's public URL, or the address the
/// browser used (the provider checks it against the client's registered redirect URIs).
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(public) = &state.public_url {
        return public.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// A portal page to land on: a path of this site, nothing else.
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => {
            p.chars().take(2_000).collect()
        }
        _ => "/".to_owned(),
    }
}

fn flow_cookie(state: &AppState, value: &str) -> String {
    // Lax: the provider's redirect back is a cross-site navigation, which a Strict cookie
    // would not ride on. It holds only the state, which is useless without this browser.
    let age = if value.is_empty() {
        0
    } else {
        FLOW_TTL.as_secs()
    };
    format!(
        "{FLOW_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/oidc; Max-Age={age}{}",
        if crate::portal::secure_cookies(state) {
            "; Secure"
        } else {
            ""
        }
    )
}

/// The provider, when the portal signs people in through one.
fn signing_idp(state: &AppState) -> Result<&std::sync::Arc<crate::idp::Idp>, ApiError> {
    state
        .auth
        .idp()
        .filter(|idp| idp.config().client_id.is_some())
        .ok_or_else(|| {
            ApiError::not_found(
                "this server signs no one in through an identity provider (mesh serve --oidc-issuer URL --oidc-client-id ID)",
            )
        })
}

fn unavailable(detail: String) -> ApiError {
    ApiError::from_problem(mesh_catalog::Problem::new(
        mesh_catalog::ErrorCode::Unavailable,
        detail,
    ))
}

#[derive(Debug, Deserialize)]
struct Start {
    next: Option<String>,
}

async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Start>,
) -> Response {
    let idp = match signing_idp(&state) {
        Ok(idp) => idp,
        Err(e) => return crate::portal::error_for(&state, &headers, e).await,
    };
    let endpoints = match idp.endpoints().await {
        Ok(e) => e,
        Err(e) => return crate::portal::error_for(&state, &headers, unavailable(e)).await,
    };
    let (key, flow) = state.flows.start(local_path(q.next.as_deref()));
    let config = idp.config();
    let scopes = if config.scopes.is_empty() {
        "openid profile email".to_owned()
    } else {
        config.scopes.join(" ")
    };
    let redirect = format!("{}/oidc/callback", base_url(&state, &headers));
    let enc = mesh_service::routes::encode;
    let sep = if endpoints.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!(
        "{}{sep}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce={}&code_challenge={}&code_challenge_method=S256",
        endpoints.authorization_endpoint,
        enc(config.client_id.as_deref().unwrap_or_default()),
        enc(&redirect),
        enc(&scopes),
        enc(&key),
        enc(&flow.nonce),
        enc(&challenge(&flow.verifier)),
    );
    (
        [(header::SET_COOKIE, flow_cookie(&state, &key))],
        Redirect::to(&url),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A refused sign-in: the sign-in page with the reason (and the flow cookie cleared).
async fn refused(state: &AppState, status: StatusCode, reason: String) -> Response {
    let mut page = crate::portal::signin_page(state, Some(reason)).await;
    *page.status_mut() = status;
    page.headers_mut().append(
        header::SET_COOKIE,
        flow_cookie(state, "").parse().expect("a valid header"),
    );
    page
}

async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let idp = match signing_idp(&state) {
        Ok(idp) => std::sync::Arc::clone(idp),
        Err(e) => return crate::portal::error_for(&state, &headers, e).await,
    };
    let key = q.state.unwrap_or_default();
    let mine = crate::portal::cookie(&headers, FLOW_COOKIE)
        .is_some_and(|c| !key.is_empty() && crate::portal::same_secret(&c, &key));
    // Taken whatever happens next: a state is good for one callback.
    let flow = if key.is_empty() {
        None
    } else {
        state.flows.take(&key)
    };
    let (Some(flow), true) = (flow, mine) else {
        return refused(
            &state,
            StatusCode::BAD_REQUEST,
            "this sign-in was not started in this browser, was used already, or is older than ten minutes: sign in again".into(),
        )
        .await;
    };
    if let Some(error) = q.error {
        let detail: String = q
            .error_description
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        return refused(
            &state,
            StatusCode::UNAUTHORIZED,
            format!("the identity provider did not sign you in: {error} {detail}")
                .trim()
                .to_owned(),
        )
        .await;
    }
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 4_096) else {
        return refused(
            &state,
            StatusCode::BAD_REQUEST,
            "the identity provider sent no authorization code".into(),
        )
        .await;
    };
    let redirect = format!("{}/oidc/callback", base_url(&state, &headers));
    let answer = match idp.exchange(&code, &flow.verifier, &redirect).await {
        Ok(a) => a,
        Err(e) => return refused(&state, StatusCode::BAD_GATEWAY, e).await,
    };
    let Some(id_token) = answer.id_token else {
        let why = match answer.error {
            Some(e) => format!(
                "the identity provider refused the code: {e} {}",
                answer.error_description.unwrap_or_default()
            ),
            None => "the identity provider's token endpoint returned no ID token".into(),
        };
        return refused(&state, StatusCode::UNAUTHORIZED, why.trim().to_owned()).await;
    };
    let identity = match idp.verify(&id_token).await {
        Ok(i) => i,
        Err(r) => {
            return refused(
                &state,
                StatusCode::UNAUTHORIZED,
                format!("the ID token is refused: {}", r.0),
            )
            .await;
        }
    };
    if !identity
        .nonce
        .as_deref()
        .is_some_and(|n| crate::portal::same_secret(n, &flow.nonce))
    {
        return refused(
            &state,
            StatusCode::UNAUTHORIZED,
            "the ID token does not carry this sign-in's nonce (a replayed or substituted token)"
                .into(),
        )
        .await;
    }
    // The same door every request goes through: the roles its groups map to, audited.
    if let Err(e) = state.auth.authenticate(&id_token).await {
        return refused(&state, StatusCode::UNAUTHORIZED, e.detail().to_owned()).await;
    }
    let session = state.sessions.open(&id_token);
    crate::portal::landing(
        &state,
        &session,
        &identity.name,
        &flow.next,
        flow_cookie(&state, ""),
    )
}

/// Sign-out: the session ends here, and, for a session opened through the identity provider,
/// at the provider too.
#[derive(Debug, Deserialize)]
struct SignOut {
    #[serde(default)]
    csrf: String,
}

async fn signout(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<SignOut>,
) -> Response {
    let viewer = crate::portal::viewer(&state, &headers).await;
    if let Some(refused) = crate::portal::forged(&state, &headers, &viewer, &form.csrf) {
        return refused;
    }
    let mut provider = None;
    if let Some(id) = crate::portal::session_id(&headers) {
        if let Some(session) = state.sessions.get(&id) {
            provider = end_session_url(&state, &headers, &session.token).await;
        }
        state.sessions.close(&id);
    }
    let clear = [(
        header::SET_COOKIE,
        crate::portal::session_cookie(&state, ""),
    )];
    match provider {
        // Signed out here; the provider's session ends at its end-session endpoint, which
        // the landing page moves on to (a redirect after a form post would break the
        // portal's form-action policy).
        Some(url) => {
            let nobody = crate::portal::Viewer {
                principal: None,
                signed_in: false,
                csrf: None,
            };
            let page = crate::portal::render(
                "landing.html",
                &nobody,
                json!({ "next": url, "title": "Signed out", "signed_out": true }),
            );
            (clear, page).into_response()
        }
        None => (clear, Redirect::to("/")).into_response(),
    }
}

/// Where sign-out sends the browser after the session here is closed: the provider's
/// end-session endpoint for a session opened with one of its ID tokens, else nowhere.
async fn end_session_url(state: &AppState, headers: &HeaderMap, token: &str) -> Option<String> {
    let idp = signing_idp(state).ok()?;
    if !crate::idp::looks_like_jwt(token) {
        return None;
    }
    let end = idp.endpoints().await.ok()?.end_session_endpoint?;
    let enc = mesh_service::routes::encode;
    let sep = if end.contains('?') { '&' } else { '?' };
    Some(format!(
        "{end}{sep}id_token_hint={}&client_id={}&post_logout_redirect_uri={}",
        enc(token),
        enc(idp.config().client_id.as_deref().unwrap_or_default()),
        enc(&format!("{}/", base_url(state, headers))),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_is_rfc_7636s() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn only_local_paths_are_landed_on() {
        assert_eq!(local_path(Some("/products/a.b")), "/products/a.b");
        for bad in ["//evil.example", "https://evil.example", "/\\evil", "x"] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn flows_are_single_use_and_bounded() {
        let flows = Flows::default();
        let (key, _) = flows.start("/".into());
        assert!(flows.take(&key).is_some());
        assert!(flows.take(&key).is_none());
        for _ in 0..MAX_FLOWS + 50 {
            flows.start("/".into());
        }
        assert!(flows.0.len() <= MAX_FLOWS);
    }
}
