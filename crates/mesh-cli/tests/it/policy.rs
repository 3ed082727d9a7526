//! `mesh policy check | test | list`: the standard pack on real product folders, domain policies
//! and overrides, and the Rego unit tests.

use std::fs;
use std::path::Path;

use crate::{code, mesh, stderr, stdout};

fn copy(from: &Path, to: &Path) {
    fs::create_dir_all(to.join("contracts")).unwrap();
    fs::copy(from.join("product.odps.yaml"), to.join("product.odps.yaml")).unwrap();
    fs::copy(
        from.join("contracts/orders.odcs.yaml"),
        to.join("contracts/orders.odcs.yaml"),
    )
    .unwrap();
}

#[test]
fn policy_check_blocks_warns_and_points_at_the_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = mesh(
        &root,
        &[
            "policy",
            "check",
            "testdata/policy/compliant",
            "examples/mesh/ecommerce/orders",
            "examples/mesh/analytics/customer_ltv",
        ],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        stdout(&out).matches("compliant:").count(),
        3,
        "{}",
        stdout(&out)
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders");
    copy(&root.join("testdata/policy/compliant"), &dir);
    let contract = dir.join("contracts/orders.odcs.yaml");
    let text = fs::read_to_string(&contract).unwrap();
    fs::write(
        &contract,
        text.replace("        tags: [pii]\n", "")
            .replace("value: 99.5", "value: 90"),
    )
    .unwrap();
    let out = mesh(tmp.path(), &["policy", "check", "orders"]);
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("orders/contracts/orders.odcs.yaml:"),
        "{text}"
    );
    assert!(
        text.contains("block [pii-tagged] column orders.customer_email"),
        "{text}"
    );
    assert!(text.contains("warn [availability-min]"), "{text}");
    assert!(text.contains("1 blocking, 1 warnings"), "{text}");

    // JSON, with locations.
    let out = mesh(
        tmp.path(),
        &["policy", "check", "orders", "--output", "json"],
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["results"][0]["blocked"], true);
    assert!(
        json["results"][0]["violations"][0]["location"]
            .as_str()
            .unwrap()
            .contains("orders.odcs.yaml:")
    );

    // The domain relaxes pii-tagged: refused. It tightens availability-min: now blocking.
    fs::create_dir_all(dir.join("policies")).unwrap();
    fs::write(dir.join("policies/overrides.yaml"), "pii-tagged: warn\n").unwrap();
    let out = mesh(tmp.path(), &["policy", "check", "orders"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("not weaken"), "{}", stderr(&out));
    fs::write(
        dir.join("policies/overrides.yaml"),
        "availability-min: block\n",
    )
    .unwrap();
    let out = mesh(tmp.path(), &["policy", "check", "orders"]);
    assert!(
        stdout(&out).contains("block [availability-min]"),
        "{}",
        stdout(&out)
    );
    fs::write(
        dir.join("policies/overrides.yaml"),
        "availability-min: sometimes\n",
    )
    .unwrap();
    let out = mesh(tmp.path(), &["policy", "check", "orders"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("overrides.yaml:1:19"),
        "{}",
        stderr(&out)
    );
    fs::remove_file(dir.join("policies/overrides.yaml")).unwrap();

    // A domain policy of its own, with its test.
    fs::write(
        dir.join("policies/no_amount.rego"),
        "# METADATA\n# title: No amounts\n# custom:\n#   id: sales-no-amount\n#   enforcement: warn\npackage sales.no_amount\n\nimport rego.v1\n\ndeny contains \"amounts stay inside sales\" if {\n\tsome _, c in input.contracts\n\tsome o in c.schema\n\tsome p in o.properties\n\tp.name == \"amount\"\n}\n",
    )
    .unwrap();
    fs::write(
        dir.join("policies/no_amount_test.rego"),
        "package sales.no_amount_test\n\nimport rego.v1\n\ntest_amount_is_found if {\n\tcount(data.sales.no_amount.deny) == 1 with input as {\"contracts\": {\"o\": {\"schema\": [{\"properties\": [{\"name\": \"amount\"}]}]}}}\n}\n",
    )
    .unwrap();
    let out = mesh(tmp.path(), &["policy", "check", "orders"]);
    assert!(
        stdout(&out).contains("warn [sales-no-amount] amounts stay inside sales"),
        "{}",
        stdout(&out)
    );
    let out = mesh(tmp.path(), &["policy", "test", "orders/policies"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(stdout(&out).contains("PASS data.sales.no_amount_test.test_amount_is_found"));
    assert!(
        stdout(&out).contains("35 passed, 0 failed"),
        "{}",
        stdout(&out)
    );

    let out = mesh(tmp.path(), &["policy", "list", "--output", "json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 15);
}

/// The seed's Exercise 2 end to end: define 5+ policies (the standard pack plus a platform policy
/// and a domain policy), check compliance automatically (CI check, publish, catalog audit), and
/// handle violations (refused, fixed, accepted, audited).
#[test]
fn exercise_two_policies_compliance_and_violations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    assert_eq!(code(&mesh(ws, &["init"])), 0);

    // Policies: 15 standard ones (2 on access requests, 1 on locations), one of the platform's, one of the sales domain's.
    let platform = ws.join("platform-policies");
    fs::create_dir_all(&platform).unwrap();
    fs::write(
        platform.join("eu_region.rego"),
        "# METADATA\n# title: Products say where data lives\n# custom:\n#   id: data-region\n#   type: access_control\n#   enforcement: block\npackage platform.data_region\n\nimport rego.v1\n\ndeny contains {\"msg\": \"the product does not declare its dataRegion\", \"path\": \"customProperties\"} if {\n\tnot region\n}\n\nregion if {\n\tsome cp in input.product.customProperties\n\tcp.property == \"dataRegion\"\n}\n",
    )
    .unwrap();
    let out = mesh(ws, &["policy", "list", "--policies", "platform-policies"]);
    assert_eq!(stdout(&out).lines().count(), 16, "{}", stdout(&out));

    let dir = ws.join("sales/orders");
    copy(&root.join("testdata/policy/compliant"), &dir);
    fs::create_dir_all(dir.join("policies")).unwrap();
    fs::write(
        dir.join("policies/amounts.rego"),
        "# METADATA\n# title: Amounts are numbers\n# custom:\n#   id: sales-amount-number\n#   enforcement: block\npackage sales.amount_number\n\nimport rego.v1\n\ndeny contains sprintf(\"column %s must be a number\", [p.name]) if {\n\tsome _, c in input.contracts\n\tsome o in c.schema\n\tsome p in o.properties\n\tendswith(p.name, \"amount\")\n\tp.logicalType != \"number\"\n}\n",
    )
    .unwrap();
    let contract = dir.join("contracts/orders.odcs.yaml");
    let good = fs::read_to_string(&contract).unwrap();
    fs::write(
        &contract,
        good.replace(
            "      - name: amount\n        logicalType: number",
            "      - name: amount\n        logicalType: string",
        ),
    )
    .unwrap();

    // 1. CI check: the platform and the domain policy both find something.
    let out = mesh(
        ws,
        &[
            "policy",
            "check",
            "sales/orders",
            "--policies",
            "platform-policies",
        ],
    );
    assert_eq!(code(&out), 1, "{}", stdout(&out));
    let report = stdout(&out);
    assert!(report.contains("block [data-region]"), "{report}");
    assert!(
        report.contains("block [sales-amount-number] column amount must be a number"),
        "{report}"
    );
    assert!(
        report.contains("14 policies") || report.contains("13 policies"),
        "{report}"
    );

    // 2. Fix the data product.
    fs::write(&contract, &good).unwrap();
    let product = dir.join("product.odps.yaml");
    let text = fs::read_to_string(&product).unwrap();
    fs::write(
        &product,
        text.replace(
            "  - property: retentionDays\n",
            "  - property: dataRegion\n    value: eu-west\n  - property: retentionDays\n",
        ),
    )
    .unwrap();
    let out = mesh(
        ws,
        &[
            "policy",
            "check",
            "sales/orders",
            "--policies",
            "platform-policies",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stdout(&out));

    // 3. Publish: the catalog enforces the standard pack; a violation is refused and logged.
    // (Retention beyond seven years only warns by default: an unprotected e-mail blocks.)
    let text = fs::read_to_string(&contract).unwrap();
    let exposed = text.replace("        encryptedName: customer_email_enc\n", "");
    assert_ne!(exposed, text);
    fs::write(&contract, exposed).unwrap();
    let out = mesh(ws, &["publish", "sales/orders"]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("block [confidential-protected]"),
        "{}",
        stderr(&out)
    );
    fs::write(&contract, text).unwrap();
    let out = mesh(ws, &["publish", "sales/orders"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));

    // 4. Audit the catalog: compliant, and the history is kept.
    let out = mesh(ws, &["policy", "audit", "--output", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let audit: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(audit["compliant"], 1);
    assert_eq!(audit["by_domain"]["sales"]["compliant"], 1);

    // 5. The domain's policies go to the catalog too, versioned: now a publish that skipped CI
    //    is judged by them as well.
    let out = mesh(
        ws,
        &[
            "policy",
            "publish",
            "sales/orders/policies",
            "--domain",
            "sales",
        ],
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("Published sales policies v1"),
        "{}",
        stdout(&out)
    );
    let out = mesh(ws, &["policy", "list", "--domain", "sales"]);
    assert!(
        stdout(&out).contains("domain bundle v1") && stdout(&out).contains("sales-amount-number"),
        "{}",
        stdout(&out)
    );
    let product_text = fs::read_to_string(&product).unwrap();
    fs::write(
        &product,
        product_text.replace("version: 2.0.0", "version: 3.0.0"),
    )
    .unwrap();
    // (A new major version, so that compatibility is not what refuses it.)
    fs::write(
        &contract,
        good.replace(
            "      - name: amount\n        logicalType: number",
            "      - name: amount\n        logicalType: string",
        )
        .replace("version: 2.0.0", "version: 3.0.0"),
    )
    .unwrap();
    let out = mesh(ws, &["publish", "sales/orders"]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("block [sales-amount-number]"),
        "{}",
        stderr(&out)
    );
    // A domain policy that would weaken a global one is refused, and nothing is stored.
    fs::write(dir.join("policies/overrides.yaml"), "pii-tagged: audit\n").unwrap();
    let out = mesh(
        ws,
        &[
            "policy",
            "publish",
            "sales/orders/policies",
            "--domain",
            "sales",
        ],
    );
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("not weaken it to audit"),
        "{}",
        stderr(&out)
    );
    let out = mesh(ws, &["policy", "versions", "sales", "--output", "json"]);
    let versions: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    assert_eq!(versions[0]["paths"][0], "amounts.rego");
}
