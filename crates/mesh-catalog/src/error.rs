//! What the catalog's operations fail with, and the one mapping from a failure to a problem
//! document (RFC 9457) that the HTTP API returns and the CLI prints for a local catalog alike.
//!
//! Each area of the catalog has its own error enum (`PublishError`, `AccessError`, ...), whose
//! variants carry ids, not prose; the pieces they share are here: [`Denied`] (a principal may not
//! do something), [`Missing`] (what was not found), and [`ErrorCode`], the stable code and HTTP
//! status of every kind of failure. [`ToProblem`] turns any of them into a [`Problem`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of a failure, for programs: its code in a problem document and its HTTP status.
/// Documented in `docs/api.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No token, or one that is unknown, expired or revoked.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
    NotFound,
    /// The request is malformed: a bad name, version, date, mode or query.
    BadRequest,
    /// A document that does not pass `mesh lint --strict`, or is not what it should be.
    Invalid,
    /// A blocking governance policy is violated.
    Policy,
    /// Policies that do not load with the ones they join, or whose Rego tests fail.
    InvalidPolicies,
    /// Another document is already published under this version.
    VersionExists,
    /// A contract breaks the compatibility of its port.
    Incompatible,
    /// The state of the thing forbids it (retire before sunset, a run still open, ...).
    Lifecycle,
    UnsupportedMediaType,
    PayloadTooLarge,
    MethodNotAllowed,
    /// Too many queries from this consumer.
    RateLimited,
    /// The query ran longer than the server allows.
    Timeout,
    /// Too many concurrent writers; try again.
    Busy,
    /// The data behind a port could not be read (storage down, a file gone): the port's fault.
    Unavailable,
    /// The platform failed; the details are in the server's log, under the problem's error id.
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::BadRequest,
        ErrorCode::Invalid,
        ErrorCode::Policy,
        ErrorCode::InvalidPolicies,
        ErrorCode::VersionExists,
        ErrorCode::Incompatible,
        ErrorCode::Lifecycle,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PayloadTooLarge,
        ErrorCode::MethodNotAllowed,
        ErrorCode::RateLimited,
        ErrorCode::Timeout,
        ErrorCode::Busy,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Policy => "policy",
            ErrorCode::InvalidPolicies => "invalid_policies",
            ErrorCode::VersionExists => "version_exists",
            ErrorCode::Incompatible => "incompatible",
            ErrorCode::Lifecycle => "lifecycle",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Busy => "busy",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn parse(text: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The HTTP status of this kind of failure.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Timeout => 408,
            ErrorCode::VersionExists | ErrorCode::Incompatible | ErrorCode::Lifecycle => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::Invalid | ErrorCode::Policy | ErrorCode::InvalidPolicies => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable | ErrorCode::Busy => 503,
        }
    }

    /// The status text (RFC 9110), the problem's `title`.
    pub fn title(self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            409 => "Conflict",
            413 => "Payload Too Large",
            415 => "Unsupported Media Type",
            422 => "Unprocessable Entity",
            429 => "Too Many Requests",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        }
    }

    /// The caller's fault (4xx), as opposed to the platform's or the data's (5xx).
    pub fn is_client_error(self) -> bool {
        self.status() < 500
    }

    /// A refusal about the user's own input (the CLI exits 1), rather than an error (exit 2).
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            ErrorCode::Invalid
                | ErrorCode::Policy
                | ErrorCode::InvalidPolicies
                | ErrorCode::VersionExists
                | ErrorCode::Incompatible
                | ErrorCode::Lifecycle
                | ErrorCode::BadRequest
                | ErrorCode::NotFound
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One error document for every 4xx and 5xx: RFC 9457 problem details plus mesh's `code`, and
/// the findings or change report when there are any.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the kind of problem (documented in docs/api.md).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The HTTP status text.
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub status: u16,
    /// What went wrong, for people.
    #[serde(default)]
    pub detail: String,
    /// What went wrong, for programs: `unauthenticated`, `forbidden`, `not_found`,
    /// `bad_request`, `invalid`, `policy`, `invalid_policies`, `version_exists`, `incompatible`,
    /// `lifecycle`, `unsupported_media_type`, `payload_too_large`, `method_not_allowed`,
    /// `rate_limited`, `timeout`, `busy`, `unavailable`, `internal`.
    #[serde(default)]
    pub code: String,
    /// For a 5xx: the id under which the server logged what happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
    /// For `invalid`: every lint finding, with file, line and column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<serde_json::Value>,
    /// For `incompatible`: the breaking changes per output port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<serde_json::Value>,
    /// For `policy`: every policy violation (blocking and not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub violations: Option<serde_json::Value>,
    /// For `invalid_policies`: why the policies are refused, one problem each (Rego errors with
    /// file:line:col, federation clashes, failing Rego tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<String>>,
}

