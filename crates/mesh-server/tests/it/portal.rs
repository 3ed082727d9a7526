//! The portal: pages render for a signed-in user (and for no one else unless the portal is open),
//! search tolerates typos, the product page shows its port, SLA and lineage, and access is asked
//! for and approved through forms, as people without JavaScript would.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use crate::harness::{Harness, bundle};

struct Page {
    status: StatusCode,
    location: Option<String>,
    cookie: Option<String>,
    body: String,
}

async fn call(
    h: &Harness,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Page {
    // A browser on the portal's own origin: it names the host, and posts carry the origin.
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost");
    if method == "POST" {
        request = request.header(header::ORIGIN, "http://localhost");
    }
    if let Some(c) = cookie {
        request = request.header(header::COOKIE, c);
    }
    let body = match form {
        Some(f) => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(f.to_owned())
        }
        None => Body::empty(),
    };
    let response = h
        .app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (location, cookie) = (header(header::LOCATION), header(header::SET_COOKIE));
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    Page {
        status,
        location,
        cookie,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Signs in with `name`'s token; the cookie to send.
async fn sign_in(h: &Harness, name: &str) -> String {
    let token = h.token(name).unwrap();
    let page = call(h, "POST", "/signin", None, Some(&format!("token={token}"))).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let cookie = page.cookie.expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_owned()
}

/// The anti-forgery value the portal puts in the forms it shows to this session.
async fn csrf(h: &Harness, cookie: &str) -> String {
    let page = call(h, "GET", "/", Some(cookie), None).await;
    page.body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field in the page's forms")
        .to_owned()
}

#[tokio::test]
async fn people_find_read_and_ask_for_products_in_the_portal() {
    let h = Harness::new().await;
    let admin = mesh_catalog::Principal::local();
    let mut product = bundle("sales.orders", "1.0.0", &["order_id", "amount"]);
    product.descriptor.text = product.descriptor.text.replace(
        "purpose: API test product.",
        "purpose: \"Orders <script>alert(1)</script> for finance.\"",
    );
    h.catalog.publish(&admin, &product, false).await.unwrap();

    // Nobody signed in: a sign-in page, not the catalog.
    let page = call(&h, "GET", "/", None, None).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("href=\"/signin\""));
    let wrong = call(&h, "POST", "/signin", None, Some("token=mesh_nope")).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);

    let hr = sign_in(&h, "hr_owner").await;
    let page = call(&h, "GET", "/", Some(&hr), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("The mesh at a glance"));
    assert!(page.body.contains("signed in as <strong>hr_owner</strong>"));

    // Search with a typo finds the product; facets link to filtered searches.
    let page = call(&h, "GET", "/search?q=ordrs", Some(&hr), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("href=\"/products/sales.orders\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("search?q=ordrs&amp;domain=sales"),
        "{}",
        page.body
    );

    // The product page: escaped text, the port's schema, SLA, lineage.
    let page = call(&h, "GET", "/products/sales.orders", Some(&hr), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("<script>alert(1)"), "unescaped text");
    assert!(page.body.contains("&lt;script&gt;"));
    assert!(page.body.contains("Output port orders"));
    assert!(page.body.contains("<code>order_id</code>"));
    assert!(page.body.contains("class=\"lineage\""));
    assert!(
        page.body.contains("compliant with every blocking policy"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<label for=\"purpose\">Purpose</label>"));
    // Two days later the never-run product is stale: the SLA history shows the breach.
    h.clock
        .set(chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 3, 12, 0, 0).unwrap());
    h.catalog
        .sla_check(&admin, &mesh_catalog::sla::SlaOptions::default())
        .await
        .unwrap();
    let page = call(&h, "GET", "/products/sales.orders", Some(&hr), None).await;
    assert!(page.body.contains("class=\"sla-history\""), "{}", page.body);
    assert!(page.body.contains("class=\"violation\""));
    let missing = call(&h, "GET", "/products/sales.nope", Some(&hr), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // hr asks for the orders; sales' owner approves in the portal; hr's dashboard shows it.
    let asked = call(
        &h,
        "POST",
        "/products/sales.orders/requests",
        Some(&hr),
        Some(&format!(
            "port=orders&columns=order_id&purpose=Headcount+cost+per+order+for+planning&days=14&csrf={}",
            csrf(&h, &hr).await
        )),
    )
    .await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER, "{}", asked.body);
    assert_eq!(
        asked.location.as_deref(),
        Some("/products/sales.orders?done=requested")
    );
    let owner = sign_in(&h, "sales_owner").await;
    let page = call(&h, "GET", "/products/sales.orders", Some(&owner), None).await;
    let id = page
        .body
        .split("action=\"/requests/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("an approve form for the pending request")
        .to_owned();
    // The requester sees the request's state, not buttons they may not use ...
    let theirs = call(&h, "GET", "/products/sales.orders", Some(&hr), None).await;
    assert!(
        theirs.body.contains("class=\"status-pending\">pending")
            && !theirs.body.contains("action=\"/requests/"),
        "{}",
        theirs.body
    );
    // ... and may not decide on their own request.
    let own = call(
        &h,
        "POST",
        &format!("/requests/{id}/decision"),
        Some(&hr),
        Some(&format!(
            "product=sales.orders&approve=true&csrf={}",
            csrf(&h, &hr).await
        )),
    )
    .await;
    assert_eq!(own.status, StatusCode::FORBIDDEN);
    let decided = call(
        &h,
        "POST",
        &format!("/requests/{id}/decision"),
        Some(&owner),
        Some(&format!(
            "product=sales.orders&approve=true&csrf={}",
            csrf(&h, &owner).await
        )),
    )
    .await;
    assert_eq!(decided.status, StatusCode::SEE_OTHER, "{}", decided.body);
    let page = call(&h, "GET", "/", Some(&hr), None).await;
    assert!(
        page.body.contains("class=\"status-approved\">approved"),
        "{}",
        page.body
    );
    let page = call(&h, "GET", "/domains/sales", Some(&hr), None).await;
    assert!(page.body.contains("href=\"/products/sales.orders\""));

    // Signing out clears the cookie.
    let token = csrf(&h, &hr).await;
    let out = call(
        &h,
        "POST",
        "/signout",
        Some(&hr),
        Some(&format!("csrf={token}")),
    )
    .await;
    assert!(out.cookie.unwrap().contains("Max-Age=0"));
}

/// ODCS v3.2.0 on the product page: a deprecated column is marked for its readers, and a column's
/// allowed values are listed.
#[tokio::test]
async fn deprecated_columns_and_allowed_values_show_on_the_product_page() {
    let h = Harness::new().await;
    let admin = mesh_catalog::Principal::local();
    let mut product = bundle("sales.orders", "1.0.0", &["order_id", "coupon", "status"]);
    let contract = &mut product.contracts[0].text;
    *contract = contract.replace("apiVersion: v3.1.0", "apiVersion: v3.2.0");
    *contract = contract.replacen(
        "      - name: coupon\n",
        "      - name: coupon\n        deprecated: true\n",
        1,
    );
    *contract = contract.replacen(
        "      - name: status\n",
        "      - name: status\n        enum:\n          - value: placed\n          - value: shipped\n",
        1,
    );
    h.catalog.publish(&admin, &product, false).await.unwrap();
    let hr = sign_in(&h, "hr_owner").await;
    let page = call(&h, "GET", "/products/sales.orders", Some(&hr), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let row = |name: &str| {
        let start = page
            .body
            .find(&format!("<code>{name}</code>"))
            .expect("the column's row");
        let end = page.body[start..].find("</tr>").unwrap() + start;
        page.body[start..end].to_owned()
    };
    assert!(
        row("coupon").contains(">deprecated</span>"),
        "{}",
        row("coupon")
    );
    assert!(!row("order_id").contains("deprecated"));
    assert!(
        row("status").contains("one of <code>placed</code>, <code>shipped</code>"),
        "{}",
        row("status")
    );
}
