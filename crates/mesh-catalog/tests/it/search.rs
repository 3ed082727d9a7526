//! Search: relevance on a generated catalog, filters and facets, and that search is never out of
//! step with the database — across two catalog instances on one database, on every backend.

use std::sync::Arc;

use mesh_catalog::search::SearchQuery;
use mesh_catalog::{Catalog, ErrorCode, Principal};

use crate::backends::{self, TestStore, on_every_backend};
use crate::conformance::is;
use crate::fixtures::{Product, product};

/// Products planted among the generated ones: (id, name, purpose, columns).
const PLANTED: &[(&str, &str, &str, &[&str])] = &[
    (
        "finance.fx_rates",
        "FX rates",
        "Daily foreign exchange rates from the central bank.",
        &["currency_pair", "exchange_rate", "rate_date"],
    ),
    (
        "hr.payroll",
        "Payroll",
        "Monthly payroll per employee.",
        &["employee_id", "salary_gross", "tax_withheld"],
    ),
    (
        "logistics.shipment_tracking",
        "Shipment tracking",
        "Where every parcel is.",
        &["tracking_number", "carrier", "delivered_at"],
    ),
    (
        "marketing.campaign_attribution",
        "Campaign attribution",
        "Which campaign brought a conversion.",
        &["utm_source", "touchpoint", "conversion_value"],
    ),
    (
        "support.ticket_sla",
        "Ticket SLA",
        "Response times of support tickets.",
        &["ticket_id", "first_response_minutes", "breached"],
    ),
    (
        "inventory.stock_levels",
        "Stock levels",
        "Units on hand per warehouse.",
        &["sku", "warehouse_code", "on_hand_quantity"],
    ),
    (
        "payments.chargebacks",
        "Chargebacks",
        "Disputed card payments.",
        &["dispute_reason", "chargeback_amount"],
    ),
    (
        "ecommerce.abandoned_carts",
        "Abandoned carts",
        "Carts left before checkout.",
        &["cart_id", "abandoned_at", "recovery_email_sent"],
    ),
    (
        "analytics.customer_lifetime_value",
        "Customer lifetime value",
        "Expected value per customer.",
        &["customer_id", "clv_24m"],
    ),
    (
        "finance.general_ledger",
        "General ledger",
        "Every booking of the company.",
        &["account_code", "debit", "credit"],
    ),
    (
        "hr.headcount_planning",
        "Headcount planning",
        "Planned hires per team.",
        &["team", "planned_hires"],
    ),
    (
        "sales.quota_attainment",
        "Quota attainment",
        "How far each rep is towards quota.",
        &["rep_id", "quota", "attainment_pct"],
    ),
    (
        "logistics.route_optimization",
        "Route optimization",
        "Planned delivery routes.",
        &["route_id", "stops", "distance_km"],
    ),
    (
        "marketing.newsletter_subscribers",
        "Newsletter subscribers",
        "Who gets the newsletter.",
        &["email_hash", "subscribed_at", "unsubscribed_at"],
    ),
    (
        "support.csat_scores",
        "CSAT scores",
        "Customer satisfaction surveys after each ticket.",
        &["csat_score", "survey_sent_at"],
    ),
    (
        "inventory.supplier_lead_times",
        "Supplier lead times",
        "Days from order to delivery per supplier.",
        &["supplier_id", "lead_time_days"],
    ),
    (
        "payments.card_authorizations",
        "Card authorizations",
        "Authorization requests to issuers.",
        &["auth_code", "issuer_response"],
    ),
    (
        "ecommerce.product_reviews",
        "Product reviews",
        "What buyers say about products.",
        &["review_text", "star_rating"],
    ),
    (
        "analytics.churn_prediction",
        "Churn prediction",
        "Who is likely to leave.",
        &["customer_id", "churn_probability"],
    ),
    (
        "finance.budget_vs_actuals",
        "Budget vs actuals",
        "Spending against the budget.",
        &["budget_amount", "actual_amount", "variance"],
    ),
    (
        "hr.recruiting_pipeline",
        "Recruiting pipeline",
        "Candidates per open requisition.",
        &["candidate_stage", "requisition_id"],
    ),
    (
        "logistics.fleet_telemetry",
        "Fleet telemetry",
        "Signals from delivery vans.",
        &["vehicle_id", "gps_lat", "gps_lon", "fuel_level"],
    ),
    (
        "marketing.ad_spend",
        "Ad spend",
        "Money spent on ads per channel.",
        &["channel", "spend_eur", "impressions"],
    ),
    (
        "sales.pipeline_forecast",
        "Pipeline forecast",
        "Expected bookings this quarter.",
        &["opportunity_id", "weighted_amount"],
    ),
    (
        "support.knowledge_base_articles",
        "Knowledge base articles",
        "Help articles and their votes.",
        &["article_id", "helpful_votes"],
    ),
    (
        "inventory.returns_restock",
        "Returns restock",
        "Returned units put back on shelves.",
        &["sku", "restocked_units"],
    ),
    (
        "payments.payouts",
        "Merchant payouts",
        "Money paid out to merchants.",
        &["payout_id", "settlement_date"],
    ),
    (
        "ecommerce.search_queries",
        "Site search queries",
        "What visitors type into site search.",
        &["query_text", "zero_results"],
    ),
    (
        "analytics.cohort_retention",
        "Cohort retention",
        "Users retained per signup month.",
        &["cohort_month", "retained_users"],
    ),
    (
        "finance.vat_returns",
        "VAT returns",
        "Value added tax filed per period.",
        &["vat_rate", "tax_period"],
    ),
    (
        "hr.training_completions",
        "Training completions",
        "Courses finished by employees.",
        &["course_id", "completed_at"],
    ),
    (
        "logistics.customs_declarations",
        "Customs declarations",
        "Goods declared at borders.",
        &["hs_code", "declared_value"],
    ),
];

