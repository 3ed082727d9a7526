//! `mesh serve` trusting a real OpenID Connect provider process — `oidc-provider-mock` from PyPI,
//! started like PostgreSQL — for machines: an ID token it issues (authorization-code flow, scripted)
//! is accepted over HTTP and Arrow Flight SQL, its groups are roles as mesh.toml's `[identity]`
//! maps them, a user moved to another group has another role at the next token, and an altered
//! token is refused on both ways in with the reason.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{code, mesh, serve, stderr};

pub(crate) struct Provider {
    child: Child,
    pub(crate) url: String,
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The provider, or `None` after a notice (a failure under CI=true).
pub(crate) fn provider() -> Option<Provider> {
    let python = std::env::var("MESH_OIDC_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import oidc_provider_mock"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        mesh_testkit::skip(
            "oidc-provider-mock (an OpenID Connect provider)",
            "set MESH_OIDC_PYTHON to a venv with oidc-provider-mock (see .ci/run)",
        );
        return None;
    }
    let port = free_port();
    let child = Command::new(&python)
        .args(["-m", "oidc_provider_mock", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the provider starts");
    let url = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let p = Provider {
        child,
        url,
        runtime,
        http,
    };
    for _ in 0..100 {
        let up = p.runtime.block_on(async {
            p.http
                .get(format!("{}/.well-known/openid-configuration", p.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        });
        if up {
            return Some(p);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("oidc-provider-mock did not start on {}", p.url);
}

impl Provider {
    /// Sets a user's claims at the provider.
    pub(crate) fn user(&self, sub: &str, claims: serde_json::Value) {
        let status = self.runtime.block_on(async {
            self.http
                .put(format!("{}/users/{sub}", self.url))
                .json(&claims)
                .send()
                .await
                .unwrap()
                .status()
        });
        assert!(status.is_success(), "PUT /users/{sub}: {status}");
    }

    /// An ID token for `sub`, through the authorization-code flow (the sign-in form posted by
    /// hand).
    pub(crate) fn id_token(&self, sub: &str) -> String {
        self.runtime.block_on(async {
            let redirect = "http://127.0.0.1:9/callback";
            let authorize = format!(
                "{}/oauth2/authorize?client_id=mesh&redirect_uri={redirect}&response_type=code&scope=openid+profile&state=s&nonce=n",
                self.url
            );
            let answer = self.http.post(&authorize).form(&[("sub", sub)]).send().await.unwrap();
            let location = answer.headers()["location"].to_str().unwrap().to_owned();
            let code = location
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix("code="))
                .unwrap_or_else(|| panic!("no code in {location}"))
                .to_owned();
            let token: serde_json::Value = self
                .http
                .post(format!("{}/oauth2/token", self.url))
                .basic_auth("mesh", Some("secret"))
                .form(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", redirect)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            token["id_token"].as_str().unwrap().to_owned()
        })
    }
}

#[test]
fn a_real_identity_providers_tokens_work_on_http_and_flight_sql_with_groups_as_roles() {
    let Some(idp) = provider() else { return };
    let ws = tempfile::tempdir().unwrap();
    let out = mesh(ws.path(), &["init"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let config = ws.path().join("mesh.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[identity]\nissuer = \"{}\"\naudience = [\"mesh\"]\nleeway_seconds = 5\n\n[[identity.roles]]\ngroup = \"mesh-admins\"\nrole = \"admin\"\n\n[[identity.roles]]\ngroup = \"data-ecommerce\"\nrole = \"member\"\ndomain = \"ecommerce\"\n",
        idp.url
    ));
    std::fs::write(&config, text).unwrap();
    idp.user(
        "ana",
        serde_json::json!({ "preferred_username": "ana", "groups": ["mesh-admins"] }),
    );
    let server = serve(ws.path(), &[]);
    let wire = crate::security::Wire::new(&server.url);
    let issue = |token: &str| -> u16 {
        let body = serde_json::json!({ "principal": "svc", "roles": [{ "role": "consumer" }] });
        wire.runtime_post(&format!("{}/api/v1/tokens", server.url), token, &body)
    };

    let token = idp.id_token("ana");
    assert_eq!(issue(&token), 201, "an admin by group may issue tokens");
    // Flight SQL takes the same token: the call is authenticated (whatever the statement's fate).
    let read = wire.flight(&token, "SELECT 1 AS one");
    assert!(
        read.as_ref()
            .err()
            .is_none_or(|e| !e.contains("unauthenticated:")),
        "{read:?}"
    );

    // An altered token: refused on both ways in, with the reason.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(&parts[1]).unwrap()).unwrap();
        claims["preferred_username"] = "mallory".into();
        b64.encode(claims.to_string())
    };
    let forged = parts.join(".");
    assert_eq!(issue(&forged), 401);
    let refused = wire.flight(&forged, "SELECT 1 AS one").unwrap_err();
    assert!(
        refused.contains("unauthenticated:") && refused.contains("does not verify"),
        "{refused}"
    );

    // Moved to another group at the IdP: the next token carries another role.
    idp.user(
        "ana",
        serde_json::json!({ "preferred_username": "ana", "groups": ["data-ecommerce"] }),
    );
    let token = idp.id_token("ana");
    assert_eq!(
        issue(&token),
        403,
        "a member of ecommerce may not issue tokens"
    );
}
