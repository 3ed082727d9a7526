//! One error model for every 4xx and 5xx: RFC 9457 problem details (`application/problem+json`)
//! with a stable `code`, and the findings or change report when there are any. Which code and
//! status a failure gets is decided once, by [`ToProblem`] in the catalog and the service; this
//! module only sends it. A 5xx hides its cause: it is logged under an `error_id` that the problem
//! returns, so an operator finds it and a caller learns nothing of the internals.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
pub use mesh_catalog::Problem;
use mesh_catalog::{ErrorCode, ToProblem};

/// An error a handler returns; becomes a [`Problem`] response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// The problem document (boxed: errors stay small).
    pub problem: Box<Problem>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> ApiError {
        ApiError::from_problem(Problem::new(code, detail))
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, detail)
    }

    pub fn unauthenticated(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unauthenticated, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, detail)
    }

    /// The answer to `e`: its problem, or for the platform's own failures (5xx other than
    /// `busy`) a problem that names only an error id, under which the cause is logged.
    pub fn of(e: &(impl ToProblem + ?Sized)) -> ApiError {
        let mut problem = e.problem();
        let code = e.code();
        if !code.is_client_error() && code != ErrorCode::Busy {
            let id = uuid::Uuid::new_v4().to_string();
            log(&format!("error {id}: {e}"));
            problem.detail = match code {
                ErrorCode::Unavailable => {
                    format!("the data could not be read; the server logged why under error id {id}")
                }
                _ => format!("the server failed; it logged why under error id {id}"),
            };
            problem.error_id = Some(id);
        }
        ApiError::from_problem(problem)
    }

    pub fn from_problem(problem: Problem) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(problem.status)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            problem: Box::new(problem),
        }
    }

    /// The problem's code (`not_found`, ...).
    pub fn code(&self) -> &str {
        &self.problem.code
    }

    pub fn detail(&self) -> &str {
        &self.problem.detail
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, Json(*self.problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mesh\""),
            );
        }
        if matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// `From` each error of the catalog and the service, so handlers use `?`.
macro_rules! problems {
    ($($error:ty),+ $(,)?) => {
        $(impl From<$error> for ApiError {
            fn from(e: $error) -> ApiError {
                ApiError::of(&e)
            }
        })+
    };
}

problems!(
    mesh_catalog::access::AccessError,
    mesh_catalog::audit::AuditError,
    mesh_catalog::governance::GovernanceError,
    mesh_catalog::lifecycle::LifecycleError,
    mesh_catalog::lineage::LineageError,
    mesh_catalog::locations::LocationError,
    mesh_catalog::platform::PlatformError,
    mesh_catalog::products::ProductError,
    mesh_catalog::publish::PublishError,
    mesh_catalog::runs::RunsError,
    mesh_catalog::search::SearchError,
    mesh_catalog::sla::SlaError,
    mesh_catalog::tokens::TokenError,
    mesh_catalog::store::StoreError,
    mesh_catalog::subscriptions::SubscriptionError,
    mesh_service::ReadError,
    mesh_service::InputError,
);

pub(crate) use mesh_service::log;

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        let code = match r {
            JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
            JsonRejection::JsonDataError(_) => ErrorCode::Invalid,
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ErrorCode::PayloadTooLarge
            }
            _ => ErrorCode::BadRequest,
        };
        let mut e = ApiError::new(code, r.body_text());
        // Axum's own status for what it refused (e.g. 400 for a syntax error in JSON).
        e.status = r.status();
        e.problem.status = r.status().as_u16();
        e
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_say_why_and_server_errors_give_an_id() {
        let refused = ApiError::of(&mesh_catalog::tokens::TokenError::Unauthenticated);
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert!(refused.problem.error_id.is_none());
        assert!(
            refused
                .detail()
                .contains("unknown, expired or revoked token")
        );
        let failed = ApiError::of(&mesh_catalog::store::StoreError::Corrupt(
            "secret table details".into(),
        ));
        assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
        let id = failed.problem.error_id.clone().expect("an error id");
        assert!(failed.detail().contains(&id));
        assert!(!failed.detail().contains("secret"));
    }
}
