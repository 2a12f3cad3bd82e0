//! Sends one webhook attempt: a signed `POST` with a deadline, no redirects,
//! no proxy, and every address checked against the [`AddressPolicy`] after
//! DNS — the resolver hands the connector only the allowed addresses, and an
//! IP literal in the URL is checked before anything is sent. The answer is
//! an [`AttemptResult`]; nothing here decides about retries.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rotor_core::AttemptResult;
use url::Url;

use super::guard::AddressPolicy;

/// An address-policy refusal raised by the resolver; found again in the
/// error chain so that it is reported as final, not retried.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Resolves with the system resolver, then keeps only allowed addresses.
#[derive(Debug)]
struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut why = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        why.get_or_insert(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = why.unwrap_or_else(|| "no address".into());
                let e: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(Refused(format!("{host} resolves to {why}")));
                return Err(e);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// One attempt's request.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// Where to.
    pub url: &'a str,
    /// `Request-ID`.
    pub request_id: String,
    /// `Sentry-Hook-Resource`.
    pub resource: &'a str,
    /// `Sentry-Hook-Timestamp`: Unix seconds of this attempt.
    pub timestamp: i64,
    /// `Sentry-Hook-Signature`: lowercase hex HMAC-SHA256 of `body`.
    pub signature: String,
    /// The exact bytes that were signed.
    pub body: Vec<u8>,
}

/// The webhook HTTP client.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    timeout: Duration,
}

impl Sender {
    /// A client bound to `policy`, each attempt limited to `timeout`.
    pub fn new(policy: AddressPolicy, timeout: Duration) -> Result<Self, String> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("Rotor-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                policy: Arc::clone(&policy),
            }))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Self {
            client,
            policy,
            timeout,
        })
    }

    /// Sends one attempt.
    pub async fn send(&self, out: Outgoing<'_>) -> AttemptResult {
        let url = match Url::parse(out.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            _ => return AttemptResult::Refused(format!("{:?} is not an http(s) URL", out.url)),
        };
        // The resolver is not asked for IP literals: check them here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => None,
            None => return AttemptResult::Refused("the URL has no host".into()),
        };
        if let Some(ip) = literal {
            if let Err(why) = self.policy.check(ip) {
                return AttemptResult::Refused(why);
            }
        }
        let request = self
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .header("Request-ID", out.request_id)
            .header("Sentry-Hook-Resource", out.resource)
            .header("Sentry-Hook-Timestamp", out.timestamp.to_string())
            .header("Sentry-Hook-Signature", out.signature)
            .body(out.body);
        // The client's timeout covers the request; this also bounds DNS.
        match tokio::time::timeout(self.timeout, request.send()).await {
            Err(_) => AttemptResult::Unreachable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            )),
            Ok(Ok(res)) => {
                let code = res.status().as_u16();
                if res.status().is_success() {
                    AttemptResult::Delivered(code)
                } else {
                    AttemptResult::Rejected(code)
                }
            }
            Ok(Err(e)) => match refusal(&e) {
                Some(why) => AttemptResult::Refused(why),
                None => AttemptResult::Unreachable(describe(&e)),
            },
        }
    }
}

/// The address-policy refusal in `e`'s causes, if that is why it failed.
fn refusal(e: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<Refused>() {
            return Some(r.0.clone());
        }
        cause = c.source();
    }
    None
}

/// A one-line account of a transport failure, with its innermost cause.
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut inner: &dyn std::error::Error = e;
    while let Some(c) = inner.source() {
        inner = c;
    }
    format!("{what}: {inner}")
}
