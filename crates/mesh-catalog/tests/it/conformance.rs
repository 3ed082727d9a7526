//! The catalog conformance suite: every test runs on every backend.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use mesh_catalog::access::AccessError;
use mesh_catalog::governance::{GovernanceError, PolicyRefusal};
use mesh_catalog::publish::PublishError;
use mesh_catalog::store::{DomainRow, NewEvent, ProductQuery, ProductRow, StoreError};
use mesh_catalog::{Catalog, ErrorCode, FixedClock, Principal, PublishOutcome, Role, ToProblem};

use crate::backends::{TestStore, on_every_backend};
use crate::fixtures::product;

/// Delta logs as a test writes them: (location, version) → the run whose commit it is.
#[derive(Debug, Default)]
struct Commits(std::sync::Mutex<std::collections::HashMap<(String, i64), String>>);

impl Commits {
    fn commit(&self, location: &str, version: i64, run: &str) {
        self.0
            .lock()
            .unwrap()
            .insert((location.to_owned(), version), run.to_owned());
    }
}

#[async_trait::async_trait]
impl mesh_catalog::runs::DeltaLog for Commits {
    async fn committed_by(&self, location: &str, version: i64) -> Result<Option<String>, String> {
        self.0
            .lock()
            .unwrap()
            .get(&(location.to_owned(), version))
            .cloned()
            .map(Some)
            .ok_or_else(|| format!("version {version} is not in the table's log"))
    }
}

fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::new(
        Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap(),
    ))
}

/// Whether `result` failed with `code` (the problem code the API and the CLI report).
pub(crate) fn is<T, E: ToProblem>(result: &Result<T, E>, code: ErrorCode) -> bool {
    matches!(result, Err(e) if e.code() == code)
}

fn admin() -> Principal {
    Principal::local()
}

/// A principal holding `role` (in `domain`), as a token of it authenticates.
async fn principal(catalog: &Catalog, name: &str, role: Role, domain: Option<&str>) -> Principal {
    let token = catalog
        .bootstrap_token(name, &[(role, domain.map(str::to_owned))], None)
        .await
        .unwrap();
    catalog.authenticate(&token).await.unwrap()
}

async fn store_transactions_and_conflicts(t: TestStore) {
    let name = t.name;
    let store = &t.store;
    // A write that is not committed leaves nothing behind.
    {
        let mut tx = store.write().await.unwrap();
        tx.insert_domain(&DomainRow {
            name: "ghost".into(),
            description: None,
            created_at: "2026-01-01T00:00:00Z".into(),
        })
        .await
        .unwrap();
    }
    let mut tx = store.read().await.unwrap();
    assert!(
        tx.domain("ghost").await.unwrap().is_none(),
        "{name}: rolled back"
    );
    drop(tx);

    let mut tx = store.write().await.unwrap();
    let domain = DomainRow {
        name: "sales".into(),
        description: Some("Sales".into()),
        created_at: "2026-01-01T00:00:00Z".into(),
    };
    tx.insert_domain(&domain).await.unwrap();
    let row = ProductRow {
        id: "sales.orders".into(),
        domain: "sales".into(),
        team: None,
        name: Some("Orders".into()),
        latest: None,
        status: "draft".into(),
        revision: 1,
        created_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:00Z".into(),
    };
    tx.insert_product(&row).await.unwrap();
    tx.commit().await.unwrap();

    let mut tx = store.write().await.unwrap();
    assert!(
        matches!(
            tx.insert_domain(&domain).await,
            Err(StoreError::Conflict(_))
        ),
        "{name}: duplicate domain is a conflict"
    );
    drop(tx);
    let mut tx = store.write().await.unwrap();
    assert!(matches!(
        tx.insert_product(&row).await,
        Err(StoreError::Conflict(_))
    ));
    drop(tx);

    // Optimistic concurrency: an update against a stale revision is refused.
    let mut tx = store.write().await.unwrap();
    let updated = ProductRow {
        revision: 2,
        status: "active".into(),
        ..row.clone()
    };
    tx.update_product(&updated, 1).await.unwrap();
    assert!(matches!(
        tx.update_product(&updated, 1).await,
        Err(StoreError::Conflict(_))
    ));
    tx.commit().await.unwrap();
    let mut tx = store.read().await.unwrap();
    assert_eq!(tx.product("sales.orders").await.unwrap(), Some(updated));
    let page = tx
        .products(&ProductQuery {
            domain: Some("sales".into()),
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    let none = tx
        .products(&ProductQuery {
            domain: Some("hr".into()),
            after: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert!(none.is_empty());
    drop(tx);

    // Events come back in order, filtered by subject.
    let mut tx = store.write().await.unwrap();
    let mut seqs = Vec::new();
    for (i, subject) in ["a", "b", "a"].iter().enumerate() {
        seqs.push(
            tx.append_event(&NewEvent {
                at: format!("2026-01-01T00:00:0{i}Z"),
                kind: "test".into(),
                subject: (*subject).into(),
                actor: "me".into(),
                payload: serde_json::json!({ "i": i }),
            })
            .await
            .unwrap(),
        );
    }
    tx.commit().await.unwrap();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{name}: {seqs:?}");
    let mut tx = store.read().await.unwrap();
    let events = tx.events(0, 10, Some("a")).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].payload, serde_json::json!({ "i": 2 }));
    assert_eq!(tx.events(seqs[0], 10, None).await.unwrap().len(), 2);
}

async fn publish_show_and_republish(t: TestStore) {
    let name = t.name;
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock());
    let v1 = product("sales.orders", "1.0.0", &["id!", "amount"]);
    let report = catalog
        .publish(&admin(), &v1.bundle(), false)
        .await
        .unwrap();
    assert_eq!(report.outcome, PublishOutcome::Published, "{name}");
    assert!(report.event.is_some());

    // The same document again: a no-op, also when its keys come in another order.
    let again = catalog
        .publish(&admin(), &v1.bundle(), false)
        .await
        .unwrap();
    assert_eq!(again.outcome, PublishOutcome::Unchanged);
    assert_eq!(again.digest, report.digest);
    let mut reordered = v1.bundle();
    reordered.descriptor.text = reordered.descriptor.text.replace(
        "name: orders\ndomain: sales\n",
        "domain: sales\nname: orders\n",
    );
    assert_ne!(reordered.descriptor.text, v1.bundle().descriptor.text);
    let same = catalog.publish(&admin(), &reordered, false).await.unwrap();
    assert_eq!(
        same.outcome,
        PublishOutcome::Unchanged,
        "{name}: key order is not content"
    );

    // A different document under the same version is refused.
    let changed = v1.clone().purpose("Something else entirely.");
    let err = catalog
        .publish(&admin(), &changed.bundle(), false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::VersionExists { .. }),
        "{name}: {err}"
    );

    // Show, versions, version by selector.
    let shown = catalog.product(&admin(), "sales.orders").await.unwrap();
    assert_eq!(shown.latest.as_deref(), Some("1.0.0"));
    assert_eq!(shown.team.as_deref(), Some("sales-team"));
    assert_eq!(shown.versions.len(), 1);
    let v = catalog
        .version(&admin(), "sales.orders", "1")
        .await
        .unwrap();
    assert_eq!(v.version, "1.0.0");
    assert_eq!(v.ports.len(), 1);
    assert_eq!(v.ports[0].contract_id, "sales.orders.orders");
    assert_eq!(v.ports[0].compatibility, "BACKWARD");
    assert_eq!(v.ports[0].contract["schema"][0]["name"], "orders");
    assert!(
        catalog
            .version(&admin(), "sales.orders", "latest")
            .await
            .is_ok()
    );
    assert!(is(
        &catalog.version(&admin(), "sales.orders", "3").await,
        ErrorCode::NotFound
    ));
    assert!(is(
        &catalog.product(&admin(), "sales.nothing").await,
        ErrorCode::NotFound
    ));
    let domains = catalog.domains(&admin()).await.unwrap();
    assert_eq!(domains.len(), 1);
    assert_eq!(catalog.teams(&admin()).await.unwrap()[0].name, "sales-team");

    // A bundle that does not lint is refused with every finding.
    let mut broken = v1.bundle();
    broken.contracts[0].text = broken.contracts[0]
        .text
        .replace("logicalType: string", "logicalType: strng");
    match catalog.publish(&admin(), &broken, false).await {
        Err(PublishError::Invalid { findings }) => {
            assert!(
                findings
                    .iter()
                    .all(|(path, _)| path.ends_with(".odcs.yaml"))
            );
            assert_eq!(findings.len(), 2, "{name}: {findings:?}");
        }
        other => panic!("{name}: expected Invalid, got {other:?}"),
    }
}

async fn breaking_change_needs_a_major_version(t: TestStore) {
    let name = t.name;
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock());
    let who = admin();
    let p = |v: &str, cols: &[&str]| product("sales.orders", v, cols);
    catalog
        .publish(&who, &p("1.0.0", &["id!", "amount"]).bundle(), false)
        .await
        .unwrap();
    // Adding an optional column is fine under BACKWARD.
    let ok = catalog
        .publish(
            &who,
            &p("1.1.0", &["id!", "amount", "note"]).bundle(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(ok.ports[0].previous.as_deref(), Some("1.0.0"));
    assert_eq!(
        ok.ports[0].changes.impact(),
        mesh_model::changelog::Impact::Info
    );

    // Removing one under the same major is refused, with the report.
    let err = catalog
        .publish(&who, &p("1.2.0", &["id!", "note"]).bundle(), false)
        .await
        .unwrap_err();
    match &err {
        PublishError::Incompatible { ports, .. } => {
            assert_eq!(ports.len(), 1);
            let failure = &ports[0].failures[0];
            assert_eq!(failure.against, "1.1.0");
            let paths: Vec<&str> = failure.changes.iter().map(|c| c.path.as_str()).collect();
            assert_eq!(paths, ["schema.orders.properties.amount"], "{name}");
        }
        other => panic!("{name}: expected Incompatible, got {other:?}"),
    }
    // The dry run says the same and stores nothing.
    assert!(matches!(
        catalog
            .publish(&who, &p("1.2.0", &["id!", "note"]).bundle(), true)
            .await,
        Err(PublishError::Incompatible { .. })
    ));
    let checked = catalog
        .publish(
            &who,
            &p("1.2.0", &["id!", "amount", "note", "extra"]).bundle(),
            true,
        )
        .await
        .unwrap();
    assert_eq!(checked.outcome, PublishOutcome::Checked);
    assert_eq!(
        catalog.versions(&who, "sales.orders").await.unwrap().len(),
        2
    );

    // As 2.0.0 it is published, side by side with major 1.
    catalog
        .publish(&who, &p("2.0.0", &["id!", "note"]).bundle(), false)
        .await
        .unwrap();
    assert_eq!(
        catalog
            .version(&who, "sales.orders", "1")
            .await
            .unwrap()
            .version,
        "1.1.0"
    );
    assert_eq!(
        catalog
            .version(&who, "sales.orders", "v2")
            .await
            .unwrap()
            .version,
        "2.0.0"
    );
    assert_eq!(
        catalog
            .version(&who, "sales.orders", "latest")
            .await
            .unwrap()
            .version,
        "2.0.0"
    );
    // A fix to major 1 is checked against major 1 only, and does not move `latest`.
    catalog
        .publish(
            &who,
            &p("1.1.1", &["id!", "amount", "note"]).bundle(),
            false,
        )
        .await
        .unwrap();
    let shown = catalog.product(&who, "sales.orders").await.unwrap();
    assert_eq!(shown.latest.as_deref(), Some("2.0.0"));
    let order: Vec<&str> = shown.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(order, ["2.0.0", "1.1.1", "1.1.0", "1.0.0"]);

    // The changelog between stored versions.
    let log = catalog
        .changelog(&who, "sales.orders", "orders", "1.1.0", "2.0.0")
        .await
        .unwrap();
    assert_eq!(log.breaking().count(), 1);

    // A port in NONE mode accepts anything.
    let q = |v: &str, cols: &[&str]| product("sales.quotes", v, cols).compatibility("NONE");
    catalog
        .publish(&who, &q("1.0.0", &["id!", "amount"]).bundle(), false)
        .await
        .unwrap();
    catalog
        .publish(&who, &q("1.1.0", &["id!"]).bundle(), false)
        .await
        .unwrap();
    let bad = product("sales.bad", "1.0.0", &["id!"]).compatibility("SIDEWAYS");
    assert!(is(
        &catalog.publish(&who, &bad.bundle(), false).await,
        ErrorCode::BadRequest
    ));
}

async fn deprecation_with_sunset_notifies_consumers(t: TestStore) {
    let name = t.name;
    let clock = clock();
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock.clone());
    let who = admin();
    let orders = product("sales.orders", "1.0.0", &["id!", "amount"]);
    catalog
        .publish(&who, &orders.bundle(), false)
        .await
        .unwrap();
    catalog
        .publish(
            &who,
            &product("sales.orders", "2.0.0", &["id!"]).bundle(),
            false,
        )
        .await
        .unwrap();
    let reader = product("finance.revenue", "1.0.0", &["day!"]).reading(&orders.contract_id());
    catalog
        .publish(&who, &reader.bundle(), false)
        .await
        .unwrap();

    let sunset = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
    // The sunset must be in the future and a guide given.
    let past = chrono::NaiveDate::from_ymd_opt(2026, 10, 1).unwrap();
    assert!(is(
        &catalog
            .deprecate(&who, "sales.orders", "1.0.0", past, "use 2")
            .await,
        ErrorCode::BadRequest
    ));
    assert!(is(
        &catalog
            .deprecate(&who, "sales.orders", "1.0.0", sunset(31), " ")
            .await,
        ErrorCode::BadRequest
    ));
    let done = catalog
        .deprecate(
            &who,
            "sales.orders",
            "1.0.0",
            sunset(31),
            "Read @2: `amount` moved to sales.payments.",
        )
        .await
        .unwrap();
    assert_eq!(done.version.status, "deprecated");
    assert_eq!(done.version.sunset.as_deref(), Some("2026-12-31"));
    let consumers: Vec<&str> = done.consumers.iter().map(|c| c.product.as_str()).collect();
    assert_eq!(consumers, ["finance.revenue"], "{name}");
    // Deprecating twice is a lifecycle error.
    assert!(is(
        &catalog
            .deprecate(&who, "sales.orders", "1.0.0", sunset(31), "again")
            .await,
        ErrorCode::Lifecycle
    ));
    // The consumer got a notice in its own event stream.
    let notices = catalog
        .events(&who, 0, 100, Some("finance.revenue"))
        .await
        .unwrap();
    let notice = notices
        .iter()
        .find(|e| e.kind == "consumer.notified")
        .expect("notice");
    assert_eq!(notice.payload["deprecated"], "sales.orders@1.0.0");
    assert_eq!(notice.payload["sunset"], "2026-12-31");

    // Still readable until retired; retiring before the sunset is refused.
    assert_eq!(
        catalog
            .version(&who, "sales.orders", "1")
            .await
            .unwrap()
            .status,
        "deprecated"
    );
    assert!(is(
        &catalog.retire(&who, "sales.orders", "1.0.0").await,
        ErrorCode::Lifecycle
    ));
    assert!(is(
        &catalog.retire(&who, "sales.orders", "2.0.0").await,
        ErrorCode::Lifecycle
    ));
    clock.set(Utc.with_ymd_and_hms(2026, 12, 31, 0, 0, 1).unwrap());
    let retired = catalog.retire(&who, "sales.orders", "1.0.0").await.unwrap();
    assert_eq!(retired.status, "retired");
    assert!(is(
        &catalog.version(&who, "sales.orders", "1").await,
        ErrorCode::NotFound
    ));
    // The latest version's status is the product's.
    let shown = catalog.product(&who, "sales.orders").await.unwrap();
    assert_eq!(shown.status, "active");
}

