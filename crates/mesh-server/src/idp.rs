//! Tokens from the company's identity provider: JWTs verified against the issuer's published
//! keys (JWKS, found through its OpenID discovery document), with the issuer, audience, expiry
//! and not-before checked (a bounded clock skew), only asymmetric algorithms accepted, and the
//! keys cached — an unknown `kid` refreshes them once, however many requests carry it, at most
//! once per `min_refresh`. The token's groups (or roles) map to mesh roles as `[identity]` in
//! mesh.toml says; the catalog adds the roles it binds to the same name.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mesh_catalog::store::RoleBinding;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

/// How `mesh serve` trusts an identity provider.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpConfig {
    /// The `iss` of its tokens, and where `/.well-known/openid-configuration` is found.
    pub issuer: String,
    /// Accepted `aud` values (the client id mesh is registered with, at least).
    #[serde(default)]
    pub audience: Vec<String>,
    /// The JWKS URL, when the provider publishes no discovery document.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The claim naming the principal (default `preferred_username`, then `email`, then `sub`).
    #[serde(default)]
    pub username_claim: Option<String>,
    /// Claims holding groups or roles, as dotted paths (default `groups`, `roles`,
    /// `realm_access.roles`).
    #[serde(default)]
    pub groups_claims: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (default 60).
    #[serde(default)]
    pub leeway_seconds: Option<u64>,
    /// Which group gives which role in which domain.
    #[serde(default, rename = "roles")]
    pub role_map: Vec<RoleMapping>,
    /// The client id people sign in to the portal with (authorization code with PKCE); none:
    /// the portal offers no sign-in through the provider.
    #[serde(default)]
    pub client_id: Option<String>,
    /// That client's secret: from `--oidc-client-secret-file` or `MESH_OIDC_CLIENT_SECRET`,
    /// never from mesh.toml (none: a public client, PKCE alone).
    #[serde(skip)]
    pub client_secret: Option<String>,
    /// Scopes asked for at sign-in (default `openid profile email`).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// The endpoints a provider's discovery document names, as the portal's sign-in uses them.
#[derive(Debug, Clone, Deserialize)]
pub struct Endpoints {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    #[serde(default)]
    pub jwks_uri: Option<String>,
}

/// What a token endpoint answers to a code (the fields mesh uses).
#[derive(Debug, Clone, Deserialize)]
pub struct TokenAnswer {
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

/// `[[identity.roles]]`: members of `group` get `role` in `domain` (`*` for every domain).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    pub group: String,
    pub role: String,
    #[serde(default = "any_domain")]
    pub domain: String,
}

fn any_domain() -> String {
    mesh_catalog::auth::ANY_DOMAIN.to_owned()
}

/// Why a token was refused, for the 401's detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// A verified token: who, the roles their claims map to, and the claims that decided.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub bindings: Vec<RoleBinding>,
    pub claims: Value,
    /// The `nonce` claim of an ID token (the portal's sign-in checks it).
    pub nonce: Option<String>,
    /// When it was issued (`iat`, seconds since the epoch).
    pub issued_at: Option<i64>,
}

#[derive(Debug)]
struct Keys {
    set: JwkSet,
    fetched: Option<Instant>,
    /// The last refresh an unknown `kid` caused: at most one per `min_refresh`, so that tokens
    /// naming keys that do not exist cannot make mesh fetch the keys on every request.
    forced: Option<Instant>,
}

/// Keys are fetched again after this long even when every `kid` is known (rotation).
const MAX_KEY_AGE: Duration = Duration::from_secs(3_600);

/// The verifier of one identity provider's tokens.
#[derive(Debug)]
pub struct Idp {
    config: IdpConfig,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    /// One refresh at a time; the others wait and use its result.
    refreshing: Mutex<()>,
    min_refresh: Duration,
    /// JWKS fetches so far (`/metrics`: `mesh_idp_jwks_fetches_total`).
    pub fetches: AtomicU64,
    /// The discovery document, once read (refetched after [`MAX_KEY_AGE`]).
    discovery: RwLock<Option<(Value, Instant)>>,
}

/// The largest answer read from the provider (discovery, keys, tokens).
const MAX_ANSWER: usize = 1 << 20;