/// (query, the product that must rank first).
const QUERIES: &[(&str, &str)] = &[
    ("exchange rates", "finance.fx_rates"),
    ("exchnage rate", "finance.fx_rates"),
    ("fx", "finance.fx_rates"),
    ("payroll", "hr.payroll"),
    ("payrol", "hr.payroll"),
    ("salary_gross", "hr.payroll"),
    ("tracking number", "logistics.shipment_tracking"),
    ("shipmnt tracking", "logistics.shipment_tracking"),
    ("utm_source", "marketing.campaign_attribution"),
    ("attribution", "marketing.campaign_attribution"),
    ("first response", "support.ticket_sla"),
    ("tiket sla", "support.ticket_sla"),
    ("warehouse stock", "inventory.stock_levels"),
    ("on_hand_quantity", "inventory.stock_levels"),
    ("chargeback", "payments.chargebacks"),
    ("dispute reason", "payments.chargebacks"),
    ("abandoned cart", "ecommerce.abandoned_carts"),
    ("abandonned carts", "ecommerce.abandoned_carts"),
    ("lifetime value", "analytics.customer_lifetime_value"),
    ("clv", "analytics.customer_lifetime_value"),
    ("general ledger", "finance.general_ledger"),
    ("ledgr", "finance.general_ledger"),
    ("headcount", "hr.headcount_planning"),
    ("planned_hires", "hr.headcount_planning"),
    ("quota attainment", "sales.quota_attainment"),
    ("route optimisation", "logistics.route_optimization"),
    ("newsletter", "marketing.newsletter_subscribers"),
    ("unsubscribed_at", "marketing.newsletter_subscribers"),
    ("customer satisfaction", "support.csat_scores"),
    ("csat", "support.csat_scores"),
    ("suplier lead times", "inventory.supplier_lead_times"),
    ("issuer_response", "payments.card_authorizations"),
    ("star rating", "ecommerce.product_reviews"),
    ("churn", "analytics.churn_prediction"),
    ("budget variance", "finance.budget_vs_actuals"),
    ("requisition", "hr.recruiting_pipeline"),
    ("fuel level", "logistics.fleet_telemetry"),
    ("impressions", "marketing.ad_spend"),
    ("weighted_amount", "sales.pipeline_forecast"),
    ("knowledge base", "support.knowledge_base_articles"),
    ("restock", "inventory.returns_restock"),
    ("settlement date", "payments.payouts"),
    ("zero results", "ecommerce.search_queries"),
    ("retension", "analytics.cohort_retention"),
    ("tax period", "finance.vat_returns"),
    ("training", "hr.training_completions"),
    ("hs_code", "logistics.customs_declarations"),
    ("custms declarations", "logistics.customs_declarations"),
    ("telemetr", "logistics.fleet_telemetry"),
];