async fn parallel_publishers_lose_nothing(t: TestStore) {
    let name = t.name;
    let catalog = Catalog::new(Arc::clone(&t.store));
    let who = admin();

    // Eight writers, one version, eight different documents: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let catalog = catalog.clone();
        let who = who.clone();
        let bundle = product("sales.orders", "1.0.0", &["id!", "amount"])
            .purpose(&format!("Writer {i}."))
            .bundle();
        tasks.push(tokio::spawn(async move {
            catalog.publish(&who, &bundle, false).await
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(report) => {
                assert_eq!(report.outcome, PublishOutcome::Published);
                won += 1;
            }
            Err(PublishError::VersionExists { .. }) => {}
            Err(other) => panic!("{name}: {other}"),
        }
    }
    assert_eq!(won, 1, "{name}: exactly one publisher wins 1.0.0");

    // Sixteen writers, sixteen versions at once: all stored, the product ends at the highest.
    let mut tasks = Vec::new();
    for i in 1..=16 {
        let catalog = catalog.clone();
        let who = who.clone();
        let bundle = product("sales.orders", &format!("1.{i}.0"), &["id!", "amount"])
            .purpose(&format!("Release {i}."))
            .bundle();
        tasks.push(tokio::spawn(async move {
            catalog.publish(&who, &bundle, false).await
        }));
    }
    for task in tasks {
        let report = task
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(report.outcome, PublishOutcome::Published);
    }
    let shown = catalog.product(&who, "sales.orders").await.unwrap();
    assert_eq!(shown.versions.len(), 17, "{name}: no lost publish");
    assert_eq!(shown.latest.as_deref(), Some("1.16.0"), "{name}");
    let events = catalog
        .events(&who, 0, 1000, Some("sales.orders"))
        .await
        .unwrap();
    let published = events
        .iter()
        .filter(|e| e.kind == "product.published")
        .count();
    assert_eq!(published, 17, "{name}: one event per publish");
    let mut tx = t.store.read().await.unwrap();
    assert_eq!(
        tx.product("sales.orders").await.unwrap().unwrap().revision,
        17
    );
}

async fn roles_decide_who_may_do_what(t: TestStore) {
    let name = t.name;
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock());
    let sales = product("sales.orders", "1.0.0", &["id!"]).bundle();
    let consumer = principal(&catalog, "carol", Role::Consumer, None).await;
    let hr_owner = principal(&catalog, "dave", Role::Owner, Some("hr")).await;
    let member = principal(&catalog, "erin", Role::Member, Some("sales")).await;
    let owner = principal(&catalog, "frank", Role::Owner, Some("sales")).await;

    for who in [&consumer, &hr_owner] {
        assert!(
            is(
                &catalog.publish(who, &sales, false).await,
                ErrorCode::Forbidden
            ),
            "{name}: {} may not publish in sales",
            who.name
        );
    }
    catalog.publish(&member, &sales, false).await.unwrap();
    assert!(catalog.product(&consumer, "sales.orders").await.is_ok());
    let sunset = chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
    assert!(is(
        &catalog
            .deprecate(&member, "sales.orders", "1.0.0", sunset, "x")
            .await,
        ErrorCode::Forbidden
    ));
    catalog
        .deprecate(&owner, "sales.orders", "1.0.0", sunset, "x")
        .await
        .unwrap();
    assert!(is(
        &catalog.events(&consumer, 0, 10, None).await,
        ErrorCode::Forbidden
    ));
    assert!(is(
        &catalog
            .issue_token(&owner, "mallory", &[(Role::Admin, None)], None)
            .await,
        ErrorCode::Forbidden
    ));
    // Unknown and expired tokens are refused alike.
    assert!(is(
        &catalog.authenticate("mesh_nope").await,
        ErrorCode::Unauthenticated
    ));
    let past = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let expired = catalog
        .bootstrap_token("old", &[(Role::Consumer, None)], Some(past))
        .await
        .unwrap();
    assert!(is(
        &catalog.authenticate(&expired).await,
        ErrorCode::Unauthenticated
    ));
    assert!(is(
        &catalog
            .bootstrap_token("x", &[(Role::Owner, None)], None)
            .await,
        ErrorCode::BadRequest
    ));
}

async fn ports_and_history_cannot_be_sidestepped(t: TestStore) {
    let name = t.name;
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock());
    let who = admin();
    let publish = |bundle: mesh_catalog::Bundle| {
        let catalog = catalog.clone();
        let who = who.clone();
        async move { catalog.publish(&who, &bundle, false).await }
    };

    // A version slotted in between must fit the version after it too.
    let p = |v: &str, cols: &[&str]| product("sales.orders", v, cols).bundle();
    publish(p("1.0.0", &["id!"])).await.unwrap();
    publish(p("1.2.0", &["id!", "note"])).await.unwrap();
    match publish(p("1.1.0", &["id!", "other"])).await {
        Err(PublishError::Incompatible { ports, .. }) => {
            assert_eq!(ports[0].failures[0].against, "1.2.0", "{name}");
        }
        other => panic!("{name}: expected Incompatible, got {other:?}"),
    }
    publish(p("1.1.0", &["id!"])).await.unwrap();

    // Dropping an output port within a major is breaking; the descriptor names it.
    let mut two = product("sales.quotes", "1.0.0", &["id!"]).bundle();
    let extra_port = "  - name: archive\n    description: Old quotes.\n    type: tables\n    version: 1.0.0\n    contractId: sales.quotes.quotes\n";
    two.descriptor.text.push_str(extra_port);
    publish(two).await.unwrap();
    let one = product("sales.quotes", "1.1.0", &["id!"]).bundle();
    match publish(one).await {
        Err(PublishError::Incompatible { ports, .. }) => {
            assert_eq!(ports[0].port, "archive", "{name}");
            assert_eq!(ports[0].failures[0].changes[0].path, "outputPorts.archive");
            assert!(ports[0].source.ends_with("product.odps.yaml"));
        }
        other => panic!("{name}: expected Incompatible, got {other:?}"),
    }
    publish(product("sales.quotes", "2.0.0", &["id!"]).bundle())
        .await
        .unwrap();

    // Two ports of one name are refused before anything else.
    let mut dup = product("sales.dups", "1.0.0", &["id!"]).bundle();
    let again = "  - name: dups\n    description: Again.\n    type: tables\n    version: 1.0.0\n    contractId: sales.dups.dups\n";
    dup.descriptor.text.push_str(again);
    let refused = publish(dup).await;
    assert!(
        matches!(
            &refused,
            Err(e) if matches!(e.code(), ErrorCode::BadRequest | ErrorCode::Invalid)
        ),
        "{name}: {refused:?}"
    );

    // A new mode takes effect from the next version, not the one that sets it.
    let m = |v: &str, cols: &[&str], mode: &str| {
        product("sales.modes", v, cols).compatibility(mode).bundle()
    };
    publish(m("1.0.0", &["id!", "a"], "BACKWARD"))
        .await
        .unwrap();
    assert!(matches!(
        publish(m("1.1.0", &["id!"], "NONE")).await,
        Err(PublishError::Incompatible { .. })
    ));
    publish(m("1.1.0", &["id!", "a"], "NONE")).await.unwrap();
    publish(m("1.2.0", &["id!"], "NONE")).await.unwrap();
}

/// The platform's override that makes the standard `retention-limit` (a warning by default)
/// block in every domain.
async fn block_retention(catalog: &Catalog, who: &Principal) {
    let bundle = mesh_catalog::governance::PolicyBundle {
        files: Vec::new(),
        overrides: [("retention-limit".to_owned(), "block".to_owned())].into(),
    };
    catalog
        .publish_policies(
            who,
            &mesh_catalog::governance::PolicyScope::Global,
            bundle,
            false,
        )
        .await
        .unwrap();
}

