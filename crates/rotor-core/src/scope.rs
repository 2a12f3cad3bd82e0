//! Scopes as Sentry names them: `resource:action`, e.g. `project:read`.

use crate::error::CoreError;

const RESOURCES: &[&str] = &[
    "project", "team", "member", "org", "event", "release", "alerts", "openid", "profile", "email",
];
const ACTIONS: &[&str] = &["read", "write", "admin"];

/// Every scope name Rotor accepts.
pub fn all() -> Vec<String> {
    RESOURCES
        .iter()
        .flat_map(|r| ACTIONS.iter().map(move |a| format!("{r}:{a}")))
        .collect()
}

/// Checks every scope and returns them sorted and without duplicates.
pub fn normalize(scopes: &[String]) -> Result<Vec<String>, CoreError> {
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for s in scopes {
        let ok = match s.split_once(':') {
            Some((res, act)) => RESOURCES.contains(&res) && ACTIONS.contains(&act),
            None => false,
        };
        if !ok {
            return Err(CoreError::InvalidScope(s.chars().take(64).collect()));
        }
        out.push(s.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_scopes_pass_sorted_and_deduplicated() {
        let got = normalize(&[
            "project:read".into(),
            "event:write".into(),
            "project:read".into(),
        ])
        .unwrap();
        assert_eq!(got, vec!["event:write", "project:read"]);
    }

    #[test]
    fn unknown_scopes_are_refused() {
        assert!(normalize(&["project".into()]).is_err());
        assert!(normalize(&["root:all".into()]).is_err());
        assert!(normalize(&["project:delete".into()]).is_err());
    }
}
