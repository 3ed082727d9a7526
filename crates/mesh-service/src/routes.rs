//! The HTTP API's paths: the templates the server documents and serves, and builders for the
//! concrete paths the CLI's client calls (every segment percent-encoded). The server's tests
//! check that its OpenAPI document lists exactly [`ALL`], so the two sides cannot drift apart.

/// Every path template the API serves.
pub const ALL: &[&str] = &[
    HEALTH,
    METRICS,
    PRODUCTS,
    PRODUCT,
    PRODUCT_VERSIONS,
    PRODUCT_VERSION,
    VERSION_CONTRACT,
    DEPRECATE,
    RETIRE,
    PORT_CHANGELOG,
    PORT_IMPACT,
    PRODUCT_LINEAGE,
    RECOMMENDATIONS,
    PRODUCT_RUNS,
    PRODUCT_SNAPSHOTS,
    PRODUCT_SCHEDULE,
    PRODUCT_INPUTS,
    PRODUCT_SOURCES,
    PRODUCT_USAGE,
    CHANGELOG,
    COMPATIBILITY,
    SEARCH,
    LINEAGE,
    DOMAINS,
    DOMAIN,
    WHOAMI,
    BINDINGS,
    BINDINGS_REMOVE,
    TEAMS,
    EVENTS,
    TOKENS,
    TOKEN_REVOKE,
    PRINCIPAL_REVOKE,
    MASKING_KEY,
    MASKING_KEY_ROTATE,
    LOCATIONS,
    LOCATION,
    SUBSCRIPTIONS,
    SUBSCRIPTION,
    POLICIES,
    POLICY_SCOPE,
    POLICY_VERSIONS,
    POLICY_VERSION,
    AUDIT,
    RUNS,
    RUN,
    RUN_COMMITTING,
    RUN_FINISH,
    RUN_SETTLE,
    RUN_HEARTBEAT,
    ACCESS_REQUESTS,
    ACCESS_DECISION,
    ACCESS_GRANTS,
    ACCESS_REVOKE,
    GRANT_CREDENTIALS,
    CREDENTIALS,
    CREDENTIAL,
    QUERY,
    SLA,
    SLA_CHECK,
    SLA_VIOLATIONS,
    DELIVERIES,
];

pub const HEALTH: &str = "/health";
pub const METRICS: &str = "/metrics";
pub const PRODUCTS: &str = "/api/v1/products";
pub const PRODUCT: &str = "/api/v1/products/{product}";
pub const PRODUCT_VERSIONS: &str = "/api/v1/products/{product}/versions";
pub const PRODUCT_VERSION: &str = "/api/v1/products/{product}/versions/{version}";
pub const VERSION_CONTRACT: &str =
    "/api/v1/products/{product}/versions/{version}/ports/{port}/contract";
