//! Failure classification: "needs re-authorization" (stop retrying, tell a
//! human) against "try again" (back off, keep serving the current token).

use serde_json::Value;

use crate::config::ProviderKind;
use crate::http::TransportError;

/// Why a refresh did not produce a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The grant is gone: the identity needs re-authorization. The text is
    /// the provider's own error (never a token).
    Invalid(String),
    /// Worth retrying with backoff. `unknown_outcome` is set when the request
    /// was sent but no answer came: a rotating provider may have rotated.
    Transient {
        /// What went wrong.
        reason: String,
        /// Sent without an answer.
        unknown_outcome: bool,
    },
}

impl Failure {
    pub(crate) fn transient(reason: impl Into<String>) -> Failure {
        Failure::Transient {
            reason: reason.into(),
            unknown_outcome: false,
        }
    }

    /// The human-readable reason.
    pub fn reason(&self) -> &str {
        match self {
            Failure::Invalid(r) | Failure::Transient { reason: r, .. } => r,
        }
    }
}

/// The `error` (and `error_description`) of an OAuth-style error body.
fn oauth_error(body: &[u8]) -> (Option<String>, String) {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v["error"].as_str().map(str::to_owned);
    let desc = v["error_description"].as_str().unwrap_or_default();
    let text = match &code {
        Some(c) if !desc.is_empty() => format!("{c}: {desc}"),
        Some(c) => c.clone(),
        None => String::new(),
    };
    (code, text.chars().take(300).collect())
}

/// Classifies a non-success answer (or Slack's `"ok": false`).
pub fn classify_answer(kind: ProviderKind, status: u16, body: &[u8]) -> Failure {
    let (code, text) = oauth_error(body);
    let text = if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    };
    let code = code.as_deref().unwrap_or_default();
    let invalid = match kind {
        ProviderKind::Slack => matches!(
            code,
            "invalid_refresh_token"
                | "invalid_grant"
                | "token_revoked"
                | "invalid_client_id"
                | "bad_client_secret"
        ),
        ProviderKind::Entra => {
            status == 401
                || (matches!(status, 400 | 403)
                    && matches!(code, "invalid_grant" | "interaction_required"))
        }
        _ => status == 401 || (matches!(status, 400 | 403) && code == "invalid_grant"),
    };
    if invalid {
        Failure::Invalid(text)
    } else {
        Failure::transient(text)
    }
}

/// Classifies a request that got no answer.
pub fn classify_transport(e: &TransportError) -> Failure {
    match e {
        TransportError::Connect(_) => Failure::transient(e.to_string()),
        TransportError::Timeout(_) | TransportError::Other(_) => Failure::Transient {
            reason: e.to_string(),
            unknown_outcome: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProviderKind::*;

    fn body(error: &str) -> Vec<u8> {
        format!(r#"{{"error":"{error}","error_description":"why"}}"#).into_bytes()
    }

    #[test]
    fn the_classification_table() {
        let invalid = |k, s, b: &[u8]| matches!(classify_answer(k, s, b), Failure::Invalid(_));
        // 401 is re-authorization everywhere but Slack (which answers 200).
        for k in [OAuth2, AzureDevOps, Entra, GithubApp, Google, Atlassian] {
            assert!(invalid(k, 401, b""), "{k:?}");
            assert!(invalid(k, 400, &body("invalid_grant")), "{k:?}");
            assert!(!invalid(k, 400, &body("invalid_request")), "{k:?}");
            assert!(!invalid(k, 500, &body("invalid_grant")), "{k:?}");
            assert!(!invalid(k, 429, b""), "{k:?}");
            assert!(!invalid(k, 503, b"<html>"), "{k:?}");
        }
        assert!(invalid(Atlassian, 403, &body("invalid_grant")));
        assert!(invalid(Entra, 400, &body("interaction_required")));
        assert!(!invalid(Google, 400, &body("interaction_required")));
        assert!(invalid(
            Slack,
            200,
            br#"{"ok":false,"error":"invalid_refresh_token"}"#
        ));
        assert!(!invalid(
            Slack,
            200,
            br#"{"ok":false,"error":"ratelimited"}"#
        ));
        let f = classify_answer(OAuth2, 400, &body("invalid_grant"));
        assert_eq!(f.reason(), "HTTP 400: invalid_grant: why");
    }

    #[test]
    fn transport_errors_are_transient_and_say_if_the_outcome_is_unknown() {
        assert_eq!(
            classify_transport(&TransportError::Connect("refused".into())),
            Failure::transient("could not connect: refused")
        );
        assert!(matches!(
            classify_transport(&TransportError::Timeout("t".into())),
            Failure::Transient {
                unknown_outcome: true,
                ..
            }
        ));
    }
}
