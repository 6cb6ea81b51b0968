//! A small JSON-over-HTTP client for REST tests: every call returns the status and the
//! body (parsed JSON, or the text as a JSON string when it is not JSON).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// No single request of a test may take longer than this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone)]
pub struct Rest {
    url: String,
    http: reqwest::Client,
}

impl Rest {
    pub fn new(url: &str) -> Rest {
        Rest {
            url: url.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .expect("an HTTP client"),
        }
    }

    /// `method` on `path` with an optional body of `content_type`.
    pub async fn call_ct(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req
                .header("content-type", content_type)
                .body(serde_json::to_vec(b).expect("JSON body"));
        }
        let resp = req.send().await.expect("request sent");
        let code = resp.status();
        let text = resp.text().await.expect("response body");
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (code, v)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        self.call_ct(method, path, body, "application/json").await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// A merge patch.
    pub async fn merge(&self, path: &str, patch: &Value) -> (StatusCode, Value) {
        self.call_ct(
            Method::PATCH,
            path,
            Some(patch),
            "application/merge-patch+json",
        )
        .await
    }

    /// POST that must answer 201; the created object.
    pub async fn create(&self, path: &str, body: &Value) -> Value {
        let (code, v) = self.post(path, body).await;
        assert_eq!(code, StatusCode::CREATED, "POST {path}: {v}");
        v
    }
}