pub const DEPRECATE: &str = "/api/v1/products/{product}/versions/{version}/deprecate";
pub const RETIRE: &str = "/api/v1/products/{product}/versions/{version}/retire";
pub const PORT_CHANGELOG: &str = "/api/v1/products/{product}/ports/{port}/changelog";
pub const PORT_IMPACT: &str = "/api/v1/products/{product}/ports/{port}/impact";
pub const PRODUCT_LINEAGE: &str = "/api/v1/products/{product}/lineage";
pub const RECOMMENDATIONS: &str = "/api/v1/products/{product}/recommendations";
pub const PRODUCT_RUNS: &str = "/api/v1/products/{product}/runs";
pub const PRODUCT_SNAPSHOTS: &str = "/api/v1/products/{product}/snapshots";
pub const PRODUCT_SCHEDULE: &str = "/api/v1/products/{product}/schedule";
pub const PRODUCT_INPUTS: &str = "/api/v1/products/{product}/inputs";
pub const PRODUCT_SOURCES: &str = "/api/v1/products/{product}/sources";
pub const PRODUCT_USAGE: &str = "/api/v1/products/{product}/usage";
pub const CHANGELOG: &str = "/api/v1/changelog";
pub const COMPATIBILITY: &str = "/api/v1/compatibility";
pub const SEARCH: &str = "/api/v1/search";
pub const LINEAGE: &str = "/api/v1/lineage";
pub const DOMAINS: &str = "/api/v1/domains";
pub const DOMAIN: &str = "/api/v1/domains/{domain}";
pub const WHOAMI: &str = "/api/v1/whoami";
pub const BINDINGS: &str = "/api/v1/bindings";
pub const BINDINGS_REMOVE: &str = "/api/v1/bindings/remove";
pub const TEAMS: &str = "/api/v1/teams";
pub const EVENTS: &str = "/api/v1/events";
pub const TOKENS: &str = "/api/v1/tokens";
pub const TOKEN_REVOKE: &str = "/api/v1/tokens/{id}/revoke";
pub const PRINCIPAL_REVOKE: &str = "/api/v1/principals/{principal}/revoke";
pub const MASKING_KEY: &str = "/api/v1/masking-key";
pub const MASKING_KEY_ROTATE: &str = "/api/v1/masking-key/rotate";
pub const SUBSCRIPTIONS: &str = "/api/v1/subscriptions";
pub const SUBSCRIPTION: &str = "/api/v1/subscriptions/{id}";
pub const LOCATIONS: &str = "/api/v1/locations";
pub const LOCATION: &str = "/api/v1/locations/{name}";
pub const POLICIES: &str = "/api/v1/policies";
pub const POLICY_SCOPE: &str = "/api/v1/policies/{scope}";
pub const POLICY_VERSIONS: &str = "/api/v1/policies/{scope}/versions";
pub const POLICY_VERSION: &str = "/api/v1/policies/{scope}/versions/{version}";
pub const AUDIT: &str = "/api/v1/audit";
pub const RUNS: &str = "/api/v1/runs";
pub const RUN: &str = "/api/v1/runs/{id}";
pub const RUN_COMMITTING: &str = "/api/v1/runs/{id}/committing";
pub const RUN_FINISH: &str = "/api/v1/runs/{id}/finish";
pub const RUN_SETTLE: &str = "/api/v1/runs/{id}/settle";
pub const RUN_HEARTBEAT: &str = "/api/v1/runs/{id}/heartbeat";
pub const ACCESS_REQUESTS: &str = "/api/v1/access/requests";
pub const ACCESS_DECISION: &str = "/api/v1/access/requests/{id}/decision";
pub const ACCESS_GRANTS: &str = "/api/v1/access/grants";
pub const ACCESS_REVOKE: &str = "/api/v1/access/grants/{id}/revoke";
pub const GRANT_CREDENTIALS: &str = "/api/v1/access/grants/{id}/credentials";
pub const CREDENTIALS: &str = "/api/v1/access/credentials";
pub const CREDENTIAL: &str = "/api/v1/access/credentials/{id}";
pub const QUERY: &str = "/api/v1/query";
pub const SLA: &str = "/api/v1/sla";
pub const SLA_CHECK: &str = "/api/v1/sla/check";
pub const SLA_VIOLATIONS: &str = "/api/v1/sla/violations";
pub const DELIVERIES: &str = "/api/v1/webhooks/deliveries";

/// `text` percent-encoded for a URL path segment or query value (everything but RFC 3986's
/// unreserved characters).
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `template` with each `{name}` replaced by its value, percent-encoded.
///
/// ```
/// use mesh_service::routes::{PRODUCT_VERSION, path};
/// assert_eq!(
///     path(PRODUCT_VERSION, &[("product", "sales.orders"), ("version", "1.0.0+b/1")]),
///     "/api/v1/products/sales.orders/versions/1.0.0%2Bb%2F1"
/// );
/// ```
pub fn path(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), &encode(value));
    }
    out
}

/// `path` with a query string of the pairs whose value is given (percent-encoded).
pub fn with_query(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let query: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(v))))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_unique_and_filled_in() {
        let mut seen = std::collections::HashSet::new();
        for t in ALL {
            assert!(seen.insert(*t), "{t} twice");
            assert!(t.starts_with('/'));
        }
        assert_eq!(
            path(RUN_FINISH, &[("id", "a b")]),
            "/api/v1/runs/a%20b/finish"
        );
        assert_eq!(
            with_query(SLA, &[("window", Some("7d")), ("product", None)]),
            "/api/v1/sla?window=7d"
        );
        assert_eq!(with_query(SLA, &[("product", None)]), "/api/v1/sla");
    }
}