async fn policies_block_warn_or_audit_at_publish(t: TestStore) {
    use mesh_policy::{Source, standard};
    let name = t.name;
    let mut global = standard();
    global.push(Source {
        path: "platform/no_test_data.rego".into(),
        text: "# METADATA\n# title: No test data\n# custom:\n#   id: no-test-data\n#   enforcement: audit\npackage platform.no_test_data\n\nimport rego.v1\n\ndeny contains \"the purpose says this is test data\" if contains(lower(input.product.description.purpose), \"test data\")\n".into(),
    });
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock())
        .with_policies(global)
        .unwrap();
    let who = admin();
    // Retention beyond seven years warns by default; this platform makes it block everywhere.
    block_retention(&catalog, &who).await;

    // Blocking: refused with every violation, nothing stored, the refusal audited.
    let mut keeps_forever = product("sales.orders", "1.0.0", &["id!", "amount"]).bundle();
    keeps_forever.descriptor.text = keeps_forever
        .descriptor
        .text
        .replace("value: 365", "value: 4000");
    match catalog.publish(&who, &keeps_forever, false).await {
        Err(PublishError::PolicyViolation(PolicyRefusal { violations, .. })) => {
            let ids: Vec<&str> = violations.iter().map(|v| v.policy.as_str()).collect();
            assert!(ids.contains(&"retention-limit"), "{name}: {ids:?}");
        }
        other => panic!("{name}: expected PolicyViolation, got {other:?}"),
    }
    assert!(is(
        &catalog.product(&who, "sales.orders").await,
        ErrorCode::NotFound
    ));

    // Warn and audit: accepted, with the violations in the report and the audit log.
    let mut shaky = product("sales.orders", "1.0.0", &["id!", "amount"]).bundle();
    shaky.contracts[0].text = shaky.contracts[0].text.replace("value: 99.5", "value: 90");
    let report = catalog.publish(&who, &shaky, false).await.unwrap();
    let violations = report.policy.as_ref().unwrap()["violations"]
        .as_array()
        .unwrap()
        .clone();
    let levels: Vec<(String, String)> = violations
        .iter()
        .map(|v| {
            (
                v["policy"].as_str().unwrap().to_owned(),
                v["enforcement"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        levels,
        [
            ("availability-min".to_owned(), "warn".to_owned()),
            ("no-test-data".to_owned(), "audit".to_owned())
        ],
        "{name}"
    );
    let events = catalog
        .events(&who, 0, 100, Some("sales.orders"))
        .await
        .unwrap();
    let decisions: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "policy.decision")
        .map(|e| e.payload["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["refused", "accepted"], "{name}");
}

async fn audit_reports_compliance_per_domain_and_policy(t: TestStore) {
    use mesh_policy::standard;
    let name = t.name;
    let who = admin();
    // Published before governance was switched on: one product would not pass today.
    let plain = Catalog::with_clock(Arc::clone(&t.store), clock());
    let mut old = product("sales.legacy", "1.0.0", &["id!"]).bundle();
    old.descriptor.text = old.descriptor.text.replace("value: 365", "value: 9999");
    plain.publish(&who, &old, false).await.unwrap();
    let catalog = plain.with_policies(standard()).unwrap();
    block_retention(&catalog, &who).await;
    catalog
        .publish(
            &who,
            &product("sales.orders", "1.0.0", &["id!"]).bundle(),
            false,
        )
        .await
        .unwrap();
    let mut shaky = product("hr.people", "1.0.0", &["id!"]).bundle();
    shaky.contracts[0].text = shaky.contracts[0].text.replace("value: 99.5", "value: 90");
    catalog.publish(&who, &shaky, false).await.unwrap();

    let report = catalog.audit(&who).await.unwrap();
    assert_eq!((report.products, report.compliant), (3, 2), "{name}");
    assert_eq!(report.by_domain["sales"].blocking, 1, "{name}");
    assert_eq!(report.by_domain["hr"].warnings, 1, "{name}");
    assert_eq!(report.by_policy["retention-limit"].products, 1);
    assert_eq!(report.by_policy["availability-min"].warnings, 1);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v["product"] == "sales.legacy")
    );
    // Kept as history in the event log.
    catalog.audit(&who).await.unwrap();
    let history = catalog.events(&who, 0, 100, Some("*")).await.unwrap();
    assert_eq!(
        history.iter().filter(|e| e.kind == "policy.audit").count(),
        2,
        "{name}"
    );
}

/// A domain policy: columns named `*amount` must not be plain strings.
const SALES_MONEY: &str = r#"# METADATA
# title: Amounts are numbers
# custom:
#   id: sales-amount-number
#   type: quality
#   enforcement: block
package sales.amount_number

import rego.v1

deny contains msg if {
	some contract in input.contracts
	some table in contract.schema
	some prop in table.properties
	endswith(prop.name, "amount")
	prop.logicalType == "string"
	msg := sprintf("%s is a string; amounts are numbers", [prop.name])
}
"#;

const SALES_MONEY_TEST: &str = r#"package sales.amount_number_test

import rego.v1

test_string_amount_denied if {
	count(data.sales.amount_number.deny) == 1 with input as {"contracts": {"p": {"schema": [{"properties": [{"name": "amount", "logicalType": "string"}]}]}}}
}
"#;

async fn domain_and_global_policies_are_versioned_in_the_catalog(t: TestStore) {
    use mesh_catalog::governance::{PolicyBundle, PolicyFile, PolicyScope};
    use mesh_policy::standard;
    let file = |path: &str, text: &str| PolicyFile {
        path: path.into(),
        text: text.into(),
    };
    let bundle = |files: Vec<PolicyFile>, overrides: &[(&str, &str)]| PolicyBundle {
        files,
        overrides: overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let name = t.name;
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock())
        .with_policies(standard())
        .unwrap();
    // A second instance on the same database, its policy cache warmed before any bundle.
    let other = Catalog::with_clock(Arc::clone(&t.store), clock())
        .with_policies(standard())
        .unwrap();
    let admin = admin();
    let sales_owner = principal(&catalog, "frank", Role::Owner, Some("sales")).await;
    let sales_member = principal(&catalog, "erin", Role::Member, Some("sales")).await;
    let hr_owner = principal(&catalog, "dave", Role::Owner, Some("hr")).await;
    let sales = PolicyScope::Domain("sales".into());
    let money = bundle(
        vec![
            file("amount_number.rego", SALES_MONEY),
            file("amount_number_test.rego", SALES_MONEY_TEST),
        ],
        &[],
    );
    let string_amount = product("sales.orders", "1.0.0", &["id!", "amount"]).bundle();
    other
        .publish(&admin, &string_amount, true)
        .await
        .expect("accepted before the domain has policies");

    // Only the domain's owners publish its policies; only admins the global ones.
    for who in [&sales_member, &hr_owner] {
        assert!(
            is(
                &catalog
                    .publish_policies(who, &sales, money.clone(), false)
                    .await,
                ErrorCode::Forbidden
            ),
            "{name}: {} may not govern sales",
            who.name
        );
    }
    assert!(is(
        &catalog
            .publish_policies(&sales_owner, &PolicyScope::Global, money.clone(), false)
            .await,
        ErrorCode::Forbidden
    ));
    let v1 = catalog
        .publish_policies(&sales_owner, &sales, money.clone(), false)
        .await
        .unwrap();
    assert_eq!(
        (v1.outcome.as_str(), v1.bundle.version),
        ("published", 1),
        "{name}"
    );
    assert_eq!(
        v1.tests, 35,
        "{name}: the pack's 34 tests and the domain's one"
    );
    assert!(
        v1.policies
            .iter()
            .any(|p| p.id == "sales-amount-number" && p.scope == "sales")
    );
    let again = catalog
        .publish_policies(&sales_owner, &sales, money.clone(), false)
        .await
        .unwrap();
    assert_eq!(
        (again.outcome.as_str(), again.bundle.version),
        ("unchanged", 1)
    );

    // The other instance judges by the new version at once; other domains are untouched.
    match other.publish(&admin, &string_amount, false).await {
        Err(PublishError::PolicyViolation(PolicyRefusal {
            violations,
            bundles,
            ..
        })) => {
            assert_eq!(violations[0].policy, "sales-amount-number", "{name}");
            assert_eq!((bundles.global, bundles.domain), (None, Some(1)), "{name}");
        }
        other => panic!("{name}: expected the domain policy to refuse, got {other:?}"),
    }
    catalog
        .publish(
            &admin,
            &product("hr.payroll", "1.0.0", &["id!", "amount"]).bundle(),
            false,
        )
        .await
        .expect("hr has no such policy");

    // Refused bundles: weakening a global policy, replacing one, failing tests, bad files.
    let refused = |b: PolicyBundle, scope: PolicyScope, who: Principal, why: &'static str| {
        let catalog = catalog.clone();
        async move {
            match catalog.publish_policies(&who, &scope, b, false).await {
                Err(GovernanceError::InvalidPolicies { problems }) => assert!(
                    problems.iter().any(|p| p.contains(why)),
                    "{name}: expected `{why}` in {problems:?}"
                ),
                other => panic!("{name}: expected `{why}`, got {other:?}"),
            }
        }
    };
    refused(
        bundle(vec![], &[("pii-tagged", "warn")]),
        sales.clone(),
        sales_owner.clone(),
        "not weaken it to warn",
    )
    .await;
    refused(
        bundle(
            vec![file(
                "naming.rego",
                "# METADATA\n# custom:\n#   id: naming\npackage sales.naming\n\nimport rego.v1\n\ndeny contains \"x\" if false\n",
            )],
            &[],
        ),
        sales.clone(),
        sales_owner.clone(),
        "cannot replace one",
    )
    .await;
    refused(
        bundle(
            vec![
                file("amount_number.rego", SALES_MONEY),
                file(
                    "wrong_test.rego",
                    "package sales.wrong_test\n\nimport rego.v1\n\ntest_wrong if count(data.sales.amount_number.deny) == 5\n",
                ),
            ],
            &[],
        ),
        sales.clone(),
        sales_owner.clone(),
        "test data.sales.wrong_test.test_wrong fails",
    )
    .await;
    refused(
        bundle(vec![file("../evil.rego", SALES_MONEY)], &[]),
        sales.clone(),
        sales_owner.clone(),
        "plain file name",
    )
    .await;
    refused(
        bundle(
            vec![file(
                "broken.rego",
                "package sales.broken\n\ndeny contains if {",
            )],
            &[],
        ),
        sales.clone(),
        sales_owner.clone(),
        "sales@2/broken.rego",
    )
    .await;
    // A global policy that would clash with a domain's is refused for that domain's sake.
    refused(
        bundle(
            vec![file(
                "amount.rego",
                &SALES_MONEY.replace("package sales.amount_number", "package platform.amount"),
            )],
            &[],
        ),
        PolicyScope::Global,
        admin.clone(),
        "with the policies of domain `sales`",
    )
    .await;

    // v2 tightens a global policy for the domain: described ports become a must.
    let v2 = catalog
        .publish_policies(
            &sales_owner,
            &sales,
            bundle(money.files.clone(), &[("description-present", "block")]),
            false,
        )
        .await
        .unwrap();
    assert_eq!(v2.bundle.version, 2);
    let mut undescribed = product("sales.refunds", "1.0.0", &["id!"]).bundle();
    undescribed.descriptor.text = undescribed
        .descriptor
        .text
        .replace("    description: The table.\n", "");
    match catalog.publish(&admin, &undescribed, false).await {
        Err(PublishError::PolicyViolation(PolicyRefusal { violations, .. })) => assert!(
            violations.iter().any(|v| v.policy == "description-present"
                && v.enforcement == mesh_policy::Enforcement::Block),
            "{name}: {violations:?}"
        ),
        other => panic!("{name}: expected the tightened policy to refuse, got {other:?}"),
    }

    // The platform adds an audit-only global policy; a domain's view shows all three layers.
    let global = catalog
        .publish_policies(
            &admin,
            &PolicyScope::Global,
            bundle(
                vec![file(
                    "no_test_data.rego",
                    "# METADATA\n# title: No test data\n# custom:\n#   id: no-test-data\n#   enforcement: audit\npackage platform.no_test_data\n\nimport rego.v1\n\ndeny contains \"test data\" if contains(lower(input.product.description.purpose), \"test data\")\n",
                )],
                &[],
            ),
            false,
        )
        .await
        .unwrap();
    assert_eq!(global.bundle.version, 1);
    let effective = catalog
        .effective_policies(&sales_member, Some("sales"))
        .await
        .unwrap();
    assert_eq!(
        (effective.versions.global, effective.versions.domain),
        (Some(1), Some(2))
    );
    let scope_of = |id: &str| {
        effective
            .policies
            .iter()
            .find(|p| p.id == id)
            .map(|p| (p.scope.clone(), p.enforcement.clone()))
    };
    assert_eq!(scope_of("naming"), Some(("global".into(), "block".into())));
    assert_eq!(
        scope_of("no-test-data"),
        Some(("global".into(), "audit".into()))
    );
    assert_eq!(
        scope_of("description-present"),
        Some(("global".into(), "block".into())),
        "{name}: tightened for sales"
    );
    assert_eq!(
        scope_of("sales-amount-number"),
        Some(("sales".into(), "block".into()))
    );
    let hr = catalog
        .effective_policies(&hr_owner, Some("hr"))
        .await
        .unwrap();
    assert_eq!((hr.versions.global, hr.versions.domain), (Some(1), None));
    assert!(hr.policies.iter().all(|p| p.id != "sales-amount-number"));

    // History: every version kept, each readable with its files.
    let history = catalog.policy_bundles(&hr_owner, &sales).await.unwrap();
    let versions: Vec<i64> = history.iter().map(|v| v.version).collect();
    assert_eq!(versions, [1, 2], "{name}");
    assert_eq!(history[1].overrides["description-present"], "block");
    let first = catalog.policy_bundle(&hr_owner, &sales, 1).await.unwrap();
    assert_eq!(first.files.unwrap()[0].text, SALES_MONEY);
    assert!(is(
        &catalog.policy_bundle(&hr_owner, &sales, 9).await,
        ErrorCode::NotFound
    ));

    // The audit judges each domain by its own policies; the refusals and bundles are logged.
    let report = catalog.audit(&admin).await.unwrap();
    assert_eq!(
        (report.products, report.compliant),
        (1, 1),
        "{name}: hr.payroll passes; sales has nothing published"
    );
    let events = catalog.events(&admin, 0, 200, None).await.unwrap();
    let published: Vec<(String, i64)> = events
        .iter()
        .filter(|e| e.kind == "policy.published")
        .map(|e| {
            (
                e.payload["scope"].as_str().unwrap().to_owned(),
                e.payload["version"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        published,
        [
            ("sales".to_owned(), 1),
            ("sales".to_owned(), 2),
            ("global".to_owned(), 1)
        ],
        "{name}"
    );
    let refusal = events
        .iter()
        .find(|e| e.kind == "policy.decision" && e.payload["outcome"] == "refused")
        .unwrap();
    assert_eq!(refusal.payload["bundles"]["domain"], 1, "{name}");

    // Policies see who consumes the product (context.consumers).
    catalog
        .publish(
            &admin,
            &product("ops.reader", "1.0.0", &["id!"])
                .reading("hr.payroll.payroll")
                .bundle(),
            false,
        )
        .await
        .unwrap();
    catalog
        .publish_policies(
            &hr_owner,
            &PolicyScope::Domain("hr".into()),
            bundle(
                vec![file(
                    "consumers.rego",
                    "# METADATA\n# custom:\n#   id: hr-consumers\n#   enforcement: warn\npackage hr.consumers\n\nimport rego.v1\n\ndeny contains sprintf(\"read by %v\", [[c.product | some c in input.context.consumers]]) if count(input.context.consumers) > 0\n",
                )],
                &[],
            ),
            false,
        )
        .await
        .unwrap();
    let report = catalog
        .publish(
            &admin,
            &product("hr.payroll", "1.0.1", &["id!", "amount"]).bundle(),
            false,
        )
        .await
        .unwrap();
    let policy = report.policy.unwrap();
    let messages: Vec<&str> = policy["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["policy"] == "hr-consumers")
        .map(|v| v["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, [r#"read by ["ops.reader"]"#], "{name}");
    assert_eq!(policy["bundles"]["domain"], 1, "{name}");
}

async fn runs_move_the_snapshot_only_when_they_succeed(t: TestStore) {
    use mesh_catalog::runs::{RunEnd, RunStart};
    let name = t.name;
    let commits = Arc::new(Commits::default());
    let bare = Catalog::with_clock(Arc::clone(&t.store), clock());
    let catalog = bare
        .clone()
        .with_storage("file:///data/")
        .with_delta_log(Arc::clone(&commits) as _);
    let who = admin();
    catalog
        .publish(
            &who,
            &product("sales.orders", "1.0.0", &["id!"]).bundle(),
            false,
        )
        .await
        .unwrap();
    let start = RunStart {
        product: "sales.orders".into(),
        port: "orders".into(),
        location: None,
        inputs: vec![],
        owner: "host:1".into(),
    };
    let table = "file:///data/sales/orders/orders/v1";
    // The catalog names the table; a run that expects another one is refused, and a catalog
    // that knows no storage starts no run.
    let elsewhere = RunStart {
        location: Some("file:///data/hr/salaries/salaries/v1".into()),
        ..start.clone()
    };
    assert!(is(
        &catalog.begin_run(&who, &elsewhere).await,
        ErrorCode::BadRequest
    ));
    assert!(is(&bare.begin_run(&who, &start).await, ErrorCode::Internal));
    assert!(is(
        &catalog.snapshot(&who, "sales.orders", "orders", None).await,
        ErrorCode::NotFound
    ));

    // One open run per port at a time.
    let first = catalog.begin_run(&who, &start).await.unwrap();
    assert_eq!(
        (first.state.as_str(), first.major),
        ("running", 1),
        "{name}"
    );
    assert_eq!(first.location, table, "{name}");
    assert!(is(
        &catalog.begin_run(&who, &start).await,
        ErrorCode::Lifecycle
    ));
    catalog.committing_run(&who, &first.id, 1).await.unwrap();
    // A version that is not the run's own commit in its table does not finish it: not in the
    // log, another run's, or checked by a catalog that cannot read logs.
    let claim = |v| RunEnd {
        delta_version: Some(v),
        ..RunEnd::default()
    };
    assert!(is(
        &catalog.finish_run(&who, &first.id, &claim(1)).await,
        ErrorCode::Lifecycle
    ));
    commits.commit(table, 1, "someone-else");
    assert!(is(
        &catalog.finish_run(&who, &first.id, &claim(1)).await,
        ErrorCode::Lifecycle
    ));
    commits.commit(table, 1, &first.id);
    assert!(is(
        &bare.finish_run(&who, &first.id, &claim(1)).await,
        ErrorCode::Lifecycle
    ));
    let done = catalog
        .finish_run(
            &who,
            &first.id,
            &RunEnd {
                delta_version: Some(1),
                rows_in: Some(12),
                rows_out: Some(10),
                bytes_out: Some(1000),
                checks: Some(serde_json::json!({"result": "passed"})),
                error: None,
                skipped: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(done.state, "succeeded");
    let snapshot = catalog
        .snapshot(&who, "sales.orders", "orders", Some(1))
        .await
        .unwrap();
    assert_eq!(
        (snapshot.delta_version, snapshot.run.as_str()),
        (1, first.id.as_str())
    );

    // A failed run leaves the snapshot where it was; a finished run cannot finish again.
    let second = catalog.begin_run(&who, &start).await.unwrap();
    catalog
        .finish_run(
            &who,
            &second.id,
            &RunEnd {
                error: Some("2 blocking checks failed".into()),
                ..RunEnd::default()
            },
        )
        .await
        .unwrap();
    assert!(is(
        &catalog
            .finish_run(&who, &second.id, &RunEnd::default())
            .await,
        ErrorCode::Lifecycle
    ));
    let snapshot = catalog
        .snapshot(&who, "sales.orders", "orders", None)
        .await
        .unwrap();
    assert_eq!(snapshot.delta_version, 1, "{name}");

    // A run whose process died is settled from the Delta log: committed after all.
    let third = catalog.begin_run(&who, &start).await.unwrap();
    catalog.committing_run(&who, &third.id, 2).await.unwrap();
    commits.commit(table, 2, &third.id);
    let open = catalog
        .open_runs(&who, "sales.orders", "orders")
        .await
        .unwrap();
    assert_eq!(open.len(), 1);
    catalog.settle_run(&who, &third.id, Some(2)).await.unwrap();
    let snapshot = catalog
        .snapshot(&who, "sales.orders", "orders", None)
        .await
        .unwrap();
    assert_eq!(
        (snapshot.delta_version, snapshot.run),
        (2, third.id.clone())
    );
    // ... or never committed: failed, snapshot unmoved.
    let fourth = catalog.begin_run(&who, &start).await.unwrap();
    let settled = catalog.settle_run(&who, &fourth.id, None).await.unwrap();
    assert_eq!(settled.state, "failed");
    assert!(settled.error.unwrap().contains("interrupted"));

    let runs = catalog.runs(&who, "sales.orders", None, 10).await.unwrap();
    let states: Vec<&str> = runs.iter().map(|r| r.state.as_str()).collect();
    assert_eq!(states.len(), 4, "{name}");
    assert_eq!(
        states.iter().filter(|s| **s == "succeeded").count(),
        2,
        "{name}: {states:?}"
    );
    let events = catalog
        .events(&who, 0, 200, Some("sales.orders"))
        .await
        .unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e.kind.as_str())
        .filter(|k| k.starts_with("run."))
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "run.started").count(), 4);
    assert_eq!(kinds.iter().filter(|k| **k == "run.succeeded").count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == "run.failed").count(), 2);

    // Runs need the publisher's rights, and a published product.
    let consumer = principal(&catalog, "carol", Role::Consumer, None).await;
    assert!(is(
        &catalog.begin_run(&consumer, &start).await,
        ErrorCode::Forbidden
    ));
    let ghost = RunStart {
        product: "sales.ghost".into(),
        ..start.clone()
    };
    assert!(is(
        &catalog.begin_run(&who, &ghost).await,
        ErrorCode::NotFound
    ));
}

async fn access_is_requested_decided_granted_and_revoked(t: TestStore) {
    use mesh_catalog::access::{AccessAsk, AccessDecision};
    let name = t.name;
    let clock = clock();
    let plain = Catalog::with_clock(Arc::clone(&t.store), clock.clone());
    // The standard pack judges requests (a purpose for sensitive data); the fixture product
    // is published without it.
    let catalog = plain
        .clone()
        .with_policies(mesh_policy::standard())
        .unwrap();
    let admin = admin();
    // Orders with an e-mail column the analytics team must not get.
    let mut orders = product("ecommerce.orders", "1.0.0", &["id!", "amount", "email"]).bundle();
    orders.contracts[0].text = orders.contracts[0].text.replace(
        "      - name: email\n        logicalType: string\n        required: false\n",
        "      - name: email\n        logicalType: string\n        required: false\n        classification: confidential\n        tags: [pii]\n",
    );
    plain.publish(&admin, &orders, false).await.unwrap();
    let analyst = principal(&catalog, "ana", Role::Member, Some("analytics")).await;
    let owner = principal(&catalog, "olga", Role::Owner, Some("ecommerce")).await;
    let outsider = principal(&catalog, "hal", Role::Owner, Some("hr")).await;

    let ask = |columns: &[&str], purpose: &str, days: i64| AccessAsk {
        product: "ecommerce.orders".into(),
        port: "orders".into(),
        major: None,
        purpose: purpose.into(),
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        days,
        consumer: None,
    };
    // Bad asks: unknown column, no purpose for confidential data, a year and a day.
    for (bad, why) in [
        (
            ask(&["nope"], "Revenue per customer segment, monthly.", 30),
            "has no column `nope`",
        ),
        (
            ask(&[], "Revenue per customer segment, monthly.", 366),
            "1 to 365 days",
        ),
    ] {
        match catalog.request_access(&analyst, &bad).await {
            Err(e) if e.code() == ErrorCode::BadRequest => {
                let m = e.to_string();
                assert!(m.contains(why), "{name}: {m}");
            }
            other => panic!("{name}: expected `{why}`, got {other:?}"),
        }
    }
    // The policies on requests: a confidential column needs a purpose (blocks); asking for
    // every column when some are sensitive is worth a warning, stored with the request.
    match catalog
        .request_access(&analyst, &ask(&["email"], "churn", 30))
        .await
    {
        Err(AccessError::PolicyViolation(PolicyRefusal { violations, .. })) => {
            assert_eq!(violations.len(), 1, "{name}: {violations:?}");
            assert_eq!(violations[0].policy, "access-purpose");
            assert!(violations[0].message.contains("state a purpose"));
        }
        other => panic!("{name}: expected a policy refusal, got {other:?}"),
    }

    // All columns asked for 60 days; the owner approves without e-mail, for 30.
    let request = catalog
        .request_access(
            &analyst,
            &ask(&[], "Revenue per customer segment, monthly.", 60),
        )
        .await
        .unwrap();
    assert_eq!((request.state.as_str(), request.needed), ("pending", 1));
    assert_eq!(request.policy["sensitive"], serde_json::json!(["email"]));
    // Self-approval and outsiders are refused; a widened approval too.
    assert!(is(
        &catalog
            .decide_access(
                &analyst,
                &request.id,
                &AccessDecision::Approve {
                    columns: None,
                    days: None
                }
            )
            .await,
        ErrorCode::Forbidden
    ));
    assert!(is(
        &catalog
            .decide_access(
                &outsider,
                &request.id,
                &AccessDecision::Approve {
                    columns: None,
                    days: None
                }
            )
            .await,
        ErrorCode::Forbidden
    ));
    assert!(is(
        &catalog
            .decide_access(
                &owner,
                &request.id,
                &AccessDecision::Approve {
                    columns: None,
                    days: Some(90)
                }
            )
            .await,
        ErrorCode::BadRequest
    ));
    let decided = catalog
        .decide_access(
            &owner,
            &request.id,
            &AccessDecision::Approve {
                columns: Some(vec!["id".into(), "amount".into()]),
                days: Some(30),
            },
        )
        .await
        .unwrap();
    assert_eq!(decided.state, "approved", "{name}");
    let grant = decided.grant.unwrap();
    assert_eq!(
        (grant.columns.clone(), grant.active),
        (vec!["id".to_owned(), "amount".to_owned()], true)
    );
    assert_eq!(grant.expires_at, "2026-12-01T12:00:00.000Z");
    assert!(
        catalog
            .active_grant("ana", "ecommerce.orders", "orders", 1)
            .await
            .unwrap()
            .is_some()
    );
    // A decided request is not decided again.
    assert!(is(
        &catalog
            .decide_access(
                &owner,
                &request.id,
                &AccessDecision::Deny { reason: "x".into() }
            )
            .await,
        ErrorCode::Lifecycle
    ));

    // Expiry takes effect by itself; revocation at once.
    clock.set(Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap());
    assert!(
        catalog
            .active_grant("ana", "ecommerce.orders", "orders", 1)
            .await
            .unwrap()
            .is_none(),
        "{name}: expired"
    );
    clock.set(Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap());
    let revoked = catalog
        .revoke_access(&owner, &grant.id, "left the project")
        .await
        .unwrap();
    assert!(!revoked.active);
    assert!(
        catalog
            .active_grant("ana", "ecommerce.orders", "orders", 1)
            .await
            .unwrap()
            .is_none()
    );
    assert!(is(
        &catalog.revoke_access(&owner, &grant.id, "again").await,
        ErrorCode::Lifecycle
    ));

    // Denied with a reason; who sees what.
    let second = catalog
        .request_access(&analyst, &ask(&["amount"], "Forecasting.", 7))
        .await
        .unwrap();
    let denied = catalog
        .decide_access(
            &owner,
            &second.id,
            &AccessDecision::Deny {
                reason: "use the aggregate".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (denied.state.as_str(), denied.reason.as_deref()),
        ("denied", Some("use the aggregate"))
    );
    assert_eq!(
        catalog
            .access_requests(&analyst, None, None)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        catalog
            .access_requests(&outsider, None, None)
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        catalog
            .access_requests(&owner, Some("ecommerce.orders"), Some("denied"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        catalog.access_grants(&analyst, None).await.unwrap().len(),
        1
    );

    // Every step is in the event log.
    let events = catalog
        .events(&admin, 0, 500, Some("ecommerce.orders"))
        .await
        .unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e.kind.as_str())
        .filter(|k| k.starts_with("access."))
        .collect();
    assert_eq!(
        kinds,
        [
            "access.requested",
            "access.granted",
            "access.revoked",
            "access.requested",
            "access.denied"
        ],
        "{name}"
    );
}

async fn contract_approvers_and_restricted_data_need_the_right_people(t: TestStore) {
    use mesh_catalog::access::{AccessAsk, AccessDecision};
    let name = t.name;
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock());
    let admin = admin();
    let mut hr = product("hr.people", "1.0.0", &["id!", "salary"]).bundle();
    hr.contracts[0].text = hr.contracts[0].text.replace(
        "      - name: salary\n        logicalType: string\n        required: false\n",
        "      - name: salary\n        logicalType: string\n        required: false\n        classification: restricted\n",
    );
    hr.contracts[0].text.push_str(
        "roles:\n  - role: hr_reader\n    access: read\n    firstLevelApprovers: olga\n    secondLevelApprovers: paul, quinn\n",
    );
    catalog.publish(&admin, &hr, false).await.unwrap();
    let asker = principal(&catalog, "ana", Role::Member, Some("analytics")).await;
    let olga = principal(&catalog, "olga", Role::Owner, Some("hr")).await;
    let paul = principal(&catalog, "paul", Role::Owner, Some("hr")).await;
    let rita = principal(&catalog, "rita", Role::Owner, Some("hr")).await;
    let request = catalog
        .request_access(
            &asker,
            &AccessAsk {
                product: "hr.people".into(),
                port: "people".into(),
                major: Some(1),
                purpose: "Pay equity study for the works council.".into(),
                columns: vec![],
                days: 14,
                consumer: Some("analytics.pay_equity".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(request.needed, 2, "{name}");
    let approve = AccessDecision::Approve {
        columns: None,
        days: None,
    };
    // An owner the contract does not name may not approve; the first level goes first.
    assert!(is(
        &catalog.decide_access(&rita, &request.id, &approve).await,
        ErrorCode::Forbidden
    ));
    assert!(is(
        &catalog.decide_access(&paul, &request.id, &approve).await,
        ErrorCode::Forbidden
    ));
    let first = catalog
        .decide_access(&olga, &request.id, &approve)
        .await
        .unwrap();
    assert_eq!(
        (first.state.as_str(), first.grant.is_none()),
        ("pending", true)
    );
    assert!(matches!(
        catalog.decide_access(&olga, &request.id, &approve).await,
        Err(e) if matches!(e.code(), ErrorCode::Forbidden | ErrorCode::Lifecycle)
    ));
    let second = catalog
        .decide_access(&paul, &request.id, &approve)
        .await
        .unwrap();
    assert_eq!(second.state, "approved");
    // A product's service identity asked: the grant is the consuming product's.
    assert_eq!(second.grant.unwrap().grantee, "analytics.pay_equity");

    // Only a second level named: any owner approves first, a named one second.
    let mut teams = product("hr.teams", "1.0.0", &["id!"]).bundle();
    teams.contracts[0]
        .text
        .push_str("roles:\n  - role: reader\n    access: read\n    secondLevelApprovers: paul\n");
    catalog.publish(&admin, &teams, false).await.unwrap();
    let ask = AccessAsk {
        product: "hr.teams".into(),
        port: "teams".into(),
        major: None,
        purpose: "Org charts.".into(),
        columns: vec![],
        days: 7,
        consumer: None,
    };
    let request = catalog.request_access(&asker, &ask).await.unwrap();
    assert_eq!(request.needed, 2, "{name}");
    let first = catalog
        .decide_access(&rita, &request.id, &approve)
        .await
        .unwrap();
    assert_eq!(first.state, "pending");
    assert!(is(
        &catalog.decide_access(&olga, &request.id, &approve).await,
        ErrorCode::Forbidden
    ));
    let done = catalog
        .decide_access(&paul, &request.id, &approve)
        .await
        .unwrap();
    assert_eq!(done.state, "approved", "{name}");
}

/// Every governed read is counted per reader and port: the domain sees who reads its product,
/// recommendations follow what its readers also query, and a deprecation reaches its readers.
async fn usage_feeds_recommendations_and_deprecation_notices(t: TestStore) {
    use mesh_catalog::access::ReadablePort;
    use mesh_catalog::audit::ReadOutcome;
    let name = t.name;
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock());
    let admin = admin();
    for id in ["ecommerce.orders", "ecommerce.customers"] {
        let bundle = product(id, "1.0.0", &["id!", "amount"]).bundle();
        catalog.publish(&admin, &bundle, false).await.unwrap();
    }
    let ana = principal(&catalog, "ana", Role::Member, Some("analytics")).await;
    let olga = principal(&catalog, "olga", Role::Owner, Some("ecommerce")).await;
    let port = |product: &str| ReadablePort {
        product: product.into(),
        domain: "ecommerce".into(),
        port: product.rsplit('.').next().unwrap().into(),
        major: 1,
        table: product.rsplit('.').next().unwrap().into(),
        location: "memory://".into(),
        delta_version: 1,
        columns: None,
        masks: Default::default(),
        through: "grant-1".into(),
    };
    catalog
        .record_read(
            &ana.name,
            &[port("ecommerce.orders")],
            &ReadOutcome {
                rows: 10,
                complete: true,
                ..Default::default()
            },
            "SELECT 1",
        )
        .await
        .unwrap();
    catalog
        .record_read(
            &ana.name,
            &[port("ecommerce.orders")],
            &ReadOutcome {
                rows: 1,
                complete: false,
                ..Default::default()
            },
            "SELECT 2",
        )
        .await
        .unwrap();
    catalog
        .record_read(
            &ana.name,
            &[port("ecommerce.customers")],
            &ReadOutcome {
                rows: 5,
                complete: true,
                ..Default::default()
            },
            "SELECT 3",
        )
        .await
        .unwrap();

    let usage = catalog.usage(&olga, "ecommerce.orders").await.unwrap();
    assert_eq!(usage.len(), 1, "{name}: {usage:?}");
    assert_eq!(
        (usage[0].reader.as_str(), usage[0].reads, usage[0].rows_read),
        ("ana", 2, 11),
        "{name}"
    );
    assert!(
        is(
            &catalog.usage(&ana, "ecommerce.orders").await,
            ErrorCode::Forbidden
        ),
        "{name}: only the product's domain sees who reads it"
    );

    let recs = catalog
        .recommendations(&olga, "ecommerce.orders", 10)
        .await
        .unwrap();
    let customers = recs
        .iter()
        .find(|r| r.product == "ecommerce.customers")
        .unwrap_or_else(|| panic!("{name}: {recs:?}"));
    assert!(
        customers.reasons.iter().any(|r| r == "also queried by ana"),
        "{name}: {customers:?}"
    );

    let sunset = (Utc::now() + chrono::Duration::days(400)).date_naive();
    let done = catalog
        .deprecate(
            &olga,
            "ecommerce.orders",
            "1.0.0",
            sunset,
            "Read ecommerce.orders@2.",
        )
        .await
        .unwrap();
    assert_eq!(done.readers, ["ana"], "{name}");
    let events = catalog
        .events(&olga, 0, 1000, Some("ecommerce.orders"))
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "reader.notified" && e.payload["reader"] == "ana"),
        "{name}"
    );
}

/// Checks JSON of a run whose one completeness rule found `missing` of 100 values missing.
fn completeness_checks(missing: u32) -> serde_json::Value {
    let result = if missing == 0 { "passed" } else { "warning" };
    serde_json::json!({
        "result": result,
        "checks": [{
            "category": "quality", "type": "field_missing_values", "field": "amount",
            "name": "amount is mostly there", "result": result,
            "diagnostics": {
                "metric": "missing_count", "value": missing, "row_count": 100,
                "failed_fraction": f64::from(missing) / 100.0,
            },
        }],
    })
}

/// A successful run of `product`'s port, finished now by the catalog's clock.
async fn succeed(catalog: &Catalog, product: &str, version: i64, checks: serde_json::Value) {
    use mesh_catalog::runs::{RunEnd, RunStart};
    let who = admin();
    let port = product.rsplit('.').next().unwrap();
    // The same catalog (its store, clock and caches), with storage and the commit in its log.
    let commits = Arc::new(Commits::default());
    let catalog = &catalog
        .clone()
        .with_storage("file:///data")
        .with_delta_log(Arc::clone(&commits) as _);
    let run = catalog
        .begin_run(
            &who,
            &RunStart {
                product: product.into(),
                port: port.into(),
                location: None,
                inputs: vec![],
                owner: "host:1".into(),
            },
        )
        .await
        .unwrap();
    commits.commit(&run.location, version, &run.id);
    catalog
        .committing_run(&who, &run.id, version)
        .await
        .unwrap();
    catalog
        .finish_run(
            &who,
            &run.id,
            &RunEnd {
                delta_version: Some(version),
                rows_in: Some(100),
                rows_out: Some(100),
                bytes_out: Some(4096),
                checks: Some(checks),
                error: None,
                skipped: None,
            },
        )
        .await
        .unwrap();
}

async fn service_levels_are_measured_and_breaches_recorded_once(t: TestStore) {
    use mesh_catalog::access::ReadablePort;
    use mesh_catalog::audit::ReadOutcome;
    use mesh_catalog::sla::{PortSla, SlaOptions};
    let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
    let hours = |h: i64| t0 + chrono::Duration::hours(h);
    let name = t.name;
    let clock = clock();
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock.clone());
    let other = Catalog::with_clock(t.reopen().await, clock.clone());
    let who = admin();
    // The fixture's contract promises `latency: 1 d` and `availability: 99.5 percent`.
    for id in ["sales.orders", "sales.returns"] {
        let bundle = product(id, "1.0.0", &["id!", "amount"]).bundle();
        catalog.publish(&who, &bundle, false).await.unwrap();
    }
    let all = SlaOptions::default();
    let orders = SlaOptions {
        product: Some("sales.orders".into()),
        ..SlaOptions::default()
    };
    let port_of = |ports: &[PortSla], id: &str| -> PortSla {
        ports.iter().find(|p| p.product == id).cloned().unwrap()
    };
    let objective = |p: &PortSla, property: &str| {
        p.objectives
            .iter()
            .find(|o| o.property == property)
            .cloned()
            .unwrap_or_else(|| panic!("{name}: no {property} objective in {p:?}"))
    };

    // Run at once; an hour later all is well (returns never ran: fresh from publication).
    succeed(&catalog, "sales.orders", 1, completeness_checks(0)).await;
    clock.set(hours(1));
    let report = catalog.sla_check(&who, &all).await.unwrap();
    assert!(report.opened.is_empty(), "{name}: {:?}", report.opened);
    let p = port_of(&report.ports, "sales.orders");
    assert_eq!(objective(&p, "latency").status, "met", "{name}");
    assert_eq!(objective(&p, "completeness").status, "met", "{name}");
    assert_eq!(objective(&p, "availability").status, "unknown", "{name}");
    assert_eq!(p.metrics.freshness_seconds, Some(3600.0), "{name}");
    assert_eq!(p.metrics.completeness, Some(1.0), "{name}");
    assert_eq!(p.metrics.rows, Some(100), "{name}");
    let returns = port_of(&report.ports, "sales.returns");
    assert_eq!(objective(&returns, "latency").status, "met", "{name}");

    // A day and an hour later the data is stale: one violation, whichever monitor (two
    // catalogs on one database, four passes at once) sees it; started when the day ran out.
    clock.set(hours(25));
    let passes = [&catalog, &other, &catalog, &other].map(|c| c.sla_check(&who, &orders));
    let opened: Vec<_> = futures::future::join_all(passes)
        .await
        .into_iter()
        .flat_map(|pass| pass.unwrap().opened)
        .collect();
    assert_eq!(opened.len(), 1, "{name}: {opened:?}");
    assert_eq!(opened[0].property, "latency");
    assert_eq!(opened[0].objective, "<= 1 d");
    assert_eq!(opened[0].started_at, "2026-11-02T12:00:00.000Z", "{name}");
    assert_eq!(opened[0].detected_at, "2026-11-02T13:00:00.000Z", "{name}");
    clock.set(hours(26));
    let report = catalog.sla_check(&who, &all).await.unwrap();
    // Orders stays at one; returns, never run, is as stale as its publication.
    let others: Vec<(&str, &str)> = report
        .opened
        .iter()
        .map(|v| (v.product.as_str(), v.property.as_str()))
        .collect();
    assert_eq!(others, [("sales.returns", "latency")], "{name}");
    assert!(report.recovered.is_empty(), "{name}");
    let p = port_of(&report.ports, "sales.orders");
    assert_eq!(p.status, "violated");
    let latency = objective(&p, "latency");
    assert_eq!(
        latency.violation.as_deref(),
        Some(opened[0].id.as_str()),
        "{name}"
    );
    assert_eq!(latency.since.as_deref(), Some("2026-11-02T12:00:00.000Z"));
    assert_eq!(
        objective(&port_of(&report.ports, "sales.returns"), "latency")
            .observed
            .as_deref(),
        Some("26 h since the publication, never run"),
        "{name}"
    );

    // A new run: fresh again, so it recovers, once; but a quarter of `amount` is missing.
    clock.set(hours(27));
    succeed(&catalog, "sales.orders", 2, completeness_checks(25)).await;
    let report = catalog.sla_check(&who, &orders).await.unwrap();
    let recovered: Vec<&str> = report
        .recovered
        .iter()
        .map(|v| v.property.as_str())
        .collect();
    let newly: Vec<&str> = report.opened.iter().map(|v| v.property.as_str()).collect();
    assert_eq!(
        (recovered, newly),
        (vec!["latency"], vec!["completeness"]),
        "{name}"
    );
    let p = port_of(&report.ports, "sales.orders");
    assert_eq!(p.metrics.completeness, Some(0.75), "{name}");
    assert_eq!(
        objective(&p, "completeness").observed.as_deref(),
        Some("75% complete; failing: amount is mostly there")
    );
    clock.set(hours(28));
    let report = catalog.sla_check(&who, &orders).await.unwrap();
    assert!(
        report.opened.is_empty() && report.recovered.is_empty(),
        "{name}"
    );

    // Exactly one breach and one recovery of freshness in the event log, and the history.
    let events = catalog
        .events(&who, 0, 1000, Some("sales.orders"))
        .await
        .unwrap();
    let count = |kind: &str, property: &str| {
        events
            .iter()
            .filter(|e| e.kind == kind && e.payload["property"] == property)
            .count()
    };
    assert_eq!(count("sla.violated", "latency"), 1, "{name}");
    assert_eq!(count("sla.recovered", "latency"), 1, "{name}");
    assert_eq!(count("sla.violated", "completeness"), 1, "{name}");
    let history = catalog
        .sla_violations(&who, Some("sales.orders"), 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 2, "{name}");
    assert_eq!(history[0].property, "completeness");
    assert_eq!(history[0].ended_at, None);
    assert_eq!(
        history[1].ended_at.as_deref(),
        Some("2026-11-02T15:00:00.000Z")
    );

    // Availability from reads that failed: 8 good reads, 2 failed, and a failed probe.
    let port = ReadablePort {
        product: "sales.returns".into(),
        domain: "sales".into(),
        port: "returns".into(),
        major: 1,
        table: "returns".into(),
        location: "memory://".into(),
        delta_version: 1,
        columns: None,
        masks: Default::default(),
        through: "owner".into(),
    };
    for i in 1..=10 {
        let error = (i > 8).then_some("object not found: part-0001.parquet");
        let read = ReadOutcome {
            rows: 10,
            complete: error.is_none(),
            latency_ms: f64::from(i) * 10.0,
            error,
        };
        catalog
            .record_read(&who.name, std::slice::from_ref(&port), &read, "SELECT 1")
            .await
            .unwrap();
    }
    let probe = mesh_catalog::store::ObservationRow {
        product: "sales.returns".into(),
        port: "returns".into(),
        major: 1,
        at: "2026-11-02T16:00:00.000Z".into(),
        kind: "probe".into(),
        latency_ms: 3.0,
        rows_read: None,
        error: Some("the Delta log is unreachable".into()),
    };
    catalog
        .record_probes(&who, std::slice::from_ref(&probe))
        .await
        .unwrap();
    let consumer = principal(&catalog, "carl", Role::Consumer, None).await;
    let report = catalog.sla(&consumer, &all).await.unwrap();
    let p = port_of(&report.ports, "sales.returns");
    let m = &p.metrics;
    assert_eq!(
        (m.reads, m.read_errors, m.probes, m.probe_errors),
        (10, 2, 1, 1)
    );
    // Reads and probes are judged apart, the worse counts: 80% of reads, 0% of probes.
    assert_eq!(m.availability, Some(0.0), "{name}");
    assert_eq!(m.error_rate, Some(0.2));
    assert_eq!(
        (m.latency_p50_ms, m.latency_p95_ms, m.latency_p99_ms),
        (Some(40.0), Some(80.0), Some(80.0))
    );
    let availability = objective(&p, "availability");
    assert_eq!(availability.status, "violated");
    assert_eq!(availability.objective, ">= 99.5 percent");
    assert_eq!(
        availability.observed.as_deref(),
        Some("80% of 10 reads, 0% of 1 probes")
    );
    // 10 reads at 99.5% allow 0.05 failures (2 overspend it 40 times); one probe allows
    // 0.005 (1 overspends it 200 times): the worse is left.
    let left = availability.budget_remaining.unwrap();
    assert!((left - (1.0 - 1.0 / 0.005)).abs() < 1e-9, "{name}: {left}");
    // Reading records nothing; only admins (the monitor) record.
    assert!(report.opened.is_empty());
    assert!(is(
        &catalog.sla_check(&consumer, &all).await,
        ErrorCode::Forbidden
    ));
    let recorded = catalog.sla_check(&who, &all).await.unwrap();
    let opened: Vec<(&str, &str)> = recorded
        .opened
        .iter()
        .map(|v| (v.product.as_str(), v.property.as_str()))
        .collect();
    assert_eq!(opened, [("sales.returns", "availability")], "{name}");

    // Past the window the failures no longer count; they are kept for longer windows, and
    // pruned after 90 days.
    let kept = || async {
        let mut tx = t.store.read().await.unwrap();
        let stats = tx
            .observation_stats_between("sales.returns", "sales.returns", "2000-01-01T00:00:00.000Z")
            .await
            .unwrap();
        stats.first().map_or(0, |s| s.reads + s.probes)
    };
    clock.set(hours(26 + 29 * 24));
    let report = catalog.sla_check(&who, &all).await.unwrap();
    let p = port_of(&report.ports, "sales.returns");
    assert_eq!(p.metrics.reads + p.metrics.probes, 0, "{name}");
    assert_eq!(objective(&p, "availability").status, "unknown");
    // Still open: nothing says it recovered.
    assert!(objective(&p, "availability").violation.is_some(), "{name}");
    assert_eq!(kept().await, 11, "{name}");
    clock.set(hours(26 + 91 * 24));
    catalog.sla_check(&who, &all).await.unwrap();
    assert_eq!(kept().await, 0, "{name}");
}

/// Role bindings and domains as the platform's own state (issue 26): admins give and take
/// roles without tokens, the last global admin stays, domains exist before their products.
async fn roles_and_domains_are_platform_state(t: TestStore) {
    use mesh_catalog::platform::{Binding, PlatformError};
    let name = t.name;
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock());
    let who = admin();
    let bind = |p: &str, r: &str, d: &str| Binding {
        principal: p.into(),
        role: r.into(),
        domain: d.into(),
    };
    assert!(
        catalog
            .bind(&who, &bind("Ana@Example.com", "owner", "sales"))
            .await
            .unwrap()
    );
    assert!(
        !catalog
            .bind(&who, &bind("ana@example.com", "owner", "sales"))
            .await
            .unwrap(),
        "{name}: twice is once"
    );
    assert!(
        catalog
            .bind(&who, &bind("olga", "admin", "*"))
            .await
            .unwrap()
    );
    let all = catalog.role_bindings(&who).await.unwrap();
    assert!(
        all.contains(&bind("ana@example.com", "owner", "sales")),
        "{name}: {all:?}"
    );
    // What a binding gives, a signed-in principal of that name holds.
    let ana = catalog
        .federated(
            "ana@example.com",
            vec![],
            serde_json::json!({}),
            None,
            false,
        )
        .await
        .unwrap();
    assert!(ana.has(Role::Owner, Some("sales")), "{name}");
    assert!(!ana.has(Role::Owner, Some("hr")), "{name}");
    // Only admins change roles; nonsense is refused with what would be right.
    assert!(is(
        &catalog
            .bind(&ana, &bind("ana@example.com", "admin", "*"))
            .await,
        ErrorCode::Forbidden
    ));
    assert!(is(&catalog.role_bindings(&ana).await, ErrorCode::Forbidden));
    for bad in [
        bind("ana", "king", "sales"),
        bind("ana", "admin", "sales"),
        bind("ana", "owner", "Not A Domain"),
        bind("", "owner", "sales"),
        bind("a\nb", "owner", "sales"),
        bind(&"x".repeat(300), "owner", "sales"),
    ] {
        let r = catalog.bind(&who, &bad).await;
        assert!(
            matches!(r, Err(PlatformError::Invalid(_))),
            "{name}: {bad:?} gave {r:?}"
        );
    }
    assert!(
        catalog
            .unbind(&who, &bind("ana@example.com", "owner", "sales"))
            .await
            .unwrap()
    );
    assert!(
        !catalog
            .unbind(&who, &bind("ana@example.com", "owner", "sales"))
            .await
            .unwrap()
    );
    // The last global admin cannot go; with another one, it can.
    let r = catalog.unbind(&who, &bind("olga", "admin", "*")).await;
    assert!(
        matches!(r, Err(PlatformError::LastAdmin { .. })),
        "{name}: {r:?}"
    );
    assert!(
        catalog
            .bind(&who, &bind("piet", "admin", "*"))
            .await
            .unwrap()
    );
    assert!(
        catalog
            .unbind(&who, &bind("olga", "admin", "*"))
            .await
            .unwrap()
    );
    // Domains: created with a description, updated, unchanged is nothing.
    let d = catalog
        .put_domain(&who, "hr", Some("People."))
        .await
        .unwrap();
    assert_eq!(
        d.map(|d| d.description),
        Some(Some("People.".to_owned())),
        "{name}"
    );
    assert!(
        catalog
            .put_domain(&who, "hr", Some("People."))
            .await
            .unwrap()
            .is_none()
    );
    let d = catalog.put_domain(&who, "hr", None).await.unwrap();
    assert_eq!(d.map(|d| d.description), Some(None), "{name}");
    assert!(matches!(
        catalog.put_domain(&who, "HR!", None).await,
        Err(PlatformError::Invalid(_))
    ));
    assert!(is(
        &catalog.put_domain(&ana, "sales", None).await,
        ErrorCode::Forbidden
    ));
    let kinds: Vec<String> = t
        .store
        .read()
        .await
        .unwrap()
        .events(0, 100, None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for kind in [
        "role.bound",
        "role.unbound",
        "domain.created",
        "domain.updated",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{name}: {kind} in {kinds:?}"
        );
    }
}

on_every_backend!(
    store_transactions_and_conflicts,
    publish_show_and_republish,
    breaking_change_needs_a_major_version,
    deprecation_with_sunset_notifies_consumers,
    parallel_publishers_lose_nothing,
    roles_decide_who_may_do_what,
    ports_and_history_cannot_be_sidestepped,
    policies_block_warn_or_audit_at_publish,
    audit_reports_compliance_per_domain_and_policy,
    domain_and_global_policies_are_versioned_in_the_catalog,
    runs_move_the_snapshot_only_when_they_succeed,
    access_is_requested_decided_granted_and_revoked,
    contract_approvers_and_restricted_data_need_the_right_people,
    usage_feeds_recommendations_and_deprecation_notices,
    service_levels_are_measured_and_breaches_recorded_once,
    roles_and_domains_are_platform_state,
);

/// Hole 9 of issue 18: a reader's rights are decided on every grant it holds, not the first
/// thousand.
async fn hole_9_readable_ports_see_every_grant(t: TestStore) {
    use mesh_catalog::access::Reader;
    use mesh_catalog::store::{GrantRow, SnapshotRow};
    let name = t.name;
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock());
    let who = admin();
    catalog
        .publish(
            &who,
            &product("sales.orders", "1.0.0", &["id!"]).bundle(),
            false,
        )
        .await
        .unwrap();
    let ana = principal(&catalog, "ana", Role::Consumer, None).await;
    let grant = |i: usize, product: &str| GrantRow {
        id: format!("g{i:05}"),
        request: format!("r{i:05}"),
        product: product.into(),
        port: "orders".into(),
        major: 1,
        grantee: "ana".into(),
        columns: "[]".into(),
        granted_by: "olga".into(),
        granted_at: format!("2026-10-01T00:{:02}:{:02}.000Z", i / 60 % 60, i % 60),
        expires_at: "2027-01-01T00:00:00.000Z".into(),
        revoked_at: None,
        revoked_by: None,
        reason: None,
    };
    let mut tx = t.store.write().await.unwrap();
    tx.put_snapshot(&SnapshotRow {
        product: "sales.orders".into(),
        port: "orders".into(),
        major: 1,
        version: "1.0.0".into(),
        run: "r".into(),
        location: "/nowhere".into(),
        delta_version: 0,
        updated_at: "2026-10-01T00:00:00.000Z".into(),
    })
    .await
    .unwrap();
    // The real grant is the oldest; a thousand newer ones cover ports that are gone.
    tx.insert_grant(&grant(0, "sales.orders")).await.unwrap();
    for i in 1..=1000 {
        tx.insert_grant(&grant(i, &format!("gone.p{i}")))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let readable = catalog
        .readable_ports(Reader::Principal(&ana))
        .await
        .unwrap();
    assert!(
        readable.iter().any(|p| p.product == "sales.orders"),
        "{name}: {readable:?}"
    );
}

on_every_backend!(hole_9_readable_ports_see_every_grant);

/// Issue 19: rate limits kept in the catalog hold across servers: 24 takers at once, on two
/// stores of one database (two servers), get exactly the bucket's burst.
async fn rate_limits_are_shared_by_every_server(t: TestStore) {
    let name = t.name;
    let other = t.reopen().await;
    let clock = clock();
    let one = Catalog::with_clock(Arc::clone(&t.store), clock.clone());
    let two = Catalog::with_clock(other, clock);
    let takes = (0..24).map(|i| {
        let catalog = if i % 2 == 0 { one.clone() } else { two.clone() };
        async move { catalog.take_rate("queries:ana", 1, 5).await.unwrap() }
    });
    let answers = futures::future::join_all(takes).await;
    let granted = answers.iter().filter(|a| a.is_none()).count();
    assert_eq!(granted, 5, "{name}: {answers:?}");
    assert!(
        answers.iter().flatten().all(|wait| wait.as_secs() <= 60),
        "{name}: one token a minute: {answers:?}"
    );
    // Another key has its own bucket.
    assert_eq!(
        one.take_rate("queries:bob", 1, 5).await.unwrap(),
        None,
        "{name}"
    );
}

on_every_backend!(rate_limits_are_shared_by_every_server);

/// Hole 2 of issue 18: external locations. Only admins register one, for one domain; never
/// managed storage or a folder around it; the standard policies judge the scheme; a source is
/// allowed only under a location of its own domain; every change is audited.
async fn hole_2_sources_read_only_their_domains_locations(t: TestStore) {
    use mesh_catalog::locations::{LocationError, NewLocation};
    use mesh_policy::standard;
    let name = t.name;
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock())
        .with_storage("/srv/mesh/data/")
        .with_policies(standard())
        .unwrap();
    let who = admin();
    let sales_owner = principal(&catalog, "frank", Role::Owner, Some("sales")).await;
    let hr_owner = principal(&catalog, "dave", Role::Owner, Some("hr")).await;
    let new = |name: &str, url: &str, domain: &str| NewLocation {
        name: name.into(),
        url: url.into(),
        domain: domain.into(),
        replace: false,
    };
    let landing = new("landing", "S3://raw/sales/", "Sales");
    assert!(
        matches!(
            catalog.add_location(&sales_owner, &landing).await,
            Err(LocationError::Denied(_))
        ),
        "{name}: a domain's owner registers no location"
    );
    let added = catalog.add_location(&who, &landing).await.unwrap();
    assert_eq!(
        (added.url.as_str(), added.domain.as_str()),
        ("s3://raw/sales", "sales"),
        "{name}"
    );
    assert!(
        is(
            &catalog.add_location(&who, &landing).await,
            ErrorCode::Lifecycle
        ),
        "{name}: names are unique"
    );
    for (url, code) in [
        ("/srv/mesh/data/hr/people", ErrorCode::BadRequest),
        ("file:///srv/mesh", ErrorCode::BadRequest),
        ("/srv/../mesh/data", ErrorCode::BadRequest),
        ("relative/folder", ErrorCode::BadRequest),
        ("http://intranet/exports", ErrorCode::Policy),
    ] {
        let result = catalog.add_location(&who, &new("x", url, "sales")).await;
        assert!(is(&result, code), "{name}: {url}: {result:?}");
    }
    assert!(
        is(
            &catalog
                .add_location(&who, &new("bad name!", "s3://b", "sales"))
                .await,
            ErrorCode::BadRequest
        ),
        "{name}"
    );
    catalog
        .add_location(&who, &new("people", "/srv/hr-exports", "hr"))
        .await
        .unwrap();

    // Each domain sees its own; admins every one.
    let names = |v: Vec<mesh_catalog::locations::LocationView>| {
        v.into_iter().map(|l| l.name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(catalog.locations(&sales_owner).await.unwrap()),
        ["landing"],
        "{name}"
    );
    assert_eq!(
        names(catalog.locations(&who).await.unwrap()).len(),
        2,
        "{name}"
    );

    // A source is allowed under its own domain's location, never another's or managed storage.
    let source = |domain: &'static str, url: &'static str| {
        let catalog = &catalog;
        async move {
            catalog
                .source_location(&format!("{domain}.p"), domain, "raw", url)
                .await
        }
    };
    assert_eq!(
        source("sales", "s3://raw/sales/2026/orders.parquet")
            .await
            .unwrap()
            .name,
        "landing",
        "{name}"
    );
    for (domain, url) in [
        ("sales", "s3://raw/salesforce/x.csv"),
        ("sales", "/srv/hr-exports/people.csv"),
        ("hr", "s3://raw/sales/orders.csv"),
        ("sales", "/srv/mesh/data/hr/people/people/v1"),
        ("sales", "s3://raw/sales/../hr/x.csv"),
    ] {
        let result = source(domain, url).await;
        assert!(
            matches!(result, Err(LocationError::Unregistered { .. })),
            "{name}: {domain} reads {url}: {result:?}"
        );
    }
    assert!(
        matches!(
            catalog.remove_location(&hr_owner, "people").await,
            Err(LocationError::Denied(_))
        ),
        "{name}"
    );
    catalog.remove_location(&who, "people").await.unwrap();
    assert!(
        source("hr", "/srv/hr-exports/people.csv").await.is_err(),
        "{name}: a removed location allows nothing"
    );
    assert!(
        is(
            &catalog.remove_location(&who, "people").await,
            ErrorCode::NotFound
        ),
        "{name}"
    );
    let events = catalog.events(&who, 0, 100, None).await.unwrap();
    let kinds: Vec<_> = events
        .iter()
        .filter(|e| e.kind.starts_with("location."))
        .map(|e| (e.kind.as_str(), e.subject.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("location.added", "landing"),
            ("location.added", "people"),
            ("location.removed", "people")
        ],
        "{name}"
    );
}

on_every_backend!(hole_2_sources_read_only_their_domains_locations);

/// Hole 2, second round (a review of the first fix): a source that percent-encodes `..`
/// (`s3://raw/sales/%2e%2e/hr/...`, which URL parsing resolves) passed the string check; a
/// location could hold glob characters that match its siblings; `s3a://` named managed storage
/// under another scheme; and a managed storage root given with `.` segments was not recognized
/// at all, so the check was skipped.
async fn hole_2_locations_cannot_be_climbed_out_of_by_encoding(t: TestStore) {
    use mesh_catalog::locations::{LocationError, NewLocation};
    let name = t.name;
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock()).with_storage("s3://lake/mesh");
    let who = admin();
    let new = |name: &str, url: &str| NewLocation {
        name: name.into(),
        url: url.into(),
        domain: "sales".into(),
        replace: false,
    };
    catalog
        .add_location(&who, &new("landing", "s3://raw/sales"))
        .await
        .unwrap();
    for url in [
        "s3://raw/sales/%2e%2e/hr/people.csv",
        "s3://raw/sales/%2E%2E/hr/people.csv",
        "s3://raw/sales/.%2e/hr/people.csv",
        "s3://raw/sales/%252e%252e/hr/people.csv",
    ] {
        let result = catalog
            .source_location("sales.p", "sales", "raw", url)
            .await;
        assert!(
            matches!(result, Err(LocationError::Unregistered { .. })),
            "{name}: {url}: {result:?}"
        );
    }
    for (url, why) in [
        ("s3://raw/land*", "glob"),
        ("s3://raw/[a-z]ales", "glob"),
        ("s3://raw/sales%2f..", "percent"),
        ("s3a://lake", "managed storage under another scheme"),
        ("S3A://LAKE/mesh/sales", "managed storage in capitals"),
    ] {
        let result = catalog.add_location(&who, &new("x", url)).await;
        assert!(result.is_err(), "{name}: {url} ({why}) was registered");
    }

    // Storage given as `file://./x` or with `.` segments is still managed storage.
    let local =
        Catalog::with_clock(Arc::clone(&t.store), clock()).with_storage("/srv/ws/./.mesh/data/");
    for url in ["/srv/ws", "/srv/ws/.mesh/data/hr"] {
        let result = local.add_location(&who, &new("y", url)).await;
        assert!(
            matches!(result, Err(LocationError::Managed { .. })),
            "{name}: {url}: {result:?}"
        );
    }
}

on_every_backend!(hole_2_locations_cannot_be_climbed_out_of_by_encoding);

/// A location's URL changes in one step: the new one judged as any new location, the old one kept
/// when the new one is refused, one event saying what it was.
async fn a_location_is_replaced_in_one_step(t: TestStore) {
    use mesh_catalog::locations::{LocationError, NewLocation};
    let name = t.name;
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock()).with_storage("s3://lake/mesh");
    let who = admin();
    let new = |url: &str, replace: bool| NewLocation {
        name: "landing".into(),
        url: url.into(),
        domain: "sales".into(),
        replace,
    };
    catalog
        .add_location(&who, &new("s3://raw/sales", false))
        .await
        .unwrap();
    // Without `replace`, the name is taken.
    assert!(
        catalog
            .add_location(&who, &new("s3://raw/sales2", false))
            .await
            .is_err(),
        "{name}"
    );
    // A refused new URL (managed storage) leaves the old one.
    let refused = catalog
        .add_location(&who, &new("s3://lake/mesh/sales", true))
        .await;
    assert!(
        matches!(refused, Err(LocationError::Managed { .. })),
        "{name}: {refused:?}"
    );
    let urls = |list: Vec<mesh_catalog::locations::LocationView>| -> Vec<String> {
        list.into_iter().map(|l| l.url).collect()
    };
    assert_eq!(
        urls(catalog.locations(&who).await.unwrap()),
        ["s3://raw/sales"],
        "{name}"
    );
    catalog
        .add_location(&who, &new("s3://raw/sales-v2", true))
        .await
        .unwrap();
    assert_eq!(
        urls(catalog.locations(&who).await.unwrap()),
        ["s3://raw/sales-v2"],
        "{name}"
    );
    // Replacing a name not registered registers it.
    let mut other = new("s3://raw/hr", true);
    other.name = "people".into();
    catalog.add_location(&who, &other).await.unwrap();
    let events = catalog.events(&who, 0, 100, None).await.unwrap();
    let kinds: Vec<_> = events
        .iter()
        .filter(|e| e.kind.starts_with("location."))
        .map(|e| (e.kind.as_str(), e.subject.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("location.added", "landing"),
            ("location.changed", "landing"),
            ("location.added", "people")
        ],
        "{name}"
    );
    let changed = events
        .iter()
        .find(|e| e.kind == "location.changed")
        .unwrap();
    assert_eq!(
        changed.payload["previous"]["url"], "s3://raw/sales",
        "{name}"
    );
}

on_every_backend!(a_location_is_replaced_in_one_step);

/// Issue 19: while the catalog database restarts or cannot be reached, every operation's error
/// is a 503 a client may retry (`busy`), not a 500 — in every area, not only the store's own.
#[test]
fn an_unreachable_catalog_database_is_a_retryable_error() {
    use mesh_catalog::ToProblem as _;
    use mesh_catalog::store::StoreError;
    let gone = || {
        StoreError::Database(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )))
    };
    let waited = || StoreError::Database(sqlx::Error::PoolTimedOut);
    for e in [gone(), waited()] {
        assert_eq!(e.problem().status, 503, "{e}");
    }
    let areas: Vec<Box<dyn mesh_catalog::ToProblem>> = vec![
        Box::new(mesh_catalog::runs::RunsError::Store(gone())),
        Box::new(mesh_catalog::publish::PublishError::Store(gone())),
        Box::new(mesh_catalog::access::AccessError::Store(gone())),
        Box::new(mesh_catalog::search::SearchError::Store(gone())),
        Box::new(mesh_catalog::products::ProductError::Store(gone())),
        Box::new(mesh_catalog::tokens::TokenError::Store(gone())),
        Box::new(mesh_catalog::audit::AuditError::Store(gone())),
        Box::new(mesh_catalog::lineage::LineageError::Store(gone())),
    ];
    for e in areas {
        assert_eq!(e.problem().status, 503, "{e}");
    }
    // A real failure stays a 500.
    assert_eq!(StoreError::Corrupt("x".into()).problem().status, 500);
}

