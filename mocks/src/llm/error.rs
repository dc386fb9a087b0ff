//! Errors in the OpenAI API's own shape: `{"error": {"message", "type", "param", "code"}}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error response the SDKs parse into their own exception types.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
    /// `invalid_request_error`, `rate_limit_error`, `server_error`, …
    pub kind: &'static str,
    /// The offending parameter, if any.
    pub param: Option<&'static str>,
    /// Machine-readable code, if any.
    pub code: Option<&'static str>,
    /// `retry-after` for 429s, ms.
    pub retry_after_ms: Option<u64>,
}

impl ApiError {
    /// A request body as JSON, or the 400 the API gives for one it cannot parse.
    pub fn json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::invalid(
                format!("We could not parse the JSON body of your request. ({e})"),
                None,
            )
        })
    }

    /// 413 for a body over the mock's limit (axum's 2 MB), in the API's error shape.
    pub fn too_large() -> ApiError {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: String::from(
                "Request body too large: the mock accepts request bodies of up to 2 MB.",
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("request_too_large"),
            retry_after_ms: None,
        }
    }

    /// 400 for a bad request body.
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param,
            code: None,
            retry_after_ms: None,
        }
    }

    /// 401 without an API key.
    pub fn unauthorized() -> ApiError {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: String::from(
                "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            ),
            kind: "invalid_request_error",
            param: None,
            code: None,
            retry_after_ms: None,
        }
    }

    /// 404 for a path the API does not have.
    pub fn not_found(method: &str, path: &str) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("Invalid URL ({method} {path})"),
            kind: "invalid_request_error",
            param: None,
            code: None,
            retry_after_ms: None,
        }
    }

    /// 429 over a rate limit.
    pub fn rate_limited(what: &str, retry_after_ms: u64) -> ApiError {
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "Rate limit reached for {what}. Please try again in {retry_after_ms}ms."
            ),
            kind: "requests",
            param: None,
            code: Some("rate_limit_exceeded"),
            retry_after_ms: Some(retry_after_ms),
        }
    }

    /// 500.
    pub fn internal() -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: String::from(
                "The server had an error while processing your request. Sorry about that!",
            ),
            kind: "server_error",
            param: None,
            code: None,
            retry_after_ms: None,
        }
    }

    /// 503.
    pub fn unavailable() -> ApiError {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: String::from("The engine is currently overloaded, please try again later."),
            kind: "server_error",
            param: None,
            code: None,
            retry_after_ms: None,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(ms) = self.retry_after_ms {
            let headers = response.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&ms.to_string()) {
                headers.insert("retry-after-ms", v);
            }
            if let Ok(v) = HeaderValue::from_str(&ms.div_ceil(1000).to_string()) {
                headers.insert("retry-after", v);
            }
        }
        response
    }
}
