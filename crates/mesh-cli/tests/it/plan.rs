//! `mesh plan` / `mesh apply` (issue 26): a repository with two domains planned and applied
//! through a server, changed, planned again (exactly those changes), applied; drift made in the
//! catalog by hand shows up; malformed files and stale plans are refused with where and why.

use std::fs;
use std::path::Path;

use crate::{code, mesh, mesh_with_env, stderr, stdout, two_domains};

const GLOBAL: &str = "kind: Platform\nadmins: [ci]\n";

const ECOMMERCE: &str = "kind: Domain
name: ecommerce
description: Orders and payments.
members:
  - principal: ana@example.com
    role: owner
approves:
  - product: ecommerce.orders
    port: orders
    for: analytics.orders_per_label
";

const ANALYTICS: &str = "kind: Domain
name: analytics
members:
  - principal: olga@example.com
    role: owner
reads:
  - product: ecommerce.orders
    port: orders
    for: analytics.orders_per_label
    purpose: Counts orders per label for the weekly report.
    days: 30
";

fn no_ssn(enforcement: &str) -> String {
    format!(
        "# METADATA\n# title: No social security numbers\n# custom:\n#   id: no-ssn\n#   enforcement: {enforcement}\n\
package platform.no_ssn\n\nimport rego.v1\n\ndeny contains \"no column may hold a social security number\" if {{\n\
\tsome _, c in input.contracts\n\tsome o in c.schema\n\tsome p in o.properties\n\tp.name == \"ssn\"\n}}\n"
    )
}

