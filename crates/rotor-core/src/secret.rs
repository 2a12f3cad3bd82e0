//! A string that must never be printed: `Debug` and `Display` show
//! `[redacted]`, and [`Secret::last4`] is the most a log line may carry.

use subtle::ConstantTimeEq;

/// A secret string (a client secret, an admin token, an upstream token).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is sent or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last four characters, for log lines that must tell secrets apart.
    pub fn last4(&self) -> &str {
        last4(&self.0)
    }

    /// Compares in constant time (for equal lengths).
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

/// The last four characters of `s` (all of it when shorter), on a char boundary.
pub fn last4(s: &str) -> &str {
    let mut idx = s.len();
    for (n, (i, _)) in s.char_indices().rev().enumerate() {
        idx = i;
        if n == 3 {
            break;
        }
    }
    &s[idx..]
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.last4(), "cret");
    }

    #[test]
    fn last4_is_char_safe() {
        assert_eq!(last4("ab"), "ab");
        assert_eq!(last4("héllo wörld"), "örld");
        assert_eq!(last4(""), "");
    }

    #[test]
    fn constant_time_compare() {
        let s = Secret::new("abc");
        assert!(s.ct_eq("abc"));
        assert!(!s.ct_eq("abd"));
        assert!(!s.ct_eq("abcd"));
    }
}
