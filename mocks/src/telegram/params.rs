//! A Bot API method's parameters, from the query string and a body in any of the encodings
//! the client libraries use: JSON, `application/x-www-form-urlencoded` (nested values as
//! JSON strings, numbers as strings) and `multipart/form-data` (file uploads).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::Value;

/// The parameters, by name. Form and multipart values arrive as strings; the getters read
/// numbers and JSON from strings as the real API does.
#[derive(Debug, Default, Clone)]
pub struct Params {
    values: HashMap<String, Value>,
    /// Uploaded files: parameter name → (file name, size in bytes).
    pub files: HashMap<String, (String, usize)>,
}

impl Params {
    /// Reads the query string and the body; the error is a Bot API `description`.
    pub async fn from_request(request: Request) -> Result<Params, String> {
        let mut params = Params::default();
        if let Some(query) = request.uri().query() {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
                .map_err(|e| format!("Bad Request: can't parse query: {e}"))?;
            params
                .values
                .extend(pairs.into_iter().map(|(k, v)| (k, Value::String(v))));
        }
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        if mime == "multipart/form-data" {
            params.multipart(request).await?;
        } else {
            let body = Bytes::from_request(request, &())
                .await
                .map_err(|e| format!("Bad Request: {e}"))?;
            params.body(&mime, &body)?;
        }
        Ok(params)
    }

    /// Reads a `multipart/form-data` body: files by name with their size, the rest as text.
    async fn multipart(&mut self, request: Request) -> Result<(), String> {
        let mut multipart = Multipart::from_request(request, &())
            .await
            .map_err(|e| format!("Bad Request: {e}"))?;
        while let Ok(Some(field)) = multipart.next_field().await {
            let name = field.name().unwrap_or_default().to_string();
            let file_name = field.file_name().map(str::to_string);
            let data = field
                .bytes()
                .await
                .map_err(|e| format!("Bad Request: {e}"))?;
            match file_name {
                Some(file) => {
                    self.files.insert(name, (file, data.len()));
                }
                None => {
                    let text = String::from_utf8_lossy(&data).into_owned();
                    self.values.insert(name, Value::String(text));
                }
            }
        }
        Ok(())
    }

    /// Reads a JSON object or a form-encoded body (an empty one is no parameters).
    fn body(&mut self, mime: &str, body: &[u8]) -> Result<(), String> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        if mime == "application/json" || (mime.is_empty() && body.first() == Some(&b'{')) {
            let Value::Object(map) = serde_json::from_slice::<Value>(body)
                .map_err(|e| format!("Bad Request: can't parse JSON object: {e}"))?
            else {
                return Err(String::from("Bad Request: the body must be a JSON object"));
            };
            self.values.extend(map);
        } else {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|e| format!("Bad Request: can't parse form: {e}"))?;
            self.values
                .extend(pairs.into_iter().map(|(k, v)| (k, Value::String(v))));
        }
        Ok(())
    }

    /// A string parameter.
    pub fn str(&self, name: &str) -> Option<String> {
        match self.values.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// An integer parameter (a JSON number or a string of digits).
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A boolean parameter (`true`, `"true"`, `1`).
    pub fn bool(&self, name: &str) -> bool {
        match self.values.get(name) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s == "true" || s == "1" || s == "True",
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            _ => false,
        }
    }

    /// A JSON parameter (an object, or a string holding JSON as form encodings send it).
    pub fn json(&self, name: &str) -> Option<Value> {
        match self.values.get(name)? {
            Value::String(s) => serde_json::from_str(s).ok(),
            Value::Null => None,
            other => Some(other.clone()),
        }
    }

    /// Whether a parameter (or file) was given.
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name) || self.files.contains_key(name)
    }
}
