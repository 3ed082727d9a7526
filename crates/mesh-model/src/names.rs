//! The names users type, parsed once: domains, teams, products (`domain.product`), output ports
//! (`domain.product.port`, optionally `@major`), versions and version selectors, and the table
//! under which a governed read shows a port. What a valid name is, and how a table name is built
//! from a port and read back, is decided here and nowhere else.
//!
//! Also here: the platform's custom property names ([`props`]), the lifecycle and run states, and
//! whether a column's classification makes it sensitive ([`Sensitivity`]).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A name that does not follow its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    /// What it was meant to be: `domain name`, `product id`, ...
    pub what: &'static str,
    pub text: String,
    /// The rule it breaks, for people.
    pub rule: &'static str,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a {} ({})", self.text, self.what, self.rule)
    }
}

impl std::error::Error for NameError {}

/// The longest name of a domain, product, port or team.
pub const MAX_NAME: usize = 64;

const SNAKE_RULE: &str = "snake_case: a lower-case letter, then lower-case letters, digits and `_`";
const TEAM_RULE: &str = "lower-case letters, digits, `-` and `_`";

/// Whether `text` is snake_case (`^[a-z][a-z0-9_]*$`), the rule for domain, product, port and
/// column names.
pub fn is_snake(text: &str) -> bool {
    let mut chars = text.chars();
    text.len() <= MAX_NAME
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Whether `text` is a team name (`^[a-z0-9][a-z0-9_-]*$`).
pub fn is_team(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NAME
        && !text.starts_with(['-', '_'])
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn snake(what: &'static str, text: &str) -> Result<(), NameError> {
    if is_snake(text) {
        Ok(())
    } else {
        Err(NameError {
            what,
            text: text.to_owned(),
            rule: SNAKE_RULE,
        })
    }
}

macro_rules! string_name {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(text: &str) -> Result<Self, NameError> {
                $name::parse(text)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_name! {
    /// A domain: snake_case.
    DomainName
}

impl DomainName {
    pub fn parse(text: &str) -> Result<DomainName, NameError> {
        snake("domain name", text)?;
        Ok(DomainName(text.to_owned()))
    }
}

string_name! {
    /// A team: lower-case letters, digits, `-` and `_`.
    TeamName
}

impl TeamName {
    pub fn parse(text: &str) -> Result<TeamName, NameError> {
        if !is_team(text) {
            return Err(NameError {
                what: "team name",
                text: text.to_owned(),
                rule: TEAM_RULE,
            });
        }
        Ok(TeamName(text.to_owned()))
    }
}

string_name! {
    /// A data product's id: `domain.product`, both snake_case. Also the name of the product's
    /// service identity (what its pipeline reads as).
    ProductId
}

impl ProductId {
    pub fn parse(text: &str) -> Result<ProductId, NameError> {
        let bad = || NameError {
            what: "product id",
            text: text.to_owned(),
            rule: "domain.product, each snake_case",
        };
        let (domain, name) = text.split_once('.').ok_or_else(bad)?;
        if !is_snake(domain) || !is_snake(name) {
            return Err(bad());
        }
        Ok(ProductId(text.to_owned()))
    }

    /// The domain part.
    pub fn domain(&self) -> &str {
        self.0.split_once('.').map_or("", |(d, _)| d)
    }

    /// The product part, without its domain.
    pub fn name(&self) -> &str {
        self.0.split_once('.').map_or(self.0.as_str(), |(_, n)| n)
    }
}

/// The domain of something named `domain.rest` (a product id, a contract id, a service
/// identity), without checking the rest: `""` when there is no dot.
pub fn domain_of(text: &str) -> &str {
    text.split_once('.').map_or("", |(d, _)| d)
}

/// An output port, as users write it: `domain.product.port`, optionally pinned to a major
/// version (`@1`, `@v1`). By the platform's convention it is also the id of the port's contract.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortRef {
    pub product: ProductId,
    pub port: String,
    pub major: Option<u64>,
}

impl PortRef {
    pub fn parse(text: &str) -> Result<PortRef, NameError> {
        let bad = || NameError {
            what: "port",
            text: text.to_owned(),
            rule: "domain.product.port, each snake_case, optionally @MAJOR",
        };
        let (name, major) = match text.split_once('@') {
            Some((name, major)) => (
                name,
                Some(
                    major
                        .trim_start_matches('v')
                        .parse::<u64>()
                        .map_err(|_| bad())?,
                ),
            ),
            None => (text, None),
        };
        let (product, port) = name.rsplit_once('.').ok_or_else(bad)?;
        let product = ProductId::parse(product).map_err(|_| bad())?;
        if !is_snake(port) {
            return Err(bad());
        }
        Ok(PortRef {
            product,
            port: port.to_owned(),
            major,
        })
    }

    /// `domain.product.port`: the contract id of the port by the platform's convention.
    pub fn contract_id(&self) -> String {
        format!("{}.{}", self.product, self.port)
    }
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.product, self.port)?;
        if let Some(m) = self.major {
            write!(f, "@{m}")?;
        }
        Ok(())
    }
}

/// A semantic version, parsed once.
pub type Version = semver::Version;

/// A semantic version's text, or why it is not one.
pub fn parse_version(text: &str) -> Result<Version, NameError> {
    Version::parse(text).map_err(|_| NameError {
        what: "semantic version",
        text: text.to_owned(),
        rule: "MAJOR.MINOR.PATCH, e.g. 1.0.0",
    })
}

/// The major version of a version's text (`1.4.0` → 1; 0 when it is not a version).
pub fn major_of(version: &str) -> u64 {
    Version::parse(version).map_or(0, |v| v.major)
}

/// Orders version strings by semver (unparseable ones last, by text).
pub fn by_semver(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (Version::parse(a), Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// Which version of a product a reader asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSelector {
    /// `1.2.0`.
    Exact(Version),
    /// `1` or `v1`: the newest version of that major that is not retired.
    Major(u64),
    /// `latest` (or nothing): the highest published version.
    Latest,
}

impl VersionSelector {
    pub fn parse(text: &str) -> Result<VersionSelector, NameError> {
        if text.is_empty() || text == "latest" {
            return Ok(VersionSelector::Latest);
        }
        if let Ok(v) = Version::parse(text) {
            return Ok(VersionSelector::Exact(v));
        }
        text.trim_start_matches('v')
            .parse()
            .map(VersionSelector::Major)
            .map_err(|_| NameError {
                what: "version selector",
                text: text.to_owned(),
                rule: "a version (1.2.0), a major version (1 or v1) or `latest`",
            })
    }
}

/// The table under which a governed read shows an output port: schema `domain`, and the
/// product's name for its port of the same name, `<name>__<port>` for its other ports; a port's
/// older major versions get `__v<major>` (the newest keeps the plain name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    pub domain: String,
    pub table: String,
}

/// Separates the product's name from the port's (and the major) in a table name.
const TABLE_SEP: &str = "__";

impl TableName {
    /// The table of `port` (major `major`) of `product`; `newest`: the port's newest major.
    pub fn of(product: &ProductId, port: &str, major: u64, newest: bool) -> TableName {
        let name = product.name();
        let mut table = if port == name {
            name.to_owned()
        } else {
            format!("{name}{TABLE_SEP}{port}")
        };
        if !newest {
            table.push_str(&format!("{TABLE_SEP}v{major}"));
        }
        TableName {
            domain: product.domain().to_owned(),
            table,
        }
    }

    /// Whether a query's table reference (`mesh.domain.table`, `domain.table` or `table`) names
    /// this table.
    pub fn is_named_by(&self, reference: &str) -> bool {
        let reference = reference.strip_prefix("mesh.").unwrap_or(reference);
        reference == self.table
            || reference
                .strip_prefix(self.domain.as_str())
                .and_then(|rest| rest.strip_prefix('.'))
                == Some(self.table.as_str())
    }

    /// The product a query's table reference would name (`mesh.ecommerce.orders__items` →
    /// `ecommerce.orders`), for the audit log of a refused read.
    pub fn product_of(reference: &str) -> String {
        let name = reference.strip_prefix("mesh.").unwrap_or(reference);
        name.split(TABLE_SEP).next().unwrap_or(name).to_owned()
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.domain, self.table)
    }
}