/// A token that looks like a JWT (three base64url parts, a JSON header): mesh's own tokens do not.
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3 && parts[0].starts_with("eyJ")
}

impl Idp {
    pub fn new(config: IdpConfig) -> Arc<Idp> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .unwrap_or_default();
        Arc::new(Idp {
            config,
            http,
            keys: RwLock::new(Keys {
                set: JwkSet { keys: Vec::new() },
                fetched: None,
                forced: None,
            }),
            refreshing: Mutex::new(()),
            min_refresh: Duration::from_secs(10),
            fetches: AtomicU64::new(0),
            discovery: RwLock::new(None),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    pub fn config(&self) -> &IdpConfig {
        &self.config
    }

    /// A JSON answer from the provider, at most [`MAX_ANSWER`] bytes.
    async fn fetch_json(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<Value, String> {
        let answer = request.send().await.map_err(|e| format!("{what}: {e}"))?;
        let status = answer.status();
        if answer
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER as u64)
        {
            return Err(format!(
                "{what}: the answer is larger than {MAX_ANSWER} bytes"
            ));
        }
        let mut body = Vec::new();
        let mut answer = answer;
        while let Some(chunk) = answer.chunk().await.map_err(|e| format!("{what}: {e}"))? {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_ANSWER {
                return Err(format!(
                    "{what}: the answer is larger than {MAX_ANSWER} bytes"
                ));
            }
        }
        let json: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{what}: HTTP {status}, not JSON: {e}"))?;
        // A token endpoint's refusals are JSON with `error`: the caller reads them.
        if !status.is_success() && json.get("error").is_none() {
            return Err(format!("{what}: HTTP {status}"));
        }
        Ok(json)
    }

    /// The provider's discovery document (cached; read again after an hour).
    async fn discovery(&self) -> Result<Value, String> {
        if let Some((doc, at)) = &*self.discovery.read().await
            && at.elapsed() < MAX_KEY_AGE
        {
            return Ok(doc.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let what = format!("the identity provider's discovery document ({url})");
        let doc = self.fetch_json(self.http.get(&url), &what).await?;
        *self.discovery.write().await = Some((doc.clone(), Instant::now()));
        Ok(doc)
    }

    /// The endpoints the portal's sign-in uses.
    pub async fn endpoints(&self) -> Result<Endpoints, String> {
        let doc = self.discovery().await?;
        serde_json::from_value(doc).map_err(|e| {
            format!(
                "the discovery document of {} does not name the sign-in endpoints: {e}",
                self.config.issuer
            )
        })
    }

    /// Trades an authorization code (and its PKCE verifier) for tokens at the token endpoint.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<TokenAnswer, String> {
        let endpoints = self.endpoints().await?;
        let client_id = self.config.client_id.clone().unwrap_or_default();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ];
        let mut request = self.http.post(&endpoints.token_endpoint);
        match &self.config.client_secret {
            Some(secret) => request = request.basic_auth(&client_id, Some(secret)),
            None => form.push(("client_id", &client_id)),
        }
        let what = format!(
            "the identity provider's token endpoint ({})",
            endpoints.token_endpoint
        );
        let json = self.fetch_json(request.form(&form), &what).await?;
        serde_json::from_value(json).map_err(|e| format!("{what}: {e}"))
    }

    /// The keys' URL: configured, or from the discovery document.
    async fn jwks_uri(&self) -> Result<String, String> {
        if let Some(uri) = &self.config.jwks_uri {
            return Ok(uri.clone());
        }
        let doc = self.discovery().await?;
        doc.get("jwks_uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "the discovery document of {} names no jwks_uri",
                    self.config.issuer
                )
            })
    }

