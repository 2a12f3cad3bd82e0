//! Webhook deliveries: the records of the durable outbox, and the pure
//! decisions about them — when to try again, when to give up, in which order.
//!
//! A delivery is written in the same transaction as the change it reports
//! (an installation created or deleted, an identity turned invalid or
//! re-authorized), so there is never a change without its webhook nor a
//! webhook for a change that rolled back. Its body can carry a grant code, so
//! it is stored sealed under the server key ([`WebhookDelivery::body_aad`]).

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::keys::Ciphertext;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not yet delivered; will be (re)tried at `next_attempt_at`.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Given up: refused by the address policy, or still failing after the
    /// retry window.
    Failed,
}

impl DeliveryStatus {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// Parses the wire and storage name.
    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// Who receives a delivery, and so whose secret signs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookTarget {
    /// An app's `webhookUrl`, signed with the app's current client secret.
    App(Uuid),
    /// The platform's own endpoint (`ROTOR_PLATFORM_WEBHOOK_URL`), signed
    /// with the platform webhook secret.
    Platform,
}

impl WebhookTarget {
    /// The storage name: the app's id, or `platform`.
    pub fn storage_key(self) -> String {
        match self {
            WebhookTarget::App(id) => id.to_string(),
            WebhookTarget::Platform => "platform".to_owned(),
        }
    }

    /// Parses [`WebhookTarget::storage_key`].
    pub fn from_storage_key(key: &str) -> Option<WebhookTarget> {
        if key == "platform" {
            Some(WebhookTarget::Platform)
        } else {
            Uuid::parse_str(key).ok().map(WebhookTarget::App)
        }
    }
}

/// A delivery as the outbox stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The delivery's id; sent as `Request-ID`, the same on every retry.
    pub id: Uuid,
    /// Who receives it.
    pub target: WebhookTarget,
    /// `installation` or `identity` (the `Sentry-Hook-Resource` header).
    pub resource: String,
    /// `installation.created`, `installation.deleted`, `identity.invalid`, …
    pub event_type: String,
    /// The URL it goes to, fixed when it was written.
    pub url: String,
    /// The exact body bytes, sealed (they may carry a grant code).
    pub body: Ciphertext,
    /// Deliveries with the same key go out one at a time, oldest first (an
    /// installation's `created` before its `deleted`).
    pub order_key: String,
    /// The installation it is about, if any.
    pub installation_id: Option<Uuid>,
    /// The organization of that installation, if any.
    pub org_slug: Option<String>,
    /// The upstream identity it is about, if any.
    pub identity_id: Option<Uuid>,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i64,
    /// HTTP status of the last attempt, if one answered.
    pub response_code: Option<i32>,
    /// Why the last attempt failed, if it did.
    pub error: Option<String>,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Start of the retry window: creation, or the last redelivery.
    pub retry_from: DateTime<Utc>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When the next attempt is due (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl WebhookDelivery {
    /// The associated data that binds a sealed body to its delivery.
    pub fn body_aad(id: Uuid) -> String {
        format!("webhook:{id}:body")
    }

    /// A new pending delivery, due at once.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: Uuid,
        target: WebhookTarget,
        resource: &str,
        event_type: &str,
        url: &str,
        body: Ciphertext,
        order_key: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            target,
            resource: resource.to_owned(),
            event_type: event_type.to_owned(),
            url: url.to_owned(),
            body,
            order_key,
            installation_id: None,
            org_slug: None,
            identity_id: None,
            status: DeliveryStatus::Pending,
            attempts: 0,
            response_code: None,
            error: None,
            created_at: now,
            retry_from: now,
            last_attempt_at: None,
            next_attempt_at: Some(now),
        }
    }
}

/// How one attempt ended, as the sender saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The receiver answered 2xx.
    Delivered(u16),
    /// The receiver answered something else (a redirect included: redirects
    /// are not followed).
    Rejected(u16),
    /// No answer: refused connection, timeout, reset, TLS or DNS failure.
    Unreachable(String),
    /// Not sent, and never will be: the address is not allowed, the URL is
    /// unusable, or the signing secret is gone.
    Refused(String),
}

/// What an attempt changes on its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The new status.
    pub status: DeliveryStatus,
    /// The receiver's status code, if it answered.
    pub response_code: Option<i32>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When the attempt was made.
    pub attempted_at: DateTime<Utc>,
    /// When to try again (pending only).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Retry schedule: exponential backoff with jitter, capped, with a window
/// after which the outbox gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry (before jitter).
    pub first: Duration,
    /// Longest delay between two attempts.
    pub max: Duration,
    /// Give up when the next attempt would fall this long after the retry
    /// window opened.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first: Duration::seconds(10),
            max: Duration::hours(1),
            give_up_after: Duration::hours(24),
        }
    }
}

