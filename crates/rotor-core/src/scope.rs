//! The platform's scope vocabulary: which scope names an app may be given.
//!
//! By default it is Sentry's integration-platform scopes, so integrations
//! written for Sentry work unmodified; a platform with other resources sets
//! its own list (`ROTOR_SCOPES`).

use std::collections::BTreeSet;

use crate::error::CoreError;

/// Sentry's scope names (its `SENTRY_SCOPES` plus the OpenID ones).
pub const SENTRY_SCOPES: &[&str] = &[
    "org:read",
    "org:write",
    "org:admin",
    "org:integrations",
    "project:read",
    "project:write",
    "project:admin",
    "project:releases",
    "team:read",
    "team:write",
    "team:admin",
    "member:read",
    "member:write",
    "member:admin",
    "member:invite",
    "event:read",
    "event:write",
    "event:admin",
    "alerts:read",
    "alerts:write",
    "openid",
    "profile",
    "email",
];

/// The set of scope names an app may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeVocabulary {
    names: BTreeSet<String>,
}

impl Default for ScopeVocabulary {
    fn default() -> Self {
        Self::sentry()
    }
}

impl ScopeVocabulary {
    /// Sentry's scopes.
    pub fn sentry() -> Self {
        Self {
            names: SENTRY_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Parses a comma-separated list (`ROTOR_SCOPES`). A name is 1 to 64
    /// printable ASCII characters without spaces or commas; the list may not
    /// be empty.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut names = BTreeSet::new();
        for raw in list.split(',') {
            let name = raw.trim();
            if name.is_empty() {
                continue;
            }
            if name.len() > 64 || !name.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "scope {:?} must be 1 to 64 printable ASCII characters without spaces",
                    name.chars().take(64).collect::<String>()
                ));
            }
            names.insert(name.to_owned());
        }
        if names.is_empty() {
            return Err("the scope list is empty".into());
        }
        Ok(Self { names })
    }

    /// Every valid name, sorted.
    pub fn all(&self) -> Vec<String> {
        self.names.iter().cloned().collect()
    }

    /// Checks every scope and returns them sorted and without duplicates.
    pub fn normalize(&self, scopes: &[String]) -> Result<Vec<String>, CoreError> {
        let mut out: Vec<String> = Vec::with_capacity(scopes.len());
        for s in scopes {
            if !self.names.contains(s) {
                return Err(CoreError::InvalidScope {
                    scope: s.chars().take(64).collect(),
                    valid: self.all().join(", "),
                });
            }
            out.push(s.clone());
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_scopes_pass_sorted_and_deduplicated() {
        let got = ScopeVocabulary::sentry()
            .normalize(&[
                "project:read".into(),
                "event:write".into(),
                "project:read".into(),
            ])
            .unwrap();
        assert_eq!(got, vec!["event:write", "project:read"]);
    }

    #[test]
    fn unknown_scopes_are_refused_with_the_valid_list() {
        let v = ScopeVocabulary::sentry();
        assert!(v.normalize(&["project".into()]).is_err());
        assert!(v.normalize(&["root:all".into()]).is_err());
        let e = v.normalize(&["project:delete".into()]).unwrap_err();
        assert!(e.to_string().contains("project:delete"), "{e}");
        assert!(e.to_string().contains("org:read"), "{e}");
    }

    #[test]
    fn a_platform_vocabulary_replaces_sentrys() {
        let v = ScopeVocabulary::parse(" repo:read, repo:write ,,deploy").unwrap();
        assert_eq!(v.all(), vec!["deploy", "repo:read", "repo:write"]);
        assert!(v.normalize(&["repo:read".into()]).is_ok());
        assert!(v.normalize(&["project:read".into()]).is_err());
        assert!(ScopeVocabulary::parse(" , ").is_err());
        assert!(ScopeVocabulary::parse("a b").is_err());
    }
}