    /// Fetches the keys again, unless another request did since `seen` (the fetch time the
    /// caller saw). `forced`: because a token named an unknown key — then at most once per
    /// `min_refresh`.
    async fn refresh(&self, seen: Option<Instant>, forced: bool) -> Result<(), String> {
        let _one = self.refreshing.lock().await;
        {
            let keys = self.keys.read().await;
            if keys.fetched != seen {
                return Ok(()); // someone refreshed while we waited
            }
            if forced
                && keys
                    .forced
                    .is_some_and(|at| at.elapsed() < self.min_refresh)
            {
                return Ok(());
            }
        }
        let uri = self.jwks_uri().await?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let what = format!("the identity provider's keys ({uri})");
        let fetched = self.fetch_json(self.http.get(&uri), &what).await;
        let mut keys = self.keys.write().await;
        if forced {
            keys.forced = Some(Instant::now());
        }
        let set: JwkSet = serde_json::from_value(fetched?)
            .map_err(|e| format!("the keys at {uri} are not a JWK set: {e}"))?;
        keys.set = set;
        keys.fetched = Some(Instant::now());
        Ok(())
    }

    /// The key a token names, refreshing the keys once when it is unknown (or they are old).
    async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, Refusal> {
        let stale = {
            let keys = self.keys.read().await;
            keys.fetched
                .is_some_and(|at| at.elapsed() > MAX_KEY_AGE)
                .then_some(keys.fetched)
        };
        if let Some(seen) = stale {
            self.refresh(seen, false).await.map_err(Refusal)?;
        }
        for attempt in 0..2 {
            let seen = {
                let keys = self.keys.read().await;
                let found = match kid {
                    Some(kid) => keys.set.find(kid),
                    // No kid: the provider's only key.
                    None if keys.set.keys.len() == 1 => keys.set.keys.first(),
                    None => None,
                };
                if let Some(jwk) = found {
                    return DecodingKey::from_jwk(jwk).map_err(|e| {
                        Refusal(format!("the identity provider's key cannot be used: {e}"))
                    });
                }
                keys.fetched
            };
            if attempt == 0 {
                // The first fetch is not forced; an unknown kid after that is.
                self.refresh(seen, seen.is_some()).await.map_err(Refusal)?;
            }
        }
        Err(Refusal(match kid {
            Some(kid) => format!(
                "the token is signed with a key the identity provider does not publish (kid `{kid}`)"
            ),
            None => "the token names no key (kid) and the provider publishes several".to_owned(),
        }))
    }

    /// Verifies `token` and maps its claims to roles.
    pub async fn verify(&self, token: &str) -> Result<Identity, Refusal> {
        // The algorithm first, from the header as sent: `none` is refused by name.
        if let Some(alg) = header_alg(token)
            && !ACCEPTED.contains(&alg.as_str())
        {
            return Err(Refusal(format!(
                "the token's algorithm `{alg}` is not accepted: only the identity provider's public keys verify tokens (alg none and shared secrets are refused)"
            )));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            Refusal(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName => {
                    "the token's algorithm is not accepted (`alg: none` and unknown algorithms are refused)".to_owned()
                }
                _ => format!("the token is not a well-formed JWT: {e}"),
            })
        })?;
        let asymmetric = matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        );
        if !asymmetric {
            return Err(Refusal(format!(
                "the token's algorithm {:?} is not accepted: only the identity provider's public keys verify tokens",
                header.alg
            )));
        }
        let key = self.key(header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        if self.config.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.config.audience);
        }
        validation.leeway = self.config.leeway_seconds.unwrap_or(60).min(600);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss"]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            Refusal(match e.kind() {
                K::ExpiredSignature => "the token has expired".to_owned(),
                K::ImmatureSignature => "the token is not valid yet (nbf)".to_owned(),
                K::InvalidAudience => format!(
                    "the token is for another audience (mesh accepts {})",
                    self.config.audience.join(", ")
                ),
                K::InvalidIssuer => format!(
                    "the token was issued by another issuer (mesh trusts {})",
                    self.config.issuer
                ),
                K::InvalidSignature => {
                    "the token's signature does not verify (altered, or signed by another key)"
                        .to_owned()
                }
                K::MissingRequiredClaim(c) => format!("the token has no `{c}` claim"),
                _ => format!("the token is refused: {e}"),
            })
        })?;
        let claims = data.claims;
        let name = self.username(&claims).ok_or_else(|| {
            Refusal("the token names no user (preferred_username, email or sub)".to_owned())
        })?;
        let groups = self.groups(&claims);
        let mut bindings = Vec::new();
        for m in &self.config.role_map {
            if groups.contains(&m.group) {
                bindings.push(RoleBinding {
                    principal: name.clone(),
                    role: m.role.clone(),
                    domain: m.domain.clone(),
                });
            }
        }
        let decided = serde_json::json!({
            "iss": claims.get("iss"),
            "sub": claims.get("sub"),
            "user": name,
            "groups": groups,
        });
        Ok(Identity {
            issued_at: claims.get("iat").and_then(Value::as_i64),
            nonce: claims
                .get("nonce")
                .and_then(Value::as_str)
                .map(str::to_owned),
            name,
            bindings,
            claims: decided,
        })
    }

    fn username(&self, claims: &Value) -> Option<String> {
        let configured = self.config.username_claim.as_deref();
        let order: Vec<&str> = match configured {
            Some(c) => vec![c],
            None => vec!["preferred_username", "email", "sub"],
        };
        order
            .iter()
            .find_map(|c| lookup(claims, c).and_then(Value::as_str))
            .map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty() && s.len() <= 256)
    }

    fn groups(&self, claims: &Value) -> Vec<String> {
        let defaults = ["groups", "roles", "realm_access.roles"];
        let paths: Vec<&str> = if self.config.groups_claims.is_empty() {
            defaults.to_vec()
        } else {
            self.config
                .groups_claims
                .iter()
                .map(String::as_str)
                .collect()
        };
        let mut out: Vec<String> = Vec::new();
        for path in paths {
            match lookup(claims, path) {
                Some(Value::Array(items)) => {
                    out.extend(items.iter().filter_map(Value::as_str).map(str::to_owned));
                }
                Some(Value::String(s)) => out.extend(s.split_whitespace().map(str::to_owned)),
                _ => {}
            }
        }
        out.sort();
        out.dedup();
        out.truncate(1_000);
        out
    }
}

