//! RFC 6749 §5.2 errors of the `/oauth/` routes, and how use-case and
//! body failures map to them.

use axum::http::header::{CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rotor_core::CoreError;

use crate::http::{error::ApiError, wire};
use crate::service::ServiceError;

/// An RFC 6749 §5.2 error.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// Set when the client authenticated with HTTP Basic and failed.
    basic_challenge: bool,
    /// Seconds for `Retry-After`, when throttled.
    retry_after: Option<u64>,
}

impl OAuthError {
    pub(super) fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
        }
    }

    /// 429 after too many failed authentications; `Retry-After: secs`.
    pub(super) fn throttled(secs: u64) -> Self {
        Self {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                format!("Too many failed authentication attempts; retry in {secs} s"),
            )
        }
    }

    pub(super) fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub(super) fn invalid_client(basic: bool) -> Self {
        Self {
            basic_challenge: basic,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed",
            )
        }
    }

    /// Maps a use-case failure; `basic` says whether the client used Basic.
    pub(super) fn from_service(e: ServiceError, basic: bool) -> Self {
        match e {
            ServiceError::Refused(CoreError::InvalidClient) => Self::invalid_client(basic),
            ServiceError::Refused(c) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_grant", c.to_string())
            }
            ServiceError::NotFound(what) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                format!("{what} not found"),
            ),
            ServiceError::Invalid(m) | ServiceError::Conflict(m) => Self::invalid_request(m),
            ServiceError::Throttled(secs) => Self::throttled(secs),
            // The API's mapping logs and counts the failure; RFC 6749 names
            // the two 5xx answers.
            // Faults: the API's mapping logs and counts them once.
            fault @ (ServiceError::Store(_) | ServiceError::Sealed { .. }) => {
                match ApiError::from(fault) {
                    ApiError::Unavailable => Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily_unavailable",
                        "The database is unavailable; try again shortly",
                    ),
                    ApiError::NotFound(m) => Self::new(StatusCode::BAD_REQUEST, "invalid_grant", m),
                    ApiError::Conflict(m) => Self::invalid_request(m),
                    ApiError::Internal
                    | ApiError::MissingFields(_)
                    | ApiError::FieldErrors(_)
                    | ApiError::BadRequest(_)
                    | ApiError::Unauthorized(_)
                    | ApiError::Forbidden(_)
                    | ApiError::MethodNotAllowed
                    | ApiError::TooManyRequests(_)
                    | ApiError::PayloadTooLarge
                    | ApiError::UnsupportedMediaType(_)
                    | ApiError::ProviderUnavailable(_) => Self::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "Internal error",
                    ),
                }
            }
        }
    }

    pub(super) fn from_body(e: ApiError) -> Self {
        let status = e.status();
        let description = match e {
            ApiError::PayloadTooLarge => "Request body is larger than the 64 KiB limit".into(),
            ApiError::UnsupportedMediaType(m) | ApiError::BadRequest(m) => m,
            ApiError::MissingFields(f) => format!("Missing parameter(s): {}", f.join(", ")),
            ApiError::FieldErrors(_)
            | ApiError::Unauthorized(_)
            | ApiError::Forbidden(_)
            | ApiError::NotFound(_)
            | ApiError::MethodNotAllowed
            | ApiError::Conflict(_)
            | ApiError::TooManyRequests(_)
            | ApiError::Unavailable
            | ApiError::ProviderUnavailable(_)
            | ApiError::Internal => "Malformed request".into(),
        };
        Self::new(status, "invalid_request", description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(wire::OAuthErrorBody {
                error: self.error.to_owned(),
                error_description: self.description,
            }),
        )
            .into_response();
        let h = res.headers_mut();
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(secs) = self.retry_after {
            h.insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.basic_challenge {
            h.insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"rotor\", charset=\"UTF-8\""),
            );
        }
        res
    }
}
