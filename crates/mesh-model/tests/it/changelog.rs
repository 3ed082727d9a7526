//! `changelog::diff` against datacontract-cli's own changelog fixtures and golden output, and
//! the compatibility modes against golden cases of our own.

use mesh_model::changelog::{ChangeType, Changelog, Compatibility, Direction, Impact, check, diff};
use mesh_model::source::Node;

use crate::vectors;

fn tree(text: &str) -> Node {
    let parsed = mesh_model::yaml::parse(text);
    parsed.root.expect("fixture is valid YAML")
}

fn load(path: &std::path::Path) -> Node {
    tree(&std::fs::read_to_string(path).expect("fixture is readable"))
}

/// A JSON value as Python's `str()` prints it (datacontract-cli's value column).
fn python_str(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Bool(true) => "True".into(),
        serde_json::Value::Bool(false) => "False".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rows of a rich-style box table: (change, path, old, new), joining wrapped continuation lines.
fn table_rows(block: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for line in block.lines().filter(|l| l.starts_with('│')) {
        let cells: Vec<String> = line
            .trim_matches('│')
            .split('│')
            .map(|c| c.trim().to_owned())
            .collect();
        if cells[0] == "Change" {
            continue;
        }
        if cells[0].is_empty() {
            let last = rows.last_mut().expect("a continuation follows a row");
            for (cell, more) in last.iter_mut().zip(&cells) {
                if !more.is_empty() {
                    cell.push(' ');
                    cell.push_str(more);
                }
            }
        } else {
            rows.push(cells);
        }
    }
    rows
}

fn title(change: ChangeType) -> &'static str {
    match change {
        ChangeType::Added => "Added",
        ChangeType::Removed => "Removed",
        ChangeType::Updated => "Updated",
    }
}

fn changes_of(log: &Changelog) -> Vec<(String, String)> {
    log.changes
        .iter()
        .map(|c| (title(c.change).to_owned(), c.path.clone()))
        .collect()
}

#[test]
fn reproduces_datacontract_cli_golden_changelog() {
    let Some(dir) = vectors::dir() else { return };
    let base = dir.join("datacontract-cli/tests/fixtures/changelog");
    let v1 = load(&base.join("integration/changelog_integration_v1.yaml"));
    let v2 = load(&base.join("integration/changelog_integration_v2.yaml"));
    let golden = std::fs::read_to_string(base.join("golden_changelog_text.txt")).unwrap();
    let (summary_block, details_block) = golden.split_once("Details").unwrap();

    let log = diff(&v1, &v2);
    let details: Vec<Vec<String>> = log
        .changes
        .iter()
        .map(|c| {
            vec![
                title(c.change).to_owned(),
                c.path.clone(),
                c.old.as_ref().map(python_str).unwrap_or_default(),
                c.new.as_ref().map(python_str).unwrap_or_default(),
            ]
        })
        .collect();
    assert_eq!(details, table_rows(details_block));

    let summary: Vec<Vec<String>> = log
        .summary()
        .iter()
        .map(|s| vec![title(s.change).to_owned(), s.path.clone()])
        .collect();
    assert_eq!(summary, table_rows(summary_block));
    assert!(summary_block.contains("[ 2 Added ]  [ 5 Updated ]  [ 1 Removed ]"));

    // Our classification on top: what a reader of v1 loses.
    let breaking: Vec<&str> = log.breaking().map(|c| c.path.as_str()).collect();
    assert_eq!(
        breaking,
        [
            "schema.orders.properties.customer_id",
            "schema.orders.properties.order_date.logicalType",
            "schema.orders.properties.total_amount.required",
        ]
    );
    let warnings: Vec<&str> = log
        .changes
        .iter()
        .filter(|c| c.impact == Impact::Warning)
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(warnings, ["slaProperties.availability.value"]);

    // Identical files: nothing.
    assert!(diff(&v1, &v1).is_empty());
    assert!(diff(&v2, &v2).is_empty());
}