const DOMAINS: [&str; 10] = [
    "sales",
    "marketing",
    "finance",
    "hr",
    "logistics",
    "ecommerce",
    "analytics",
    "support",
    "inventory",
    "payments",
];

fn planted(id: &str, name: &str, purpose: &str, columns: &[&str]) -> Product {
    let mut cols: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
    cols[0].push('!');
    let refs: Vec<&str> = cols.iter().map(String::as_str).collect();
    let mut p = product(id, "1.0.0", &refs).purpose(purpose);
    p.display_name = Some(name.to_owned());
    p
}

/// 1,000 generated products plus the planted ones.
fn generated() -> Vec<Product> {
    let qualifiers = [
        "daily", "weekly", "monthly", "raw", "curated", "staged", "archived", "enriched",
        "sampled", "merged",
    ];
    let entities = [
        "events",
        "records",
        "snapshots",
        "metrics",
        "facts",
        "logs",
        "extracts",
        "feeds",
        "tables",
        "reports",
    ];
    let mut out = Vec::new();
    for domain in DOMAINS {
        for q in qualifiers {
            for e in entities {
                let id = format!("{domain}.{q}_{e}");
                let purpose = format!("{q} {e} of the {domain} domain.");
                out.push(
                    product(
                        &id,
                        "1.0.0",
                        &["id!", "created_at", "updated_at", "value", "source_system"],
                    )
                    .purpose(&purpose),
                );
            }
        }
    }
    for (id, name, purpose, columns) in PLANTED {
        out.push(planted(id, name, purpose, columns));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relevance_on_a_generated_catalog() {
    let t = &backends::sqlite().await;
    let catalog = Catalog::new(Arc::clone(&t.store));
    let who = Principal::local();
    let products = generated();
    assert!(products.len() >= 1_000);
    for p in &products {
        catalog.publish(&who, &p.bundle(), false).await.unwrap();
    }
    let mut hits_at_1 = 0;
    let mut reciprocal = 0.0;
    let mut misses = Vec::new();
    for (q, expected) in QUERIES {
        let results = catalog
            .search(
                &who,
                &SearchQuery {
                    q: (*q).into(),
                    limit: Some(10),
                    ..SearchQuery::default()
                },
            )
            .await
            .unwrap();
        let rank = results.hits.iter().position(|h| h.id == *expected);
        match rank {
            Some(0) => hits_at_1 += 1,
            _ => misses.push(format!(
                "{q:?}: expected {expected}, got {:?}",
                results
                    .hits
                    .iter()
                    .take(3)
                    .map(|h| h.id.as_str())
                    .collect::<Vec<_>>()
            )),
        }
        if let Some(r) = rank {
            reciprocal += 1.0 / (r as f64 + 1.0);
        }
    }
    let n = QUERIES.len() as f64;
    let precision = f64::from(hits_at_1) / n;
    let mrr = reciprocal / n;
    eprintln!(
        "search relevance over {} products, {} queries: precision@1 {precision:.3}, MRR {mrr:.3}",
        products.len(),
        QUERIES.len()
    );
    assert!(QUERIES.len() >= 30);
    assert!(
        precision >= 0.95 && mrr >= 0.95,
        "precision@1 {precision:.3}, MRR {mrr:.3}\n{}",
        misses.join("\n")
    );

    // Filters and facets.
    let by_domain = catalog
        .search(
            &who,
            &SearchQuery {
                q: "daily".into(),
                domain: Some("hr".into()),
                ..SearchQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(by_domain.total, 10);
    assert!(by_domain.hits.iter().all(|h| h.domain == "hr"));
    assert_eq!(by_domain.facets["domain"]["hr"], 10);
    let all = catalog.search(&who, &SearchQuery::default()).await.unwrap();
    assert_eq!(all.total, products.len());
    assert_eq!(all.facets["type"]["source"], products.len());
    assert!(is(
        &catalog
            .search(
                &Principal {
                    name: "nobody".into(),
                    bindings: vec![],
                    grant: None,
                },
                &SearchQuery::default()
            )
            .await,
        ErrorCode::Forbidden
    ));
}

async fn search_never_drifts_from_the_catalog(t: TestStore) {
    let name = t.name;
    // Two instances on one database, as two `mesh serve` processes would be.
    let writer = Catalog::new(Arc::clone(&t.store));
    let reader = Catalog::new(t.reopen().await);
    let who = Principal::local();
    let q = |text: &str| SearchQuery {
        q: text.into(),
        ..SearchQuery::default()
    };
    assert_eq!(reader.search(&who, &q("payroll")).await.unwrap().total, 0);

    writer
        .publish(
            &who,
            &planted(
                "hr.payroll",
                "Payroll",
                "Monthly payroll.",
                &["employee_id"],
            )
            .bundle(),
            false,
        )
        .await
        .unwrap();
    let found = reader.search(&who, &q("payroll")).await.unwrap();
    assert_eq!(
        found.hits[0].id, "hr.payroll",
        "{name}: visible at once in the other instance"
    );
    assert_eq!(found.hits[0].version.as_deref(), Some("1.0.0"));

    // A new version replaces the old text.
    let v2 = planted(
        "hr.payroll",
        "Payroll",
        "Salaries and bonuses.",
        &["employee_id", "bonus"],
    );
    let mut v2 = v2;
    v2.version = "1.1.0".into();
    writer.publish(&who, &v2.bundle(), false).await.unwrap();
    let found = reader.search(&who, &q("bonus")).await.unwrap();
    assert_eq!(found.hits[0].version.as_deref(), Some("1.1.0"), "{name}");

    // Deprecated: still found, marked, ranked below an active match; retired: gone.
    writer
        .publish(
            &who,
            &planted(
                "hr.payroll_eu",
                "Payroll EU",
                "Monthly payroll in the EU.",
                &["employee_id"],
            )
            .bundle(),
            false,
        )
        .await
        .unwrap();
    let sunset = chrono::NaiveDate::from_ymd_opt(2999, 1, 1).unwrap();
    writer
        .deprecate(&who, "hr.payroll", "1.1.0", sunset, "Use hr.payroll_eu.")
        .await
        .unwrap();
    let found = reader.search(&who, &q("payroll")).await.unwrap();
    let order: Vec<(&str, &str)> = found
        .hits
        .iter()
        .map(|h| (h.id.as_str(), h.status.as_str()))
        .collect();
    assert_eq!(
        order,
        [("hr.payroll_eu", "active"), ("hr.payroll", "deprecated")],
        "{name}"
    );
    let retired = reader
        .search(
            &who,
            &SearchQuery {
                status: Some("deprecated".into()),
                ..q("payroll")
            },
        )
        .await
        .unwrap();
    assert_eq!(retired.total, 1);
}

on_every_backend!(search_never_drifts_from_the_catalog,);