/// The custom properties the platform reads, by name (see `docs/data-product-standard.md`).
pub mod props {
    /// Product: `source | aggregate | consumer-aligned | derived`.
    pub const PRODUCT_TYPE: &str = "productType";
    /// Product: `public | internal | confidential | restricted`.
    pub const DATA_CLASSIFICATION: &str = "dataClassification";
    /// Product: how many days data is kept (old Delta versions are vacuumed after).
    pub const RETENTION_DAYS: &str = "retentionDays";
    /// Product: when its pipeline runs, `{cron, timezone, on: upstream, retries}`.
    pub const SCHEDULE: &str = "schedule";
    /// Product: a source product's external data, `[{name, path, format}]`.
    pub const SOURCES: &str = "sources";
    /// Output port: the columns masked for readers outside the domain, even on a grant of all.
    pub const MASKED: &str = "masked";
    /// Output port: its compatibility mode (Confluent's seven; BACKWARD by default).
    pub const COMPATIBILITY: &str = "compatibility";
    /// Contract or column: how a masked column is hidden (`null`, `hash`, `redacted`).
    pub const MASK: &str = "mask";
}

/// How sensitive a column is, from its ODCS `classification` (free text; compared without case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sensitivity {
    /// Public, internal, or no classification.
    Open,
    /// `confidential`, or labelled `pii`, `sensitive`, `secret`: never shown in failed samples,
    /// asked for with a purpose a reader can judge, masked at the port unless encrypted.
    Sensitive,
    /// `restricted`: sensitive, and access needs two approvers.
    Restricted,
}