#[test]
fn reproduces_datacontract_cli_unit_fixture() {
    let Some(dir) = vectors::dir() else { return };
    let base = dir.join("datacontract-cli/tests/fixtures/changelog/unit");
    let log = diff(
        &load(&base.join("changelog_unit_v1.yaml")),
        &load(&base.join("changelog_unit_v2.yaml")),
    );
    // What datacontract-cli 1.x prints for these files (entries, sorted by path).
    let expected: &[(&str, &str)] = &[
        ("Updated", "customProperties.classification.value"),
        ("Updated", "description.customProperties.sensitivity.value"),
        ("Updated", "description.purpose"),
        ("Updated", "domain"),
        ("Updated", "name"),
        ("Updated", "price.priceAmount"),
        ("Added", "roles.viewer"),
        ("Added", "roles.viewer.access"),
        ("Added", "schema.customers"),
        ("Added", "schema.customers.physicalName"),
        ("Added", "schema.customers.properties"),
        ("Added", "schema.customers.properties.customer_id"),
        (
            "Added",
            "schema.customers.properties.customer_id.logicalType",
        ),
        ("Added", "schema.customers.properties.customer_id.required"),
        ("Updated", "schema.orders.customProperties.domain.value"),
        ("Removed", "schema.orders.properties.customer_id"),
        (
            "Removed",
            "schema.orders.properties.customer_id.logicalType",
        ),
        ("Removed", "schema.orders.properties.customer_id.required"),
        ("Updated", "schema.orders.properties.order_date.logicalType"),
        ("Updated", "schema.orders.properties.order_id.description"),
        ("Added", "schema.orders.properties.region"),
        ("Added", "schema.orders.properties.region.logicalType"),
        ("Added", "schema.orders.properties.region.required"),
        (
            "Updated",
            "schema.orders.properties.total_amount.customProperties.pii.value",
        ),
        (
            "Updated",
            "schema.orders.properties.total_amount.quality.positive.mustBeGreaterThan",
        ),
        ("Updated", "schema.orders.properties.total_amount.required"),
        (
            "Updated",
            "schema.orders.quality.row_count.mustBeGreaterThan",
        ),
        ("Removed", "servers.production.roles.writer"),
        ("Removed", "servers.production.roles.writer.access"),
        ("Updated", "slaProperties.availability.value"),
        ("Updated", "status"),
        ("Added", "support.email"),
        ("Added", "support.email.url"),
        ("Updated", "team.members.bob.role"),
        ("Added", "team.members.carol"),
        ("Added", "team.members.carol.role"),
        ("Updated", "version"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(t, p)| ((*t).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(changes_of(&log), expected);
    let summary = log.summary();
    let count = |t| summary.iter().filter(|s| s.change == t).count();
    assert_eq!(
        (
            count(ChangeType::Added),
            count(ChangeType::Removed),
            count(ChangeType::Updated)
        ),
        (5, 2, 17)
    );
    // The reordered `data-owner` custom property is no change.
    assert!(!log.changes.iter().any(|c| c.path.contains("data-owner")));
    // A removed quality rule is potentially breaking, a changed threshold too.
    let impact = |path: &str| log.changes.iter().find(|c| c.path == path).unwrap().impact;
    assert_eq!(
        impact("schema.orders.quality.row_count.mustBeGreaterThan"),
        Impact::Warning
    );
    assert_eq!(impact("servers.production.roles.writer"), Impact::Warning);
    assert_eq!(impact("team.members.bob.role"), Impact::Info);
}

/// A contract with one `orders` object whose properties are given as `name[!]` (`!` = required).
fn contract(version: &str, props: &[&str]) -> Node {
    let mut text = format!(
        "apiVersion: v3.1.0\nkind: DataContract\nid: orders\nversion: {version}\nstatus: active\nschema:\n  - name: orders\n    properties:\n"
    );
    for prop in props {
        let (name, required) = match prop.strip_suffix('!') {
            Some(name) => (name, true),
            None => (*prop, false),
        };
        text.push_str(&format!(
            "      - name: {name}\n        logicalType: string\n        required: {required}\n"
        ));
    }
    tree(&text)
}

/// A compatibility case: name, history, the candidate's columns, and the verdict per mode.
type Case<'a> = (&'a str, &'a Vec<(String, Node)>, &'a [&'a str], [bool; 7]);

#[test]
fn compatibility_modes() {
    use Compatibility as C;
    // History 1: 1.0.0 {id!, amount}, then 1.1.0 added the optional `note`.
    let grown = vec![
        ("1.0.0".to_owned(), contract("1.0.0", &["id!", "amount"])),
        (
            "1.1.0".to_owned(),
            contract("1.1.0", &["id!", "amount", "note"]),
        ),
    ];
    // History 2: 1.1.0 dropped `legacy` (published while the port's mode was NONE).
    let shrunk = vec![
        (
            "1.0.0".to_owned(),
            contract("1.0.0", &["id!", "amount", "legacy"]),
        ),
        ("1.1.0".to_owned(), contract("1.1.0", &["id!", "amount"])),
    ];
    // Expected verdicts, in the order NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD,
    // FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE (true = compatible).
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // 1.1.0 itself added `note`, which 1.0.0 would not give back: not forward-transitive.
        ("same as latest", &grown, &["id!", "amount", "note"],
            [true, true, true, true, false, true, false]),
        ("optional field added", &grown, &["id!", "amount", "note", "coupon"],
            [true, true, true, false, false, false, false]),
        ("back to 1.0.0 (note removed)", &grown, &["id!", "amount"],
            [true, false, false, true, true, false, false]),
        ("amount removed, note kept", &grown, &["id!", "note"],
            [true, false, false, true, false, false, false]),
        ("amount made required", &grown, &["id!", "amount!", "note"],
            [true, false, false, false, false, false, false]),
        ("same as latest, not as first", &shrunk, &["id!", "amount"],
            [true, true, false, true, true, true, false]),
        ("optional field added after a removal", &shrunk, &["id!", "amount", "coupon"],
            [true, true, false, false, false, false, false]),
    ];
    let mut failures = Vec::new();
    for (name, history, props, verdicts) in cases {
        let candidate = contract("1.2.0", props);
        for (mode, expected) in C::ALL.into_iter().zip(verdicts) {
            let found = check(mode, &candidate, history);
            if found.is_empty() != *expected {
                failures.push(format!(
                    "{name} under {mode}: expected compatible={expected}, got {found:#?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The report says against which version, in which direction, and what breaks.
    let found = check(
        C::FullTransitive,
        &contract("1.2.0", &["id!", "note"]),
        &grown,
    );
    let seen: Vec<(String, Direction, Vec<String>)> = found
        .iter()
        .map(|i| {
            let paths = i.changes.iter().map(|c| c.path.clone()).collect();
            (i.against.clone(), i.direction, paths)
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                "1.1.0".to_owned(),
                Direction::Backward,
                vec!["schema.orders.properties.amount".to_owned()]
            ),
            (
                "1.0.0".to_owned(),
                Direction::Backward,
                vec!["schema.orders.properties.amount".to_owned()]
            ),
            (
                "1.0.0".to_owned(),
                Direction::Forward,
                vec!["schema.orders.properties.note".to_owned()]
            ),
        ]
    );
    // No history, nothing to be compatible with.
    assert!(check(C::FullTransitive, &contract("1.0.0", &["id!"]), &[]).is_empty());
    assert_eq!(C::parse("backward_transitive"), Some(C::BackwardTransitive));
    assert_eq!(C::parse("sideways"), None);
}

#[test]
fn classification_of_property_changes() {
    let old = tree(
        r"
schema:
  - name: t
    tags: [a, b]
    properties:
      - name: code
        logicalType: string
        required: true
        classification: internal
        logicalTypeOptions: { pattern: '^[A-Z]+$', maxLength: 10 }
        quality:
          - name: not_null
            metric: nullValues
            mustBe: 0
      - name: qty
        logicalType: integer
        logicalTypeOptions: { minimum: 0 }
",
    );
    let new = tree(
        r"
schema:
  - name: t
    tags: [b, a, c]
    properties:
      - name: code
        logicalType: string
        required: false
        unique: false
        description: now documented
        logicalTypeOptions: { maxLength: 12 }
      - name: qty
        logicalType: integer
        logicalTypeOptions: { minimum: 0, maximum: 100 }
        items: null
",
    );
    let log = diff(&old, &new);
    let got: Vec<(String, ChangeType, Impact)> = log
        .changes
        .iter()
        .map(|c| (c.path.clone(), c.change, c.impact))
        .collect();
    use ChangeType::{Added, Removed, Updated};
    use Impact::{Breaking, Info, Warning};
    let p = |s: &str| format!("schema.t.properties.{s}");
    assert_eq!(
        got,
        [
            (p("code.classification"), Removed, Breaking),
            (p("code.description"), Added, Info),
            (p("code.logicalTypeOptions.maxLength"), Updated, Breaking),
            (p("code.logicalTypeOptions.pattern"), Removed, Breaking),
            (p("code.quality"), Removed, Warning),
            (p("code.quality.not_null"), Removed, Info),
            (p("code.quality.not_null.metric"), Removed, Info),
            (p("code.quality.not_null.mustBe"), Removed, Info),
            (p("code.required"), Updated, Breaking),
            // `unique: false` spelled out is no change of meaning.
            (p("code.unique"), Added, Info),
            (p("qty.logicalTypeOptions.maximum"), Added, Warning),
            ("schema.t.tags.c".to_owned(), Added, Info),
        ]
    );
    // Positions point into the right file.
    let removed = &log.changes[0];
    assert!(removed.in_old);
    assert_eq!(removed.span.start.line, 9);
    let summary: Vec<String> = log.summary().into_iter().map(|s| s.path).collect();
    assert_eq!(
        summary,
        [
            p("code"),
            p("code.logicalTypeOptions"),
            p("code.quality"),
            p("qty.logicalTypeOptions"),
            "schema.t.tags".to_owned()
        ]
    );
}

#[test]
fn removing_a_whole_list_is_breaking() {
    let old = tree(
        "kind: DataContract\nschema:\n  - name: t\n    properties:\n      - name: a\n        logicalType: string\n",
    );
    let log = diff(&old, &tree("kind: DataContract\n"));
    let breaking: Vec<&str> = log.breaking().map(|c| c.path.as_str()).collect();
    assert_eq!(breaking, ["schema"]);
    let log = diff(&old, &tree("kind: DataContract\nschema: null\n"));
    assert_eq!(log.impact(), Impact::Breaking);
    let log = diff(&old, &tree("kind: DataContract\nschema:\n  - name: t\n"));
    let breaking: Vec<&str> = log.breaking().map(|c| c.path.as_str()).collect();
    assert_eq!(breaking, ["schema.t.properties"]);
    let log = diff(
        &old,
        &tree("kind: DataContract\nschema:\n  - name: t\n    properties: 3\n"),
    );
    assert_eq!(log.impact(), Impact::Breaking);
}

#[test]
fn long_lists_compare_item_by_item() {
    // 20,000 tags and 5,000 properties: matched by hash, so this stays fast; reordering is no change.
    let tags: Vec<String> = (0..20_000).map(|i| format!("t{i}")).collect();
    let props: Vec<String> = (0..5_000)
        .map(|i| format!("      - name: c{i}\n        logicalType: string\n"))
        .collect();
    let doc = |tags: &[String], props: &[String]| {
        tree(&format!(
            "tags: [{}]\nschema:\n  - name: t\n    properties:\n{}",
            tags.join(", "),
            props.concat()
        ))
    };
    let old = doc(&tags, &props);
    let mut reordered = tags.clone();
    reordered.reverse();
    let mut fewer = props.clone();
    fewer.remove(123);
    let log = diff(&old, &doc(&reordered, &fewer));
    let paths: Vec<&str> = log.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "schema.t.properties.c123",
            "schema.t.properties.c123.logicalType"
        ]
    );
}

#[test]
fn deprecations_and_allowed_values_of_v3_2_are_told_to_consumers() {
    let doc = |status: &str, extra: &str| {
        tree(&format!(
            "apiVersion: v3.2.0\nkind: DataContract\nschema:\n  - name: orders\n    properties:\n      - name: coupon\n        logicalType: string\n{extra}      - name: status\n        logicalType: string\n{status}"
        ))
    };
    let values = |v: &[&str]| {
        let mut out = "        enum:\n".to_owned();
        for v in v {
            out.push_str(&format!("          - value: {v}\n"));
        }
        out
    };
    let old = doc(&values(&["placed", "shipped"]), "");
    // Deprecating a column: a warning to readers, not a break.
    let log = diff(
        &old,
        &doc(
            &values(&["placed", "shipped"]),
            "        deprecated: true\n",
        ),
    );
    let c = &log.changes[0];
    assert_eq!(c.path, "schema.orders.properties.coupon.deprecated");
    assert_eq!(c.impact, Impact::Warning);
    assert!(c.reason.starts_with("deprecated"), "{}", c.reason);
    // A new allowed value breaks readers that switch over the old ones; a removed one does not.
    let log = diff(&old, &doc(&values(&["placed", "shipped", "lost"]), ""));
    assert_eq!(log.impact(), Impact::Breaking);
    assert_eq!(
        log.breaking().map(|c| c.path.as_str()).collect::<Vec<_>>(),
        ["schema.orders.properties.status.enum.lost"]
    );
    let log = diff(&old, &doc(&values(&["placed"]), ""));
    assert_eq!(log.impact(), Impact::Warning);
    // Reordering the values is no change; dropping the list lets any value in.
    assert!(diff(&old, &doc(&values(&["shipped", "placed"]), "")).is_empty());
    assert_eq!(diff(&old, &doc("", "")).impact(), Impact::Breaking);
}
