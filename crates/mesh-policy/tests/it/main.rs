//! Integration tests of mesh-policy (one binary, see STYLE.md §3): the standard pack's own Rego
//! tests, every standard policy passing and failing on real product files, and federation.

mod fuzz;

use std::path::Path;

use mesh_policy::{Enforcement, Overrides, PolicyError, PolicySet, Source, standard};

fn compliant() -> (String, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/policy/compliant");
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).expect("testdata readable");
    (
        read("product.odps.yaml"),
        read("contracts/orders.odcs.yaml"),
    )
}

fn json(yaml: &str) -> serde_json::Value {
    mesh_model::yaml::parse(yaml)
        .root
        .expect("valid YAML")
        .to_json()
}

/// The policy input for a product and its one contract, with a context.
fn input(product: &str, contract: &str, context: serde_json::Value) -> serde_json::Value {
    let product = json(product);
    serde_json::json!({
        "schedule": mesh_policy::schedule_facts(&product),
        "product": product,
        "contracts": {"orders": json(contract)},
        "context": context,
    })
}

fn pack() -> PolicySet {
    PolicySet::load(&standard(), None, &Overrides::new()).expect("the standard pack loads")
}

#[test]
fn the_standard_pack_passes_its_own_rego_tests() {
    let set = pack();
    assert!(set.policies().len() >= 10, "{}", set.policies().len());
    let results = set.run_tests();
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.outcome.as_ref().err().map(|e| format!("{}: {e}", r.test)))
        .collect();
    assert!(results.len() >= 20, "{} tests", results.len());
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn every_standard_policy_passes_and_fails_on_real_files() {
    let set = pack();
    let (product, contract) = compliant();
    let context = serde_json::json!({"previous": {"version": "1.4.0"}, "changes": {"breaking": 1}});
    let decision = set
        .evaluate(&input(&product, &contract, context.clone()))
        .unwrap();
    assert!(
        decision.violations.is_empty(),
        "the compliant product violates: {:#?}",
        decision.violations
    );
    // One edit per policy that breaks exactly that policy.
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "confidential-protected",
            "contract",
            "        encryptedName: customer_email_enc\n",
            "",
        ),
        ("retention-limit", "product", "value: 730", "value: 4000"),
        (
            "schedule-freshness",
            "product",
            "  - property: retentionDays\n",
            "  - property: schedule\n    value:\n      cron: \"0 6 * * 1\"\n  - property: retentionDays\n",
        ),
        (
            "sla-defined",
            "contract",
            "  - property: availability\n    value: 99.5\n    unit: percent\n",
            "",
        ),
        ("availability-min", "contract", "value: 99.5", "value: 90"),
        (
            "owner-contact",
            "product",
            "      role: owner",
            "      role: steward",
        ),
        (
            "description-present",
            "product",
            "  purpose: Every order placed in the web shop, one row per order.",
            "  purpose: Orders.",
        ),
        (
            "primary-key-quality",
            "contract",
            "        quality:\n          - metric: duplicateValues\n            mustBe: 0\n",
            "",
        ),
        (
            "naming",
            "contract",
            "      - name: amount",
            "      - name: totalAmount",
        ),
        (
            "breaking-change-major",
            "product",
            "version: 2.0.0\ndescription",
            "version: 1.5.0\ndescription",
        ),
        ("pii-tagged", "contract", "        tags: [pii]\n", ""),
        (
            "classification-declared",
            "product",
            "    value: confidential",
            "    value: internal",
        ),
    ];
    let ids: Vec<&str> = set.policies().iter().map(|p| p.id.as_str()).collect();
    for (id, _, _, _) in cases {
        assert!(ids.contains(id), "{id} is in the pack");
    }
    let on_products = set
        .policies()
        .iter()
        .filter(|p| p.on == mesh_policy::On::Publish)
        .count();
    assert_eq!(
        cases.len(),
        on_products,
        "every policy on products has a failing case (those on access requests have Rego tests)"
    );
    for (id, file, from, to) in cases {
        let (mut p, mut c) = (product.clone(), contract.clone());
        let target = if *file == "product" { &mut p } else { &mut c };
        assert!(target.contains(from), "{id}: the edit applies");
        *target = target.replacen(from, to, 1);
        let decision = set.evaluate(&input(&p, &c, context.clone())).unwrap();
        // The bytecode VM agrees with the interpreter.
        let reference = set
            .evaluate_with_interpreter(&input(&p, &c, context.clone()))
            .unwrap();
        assert_eq!(
            decision.violations, reference.violations,
            "{id}: VM and interpreter differ"
        );
        let hit: Vec<&str> = decision
            .violations
            .iter()
            .map(|v| v.policy.as_str())
            .collect();
        assert!(hit.contains(id), "{id}: expected a violation, got {hit:?}");
        assert!(
            hit.iter().all(|h| h == id),
            "{id}: only this policy should fail, got {hit:?}"
        );
        let v = decision
            .violations
            .iter()
            .find(|v| v.policy == *id)
            .unwrap();
        assert!(v.path.is_some(), "{id}: violations say where");
    }
}