impl Sensitivity {
    pub fn of(classification: Option<&str>) -> Sensitivity {
        let Some(c) = classification else {
            return Sensitivity::Open;
        };
        match c.trim().to_ascii_lowercase().as_str() {
            "restricted" => Sensitivity::Restricted,
            "confidential" | "pii" | "sensitive" | "secret" => Sensitivity::Sensitive,
            _ => Sensitivity::Open,
        }
    }

    /// Sensitive or restricted.
    pub fn is_sensitive(self) -> bool {
        self != Sensitivity::Open
    }
}

macro_rules! state_enum {
    ($(#[$meta:meta])* $name:ident ($what:literal) { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Result<$name, NameError> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(NameError {
                        what: $what,
                        text: text.to_owned(),
                        rule: concat!($($text, " "),+),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }
    };
}

state_enum! {
    /// Where a product version is in its lifecycle: draft → active → deprecated → retired.
    VersionStatus ("version status") {
        Draft = "draft",
        Active = "active",
        Deprecated = "deprecated",
        Retired = "retired",
    }
}

impl VersionStatus {
    /// The status a version is published with: `draft` or `active` (ODPS's `proposed` is a
    /// draft); `None` for the states only the lifecycle reaches.
    pub fn publishable(text: &str) -> Option<VersionStatus> {
        match text {
            "draft" | "proposed" => Some(VersionStatus::Draft),
            "active" => Some(VersionStatus::Active),
            _ => None,
        }
    }

    /// Still served to readers.
    pub fn is_served(self) -> bool {
        self != VersionStatus::Retired
    }
}

state_enum! {
    /// Where a pipeline run is: running → committing → succeeded, or failed; or skipped (it
    /// found nothing to do, such as an incremental source with no new rows).
    RunState ("run state") {
        Running = "running",
        Committing = "committing",
        Succeeded = "succeeded",
        Failed = "failed",
        Skipped = "skipped",
    }
}

state_enum! {
    /// Where a slot of a product's schedule is: claimed by one server, then how its run ended
    /// (skipped: nothing changed since the last success).
    SlotState ("slot state") {
        Claimed = "claimed",
        Succeeded = "succeeded",
        Skipped = "skipped",
        Failed = "failed",
    }
}

