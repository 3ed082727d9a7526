//! `mesh import --from FORMAT` and `mesh export --to FORMAT` as a careless user drives them: broken
//! inputs, unlintable contracts, overwrites, options that do not apply. (The happy paths run in
//! docs/interop.md's commands; the formats themselves are tested in mesh-interop.)

use crate::{code, mesh, stderr, stdout};

const CONTRACT: &str = "apiVersion: v3.2.0\nkind: DataContract\nid: shop.orders\nversion: 1.0.0\nschema:\n  - name: orders\n    properties:\n      - name: order_id\n        logicalType: integer\n        primaryKey: true\n      - name: status\n        logicalType: string\n        enum:\n          - value: placed\n          - value: shipped\n";

#[test]
fn a_broken_schema_file_is_an_error_at_its_place_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.sql"),
        "CREATE TABLE t (\n  a INT,\n  b VARCHAR(10) NOT NULL,,\n);\n",
    )
    .unwrap();
    let out = mesh(
        dir.path(),
        &["import", "--from", "sql", "bad.sql", "-o", "t.odcs.yaml"],
    );
    assert_ne!(code(&out), 0);
    assert!(
        stderr(&out).starts_with("bad.sql:3:26: error: PostgreSQL DDL:"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("t.odcs.yaml").exists());
    std::fs::write(dir.path().join("bad.avsc"), "{\"type\": \"record\", \"name\": \"R\",\n \"fields\": [{\"name\": \"a\", \"type\": \"Nope\"}]}\n").unwrap();
    let out = mesh(dir.path(), &["import", "--from", "avro", "bad.avsc"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).starts_with("bad.avsc:2:"), "{}", stderr(&out));
    let out = mesh(dir.path(), &["import", "--from", "avro", "nowhere.avsc"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("nowhere.avsc"), "{}", stderr(&out));
}

#[test]
fn options_that_do_not_apply_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.sql"), "CREATE TABLE t (a INT);").unwrap();
    std::fs::write(dir.path().join("c.odcs.yaml"), CONTRACT).unwrap();
    for args in [
        &["import", "--from", "sql", "t.sql", "--model", "x"][..],
        &["import", "--from", "sql", "t.sql", "--dialect", "oracle9"][..],
        &["import", "--from", "parquet", "t.sql", "--dialect", "mysql"][..],
        &[
            "export",
            "--to",
            "avro",
            "c.odcs.yaml",
            "--dialect",
            "mysql",
        ][..],
        &[
            "export",
            "--to",
            "sql",
            "c.odcs.yaml",
            "--odcs-version",
            "v3.1.0",
        ][..],
        &[
            "export",
            "--to",
            "odcs",
            "c.odcs.yaml",
            "--odcs-version",
            "v9",
        ][..],
    ] {
        let out = mesh(dir.path(), args);
        assert_ne!(code(&out), 0, "{args:?} was accepted");
        assert!(!stderr(&out).is_empty(), "{args:?}: no reason given");
    }
    // An existing file is never overwritten by a new import.
    let out = mesh(
        dir.path(),
        &["import", "--from", "sql", "t.sql", "-o", "c.odcs.yaml"],
    );
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("c.odcs.yaml")).unwrap(),
        CONTRACT
    );
}

#[test]
fn exports_refuse_a_contract_that_does_not_lint_and_strict_fails_on_losses() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.odcs.yaml"),
        CONTRACT.replace("logicalType: integer", "logicalType: integr"),
    )
    .unwrap();
    let out = mesh(dir.path(), &["export", "--to", "sql", "broken.odcs.yaml"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("broken.odcs.yaml:9:22:"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    std::fs::write(dir.path().join("c.odcs.yaml"), CONTRACT).unwrap();
    // Avro cannot carry the key: a warning, exit 0; with --strict, exit 1.
    let out = mesh(dir.path(), &["export", "--to", "avro", "c.odcs.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not carried to avro: orders.order_id: primaryKey"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("\"symbols\""), "{}", stdout(&out));
    let out = mesh(
        dir.path(),
        &["export", "--to", "avro", "c.odcs.yaml", "--strict"],
    );
    assert_eq!(code(&out), 1);
    // SQL carries all of it.
    let out = mesh(
        dir.path(),
        &["export", "--to", "sql", "c.odcs.yaml", "--strict"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("CHECK (\"status\" IN ('placed', 'shipped'))"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_dbt_bridge_keeps_a_contract_in_step_and_says_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = |columns: &str| {
        format!(
            "{{\"metadata\": {{\"project_name\": \"shop\"}}, \"nodes\": {{\"model.shop.orders\": {{\"resource_type\": \"model\", \"name\": \"orders\", \"columns\": {{{columns}}}}}}}}}"
        )
    };
    std::fs::write(
        dir.path().join("manifest.json"),
        manifest("\"order_id\": {\"name\": \"order_id\", \"data_type\": \"bigint\", \"constraints\": [{\"type\": \"primary_key\"}]}, \"status\": {\"name\": \"status\", \"data_type\": \"text\"}"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.odcs.yaml"),
        CONTRACT.replace(
            "        enum:\n          - value: placed\n          - value: shipped\n",
            "        classification: internal\n",
        ),
    )
    .unwrap();
    let bridge = || {
        mesh(
            dir.path(),
            &[
                "import",
                "--from",
                "dbt",
                "manifest.json",
                "--into",
                "c.odcs.yaml",
            ],
        )
    };
    // The first run takes dbt's types and keys; a second one has nothing to do.
    let out = bridge();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("updated orders.order_id"),
        "{}",
        stdout(&out)
    );
    let out = bridge();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("in step"), "{}", stdout(&out));
    // dbt drops `status` and adds `amount`: both named; the contract's classification stays elsewhere.
    std::fs::write(
        dir.path().join("manifest.json"),
        manifest("\"order_id\": {\"name\": \"order_id\", \"data_type\": \"bigint\", \"constraints\": [{\"type\": \"primary_key\"}]}, \"amount\": {\"name\": \"amount\", \"data_type\": \"numeric(12,2)\"}"),
    )
    .unwrap();
    let out = mesh(
        dir.path(),
        &[
            "import",
            "--from",
            "dbt",
            "manifest.json",
            "--into",
            "c.odcs.yaml",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("added column orders.amount")
            && text.contains("removed column orders.status"),
        "{text}"
    );
    let out = mesh(dir.path(), &["lint", "c.odcs.yaml"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    // --into a file that is not a contract changes nothing.
    std::fs::write(
        dir.path().join("junk.odcs.yaml"),
        "kind: DataContract\napiVersion: v3.2.0\n",
    )
    .unwrap();
    let out = mesh(
        dir.path(),
        &[
            "import",
            "--from",
            "dbt",
            "manifest.json",
            "--into",
            "junk.odcs.yaml",
        ],
    );
    assert_ne!(code(&out), 0);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("junk.odcs.yaml")).unwrap(),
        "kind: DataContract\napiVersion: v3.2.0\n"
    );
}
