//! One error model for every 4xx and 5xx: RFC 9457 problem details (`application/problem+json`)
//! with a stable `code`, and the findings or change report when there are any.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mesh_catalog::CatalogError;
use serde::Serialize;

/// A problem, as RFC 9457 describes it, plus mesh's `code`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (documented in docs/api.md).
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status text.
    pub title: String,
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// What went wrong, for programs: `unauthenticated`, `forbidden`, `not_found`,
    /// `bad_request`, `invalid`, `policy`, `invalid_policies`, `version_exists`, `incompatible`, `lifecycle`, `unsupported_media_type`,
    /// `payload_too_large`, `method_not_allowed`, `busy`, `internal`.
    pub code: String,
    /// For `invalid`: every lint finding, with file, line and column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<serde_json::Value>,
    /// For `incompatible`: the breaking changes per output port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<serde_json::Value>,
    /// For `policy`: every policy violation (blocking and not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<serde_json::Value>,
    /// For `invalid_policies`: why the policies are refused, one problem each (Rego errors with
    /// file:line:col, federation clashes, failing Rego tests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<String>>,
}

/// An error a handler returns; becomes a [`Problem`] response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Findings or a change report, when the problem has them (boxed: errors stay small).
    pub extra: Option<Box<Extra>>,
}

/// The optional members of a problem document.
#[derive(Debug, Default)]
pub struct Extra {
    pub diagnostics: Option<serde_json::Value>,
    pub ports: Option<serde_json::Value>,
    pub violations: Option<serde_json::Value>,
    pub problems: Option<Vec<String>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            extra: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    pub fn unauthenticated(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!(
                "https://github.com/mesh-data/mesh/blob/main/docs/api.md#{}",
                self.code
            ),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            diagnostics: self.extra.as_ref().and_then(|e| e.diagnostics.clone()),
            ports: self.extra.as_ref().and_then(|e| e.ports.clone()),
            violations: self.extra.as_ref().and_then(|e| e.violations.clone()),
            problems: self.extra.as_ref().and_then(|e| e.problems.clone()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.problem())).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mesh\""),
            );
        }
        if matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> ApiError {
        let detail = e.to_string();
        match e {
            CatalogError::Unauthenticated(_) => ApiError::unauthenticated(detail),
            CatalogError::Forbidden(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", detail),
            CatalogError::NotFound(_) => ApiError::not_found(detail),
            CatalogError::BadRequest(_) => ApiError::bad_request(detail),
            CatalogError::InvalidDocument(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail)
            }
            CatalogError::Invalid(findings) => ApiError {
                extra: Some(Box::new(Extra {
                    diagnostics: Some(findings.iter().map(|(path, d)| d.to_json(path)).collect()),
                    ports: None,
                    violations: None,
                    problems: None,
                })),
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", detail)
            },
            CatalogError::VersionExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "version_exists", detail)
            }
            CatalogError::Incompatible { ports, .. } => ApiError {
                extra: Some(Box::new(Extra {
                    diagnostics: None,
                    ports: serde_json::to_value(&ports).ok(),
                    violations: None,
                    problems: None,
                })),
                ..ApiError::new(StatusCode::CONFLICT, "incompatible", detail)
            },
            CatalogError::Lifecycle(_) => ApiError::new(StatusCode::CONFLICT, "lifecycle", detail),
            CatalogError::PolicyViolation { violations, .. } => ApiError {
                extra: Some(Box::new(Extra {
                    diagnostics: None,
                    ports: None,
                    violations: serde_json::to_value(&violations).ok(),
                    problems: None,
                })),
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "policy", detail)
            },
            CatalogError::InvalidPolicies(problems) => ApiError {
                extra: Some(Box::new(Extra {
                    problems: Some(problems),
                    ..Extra::default()
                })),
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_policies", detail)
            },
            CatalogError::Busy(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", detail),
            // Database details stay in the server's log, not in the response.
            CatalogError::Store(e) => {
                tracing_error(&e);
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the catalog database failed; see the server log",
                )
            }
        }
    }
}

#[allow(clippy::print_stderr)]
fn tracing_error(e: &dyn std::error::Error) {
    eprintln!("mesh serve: error: {e}");
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        let code = match r {
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            JsonRejection::JsonDataError(_) => "invalid",
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                "payload_too_large"
            }
            _ => "bad_request",
        };
        ApiError::new(r.status(), code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::bad_request(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::bad_request(r.body_text())
    }
}