#[test]
fn a_domain_adds_and_tightens_but_never_weakens() {
    let (product, contract) = compliant();
    let mine = Source {
        path: "sales/policies/no_amount.rego".into(),
        text: r#"# METADATA
# title: No amounts in sales
# custom:
#   id: sales-no-amount
#   type: privacy
#   enforcement: warn
package sales.no_amount

import rego.v1

deny contains msg if {
	some port, contract in input.contracts
	some object in contract.schema
	some prop in object.properties
	prop.name == "amount"
	msg := sprintf("port %s exposes amount", [port])
}
"#
        .into(),
    };
    let domain = [mine.clone()];
    // Added: evaluated next to the global ones, at its own level.
    let set = PolicySet::load(&standard(), Some(("sales", &domain)), &Overrides::new()).unwrap();
    let decision = set
        .evaluate(&input(&product, &contract, serde_json::json!({})))
        .unwrap();
    assert_eq!(decision.violations.len(), 1);
    assert_eq!(decision.violations[0].policy, "sales-no-amount");
    assert_eq!(decision.violations[0].enforcement, Enforcement::Warn);
    assert!(!decision.blocked());

    // Tightened: a global warn policy made blocking for this domain.
    let tighter = Overrides::from([("availability-min".to_owned(), Enforcement::Block)]);
    let set = PolicySet::load(&standard(), Some(("sales", &domain)), &tighter).unwrap();
    let low = contract.replace("value: 99.5", "value: 90");
    assert!(
        set.evaluate(&input(&product, &low, serde_json::json!({})))
            .unwrap()
            .blocked()
    );

    // Weakened: refused.
    let weaker = Overrides::from([("naming".to_owned(), Enforcement::Audit)]);
    let errors = PolicySet::load(&standard(), Some(("sales", &domain)), &weaker).unwrap_err();
    assert!(
        matches!(&errors[0], PolicyError::Federation(m) if m.contains("not weaken")),
        "{errors:?}"
    );

    // Replaced, by id or by package: refused.
    let same_id = Source {
        path: "sales/policies/naming.rego".into(),
        text: "# METADATA\n# custom:\n#   id: naming\npackage sales.naming\n\nimport rego.v1\n\ndeny contains \"x\" if false\n".into(),
    };
    let same_package = Source {
        path: "sales/policies/sneaky.rego".into(),
        text: "package mesh.standard.naming\n\nimport rego.v1\n\ndeny contains \"y\" if false\n"
            .into(),
    };
    for bad in [same_id, same_package] {
        let errors =
            PolicySet::load(&standard(), Some(("sales", &[bad])), &Overrides::new()).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| matches!(e, PolicyError::Federation(m) if m.contains("cannot replace"))),
            "{errors:?}"
        );
    }

    // Broken Rego is reported with its file and position.
    let broken = Source {
        path: "sales/policies/broken.rego".into(),
        text: "package sales.broken\n\ndeny contains msg if {\n".into(),
    };
    let errors =
        PolicySet::load(&standard(), Some(("sales", &[broken])), &Overrides::new()).unwrap_err();
    assert!(
        matches!(&errors[0], PolicyError::Rego { path, message } if path.ends_with("broken.rego") && message.contains("broken.rego:")),
        "{errors:?}"
    );
}