/// Issue 21: two servers on one catalog (two stores of one database) claim the same schedule
/// slots at once, 3 products x 100 slots, each twice: every slot is claimed exactly once, only
/// its claimer records how it ended, and the ledger lists a product's slots latest first.
async fn schedule_slots_are_claimed_once_by_every_server(t: TestStore) {
    use mesh_catalog::schedule::{SlotEnd, SlotState};
    fn end<'a>(
        state: SlotState,
        attempts: u32,
        run_id: Option<&'a str>,
        fingerprint: Option<&'a str>,
    ) -> SlotEnd<'a> {
        SlotEnd {
            state,
            attempts,
            run_id,
            fingerprint,
            error: None,
        }
    }
    let name = t.name;
    let other = t.reopen().await;
    let clock = clock();
    let one = Catalog::with_clock(Arc::clone(&t.store), clock.clone());
    let two = Catalog::with_clock(other, clock);
    let base = chrono::DateTime::parse_from_rfc3339("2026-12-05T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let products = ["sales.orders", "sales.refunds", "ops.stock"];
    let claims = (0..100i64).flat_map(|slot| {
        products.iter().flat_map(move |product| {
            [("server-1", 0usize), ("server-2", 1usize)].map(|(server, which)| {
                (
                    *product,
                    base + chrono::Duration::minutes(15 * slot),
                    server,
                    which,
                )
            })
        })
    });
    let tries = claims.map(|(product, at, server, which)| {
        let catalog = if which == 0 { one.clone() } else { two.clone() };
        async move {
            let won = catalog
                .claim_slot(product, at, server, "cron")
                .await
                .unwrap();
            (product, at, server, won)
        }
    });
    let outcomes = futures::future::join_all(tries).await;
    let won: Vec<_> = outcomes.iter().filter(|o| o.3).collect();
    assert_eq!(won.len(), 300, "{name}: one claim per slot");
    let mut seen = std::collections::HashSet::new();
    for (product, at, _, _) in &won {
        assert!(
            seen.insert((*product, *at)),
            "{name}: {product} {at} claimed twice"
        );
    }
    // Only the claimer finishes a slot.
    let (product, at, server, _) = won[0];
    let stranger = if *server == "server-1" {
        "server-2"
    } else {
        "server-1"
    };
    assert!(
        !one.finish_slot(
            product,
            *at,
            stranger,
            &end(SlotState::Succeeded, 1, None, None)
        )
        .await
        .unwrap(),
        "{name}"
    );
    assert!(
        two.finish_slot(
            product,
            *at,
            server,
            &SlotEnd {
                error: Some("the transform failed"),
                ..end(SlotState::Failed, 3, Some("run-1"), Some("f1"))
            }
        )
        .await
        .unwrap(),
        "{name}"
    );
    let listed = one.slots(product, 5).await.unwrap();
    assert_eq!(listed.len(), 5, "{name}");
    assert!(
        listed.windows(2).all(|w| w[0].slot_at > w[1].slot_at),
        "{name}: latest first: {listed:?}"
    );
    let finished = one.slots(product, 1000).await.unwrap();
    let slot = finished
        .iter()
        .find(|s| s.state == SlotState::Failed)
        .unwrap_or_else(|| panic!("{name}: {finished:?}"));
    assert_eq!(
        (slot.attempts, slot.run_id.as_deref(), slot.error.as_deref()),
        (3, Some("run-1"), Some("the transform failed")),
        "{name}"
    );
    assert!(slot.finished_at.is_some(), "{name}");
    // A failed slot's fingerprint is not what the next slot compares with; a success's is.
    assert_eq!(one.last_fingerprint(product).await.unwrap(), None, "{name}");
    let (_, later, by, _) = won
        .iter()
        .find(|w| w.0 == *product && w.1 > *at)
        .unwrap_or_else(|| panic!("{name}: a later slot of {product}"));
    let catalog = if *by == "server-1" { &one } else { &two };
    assert!(
        catalog
            .finish_slot(
                product,
                *later,
                by,
                &end(SlotState::Skipped, 1, None, Some("f2"))
            )
            .await
            .unwrap(),
        "{name}"
    );
    assert_eq!(
        two.last_fingerprint(product).await.unwrap().as_deref(),
        Some("f2"),
        "{name}"
    );
}