impl RunState {
    /// Not finished yet.
    pub fn is_open(self) -> bool {
        matches!(self, RunState::Running | RunState::Committing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_one_rule() {
        assert!(is_snake("orders_2"));
        for bad in [
            "",
            "Orders",
            "2orders",
            "or-ders",
            "or ders",
            "ö",
            &"a".repeat(65),
        ] {
            assert!(!is_snake(bad), "{bad}");
        }
        assert!(is_team("ecommerce-orders"));
        assert!(is_team("team_1"));
        assert!(!is_team("-x") && !is_team("X") && !is_team(""));
        assert!(DomainName::parse("sales").is_ok());
        assert!(DomainName::parse("sales-eu").is_err());
        let e = DomainName::parse("Sales").unwrap_err();
        assert_eq!(e.what, "domain name");
        assert!(e.to_string().contains("`Sales` is not a domain name"));
    }

    #[test]
    fn product_ids_and_ports() {
        let id = ProductId::parse("ecommerce.orders").unwrap();
        assert_eq!((id.domain(), id.name()), ("ecommerce", "orders"));
        for bad in ["ecommerce", "ecommerce.", ".orders", "a.b.c", "A.b"] {
            assert!(ProductId::parse(bad).is_err(), "{bad}");
        }
        let port = PortRef::parse("ecommerce.orders.items@v2").unwrap();
        assert_eq!(port.product, id);
        assert_eq!(port.port, "items");
        assert_eq!(port.major, Some(2));
        assert_eq!(port.contract_id(), "ecommerce.orders.items");
        assert_eq!(port.to_string(), "ecommerce.orders.items@2");
        assert!(PortRef::parse("ecommerce.orders").is_err());
        assert!(PortRef::parse("ecommerce.orders.items@x").is_err());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"ecommerce.orders\"");
        assert!(serde_json::from_str::<ProductId>("\"nope\"").is_err());
        assert_eq!(domain_of("analytics.ltv"), "analytics");
        assert_eq!(domain_of("ana"), "");
    }

    #[test]
    fn table_names_are_built_and_read_back_by_one_rule() {
        let id = ProductId::parse("ecommerce.orders").unwrap();
        let plain = TableName::of(&id, "orders", 2, true);
        assert_eq!(plain.to_string(), "ecommerce.orders");
        let other = TableName::of(&id, "items", 2, true);
        assert_eq!(other.table, "orders__items");
        let old = TableName::of(&id, "items", 1, false);
        assert_eq!(old.table, "orders__items__v1");
        for reference in ["mesh.ecommerce.orders", "ecommerce.orders", "orders"] {
            assert!(plain.is_named_by(reference), "{reference}");
        }
        assert!(!plain.is_named_by("analytics.orders"));
        assert!(!plain.is_named_by("ecommerce.orders__items"));
        assert_eq!(
            TableName::product_of("mesh.ecommerce.orders__items__v1"),
            "ecommerce.orders"
        );
        assert_eq!(TableName::product_of("orders"), "orders");
    }

    #[test]
    fn versions_and_selectors() {
        assert_eq!(major_of("1.4.0"), 1);
        assert_eq!(major_of("soon"), 0);
        assert!(parse_version("1.0").is_err());
        assert_eq!(
            VersionSelector::parse("1.2.0").unwrap(),
            VersionSelector::Exact(Version::new(1, 2, 0))
        );
        assert_eq!(
            VersionSelector::parse("v3").unwrap(),
            VersionSelector::Major(3)
        );
        assert_eq!(
            VersionSelector::parse("latest").unwrap(),
            VersionSelector::Latest
        );
        assert!(VersionSelector::parse("newest").is_err());
        let mut v = vec!["1.10.0", "x", "1.2.0"];
        v.sort_by(|a, b| by_semver(a, b));
        assert_eq!(v, ["1.2.0", "1.10.0", "x"]);
    }

    #[test]
    fn sensitivity_is_decided_once() {
        assert_eq!(Sensitivity::of(None), Sensitivity::Open);
        assert_eq!(Sensitivity::of(Some("internal")), Sensitivity::Open);
        assert_eq!(Sensitivity::of(Some("PII")), Sensitivity::Sensitive);
        assert_eq!(
            Sensitivity::of(Some("Confidential")),
            Sensitivity::Sensitive
        );
        assert_eq!(Sensitivity::of(Some("restricted")), Sensitivity::Restricted);
        assert!(Sensitivity::Restricted.is_sensitive());
    }

    #[test]
    fn property_names_match_the_lint() {
        use crate::odps::PlatformProperty as P;
        assert_eq!(props::PRODUCT_TYPE, P::ProductType.as_str());
        assert_eq!(props::DATA_CLASSIFICATION, P::DataClassification.as_str());
        assert_eq!(props::RETENTION_DAYS, P::RetentionDays.as_str());
        assert_eq!(props::SCHEDULE, P::Schedule.as_str());
    }

    #[test]
    fn states() {
        assert_eq!(
            VersionStatus::publishable("proposed"),
            Some(VersionStatus::Draft)
        );
        assert_eq!(VersionStatus::publishable("retired"), None);
        assert_eq!(
            VersionStatus::parse("deprecated").unwrap(),
            VersionStatus::Deprecated
        );
        assert!(VersionStatus::parse("gone").is_err());
        assert!(RunState::parse("committing").unwrap().is_open());
        assert!(!RunState::Failed.is_open());
        assert_eq!(
            serde_json::to_string(&RunState::Succeeded).unwrap(),
            "\"succeeded\""
        );
    }
}
