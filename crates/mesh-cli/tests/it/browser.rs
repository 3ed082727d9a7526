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

    let port = free_port();
    let _driver = Driver(
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
    let shots = screenshots();
    let shot = |name: &'static str| {
        let c = c.clone();
        let path = shots.join(format!("{name}.png"));
        async move {
            let png = c.screenshot().await.unwrap();
            std::fs::write(path, png).unwrap();
        }
    };

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
    shot("1-dashboard").await;
    let q = c.find(Locator::Id("q")).await.unwrap();
    q.send_keys("custmer lifetme").await.unwrap();
    q.send_keys("\u{E007}").await.unwrap(); // Enter
    let hit = wait_for(
        &c,
        Locator::Css("a[href='/products/analytics.customer_lifetime_value']"),
    )
    .await;
    shot("2-search").await;

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
    shot("3-product-lineage").await;
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
    shot("3b-column-lineage").await;

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
    shot("4-request-form").await;
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
    shot("5-pending-request").await;
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
    shot("6-dashboard-approved").await;
    c.close().await.unwrap();
    drop(server);
}