/// The asymmetric algorithms an identity provider signs with.
const ACCEPTED: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// The `alg` of a token's header, read without trusting anything else in it.
fn header_alg(token: &str) -> Option<String> {
    use base64::Engine as _;
    let first = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .ok()?;
    let header: Value = serde_json::from_slice(&bytes).ok()?;
    header.get("alg").and_then(Value::as_str).map(str::to_owned)
}

/// A claim by dotted path (`realm_access.roles`).
fn lookup<'v>(claims: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(claims, |v, k| v.get(k))
}

/// Who sent a token: mesh's own tokens through the catalog, IdP tokens through the configured
/// provider. One for every way in (HTTP, Flight SQL, the portal).
#[derive(Debug, Clone)]
pub struct Authenticator {
    catalog: mesh_catalog::Catalog,
    idp: Option<Arc<Idp>>,
    /// The roles last recorded per IdP principal, so that `auth.idp_roles` is written when
    /// they change, not on every request.
    seen: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
}

impl Authenticator {
    pub fn new(catalog: mesh_catalog::Catalog, idp: Option<Arc<Idp>>) -> Self {
        Authenticator {
            catalog,
            idp,
            seen: Arc::default(),
        }
    }

    pub fn idp(&self) -> Option<&Arc<Idp>> {
        self.idp.as_ref()
    }

    pub async fn authenticate(
        &self,
        token: &str,
    ) -> Result<mesh_catalog::Principal, crate::ApiError> {
        if !looks_like_jwt(token) {
            return self
                .catalog
                .authenticate(token)
                .await
                .map_err(|e| crate::ApiError::of(&e));
        }
        let Some(idp) = &self.idp else {
            return Err(crate::ApiError::unauthenticated(
                "this server accepts only mesh tokens: it trusts no identity provider (mesh serve --oidc-issuer)",
            ));
        };
        let id = idp
            .verify(token)
            .await
            .map_err(|r| crate::ApiError::unauthenticated(r.0))?;
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            id.claims.to_string().hash(&mut h);
            for b in &id.bindings {
                (&b.role, &b.domain).hash(&mut h);
            }
            h.finish()
        };
        let record = {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if seen.len() > 100_000 {
                seen.clear();
            }
            seen.insert(id.name.clone(), fingerprint) != Some(fingerprint)
        };
        self.catalog
            .federated(&id.name, id.bindings, id.claims, id.issued_at, record)
            .await
            .map_err(|e| crate::ApiError::of(&e))
    }
}
