//! Slugs: lower-case ASCII letters, digits and single dashes, derived from names.

/// Derives a slug from a human name: `"My App!"` → `"my-app"`.
pub fn slugify(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        } else {
            dash = true;
        }
        if out.len() >= 64 {
            break;
        }
    }
    out
}

/// Whether `s` is a valid slug (as for organization slugs in routes).
pub fn is_valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !s.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_slugs() {
        assert_eq!(slugify("My App!"), "my-app");
        assert_eq!(slugify("  Acme -- CI  "), "acme-ci");
        assert_eq!(slugify("Ünïcode"), "n-code");
        assert_eq!(slugify("!!!"), "");
    }

    #[test]
    fn validity() {
        assert!(is_valid("acme"));
        assert!(is_valid("acme-2_x"));
        assert!(!is_valid("Acme"));
        assert!(!is_valid(""));
        assert!(!is_valid("-a"));
        assert!(!is_valid("a/b"));
    }
}
