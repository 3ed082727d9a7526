//! The portal in a real browser: headless Chromium driven through chromedriver (Debian's
//! `chromium` and `chromium-driver`), on the demo mesh. Search → product page → the lineage graph
//! has its nodes and edges → an analyst requests access → the owner approves → the dashboard
//! shows it. Screenshots of each step go to `target/screenshots/` (CI keeps them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::{code, mesh, notice, stderr, stdout};

/// chromedriver and chromium when installed; otherwise `None` with a printed notice, or a
/// failure under `CI=true` (`.ci/run` installs them).
fn browser() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|d| d.join(n))
                .find(|p| p.is_file())
        })
    };
    match (
        find(&["chromedriver"]),
        find(&["chromium", "chromium-browser"]),
    ) {
        (Some(driver), Some(chromium)) => Some((driver, chromium)),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true needs chromium and chromedriver: apt-get install -y chromium chromium-driver"
            );
            notice("skipping the browser test: apt-get install chromium chromium-driver to run it");
            None
        }
    }
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Types `text` into the field with this id, once the page shows it.
async fn type_into(c: &Client, id: &str, text: &str) {
    wait_for(c, Locator::Id(id))
        .await
        .send_keys(text)
        .await
        .unwrap();
}

async fn click(c: &Client, locator: Locator<'_>) {
    c.find(locator).await.unwrap().click().await.unwrap();
}

