//! Outbound HTTP behind a trait, so that the provider logic is tested against
//! a local stand-in and the classification sees transport errors as values.

use std::time::Duration;

use async_trait::async_trait;

/// A request to a provider.
#[derive(Clone)]
pub struct HttpRequest {
    /// Absolute URL.
    pub url: String,
    /// Headers (name, value); values may be secret.
    pub headers: Vec<(String, String)>,
    /// `application/x-www-form-urlencoded` fields, or
    pub form: Option<Vec<(String, String)>>,
    /// a JSON body.
    pub json: Option<serde_json::Value>,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Field names only: values carry secrets.
        let names: Vec<_> = self
            .form
            .iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        f.debug_struct("HttpRequest")
            .field("url", &self.url)
            .field("form_fields", &names)
            .finish_non_exhaustive()
    }
}

/// A provider's answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// Body bytes (may carry tokens: never logged).
    pub body: Vec<u8>,
}

/// A request that got no HTTP answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// Could not connect (the request was never sent).
    #[error("could not connect: {0}")]
    Connect(String),
    /// Sent, but no answer in time: the outcome is unknown.
    #[error("no answer in time: {0}")]
    Timeout(String),
    /// Anything else on the wire.
    #[error("transport error: {0}")]
    Other(String),
}

/// Sends POST requests to providers.
#[async_trait]
pub trait HttpClient: Send + Sync + std::fmt::Debug + 'static {
    /// POSTs `req` and returns the answer, whatever its status.
    async fn post(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// The production client: reqwest with rustls, timeouts, no redirects.
#[derive(Debug, Clone)]
pub struct ReqwestClient {
    http: reqwest::Client,
}

impl ReqwestClient {
    /// A client with a total timeout per request.
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rotor/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a reqwest client with static settings builds");
        Self { http }
    }
}

#[async_trait]
impl HttpClient for ReqwestClient {
    async fn post(&self, req: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut r = self.http.post(&req.url);
        for (k, v) in &req.headers {
            r = r.header(k, v);
        }
        if let Some(form) = &req.form {
            r = r.form(form);
        }
        if let Some(json) = &req.json {
            r = r.json(json);
        }
        let res = r.send().await.map_err(|e| {
            // The whole source chain: "error sending request" alone says nothing.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            if e.is_connect() {
                TransportError::Connect(text)
            } else if e.is_timeout() {
                TransportError::Timeout(text)
            } else {
                TransportError::Other(text)
            }
        })?;
        let status = res.status().as_u16();
        let body = res
            .bytes()
            .await
            .map_err(|e| TransportError::Timeout(e.to_string()))?
            .to_vec();
        Ok(HttpResponse { status, body })
    }
}
