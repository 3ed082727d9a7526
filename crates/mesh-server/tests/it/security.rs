//! The security suite over HTTP: each test tries what a hostile domain or a curious consumer
//! would, and checks the platform holds. Tests named `hole_<n>_...` are the holes issue 18 found;
//! each was committed failing, before its fix (see docs/security.md).

use mesh_catalog::{Principal, Role};

use crate::harness::{Harness, bundle};

/// `bundle`, with its product classified `product_class` and each `(column, class)` given.
fn classified(
    id: &str,
    columns: &[&str],
    product_class: &str,
    classes: &[(&str, &str)],
) -> mesh_catalog::Bundle {
    let mut b = bundle(id, "1.0.0", columns);
    b.descriptor.text = b.descriptor.text.replace(
        "property: dataClassification\n    value: internal",
        &format!("property: dataClassification\n    value: {product_class}"),
    );
    for (column, class) in classes {
        let from = format!("      - name: {column}\n        logicalType: string\n");
        assert!(b.contracts[0].text.contains(&from), "{column}");
        b.contracts[0].text = b.contracts[0]
            .text
            .replace(&from, &format!("{from}        classification: {class}\n"));
    }
    b
}

/// A second owner of `sales` (restricted data needs two people).
async fn second_owner(h: &Harness) -> String {
    h.catalog
        .bootstrap_token("sales_owner2", &[(Role::Owner, Some("sales".into()))], None)
        .await
        .unwrap()
}

/// Hole 4: the effective grant is what every approver agreed to — the intersection — and an
/// approval that leaves nothing in common grants nothing.
#[tokio::test]
async fn hole_4_two_approvals_grant_only_their_common_columns() {
    let h = Harness::new().await;
    let admin = Principal::local();
    let b = classified(
        "sales.orders",
        &["id", "amount", "note"],
        "internal",
        &[("note", "restricted")],
    );
    h.catalog.publish(&admin, &b, false).await.unwrap();
    let owner2 = second_owner(&h).await;
    let consumer = h.token("consumer").unwrap().to_owned();
    let owner = h.token("sales_owner").unwrap().to_owned();
    let ask = |columns: &[&str]| {
        serde_json::json!({
            "product": "sales.orders", "port": "orders", "columns": columns, "days": 30,
            "purpose": "Reconciling the ledger every month.",
        })
    };
    let approve = |columns: &[&str]| serde_json::json!({"decision": "approve", "columns": columns});

    // Disjoint approvals: nothing in common, nothing granted.
    let r = h
        .send(
            "POST",
            "/api/v1/access/requests",
            Some(&consumer),
            Some(&ask(&["id", "amount", "note"])),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.json);
    assert_eq!(r.json["needed"], 2, "{}", r.json);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let decide = format!("/api/v1/access/requests/{id}/decision");
    let first = h
        .send(
            "POST",
            &decide,
            Some(&owner),
            Some(&approve(&["id", "amount"])),
        )
        .await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.json);
    let second = h
        .send("POST", &decide, Some(&owner2), Some(&approve(&["note"])))
        .await;
    assert!(
        second.status.is_client_error(),
        "{} {}",
        second.status,
        second.json
    );
    let grants = h
        .send(
            "GET",
            "/api/v1/access/grants?product=sales.orders",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(
        grants.json.as_array().map(Vec::len),
        Some(0),
        "{}",
        grants.json
    );

    // Overlapping approvals: the grant is their intersection.
    let r = h
        .send(
            "POST",
            "/api/v1/access/requests",
            Some(&consumer),
            Some(&ask(&["id", "amount", "note"])),
        )
        .await;
    let id = r.json["id"].as_str().unwrap().to_owned();
    let decide = format!("/api/v1/access/requests/{id}/decision");
    h.send(
        "POST",
        &decide,
        Some(&owner),
        Some(&approve(&["id", "amount"])),
    )
    .await;
    let done = h
        .send(
            "POST",
            &decide,
            Some(&owner2),
            Some(&approve(&["amount", "note"])),
        )
        .await;
    assert_eq!(done.status.as_u16(), 200, "{}", done.json);
    assert_eq!(
        done.json["grant"]["columns"],
        serde_json::json!(["amount"]),
        "{}",
        done.json
    );
}

/// Hole 4: how many approvals a request needs comes from the strictest classification of what
/// it asks for: the product's, and every column's, nested ones included; an unclassified column
/// takes the product's.
#[tokio::test]
async fn hole_4_restricted_products_and_nested_columns_need_two_approvers() {
    let h = Harness::new().await;
    let admin = Principal::local();
    let consumer = h.token("consumer").unwrap().to_owned();
    // A restricted product whose columns say nothing.
    let b = classified("sales.payroll", &["id", "amount"], "restricted", &[]);
    h.catalog.publish(&admin, &b, false).await.unwrap();
    // An internal product with a restricted field nested in an object column.
    let mut nested = classified("sales.people", &["id", "address"], "internal", &[]);
    nested.contracts[0].text = nested.contracts[0].text.replace(
        "      - name: address\n        logicalType: string\n        required: false\n",
        "      - name: address\n        logicalType: object\n        required: false\n        properties:\n          - name: street\n            logicalType: string\n            classification: restricted\n",
    );
    assert!(nested.contracts[0].text.contains("name: street"));
    h.catalog.publish(&admin, &nested, false).await.unwrap();
    for (product, port) in [("sales.payroll", "payroll"), ("sales.people", "people")] {
        let ask = serde_json::json!({
            "product": product, "port": port, "columns": [], "days": 30,
            "purpose": "Reconciling the ledger every month.",
        });
        let r = h
            .send(
                "POST",
                "/api/v1/access/requests",
                Some(&consumer),
                Some(&ask),
            )
            .await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.json);
        assert_eq!(r.json["needed"], 2, "{product}: {}", r.json);
    }
}