/// Waits (up to 20 s) for an element to appear.
/// The element, once the page shows it (a loaded CI machine can be slow); when it never does,
/// the failure shows the page that came instead.
async fn wait_for(c: &Client, locator: Locator<'_>) -> fantoccini::elements::Element {
    match c
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(locator)
        .await
    {
        Ok(element) => element,
        Err(e) => {
            let url = c.current_url().await.map(|u| u.to_string());
            let page = c.source().await.unwrap_or_default();
            panic!("no {locator:?} on {url:?}: {e}\n{page}");
        }
    }
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A screenshot of the page, as `target/screenshots/NAME.png` (CI keeps them).
async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// A helper with a runtime of its own (the IdP's, the wire's), used from this test's async
/// context through `block_in_place` and dropped where blocking is allowed.
struct OffRuntime<T>(Option<T>);

impl<T> std::ops::Deref for OffRuntime<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T> Drop for OffRuntime<T> {
    fn drop(&mut self) {
        let inner = self.0.take();
        tokio::task::block_in_place(|| drop(inner));
    }
}

/// chromedriver on a free port, and a headless Chromium session through it.
async fn start_browser(driver: PathBuf, chromium: PathBuf) -> (Driver, Client) {
    let port = free_port();
    let driver = Driver(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--window-size=1280,1400"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let c = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a browser session");
    (driver, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_read_lineage_request_and_approve_in_a_browser() {
    let Some((driver, chromium)) = browser() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = mesh(tmp.path(), &["demo", "demo", "--no-serve"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let ws = tmp.path().join("demo");
    let tokens = std::fs::read_to_string(ws.join(".mesh/demo-tokens.txt")).unwrap();
    let token = |who: &str| {
        tokens
            .lines()
            .find(|l| l.starts_with(who))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .to_owned()
    };
    let server = crate::serve(&ws, &[("MESH_OPEN_PORTAL", "true")]);
    let base = server.url.clone();

    let (_driver, c) = start_browser(driver, chromium).await;

    // Search, with a typo, from the dashboard's search box.
    c.goto(&format!("{base}/")).await.unwrap();
    let title = c
        .find(Locator::Css("h1"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(title, "The mesh at a glance");
    shot(&c, "1-dashboard").await;
    let q = c.find(Locator::Id("q")).await.unwrap();
    q.send_keys("custmer lifetme").await.unwrap();
    q.send_keys("\u{E007}").await.unwrap(); // Enter
    let hit = wait_for(
        &c,
        Locator::Css("a[href='/products/analytics.customer_lifetime_value']"),
    )
    .await;
    shot(&c, "2-search").await;

    // The product page and its lineage graph: the two inputs, their pipelines, the output.
    hit.click().await.unwrap();
    wait_for(&c, Locator::Css("svg.lineage")).await;
    let nodes = c
        .find_all(Locator::Css("svg.lineage g.node"))
        .await
        .unwrap();
    let edges = c
        .find_all(Locator::Css("svg.lineage path.edge"))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for n in &nodes {
        ids.push(n.attr("data-id").await.unwrap().unwrap_or_default());
    }
    for expected in [
        "job:mesh:analytics.customer_lifetime_value",
        "dataset:mesh:ecommerce.orders.orders",
        "dataset:mesh:ecommerce.customers.customers",
    ] {
        assert!(
            ids.iter().any(|i| i == expected),
            "{expected} not in {ids:?}"
        );
    }
    assert!(
        edges.len() >= nodes.len() - 1,
        "{} edges for {} nodes",
        edges.len(),
        nodes.len()
    );
    // Drawn, not only present: every node has a box of some size.
    let drawn = c
        .execute(
            "return [...document.querySelectorAll('svg.lineage g.node rect')].every(r => r.getBBox().width > 100)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(drawn, serde_json::json!(true));
    shot(&c, "3-product-lineage").await;
    // A column's lineage: revenue comes from the orders' amount and status.
    click(&c, Locator::Css("a[href$='column=revenue#lineage']")).await;
    wait_for(&c, Locator::Css("svg.lineage g.node[data-kind='field']")).await;
    let mut fields = Vec::new();
    for n in c
        .find_all(Locator::Css("svg.lineage g.node[data-kind='field']"))
        .await
        .unwrap()
    {
        fields.push(n.attr("data-id").await.unwrap().unwrap_or_default());
    }
    for expected in [
        "datasetField:mesh:ecommerce.orders.orders:amount",
        "datasetField:mesh:ecommerce.orders.orders:status",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} not in {fields:?}"
        );
    }
    shot(&c, "3b-column-lineage").await;

    // ana (analytics) signs in and asks for the product catalog.
    let sign_in = |who: &'static str| {
        let c = c.clone();
        let base = base.clone();
        let token = token(who);
        async move {
            c.goto(&format!("{base}/signin")).await.unwrap();
            type_into(&c, "token", &token).await;
            click(&c, Locator::Css("main form button[type=submit]")).await;
            let me = format!("//span[contains(., 'signed in as')]/strong[text()='{who}']");
            wait_for(&c, Locator::XPath(&me)).await;
        }
    };
    sign_in("ana").await;
    c.goto(&format!("{base}/products/ecommerce.product_catalog"))
        .await
        .unwrap();
    type_into(
        &c,
        "purpose",
        "Product names and categories for the behaviour funnel, daily.",
    )
    .await;
    type_into(&c, "columns", "sku,name,category").await;
    shot(&c, "4-request-form").await;
    click(&c, Locator::XPath("//button[text()='Request access']")).await;
    wait_for(
        &c,
        Locator::XPath("//p[@role='status'][contains(., 'Access requested')]"),
    )
    .await;
    click(&c, Locator::XPath("//button[text()='Sign out']")).await;
    // Signed out once the page after it offers to sign in (a navigation started before that
    // lands would be overtaken by the sign-out's redirect).
    wait_for(&c, Locator::XPath("//header//a[@href='/signin']")).await;

    // olga (e-commerce's owner) approves it on the product page.
    sign_in("olga").await;
    c.goto(&format!("{base}/products/ecommerce.product_catalog"))
        .await
        .unwrap();
    let approve = wait_for(
        &c,
        Locator::XPath("//tr[td[contains(., 'ana')]]//button[text()='Approve']"),
    )
    .await;
    shot(&c, "5-pending-request").await;
    approve.click().await.unwrap();
    wait_for(
        &c,
        Locator::XPath("//p[@role='status'][contains(., 'Approved')]"),
    )
    .await;

    // The dashboard shows the request approved.
    c.goto(&format!("{base}/")).await.unwrap();
    let row = wait_for(&c, Locator::XPath(
            "//table[@aria-describedby='requests']//tr[td/a[@href='/products/ecommerce.product_catalog']]",
        )).await;
    let text = row.text().await.unwrap();
    assert!(text.contains("approved"), "{text}");
    assert!(text.contains("ana"), "{text}");
    shot(&c, "6-dashboard-approved").await;
    c.close().await.unwrap();
    drop(server);
}

/// Issue 23 end to end, with a real identity provider process (oidc-provider-mock) and a real
/// browser: priya signs in through the IdP (her group makes her a member of analytics), finds
/// the orders product and asks for three columns; omar signs in through the IdP (his group makes
/// him an owner of e-commerce) and approves; priya mints a credential for her service on the
/// dashboard; the service reads the port with it over HTTP and Flight SQL — the granted columns,
/// the others masked, nothing else; after the credential is revoked in the portal, and after the
/// grant of a second one is revoked, the same secrets get 401 on both ways in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_through_the_idp_request_approve_and_read_with_a_minted_credential() {
    let Some((driver, chromium)) = browser() else {
        return;
    };
    let Some(idp) = tokio::task::block_in_place(crate::idp::provider) else {
        return;
    };
    let idp = OffRuntime(Some(idp));
    let tmp = tempfile::tempdir().unwrap();
    let out = mesh(tmp.path(), &["demo", "demo", "--no-serve"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let ws = tmp.path().join("demo");
    let config = ws.join("mesh.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[identity]\nissuer = \"{}\"\nclient_id = \"mesh-portal\"\naudience = [\"mesh\"]\nleeway_seconds = 5\n\n\
         [[identity.roles]]\ngroup = \"data-analytics\"\nrole = \"member\"\ndomain = \"analytics\"\n\n\
         [[identity.roles]]\ngroup = \"data-ecommerce-owners\"\nrole = \"owner\"\ndomain = \"ecommerce\"\n",
        idp.url
    ));
    std::fs::write(&config, text).unwrap();
    tokio::task::block_in_place(|| {
        idp.user(
            "priya",
            serde_json::json!({ "preferred_username": "priya", "groups": ["data-analytics"] }),
        );
        idp.user(
            "omar",
            serde_json::json!({ "preferred_username": "omar", "groups": ["data-ecommerce-owners"] }),
        );
    });
    let server = crate::serve(&ws, &[("MESH_OIDC_CLIENT_SECRET", "portal-secret")]);
    let base = server.url.clone();
    let (_driver, c) = start_browser(driver, chromium).await;

    // Sign in through the provider: the portal's button, the provider's own form, back.
    let sign_in = |who: &'static str| {
        let c = c.clone();
        let base = base.clone();
        let idp_url = idp.url.clone();
        async move {
            c.goto(&format!("{base}/signin")).await.unwrap();
            wait_for(&c, Locator::Id("signin-oidc"))
                .await
                .click()
                .await
                .unwrap();
            // The provider's page, not ours.
            let sub = wait_for(&c, Locator::Css("input[name='sub']")).await;
            let at = c.current_url().await.unwrap().to_string();
            assert!(at.starts_with(&idp_url), "at {at}");
            sub.send_keys(who).await.unwrap();
            click(
                &c,
                Locator::XPath("//form[.//input[@name='sub']]//button[@type='submit']"),
            )
            .await;
            let me = format!("//span[contains(., 'signed in as')]/strong[text()='{who}']");
            wait_for(&c, Locator::XPath(&me)).await;
        }
    };
    let sign_out = || {
        let c = c.clone();
        let idp_url = idp.url.clone();
        async move {
            click(&c, Locator::XPath("//button[text()='Sign out']")).await;
            // Signed out here, then on to the provider's end-session page.
            wait_for(&c, Locator::XPath("//h1[text()='End Session']")).await;
            let at = c.current_url().await.unwrap().to_string();
            assert!(at.starts_with(&idp_url), "at {at}");
        }
    };

    sign_in("priya").await;
    shot(&c, "idp-1-signed-in").await;
    let q = c.find(Locator::Id("q")).await.unwrap();
    q.send_keys("orders").await.unwrap();
    q.send_keys("\u{E007}").await.unwrap();
    wait_for(&c, Locator::Css("a[href='/products/ecommerce.orders']"))
        .await
        .click()
        .await
        .unwrap();
    type_into(
        &c,
        "purpose",
        "Order volumes per status for the analytics funnel, daily.",
    )
    .await;
    type_into(&c, "columns", "order_id,amount,status").await;
    click(&c, Locator::XPath("//button[text()='Request access']")).await;
    wait_for(
        &c,
        Locator::XPath("//p[@role='status'][contains(., 'Access requested')]"),
    )
    .await;
    shot(&c, "idp-2-requested").await;
    sign_out().await;

    sign_in("omar").await;
    c.goto(&format!("{base}/products/ecommerce.orders"))
        .await
        .unwrap();
    wait_for(
        &c,
        Locator::XPath("//tr[td[contains(., 'priya')]]//button[text()='Approve']"),
    )
    .await
    .click()
    .await
    .unwrap();
    wait_for(
        &c,
        Locator::XPath("//p[@role='status'][contains(., 'Approved')]"),
    )
    .await;
    shot(&c, "idp-3-approved").await;
    sign_out().await;

    // priya mints a credential for her service on the dashboard; the secret is shown once.
    sign_in("priya").await;
    c.goto(&format!("{base}/#grants")).await.unwrap();
    let label = wait_for(
        &c,
        Locator::Css("table[aria-describedby='grants'] input[name='label']"),
    )
    .await;
    label.send_keys("funnel-job").await.unwrap();
    click(&c, Locator::Css("button[data-mint]")).await;
    let secret = wait_for(&c, Locator::Css("input[data-credential-secret]"))
        .await
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    assert!(secret.starts_with("mesh_"), "{secret}");
    shot(&c, "idp-4-credential").await;

    // The service reads with it, on both ways in: the granted columns; the rest masked.
    let wire = OffRuntime(Some(tokio::task::block_in_place(|| {
        crate::security::Wire::new(&base)
    })));
    let read = "SELECT order_id, amount, status, customer_id FROM ecommerce.orders ORDER BY order_id LIMIT 5";
    let (status, body) = tokio::task::block_in_place(|| wire.http(&secret, read));
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows = doc["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 5, "{body}");
    for row in &rows {
        assert!(
            !row["order_id"].is_null() && !row["amount"].is_null(),
            "{row}"
        );
        assert!(
            row["customer_id"].is_null() || row["customer_id"] != rows[0]["order_id"],
            "customer_id is not granted: {row}"
        );
    }
    let flight =
        tokio::task::block_in_place(|| wire.flight(&secret, read)).expect("Flight SQL reads");
    assert_eq!(flight.len(), 5);
    assert_eq!(flight[0]["order_id"], rows[0]["order_id"]);
    // Nothing else: not another product's port, not the catalog.
    let (status, body) = tokio::task::block_in_place(|| {
        wire.http(&secret, "SELECT * FROM ecommerce.customers LIMIT 1")
    });
    // Not visible at all, as for any reader without a grant (the same answer as a port
    // that does not exist).
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no output port priya may read"), "{body}");
    let answer = tokio::task::block_in_place(|| {
        crate::security::Wire::new(&base).get_status(&format!("{base}/api/v1/products"), &secret)
    });
    assert_eq!(answer, 403, "a credential does not browse the catalog");

    // Revoked in the portal: 401 at once, on both ways in.
    c.goto(&format!("{base}/#credentials")).await.unwrap();
    wait_for(&c, Locator::Css("button[data-revoke]"))
        .await
        .click()
        .await
        .unwrap();
    wait_for(
        &c,
        Locator::XPath("//p[@role='status'][contains(., 'credential is revoked')]"),
    )
    .await;
    shot(&c, "idp-5-revoked").await;
    let (status, body) = tokio::task::block_in_place(|| wire.http(&secret, read));
    assert_eq!(status, 401, "{body}");
    let refused = tokio::task::block_in_place(|| wire.flight(&secret, read)).unwrap_err();
    assert!(refused.contains("unauthenticated"), "{refused}");

    // A second credential (through the API, with priya's IdP token) dies with its grant.
    let token = tokio::task::block_in_place(|| idp.id_token("priya"));
    let grants = tokio::task::block_in_place(|| {
        wire.get_json(&format!("{base}/api/v1/access/grants"), &token)
    });
    let grant = grants[0]["id"].as_str().unwrap().to_owned();
    let minted = tokio::task::block_in_place(|| {
        wire.post_json(
            &format!("{base}/api/v1/access/grants/{grant}/credentials"),
            &token,
            &serde_json::json!({ "label": "funnel-job-2", "days": 7 }),
        )
    });
    let second = minted["secret"].as_str().unwrap().to_owned();
    let (status, _) = tokio::task::block_in_place(|| wire.http(&second, read));
    assert_eq!(status, 200);
    let omar = tokio::task::block_in_place(|| idp.id_token("omar"));
    let revoked = tokio::task::block_in_place(|| {
        wire.post_json(
            &format!("{base}/api/v1/access/grants/{grant}/revoke"),
            &omar,
            &serde_json::json!({ "reason": "the funnel moved to the warehouse" }),
        )
    });
    assert_eq!(revoked["active"], false, "{revoked}");
    let (status, body) = tokio::task::block_in_place(|| wire.http(&second, read));
    assert_eq!(status, 401, "{body}");
    let refused = tokio::task::block_in_place(|| wire.flight(&second, read)).unwrap_err();
    assert!(refused.contains("unauthenticated"), "{refused}");
    c.close().await.unwrap();
    drop(server);
}