/// Where the codes are documented.
const PROBLEM_TYPES: &str = "https://github.com/mesh-data/mesh/blob/main/docs/api.md#";

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("{PROBLEM_TYPES}{}", code.as_str()),
            title: code.title().to_owned(),
            status: code.status(),
            detail: detail.into(),
            code: code.as_str().to_owned(),
            ..Problem::default()
        }
    }

    /// The code, when it is one of mesh's.
    pub fn error_code(&self) -> Option<ErrorCode> {
        ErrorCode::parse(&self.code)
    }
}

/// A failure as a problem document: every error of the catalog and of the services above it.
pub trait ToProblem: fmt::Display {
    fn code(&self) -> ErrorCode;

    /// Adds the failure's findings (diagnostics, ports, violations, problems) to its problem.
    fn extend(&self, _problem: &mut Problem) {}

    fn problem(&self) -> Problem {
        let mut problem = Problem::new(self.code(), self.to_string());
        self.extend(&mut problem);
        problem
    }
}

/// A principal may not do something.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("forbidden: {principal} may not {action}")]
pub struct Denied {
    pub principal: String,
    /// What it asked to do, e.g. `publish in domain `sales``.
    pub action: String,
}

/// What was not found (ids, for messages and programs alike).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    #[error("data product `{product}`")]
    Product { product: String },
    #[error("{product}@{version}")]
    Version { product: String, version: String },
    #[error("{product} has no version")]
    NoVersion { product: String },
    #[error("{product}@{major}: no such major version")]
    Major { product: String, major: u64 },
    #[error("a served version of {product}{}", major.map(|m| format!(" in major {m}")).unwrap_or_default())]
    ServedVersion { product: String, major: Option<i64> },
    #[error("output port `{port}` in {product}@{version}")]
    Port {
        product: String,
        version: String,
        port: String,
    },
    #[error("a published snapshot of {product}.{port}{}: run the product first", major.map(|m| format!(" (major {m})")).unwrap_or_default())]
    Snapshot {
        product: String,
        port: String,
        major: Option<i64>,
    },
    #[error("column `{column}` in the output ports of {product}")]
    Column { product: String, column: String },
    #[error("run {run}")]
    Run { run: String },
    #[error("access request {request}")]
    Request { request: String },
    #[error("grant {grant}")]
    Grant { grant: String },
    #[error("credential {credential}")]
    Credential { credential: String },
    #[error("live token `{token}`")]
    Token { token: String },
    #[error("principal `{principal}` (no token, role, grant or request)")]
    Principal { principal: String },
    #[error("version {version} of the {scope} policies")]
    PolicyBundle { scope: String, version: i64 },
    #[error("lineage node `{node}`")]
    LineageNode { node: String },
    #[error("location `{location}`")]
    Location { location: String },
    #[error("subscription {subscription}")]
    Subscription { subscription: String },
}

impl ToProblem for Denied {
    fn code(&self) -> ErrorCode {
        ErrorCode::Forbidden
    }
}

impl ToProblem for crate::store::StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            // A race the operation did not retry: the caller may.
            crate::store::StoreError::Conflict(_) => ErrorCode::Busy,
            // The database restarting, unreachable or saturated: the caller may retry.
            crate::store::StoreError::Database(e) if transient(e) => ErrorCode::Busy,
            _ => ErrorCode::Internal,
        }
    }
}

/// Whether a database error passes: the connection failed or was cut (a restart), no
/// connection was free in time, or the server refused for now (SQLSTATE class 08, connection
/// exceptions; 57P01–57P03, shutting down or starting up; 53300, too many connections; 40001
/// and 40P01, a serialization failure or deadlock).
fn transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                )
        }),
        _ => false,
    }
}

/// Implements `From<$from>` for an area error whose variant `$variant` wraps it.
macro_rules! wraps {
    ($error:ty: $($from:ty => $variant:ident),+ $(,)?) => {
        $(impl From<$from> for $error {
            fn from(e: $from) -> Self {
                <$error>::$variant(e.into())
            }
        })+
    };
}
pub(crate) use wraps;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_map_to_statuses() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert!((400..600).contains(&code.status()));
            assert_ne!(code.title(), "");
        }
        assert!(ErrorCode::Invalid.is_refusal());
        assert!(!ErrorCode::Forbidden.is_refusal());
        assert!(!ErrorCode::Internal.is_client_error());
        assert!(!ErrorCode::Unavailable.is_client_error());
        let p = Problem::new(ErrorCode::VersionExists, "taken");
        assert_eq!((p.status, p.title.as_str()), (409, "Conflict"));
        assert!(p.kind.ends_with("#version_exists"));
    }

    #[test]
    fn refusals_name_what() {
        let d = Denied {
            principal: "ana".into(),
            action: "publish in domain `sales`".into(),
        };
        assert_eq!(
            d.to_string(),
            "forbidden: ana may not publish in domain `sales`"
        );
        let m = Missing::Snapshot {
            product: "a.b".into(),
            port: "p".into(),
            major: Some(2),
        };
        assert_eq!(
            m.to_string(),
            "a published snapshot of a.b.p (major 2): run the product first"
        );
    }
}