on_every_backend!(schedule_slots_are_claimed_once_by_every_server);

/// Issue 23: a credential minted for a grant reads through that grant only — its port, its
/// columns — does nothing else, and dies with its grant (revoked or expired) or on its own.
async fn credentials_are_scoped_to_their_grant(t: TestStore) {
    use mesh_catalog::Action;
    use mesh_catalog::access::{AccessAsk, AccessDecision, Reader};
    use mesh_catalog::credentials::{CredentialAsk, MAX_LIVE_PER_GRANT};
    use mesh_catalog::store::SnapshotRow;
    use mesh_catalog::tokens::TokenError;
    let name = t.name;
    let clock = clock();
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock.clone());
    let admin = admin();
    for id in ["ecommerce.orders", "ecommerce.customers"] {
        catalog
            .publish(
                &admin,
                &product(id, "1.0.0", &["id!", "amount"]).bundle(),
                false,
            )
            .await
            .unwrap();
    }
    let mut tx = t.store.write().await.unwrap();
    for (product, port) in [
        ("ecommerce.orders", "orders"),
        ("ecommerce.customers", "customers"),
    ] {
        tx.put_snapshot(&SnapshotRow {
            product: product.into(),
            port: port.into(),
            major: 1,
            version: "1.0.0".into(),
            run: "r".into(),
            location: format!("/data/{port}"),
            delta_version: 0,
            updated_at: "2026-10-01T00:00:00.000Z".into(),
        })
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let owner = principal(&catalog, "olga", Role::Owner, Some("ecommerce")).await;
    let ana = principal(&catalog, "ana", Role::Member, Some("analytics")).await;
    let bob = principal(&catalog, "bob", Role::Member, Some("analytics")).await;
    let eve = principal(&catalog, "eve", Role::Member, Some("hr")).await;
    let ask = |product: &str, port: &str, consumer: Option<&str>| AccessAsk {
        product: product.into(),
        port: port.into(),
        major: None,
        purpose: "Revenue per customer segment, monthly.".into(),
        columns: vec!["id".into()],
        days: 30,
        consumer: consumer.map(str::to_owned),
    };
    let approve = AccessDecision::Approve {
        columns: None,
        days: None,
    };
    // The dashboard product's service identity is granted orders; ana, as a person, customers.
    let r = catalog
        .request_access(
            &ana,
            &ask("ecommerce.orders", "orders", Some("analytics.dashboard")),
        )
        .await
        .unwrap();
    let grant = catalog
        .decide_access(&owner, &r.id, &approve)
        .await
        .unwrap()
        .grant
        .unwrap();
    let r = catalog
        .request_access(&ana, &ask("ecommerce.customers", "customers", None))
        .await
        .unwrap();
    let own = catalog
        .decide_access(&owner, &r.id, &approve)
        .await
        .unwrap()
        .grant
        .unwrap();

    // Who mints: the people of the consuming domain (bob too: he runs it); not the approver,
    // not another domain.
    let labelled = |label: &str| CredentialAsk {
        label: Some(label.into()),
        days: None,
    };
    for who in [&owner, &eve] {
        assert!(
            is(
                &catalog
                    .mint_credential(who, &grant.id, &labelled("x"))
                    .await,
                ErrorCode::Forbidden
            ),
            "{name}: {} minted",
            who.name
        );
    }
    let minted = catalog
        .mint_credential(&bob, &grant.id, &labelled("dashboard-prod"))
        .await
        .unwrap();
    assert_eq!(minted.credential.principal, "analytics.dashboard");
    assert_eq!(minted.credential.expires_at, grant.expires_at, "{name}");
    assert!(minted.credential.active);

    // The credential: data through its grant, nothing else — not the catalog, not ana's other
    // grant, not a request, not another credential.
    let service = catalog.authenticate(&minted.secret).await.unwrap();
    assert_eq!(service.grant.as_deref(), Some(grant.id.as_str()));
    for action in [
        Action::Read,
        Action::ReadEvents,
        Action::ReportLineage,
        Action::Administer,
    ] {
        assert!(!service.may(action), "{name}: {action}");
    }
    assert!(service.may(Action::ReadData));
    let readable = catalog
        .readable_ports(Reader::Principal(&service))
        .await
        .unwrap();
    assert_eq!(readable.len(), 1, "{name}: {readable:?}");
    assert_eq!(
        (readable[0].port.as_str(), readable[0].columns.clone()),
        ("orders", Some(vec!["id".to_owned()]))
    );
    assert!(is(
        &catalog
            .request_access(&service, &ask("ecommerce.customers", "customers", None))
            .await,
        ErrorCode::Forbidden
    ));
    assert!(is(
        &catalog
            .mint_credential(&service, &grant.id, &CredentialAsk::default())
            .await,
        ErrorCode::Forbidden
    ));
    assert!(is(
        &catalog.products(&service, &Default::default()).await,
        ErrorCode::Forbidden
    ));
    // A person's credential reads their grant only, not their domain's ports or other grants.
    let ana_cred = catalog
        .mint_credential(&ana, &own.id, &labelled("notebook"))
        .await
        .unwrap();
    let notebook = catalog.authenticate(&ana_cred.secret).await.unwrap();
    let readable = catalog
        .readable_ports(Reader::Principal(&notebook))
        .await
        .unwrap();
    assert_eq!(
        readable.iter().map(|p| p.port.as_str()).collect::<Vec<_>>(),
        ["customers"],
        "{name}"
    );

    // Bad asks.
    for bad in ["", "has space", &"x".repeat(65)] {
        let r = catalog
            .mint_credential(&bob, &grant.id, &labelled(bad))
            .await;
        assert!(
            bad.is_empty() || is(&r, ErrorCode::BadRequest),
            "{name}: {bad:?}: {r:?}"
        );
    }
    let too_long = CredentialAsk {
        label: None,
        days: Some(400),
    };
    assert!(is(
        &catalog.mint_credential(&bob, &grant.id, &too_long).await,
        ErrorCode::BadRequest
    ));
    assert!(is(
        &catalog
            .mint_credential(&bob, "no-such-grant", &CredentialAsk::default())
            .await,
        ErrorCode::NotFound
    ));
    // A bounded number per grant.
    let live = catalog
        .credentials(&bob, Some(&grant.id))
        .await
        .unwrap()
        .iter()
        .filter(|c| c.active)
        .count();
    for _ in live..MAX_LIVE_PER_GRANT {
        catalog
            .mint_credential(&bob, &grant.id, &CredentialAsk::default())
            .await
            .unwrap();
    }
    assert!(is(
        &catalog
            .mint_credential(&bob, &grant.id, &CredentialAsk::default())
            .await,
        ErrorCode::Lifecycle
    ));

    // Who sees them: the minters' side and the port's owner, not another domain.
    let listed = catalog.credentials(&owner, Some(&grant.id)).await.unwrap();
    assert_eq!(listed.len(), MAX_LIVE_PER_GRANT, "{name}");
    assert!(
        !serde_json::to_string(&listed)
            .unwrap()
            .contains(&minted.secret)
    );
    assert!(is(
        &catalog.credentials(&eve, Some(&grant.id)).await,
        ErrorCode::Forbidden
    ));
    assert!(catalog.credentials(&eve, None).await.unwrap().is_empty());
    assert!(is(
        &catalog.revoke_credential(&eve, &minted.credential.id).await,
        ErrorCode::Forbidden
    ));

    // Revoked on its own: 401 at once; the grant and the other credentials live on.
    let other = catalog
        .credentials(&bob, Some(&grant.id))
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id != minted.credential.id && c.active)
        .unwrap();
    catalog
        .revoke_credential(&owner, &minted.credential.id)
        .await
        .unwrap();
    assert!(matches!(
        catalog.authenticate(&minted.secret).await,
        Err(TokenError::Unauthenticated)
    ));
    assert!(is(
        &catalog
            .revoke_credential(&owner, &minted.credential.id)
            .await,
        ErrorCode::Lifecycle
    ));
    // Expiry of the grant ends ana's credential, whatever it said itself.
    clock.set(Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap());
    match catalog.authenticate(&ana_cred.secret).await {
        Err(e @ TokenError::GrantEnded { .. }) => {
            assert!(e.to_string().contains("has expired"), "{name}: {e}");
            assert_eq!(e.code(), ErrorCode::Unauthenticated);
        }
        other => panic!("{name}: {other:?}"),
    }
    clock.set(Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap());
    // Revoking a grant ends every credential of it.
    assert!(catalog.authenticate(&ana_cred.secret).await.is_ok());
    catalog
        .revoke_access(&owner, &own.id, "project over")
        .await
        .unwrap();
    assert!(
        catalog.authenticate(&ana_cred.secret).await.is_err(),
        "{name}"
    );
    catalog
        .revoke_access(&owner, &grant.id, "project over")
        .await
        .unwrap();
    let left = catalog.credentials(&owner, Some(&grant.id)).await.unwrap();
    assert!(
        left.iter().all(|c| !c.active && c.revoked_at.is_some()),
        "{name}: {} was still active",
        other.id
    );
    let kinds: Vec<String> = catalog
        .events(&admin, 0, 500, Some("ecommerce.orders"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.iter().any(|k| k == "credential.minted"), "{name}");
    assert!(kinds.iter().any(|k| k == "credential.revoked"), "{name}");
}