fn write(ws: &Path, path: &str, text: &str) {
    let path = ws.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A token of a new principal `name` with `role` (in `domain`, else global): its secret.
fn token(ws: &Path, name: &str, role: &str, domain: Option<&str>) -> String {
    let mut args = vec!["token", "create", name, "--role", role];
    if let Some(d) = domain {
        args.extend(["--domain", d]);
    }
    let out = mesh(ws, &args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    stdout(&out).trim().to_owned()
}

/// The plan's steps as `op subject` lines, sorted.
fn ops(plan: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = plan["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {plan}"))
        .iter()
        .map(|s| {
            let subject = [
                "principal",
                "name",
                "scope",
                "product",
                "domain",
                "subject",
                "id",
            ]
            .iter()
            .find_map(|k| s[*k].as_str())
            .unwrap_or("?");
            format!("{} {subject}", s["op"].as_str().unwrap_or("?"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_platform_is_planned_applied_changed_and_drift_is_found() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    two_domains(ws, Some(("orders_per_label", "aggregate")), &[]);
    let token = |name: &str, role: &str, domain: Option<&str>| token(ws, name, role, domain);
    let ci = token("ci", "admin", None);
    let ana = token("ana@example.com", "owner", Some("ecommerce"));
    write(ws, "platform/global.yaml", GLOBAL);
    write(ws, "platform/domains/ecommerce.yaml", ECOMMERCE);
    write(ws, "platform/domains/analytics.yaml", ANALYTICS);
    write(ws, "platform/policies/global/no_ssn.rego", &no_ssn("warn"));
    let server = crate::serve(ws, &[]);
    let as_ = |token: &str, args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", server.url.as_str(), "--token", token]);
        mesh(ws, &all)
    };
    let plan = |token: &str| {
        let out = as_(token, &["plan", "--output", "json"]);
        assert!(
            matches!(code(&out), 0 | 2),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        let json: serde_json::Value =
            serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
        (code(&out), json)
    };

    // The first plan: everything the files declare, in dependency order.
    let (exit, first) = plan(&ci);
    assert_eq!(exit, 2, "{first}");
    assert_eq!(
        ops(&first),
        [
            "bind olga@example.com",
            "publishPolicies global",
            "publishProduct analytics.orders_per_label",
            "publishProduct ecommerce.orders",
            "putDomain analytics",
            "putDomain ecommerce",
            "request ecommerce.orders",
        ],
        "{first:#}"
    );
    let order: Vec<&str> = first["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["op"].as_str().unwrap())
        .collect();
    let at = |op: &str| order.iter().position(|o| *o == op).unwrap();
    assert!(at("putDomain") < at("bind") && at("bind") < at("publishPolicies"));
    assert!(at("publishPolicies") < at("publishProduct") && at("publishProduct") < at("request"));
    let products: Vec<&str> = first["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["op"] == "publishProduct")
        .map(|s| s["product"].as_str().unwrap())
        .collect();
    assert_eq!(
        products,
        ["ecommerce.orders", "analytics.orders_per_label"],
        "upstream first"
    );
    // ana's role came with her token; olga's is new, declared at its file:line:col.
    let bind = first["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["op"] == "bind")
        .unwrap();
    assert!(
        bind["source"]
            .as_str()
            .unwrap()
            .starts_with("platform/domains/analytics.yaml:4:"),
        "{bind}"
    );

    // A saved plan applies; the request it files waits for the producing domain's approval,
    // which its owner applies (the catalog never lets a requester approve).
    let saved = ws.join("plan.json");
    let out = as_(&ci, &["plan", "--out", saved.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("Plan: 7 to create, 0 to update, 0 to delete"),
        "{}",
        stdout(&out)
    );
    let out = as_(&ci, &["apply", saved.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("Apply complete: 7 change(s)."),
        "{}",
        stdout(&out)
    );
    let (exit, after) = plan(&ana);
    assert_eq!(exit, 2, "{after}");
    assert_eq!(ops(&after), ["approve ecommerce.orders"], "{after:#}");
    assert!(
        after["notes"][0]
            .as_str()
            .unwrap()
            .contains("roles were not compared"),
        "{after}"
    );
    let out = as_(&ana, &["apply", "--yes"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let (exit, settled) = plan(&ci);
    assert_eq!(exit, 0, "{settled:#}");
    let grants = as_(&ci, &["access", "grants", "--output", "json"]);
    assert!(
        stdout(&grants).contains("analytics.orders_per_label"),
        "{}",
        stdout(&grants)
    );

    // Changes: a grant no longer read, a policy tightened, a product added.
    write(
        ws,
        "platform/domains/analytics.yaml",
        &ANALYTICS.replace(
            "reads:\n  - product: ecommerce.orders\n    port: orders\n    for: analytics.orders_per_label\n    purpose: Counts orders per label for the weekly report.\n    days: 30\n",
            "reads: []\n",
        ),
    );
    write(ws, "platform/policies/global/no_ssn.rego", &no_ssn("block"));
    let out = mesh(
        ws,
        &[
            "new",
            "product",
            "payments",
            "--domain",
            "ecommerce",
            "--owner",
            "ecommerce-orders",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (exit, second) = plan(&ci);
    assert_eq!(exit, 2);
    assert_eq!(
        ops(&second),
        [
            "publishPolicies global",
            "publishProduct ecommerce.payments",
            "revoke ecommerce.orders"
        ],
        "{second:#}"
    );
    let policies = second["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["op"] == "publishPolicies")
        .unwrap();
    assert_eq!(policies["action"], "update", "{policies}");
    let out = as_(&ci, &["apply", "--yes", "--output", "json"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let applied: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(applied["steps"].as_array().unwrap().len(), 3, "{applied:#}");
    assert_eq!(plan(&ci).0, 0, "a second apply has nothing to do");
    let out = as_(&ci, &["apply", "--yes"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    assert!(stdout(&out).contains("No changes"), "{}", stdout(&out));

    // Drift: a role and a location given by hand, in domains the files manage.
    let out = mesh(
        ws,
        &[
            "token",
            "create",
            "bob",
            "--role",
            "member",
            "--domain",
            "analytics",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (exit, drift) = plan(&ci);
    assert_eq!(exit, 2);
    assert_eq!(ops(&drift), ["unbind bob"], "{drift:#}");
    let step = &drift["steps"][0];
    assert_eq!(step["action"], "delete");
    assert!(
        step.get("source").is_none(),
        "drift has no declaration: {step}"
    );
    let text = as_(&ci, &["plan"]);
    assert!(
        stdout(&text).contains("(drift: not in the repository)"),
        "{}",
        stdout(&text)
    );
    // A saved plan is refused once the catalog moved on.
    let out = as_(&ci, &["plan", "--out", saved.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    let out = mesh_with_env(
        ws,
        &[
            "token",
            "create",
            "carl",
            "--role",
            "member",
            "--domain",
            "analytics",
        ],
        &[],
    );
    assert_eq!(code(&out), 0);
    let out = as_(&ci, &["apply", saved.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stderr(&out).contains("changed since this plan was made"),
        "{}",
        stderr(&out)
    );
    let out = as_(&ci, &["apply", "--yes"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(plan(&ci).0, 0);
}

#[test]
fn bad_platform_files_and_plans_are_refused_with_where_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    two_domains(ws, None, &[]);
    let run = |args: &[&str]| mesh_with_env(ws, args, &[("USER", "platform")]);
    // A typo'd key, a role that is none, a misnamed file: each at its file:line:col.
    write(
        ws,
        "platform/domains/ecommerce.yaml",
        "kind: Domain\nname: ecommerce\nmembres: []\nmembers:\n  - principal: ana\n    role: king\n",
    );
    write(
        ws,
        "platform/domains/sales.yaml",
        "kind: Domain\nname: marketing\n",
    );
    let out = run(&["plan"]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("platform/domains/ecommerce.yaml:3:1"),
        "{said}"
    );
    assert!(
        said.contains("platform/domains/ecommerce.yaml:6:11"),
        "{said}"
    );
    assert!(said.contains("platform/domains/sales.yaml:2:7"), "{said}");
    // Not YAML at all; deep nesting; a huge file.
    write(
        ws,
        "platform/domains/ecommerce.yaml",
        "kind: Domain\nname: [ecommerce\n",
    );
    let out = run(&["plan"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("platform/domains/ecommerce.yaml:"),
        "{}",
        stderr(&out)
    );
    write(
        ws,
        "platform/domains/sales.yaml",
        &format!(
            "kind: Domain\nname: sales\ndescription: {}{}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        ),
    );
    let out = run(&["plan"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    write(
        ws,
        "platform/domains/sales.yaml",
        &format!(
            "kind: Domain\nname: sales\ndescription: {}\n",
            "x".repeat(5 << 20)
        ),
    );
    let out = run(&["plan"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("at most 4 MiB"), "{}", stderr(&out));
    fs::remove_file(ws.join("platform/domains/sales.yaml")).unwrap();
    // A domain declaring what another domain reads, approving another's ports.
    write(
        ws,
        "platform/domains/ecommerce.yaml",
        "kind: Domain\nname: ecommerce\nreads:\n  - product: hr.people\n    port: people\n    for: analytics.x\n    purpose: p\napproves:\n  - product: hr.people\n    port: people\n    for: ecommerce.orders\n",
    );
    let out = run(&["plan"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out)
            .contains("ecommerce.yaml:6:10: analytics.x is not a product of domain `ecommerce`"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("ecommerce.yaml:9:14"),
        "{}",
        stderr(&out)
    );
    // A saved plan that is not one.
    write(
        ws,
        "platform/domains/ecommerce.yaml",
        "kind: Domain\nname: ecommerce\n",
    );
    write(ws, "bad.json", "{\"format\": 1, \"steps\": [}");
    let out = run(&["apply", "bad.json"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("bad.json:1:"), "{}", stderr(&out));
    // No terminal and no --yes: nothing applied.
    let out = run(&["apply"]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains("pass --yes"), "{}", stderr(&out));
    let out = run(&["plan", "--output", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        ops(&plan),
        ["publishProduct ecommerce.orders", "putDomain ecommerce"],
        "{plan:#}"
    );
}

#[test]
fn a_plan_says_what_the_caller_may_not_do() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    two_domains(ws, None, &[]);
    let out = mesh(
        ws,
        &[
            "token",
            "create",
            "dora",
            "--role",
            "member",
            "--domain",
            "ecommerce",
        ],
    );
    let dora = stdout(&out).trim().to_owned();
    write(
        ws,
        "platform/domains/ecommerce.yaml",
        "kind: Domain\nname: ecommerce\nlocations:\n  - name: raw\n    url: s3://raw/orders\n",
    );
    write(ws, "platform/policies/global/no_ssn.rego", &no_ssn("block"));
    let out = mesh(ws, &["plan", "--token", &dora, "--output", "json"]);
    assert_eq!(code(&out), 2, "{}{}", stdout(&out), stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let refused: Vec<String> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.get("refused").is_some())
        .map(|s| format!("{} {}", s["op"], s["refused"]))
        .collect();
    assert!(
        refused
            .iter()
            .any(|r| r.contains("putDomain") && r.contains("not a platform admin")),
        "{refused:?}"
    );
    assert!(
        refused.iter().any(|r| r.contains("addLocation")),
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|r| r.contains("publishPolicies") && r.contains("forbidden")),
        "{refused:?}"
    );
    // Applying stops at the first refused step and changes nothing.
    let out = mesh(ws, &["apply", "--yes", "--token", &dora]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("Stopped after 0 of"),
        "{}",
        stdout(&out)
    );
    let out = mesh(ws, &["location", "list", "--output", "json"]);
    assert_eq!(stdout(&out).trim(), "[]");
}

#[test]
fn drift_is_imported_into_the_files_as_they_are_written() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    two_domains(ws, Some(("orders_per_label", "aggregate")), &[]);
    let as_user = |user: &str, args: &[&str]| {
        let out = mesh_with_env(ws, args, &[("USER", user)]);
        assert!(
            matches!(code(&out), 0 | 2),
            "{args:?}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        out
    };
    let ecommerce = "kind: Domain
name: ecommerce
# who works here
members:
  - principal: ana@example.com
    role: owner   # the lead

locations: []
subscriptions:
  - email: oncall@example.com
# the end
";
    write(ws, "platform/domains/ecommerce.yaml", ecommerce);
    write(
        ws,
        "platform/domains/analytics.yaml",
        "kind: Domain\nname: analytics\nreads: []\n",
    );
    as_user("platform", &["apply", "--yes"]);
    assert_eq!(code(&as_user("platform", &["plan"])), 0);

    // By hand: a role, a location, a subscription, and a grant asked for and given.
    as_user(
        "platform",
        &[
            "token",
            "create",
            "bob",
            "--role",
            "member",
            "--domain",
            "ecommerce",
        ],
    );
    as_user(
        "platform",
        &[
            "location",
            "add",
            "raw",
            "s3://company-raw/events",
            "--domain",
            "ecommerce",
        ],
    );
    as_user(
        "platform",
        &[
            "subscribe",
            "--domain",
            "ecommerce",
            "--slack",
            "https://hooks.example.com/t/1",
        ],
    );
    let asked = as_user(
        "ana",
        &[
            "access",
            "request",
            "ecommerce.orders.orders",
            "--for",
            "analytics.orders_per_label",
            "--purpose",
            "Counts: orders per label.",
            "--days",
            "30",
            "--output",
            "json",
        ],
    );
    let asked: serde_json::Value = serde_json::from_str(&stdout(&asked)).unwrap();
    as_user(
        "olga",
        &["access", "approve", asked["id"].as_str().unwrap()],
    );
    let out = as_user("platform", &["plan", "--output", "json"]);
    let drift: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        ops(&drift),
        [
            "removeLocation raw",
            "revoke ecommerce.orders",
            "unbind bob",
            "unsubscribe domain",
        ],
        "{drift:#}"
    );

    // Imported: each where its kind is, in the file's style; comments and blanks stay.
    let out = as_user("platform", &["plan", "--import"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let said = stderr(&out);
    for line in [
        "imported platform/domains/ecommerce.yaml:7: role member of bob in ecommerce",
        "imported platform/domains/ecommerce.yaml:11: location raw",
        "imported platform/domains/ecommerce.yaml:15: subscription",
        "imported platform/domains/analytics.yaml:4: grant",
    ] {
        assert!(said.contains(line), "{line}\n{said}");
    }
    let text = fs::read_to_string(ws.join("platform/domains/ecommerce.yaml")).unwrap();
    assert_eq!(
        text,
        "kind: Domain
name: ecommerce
# who works here
members:
  - principal: ana@example.com
    role: owner   # the lead
  - principal: bob
    role: member

locations:
  - name: raw
    url: s3://company-raw/events
subscriptions:
  - email: oncall@example.com
  - slack: https://hooks.example.com/t/1
# the end
"
    );
    let text = fs::read_to_string(ws.join("platform/domains/analytics.yaml")).unwrap();
    assert_eq!(
        text,
        "kind: Domain\nname: analytics\nreads:\n  - product: ecommerce.orders\n    port: orders\n    for: analytics.orders_per_label\n    purpose: \"Counts: orders per label.\"\n    days: 30\n"
    );
    assert_eq!(code(&as_user("platform", &["plan"])), 0);
    let again = as_user("platform", &["plan", "--import"]);
    assert!(
        stderr(&again).contains("no drift to import"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn a_changed_location_is_replaced_in_one_step() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    two_domains(ws, None, &[]);
    let domain = |url: &str| {
        format!("kind: Domain\nname: ecommerce\nlocations:\n  - name: raw\n    url: {url}\n")
    };
    let run = |args: &[&str]| mesh_with_env(ws, args, &[("USER", "platform")]);
    let listed = || -> Vec<String> {
        let out = run(&["location", "list", "--output", "json"]);
        let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .map(|l| l["url"].as_str().unwrap().to_owned())
            .collect()
    };
    // The name is another domain's first: the plan says the location moves.
    let out = run(&[
        "location",
        "add",
        "raw",
        "s3://analytics-raw",
        "--domain",
        "analytics",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    write(
        ws,
        "platform/domains/ecommerce.yaml",
        &domain("s3://company-raw/events"),
    );
    let out = run(&["plan"]);
    assert!(
        stdout(&out).contains("(was s3://analytics-raw, of analytics)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(code(&run(&["apply", "--yes"])), 0);
    assert_eq!(listed(), ["s3://company-raw/events"]);

    // A new URL: one step, an update that says what it was.
    write(
        ws,
        "platform/domains/ecommerce.yaml",
        &domain("s3://company-raw/events-v2"),
    );
    let out = run(&["plan", "--output", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{plan:#}");
    assert_eq!(steps[0]["op"], "addLocation");
    assert_eq!(steps[0]["action"], "update");
    assert_eq!(steps[0]["previous"], "s3://company-raw/events");
    assert_eq!(code(&run(&["apply", "--yes"])), 0);
    assert_eq!(listed(), ["s3://company-raw/events-v2"]);

    // A URL the catalog refuses (its own managed storage): the apply stops, the old location
    // stays — sources under it are never without one.
    let managed = format!("file://{}", ws.join(".mesh/data/raw").display());
    write(ws, "platform/domains/ecommerce.yaml", &domain(&managed));
    let out = run(&["apply", "--yes"]);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(listed(), ["s3://company-raw/events-v2"]);
}

/// A consuming domain applies its own `reads:` with its own CI token (a member, not an admin):
/// once the owner approved, its plan sees the grant to its product and has nothing to do.
#[test]
fn a_consumer_domain_token_sees_its_products_grants_and_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path();
    two_domains(ws, Some(("orders_per_label", "aggregate")), &[]);
    let token = |name: &str, role: &str, domain: Option<&str>| token(ws, name, role, domain);
    let admin = token("platform", "admin", None);
    let analytics = token("analytics-ci", "member", Some("analytics"));
    let ecommerce = token("ecommerce-ci", "owner", Some("ecommerce"));
    let server = crate::serve(ws, &[]);
    let as_ = |token: &str, args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--server", server.url.as_str(), "--token", token]);
        mesh(ws, &all)
    };
    let ops_of = |token: &str| {
        let out = as_(token, &["plan", "--output", "json"]);
        assert!(
            matches!(code(&out), 0 | 2),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
        ops(&serde_json::from_str(&stdout(&out)).unwrap())
    };
    write(
        ws,
        "platform/domains/ecommerce.yaml",
        "kind: Domain\nname: ecommerce\napproves:\n  - product: ecommerce.orders\n    port: orders\n    for: analytics.orders_per_label\n",
    );
    write(
        ws,
        "platform/domains/analytics.yaml",
        "kind: Domain\nname: analytics\n",
    );
    let out = as_(&admin, &["apply", "--yes"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));

    // The consuming domain declares its read and applies it with its own token ...
    write(
        ws,
        "platform/domains/analytics.yaml",
        "kind: Domain\nname: analytics\nreads:\n  - product: ecommerce.orders\n    port: orders\n    for: analytics.orders_per_label\n    purpose: Counts orders per label for the weekly report.\n",
    );
    assert_eq!(ops_of(&analytics), ["request ecommerce.orders"]);
    let out = as_(&analytics, &["apply", "--yes"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    // ... the owning domain approves with its own ...
    assert_eq!(ops_of(&ecommerce), ["approve ecommerce.orders"]);
    let out = as_(&ecommerce, &["apply", "--yes"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    // ... and neither has anything left to do: the consumer sees its product's grant.
    assert_eq!(ops_of(&analytics), Vec::<String>::new());
    assert_eq!(ops_of(&ecommerce), Vec::<String>::new());
    assert_eq!(ops_of(&admin), Vec::<String>::new());

    // What the consumer's members see is their products' requests and grants, and a third
    // domain's member sees neither.
    let hr = token("hr-ci", "member", Some("hr"));
    let count = |token: &str, what: &str| {
        let out = as_(
            token,
            &[
                "access",
                what,
                "--product",
                "ecommerce.orders",
                "--output",
                "json",
            ],
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        v.as_array().map_or(0, Vec::len)
    };
    assert_eq!(
        (count(&analytics, "list"), count(&analytics, "grants")),
        (1, 1)
    );
    assert_eq!((count(&hr, "list"), count(&hr, "grants")), (0, 0));

    // The consumer stops reading: its own token plans the revocation and gives the grant up.
    write(
        ws,
        "platform/domains/analytics.yaml",
        "kind: Domain\nname: analytics\nreads: []\n",
    );
    assert_eq!(ops_of(&analytics), ["revoke ecommerce.orders"]);
    let out = as_(&analytics, &["apply", "--yes"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert_eq!(ops_of(&analytics), Vec::<String>::new());
    assert_eq!(ops_of(&admin), Vec::<String>::new());
}
