//! A product's `schedule` custom property: every mistake is a lint error at the value's
//! line:col with a hint, and the slots of a valid one follow its zone's wall clock.

use mesh_model::lint::{LintOptions, SourceFile, lint};

fn product(schedule: &str) -> String {
    format!(
        "apiVersion: v1.0.0\nkind: DataProduct\nid: sales.orders\nname: orders\nversion: 1.0.0\n\
         status: active\ndomain: sales\ncustomProperties:\n  - property: schedule\n    value:\n{schedule}"
    )
}

/// The schedule's findings as `line:col message`.
fn findings(schedule: &str) -> Vec<String> {
    let file = SourceFile {
        path: "orders.odps.yaml".to_owned(),
        text: product(schedule),
        explicit: true,
    };
    let report = lint(&[file], LintOptions::default());
    report
        .files
        .iter()
        .flat_map(|f| &f.diagnostics)
        .filter(|d| d.pointer.starts_with("/customProperties/0/value"))
        .map(|d| {
            assert!(d.is_error(), "{}", d.message);
            format!(
                "{} {} ({})",
                d.position(),
                d.message,
                d.hint.clone().unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn a_valid_schedule_lints_clean() {
    let found = findings(
        "      cron: \"30 6 * * MON-FRI\"\n      timezone: Europe/Berlin\n      on: upstream\n      retries: 3\n",
    );
    assert!(found.is_empty(), "{found:?}");
    assert!(findings("      on: upstream\n").is_empty());
    assert!(findings("      cron: '@hourly'\n").is_empty());
}

#[test]
fn each_mistake_is_an_error_where_it_is() {
    let found = findings(
        "      cron: \"61 * * * *\"\n      timezone: Europe/Berlim\n      on: downstream\n      retries: 99\n      retry: 1\n",
    );
    assert_eq!(found.len(), 5, "{found:?}");
    assert!(
        found[0].starts_with("11:13 cron `61 * * * *`: minute `61`: 61 is outside 0-59"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with(
            "12:17 `Europe/Berlim` is not an IANA time zone (did you mean `Europe/Berlin`?)"
        ),
        "{found:?}"
    );
    assert!(
        found[2].starts_with("13:11 `on` must be `upstream`"),
        "{found:?}"
    );
    assert!(
        found[3].starts_with("14:16 `retries` must be a whole number from 0 to 10"),
        "{found:?}"
    );
    assert!(
        found[4].starts_with("15:7 `retry` is not a schedule key")
            && found[4].contains("`retries`"),
        "{found:?}"
    );
    // Neither cron nor upstream: nothing would ever run it.
    let found = findings("      timezone: UTC\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("needs `cron` or `on: upstream`"),
        "{found:?}"
    );
    // A cron that can never fire.
    let found = findings("      cron: \"0 0 31 2 *\"\n");
    assert!(found[0].contains("never fires"), "{found:?}");
}

#[test]
fn hostile_values_are_errors_not_panics() {
    let long = format!("      cron: \"{}\"\n", "1,".repeat(200_000) + "1 * * * *");
    assert!(
        findings(&long).is_empty(),
        "a long list of valid minutes is valid"
    );
    let found = findings(&format!("      cron: \"{} * * * *\"\n", "9".repeat(10_000)));
    assert!(found[0].contains("is not a number"), "{found:?}");
    let found = findings("      cron: {a: [1, [2, [3]]]}\n");
    assert!(
        found[0].contains("`cron` must be a string, not"),
        "{found:?}"
    );
    let found = findings("      - 1\n");
    assert!(
        found[0].contains("`schedule` must be a mapping"),
        "{found:?}"
    );
    let found = findings("      cron: \"*/-1 * * * *\"\n      retries: -1\n");
    assert_eq!(found.len(), 2, "{found:?}");
}