impl RetryPolicy {
    /// The delay after `attempts` failed attempts (1 = the first failed):
    /// `first · 2^(attempts-1)`, at most `max`, scaled by `jitter` in
    /// `[0.5, 1.0]` so that receivers that come back are not hit by every
    /// retry at once.
    pub fn delay(&self, attempts: i64, jitter: f64) -> Duration {
        let exp = attempts.saturating_sub(1).clamp(0, 30) as u32;
        let base = self
            .first
            .checked_mul(1_i32.checked_shl(exp).unwrap_or(i32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        let jitter = jitter.clamp(0.5, 1.0);
        let millis = (base.num_milliseconds() as f64 * jitter) as i64;
        Duration::milliseconds(millis.max(0))
    }

    /// What attempt number `attempts` (counting this one) that ended with
    /// `result` at `now` does to a delivery whose retry window opened at
    /// `retry_from`.
    pub fn after_attempt(
        &self,
        result: &AttemptResult,
        attempts: i64,
        retry_from: DateTime<Utc>,
        now: DateTime<Utc>,
        jitter: f64,
    ) -> AttemptRecord {
        let (code, error) = match result {
            AttemptResult::Delivered(code) => {
                return AttemptRecord {
                    status: DeliveryStatus::Delivered,
                    response_code: Some(i32::from(*code)),
                    error: None,
                    attempted_at: now,
                    next_attempt_at: None,
                }
            }
            AttemptResult::Refused(why) => {
                return AttemptRecord {
                    status: DeliveryStatus::Failed,
                    response_code: None,
                    error: Some(why.clone()),
                    attempted_at: now,
                    next_attempt_at: None,
                }
            }
            AttemptResult::Rejected(code) => (
                Some(i32::from(*code)),
                format!("the receiver answered HTTP {code}"),
            ),
            AttemptResult::Unreachable(why) => (None, why.clone()),
        };
        let next = now + self.delay(attempts, jitter);
        if next > retry_from + self.give_up_after {
            AttemptRecord {
                status: DeliveryStatus::Failed,
                response_code: code,
                error: Some(format!("gave up after {attempts} attempts: {error}")),
                attempted_at: now,
                next_attempt_at: None,
            }
        } else {
            AttemptRecord {
                status: DeliveryStatus::Pending,
                response_code: code,
                error: Some(error),
                attempted_at: now,
                next_attempt_at: Some(next),
            }
        }
    }
}

/// Lowercase hex HMAC-SHA256 of `body` under `key`.
/// (`Sentry-Hook-Signature`: the receiver checks it with the same secret.)
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Writes a JSON text with every non-ASCII character escaped as `\uXXXX`
/// (UTF-16, surrogate pairs above the BMP). Receivers that re-serialize the
/// parsed body before checking the signature — Sentry's example backend does
/// `json.dumps(body, separators=(',', ':'))`, whose default escapes exactly
/// so — then hash the same bytes Rotor signed. Outside strings JSON is ASCII
/// already, so escaping character by character is safe.
pub fn ascii_json(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len());
    for c in compact.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn delays_double_from_the_first_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 1.0), Duration::seconds(10));
        assert_eq!(p.delay(2, 1.0), Duration::seconds(20));
        assert_eq!(p.delay(3, 1.0), Duration::seconds(40));
        assert_eq!(p.delay(12, 1.0), Duration::hours(1));
        assert_eq!(p.delay(1_000_000, 1.0), Duration::hours(1));
        assert_eq!(p.delay(1, 0.5), Duration::seconds(5));
        // jitter out of range is clamped, never zero or more than the base
        assert_eq!(p.delay(1, 0.0), Duration::seconds(5));
        assert_eq!(p.delay(1, 7.0), Duration::seconds(10));
    }

    #[test]
    fn a_2xx_delivers_and_a_refusal_fails_at_once() {
        let p = RetryPolicy::default();
        let r = p.after_attempt(&AttemptResult::Delivered(204), 1, t0(), t0(), 1.0);
        assert_eq!(r.status, DeliveryStatus::Delivered);
        assert_eq!(r.response_code, Some(204));
        let r = p.after_attempt(
            &AttemptResult::Refused("loopback".into()),
            1,
            t0(),
            t0(),
            1.0,
        );
        assert_eq!(r.status, DeliveryStatus::Failed);
        assert_eq!(r.next_attempt_at, None);
    }

    #[test]
    fn failures_retry_until_the_window_closes() {
        let p = RetryPolicy::default();
        let r = p.after_attempt(&AttemptResult::Rejected(500), 1, t0(), t0(), 1.0);
        assert_eq!(r.status, DeliveryStatus::Pending);
        assert_eq!(r.next_attempt_at, Some(t0() + Duration::seconds(10)));
        assert_eq!(r.response_code, Some(500));
        let late = t0() + Duration::hours(23) + Duration::minutes(30);
        let r = p.after_attempt(
            &AttemptResult::Unreachable("timeout".into()),
            30,
            t0(),
            late,
            1.0,
        );
        assert_eq!(r.status, DeliveryStatus::Failed);
        assert!(r
            .error
            .unwrap_or_default()
            .contains("gave up after 30 attempts"));
    }

    #[test]
    fn signature_is_rfc_4231_hmac_sha256_in_lowercase_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn ascii_json_escapes_like_python_json_dumps() {
        assert_eq!(ascii_json(r#"{"n":"abc"}"#), r#"{"n":"abc"}"#);
        assert_eq!(ascii_json(r#"{"n":"é"}"#), r#"{"n":"\u00e9"}"#);
        assert_eq!(ascii_json(r#"{"n":"😀"}"#), r#"{"n":"\ud83d\ude00"}"#);
    }
}