/// A test file never changes a decision: it runs in the tests' own engine, even when it shares
/// its policy's package (issue 18, hole 1).
#[test]
fn test_files_never_join_evaluation() {
    let own = Source {
        path: "sales/policies/notes.rego".into(),
        text: "# METADATA\n# title: Notes\n# description: Nothing.\n# custom:\n#   id: sales-notes\n#   type: other\n#   enforcement: warn\npackage sales.notes\n\nimport rego.v1\n\ndeny contains \"never\" if false\n".into(),
    };
    let test = Source {
        path: "sales/policies/notes_test.rego".into(),
        text: "package sales.notes\n\nimport rego.v1\n\ndeny contains \"from a test file\" if true\n\ntest_runs if true\n".into(),
    };
    let domain = [own, test];
    let set = PolicySet::load(&standard(), Some(("sales", &domain)), &Overrides::new()).unwrap();
    let (product, contract) = compliant();
    let decision = set
        .evaluate(&input(&product, &contract, serde_json::json!({})))
        .unwrap();
    assert!(
        decision
            .violations
            .iter()
            .all(|v| v.message != "from a test file"),
        "{decision:?}"
    );
    let results = set.run_tests();
    assert!(
        results
            .iter()
            .any(|r| r.test == "data.sales.notes.test_runs" && r.outcome.is_ok()),
        "{results:?}"
    );
}

#[test]
fn policy_files_too_deep_or_too_big_are_refused_before_parsing() {
    use mesh_policy::{MAX_REGO_BYTES, MAX_REGO_NESTING, Source, within_limits};
    let source = |text: String| Source {
        path: "sales/deep.rego".into(),
        text,
    };
    let nested = |n: usize| {
        format!(
            "package sales.deep\n\nimport rego.v1\n\nx := {}1{}\n",
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    assert!(within_limits(&source(nested(MAX_REGO_NESTING))).is_ok());
    let e = within_limits(&source(nested(MAX_REGO_NESTING + 1))).unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("sales/deep.rego:5:{}", 6 + MAX_REGO_NESTING)),
        "{e}"
    );
    // Brackets in strings and comments are text, and closed ones do not add up.
    let text = format!(
        "package sales.deep\n\n# {}\nmsg := \"{}\"\nraw := `{}`\nx := [{{}}, [{{\"a\": [1]}}]]\ny := [{{}}, [{{\"a\": [1]}}]]\n",
        "[".repeat(50),
        "{\\\"[[[[[[[[[[[[[[[".repeat(3),
        "{{{{{{{{{{{{{{{{{{{{{{{{"
    );
    assert!(within_limits(&source(text)).is_ok());
    // Objects and sets count as arrays do.
    let objects = format!(
        "package sales.deep\n\nx := {}1{}\n",
        "{\"a\": ".repeat(MAX_REGO_NESTING + 1),
        "}".repeat(MAX_REGO_NESTING + 1)
    );
    assert!(within_limits(&source(objects)).is_err());
    let big = format!(
        "package sales.big\n\nx := [{}1]\n",
        "1, ".repeat(MAX_REGO_BYTES / 3)
    );
    assert!(within_limits(&source(big)).is_err());
    // Loading refuses them too, with the others' errors.
    let errors =
        mesh_policy::PolicySet::load(&[source(nested(40))], None, &mesh_policy::Overrides::new())
            .err()
            .unwrap();
    assert!(errors[0].to_string().contains("nest"), "{errors:?}");
}

/// What a schedule means to the policies: the longest gap between two of its slots.
#[test]
fn schedule_facts_measure_the_longest_gap() {
    let with = |value: serde_json::Value| {
        mesh_policy::schedule_facts(&serde_json::json!({
            "customProperties": [{"property": "schedule", "value": value}],
        }))
    };
    let gap = |value| with(value)["max_interval_seconds"].as_i64();
    assert_eq!(gap(serde_json::json!({"cron": "*/15 * * * *"})), Some(900));
    // Friday 06:00 to Monday 06:00.
    assert_eq!(
        gap(serde_json::json!({"cron": "0 6 * * 1-5"})),
        Some(72 * 3600)
    );
    // 02:30 does not exist in Berlin on 2026-03-29: from 02:30 CET on the 28th to 02:30 CEST on
    // the 30th is 47 hours.
    assert_eq!(
        gap(serde_json::json!({"cron": "30 2 * * *", "timezone": "Europe/Berlin"})),
        Some(47 * 3600)
    );
    assert_eq!(
        gap(serde_json::json!({"cron": "0 0 1 * *"})),
        Some(31 * 86400)
    );
    assert_eq!(gap(serde_json::json!({"on": "upstream"})), None);
    assert_eq!(
        with(serde_json::json!({"cron": "0 6 * * *"}))["cron"],
        "0 6 * * *"
    );
    // No schedule, or one that cannot be read: nothing to judge.
    assert!(mesh_policy::schedule_facts(&serde_json::json!({})).is_null());
    assert!(with(serde_json::json!({"cron": "61 * * * *"})).is_null());
    assert!(with(serde_json::json!("hourly")).is_null());
}