on_every_backend!(credentials_are_scoped_to_their_grant);

/// A person's grant is theirs, whatever their name looks like: a grantee named
/// `sales.ops@corp.com` is not the sales domain's service identity, so sales' members neither
/// see its grant nor mint credentials for it (a product's service identity is `domain.product`).
async fn a_persons_grant_is_not_a_domains_even_when_its_name_has_a_dot(t: TestStore) {
    use mesh_catalog::access::{AccessAsk, AccessDecision};
    use mesh_catalog::credentials::CredentialAsk;
    let name = t.name;
    let catalog = Catalog::with_clock(Arc::clone(&t.store), clock());
    let admin = admin();
    catalog
        .publish(
            &admin,
            &product("ecommerce.customers", "1.0.0", &["id!", "amount"]).bundle(),
            false,
        )
        .await
        .unwrap();
    let owner = principal(&catalog, "olga", Role::Owner, Some("ecommerce")).await;
    let person = principal(
        &catalog,
        "sales.ops@corp.com",
        Role::Member,
        Some("finance"),
    )
    .await;
    let frank = principal(&catalog, "frank", Role::Member, Some("sales")).await;
    let asked = catalog
        .request_access(
            &person,
            &AccessAsk {
                product: "ecommerce.customers".into(),
                port: "customers".into(),
                major: None,
                purpose: "Revenue per customer segment, monthly.".into(),
                columns: vec!["id".into()],
                days: 30,
                consumer: None,
            },
        )
        .await
        .unwrap();
    let grant = catalog
        .decide_access(
            &owner,
            &asked.id,
            &AccessDecision::Approve {
                columns: None,
                days: None,
            },
        )
        .await
        .unwrap()
        .grant
        .unwrap();
    assert_eq!(grant.grantee, "sales.ops@corp.com");
    let seen = catalog
        .access_grants(&frank, Some("ecommerce.customers"))
        .await
        .unwrap();
    assert!(
        seen.is_empty(),
        "{name}: sales sees a person's grant: {seen:?}"
    );
    let seen = catalog
        .access_requests(&frank, Some("ecommerce.customers"), None)
        .await
        .unwrap();
    assert!(
        seen.is_empty(),
        "{name}: sales sees a person's request: {seen:?}"
    );
    let minted = catalog
        .mint_credential(
            &frank,
            &grant.id,
            &CredentialAsk {
                label: Some("x".into()),
                days: None,
            },
        )
        .await;
    assert!(
        minted.is_err(),
        "{name}: sales minted a credential for a person's grant"
    );
}

on_every_backend!(a_persons_grant_is_not_a_domains_even_when_its_name_has_a_dot);
