//! Where the server key comes from: `ROTOR_SECRET_KEY` (standard base64 of 32
//! bytes) with older keys in `ROTOR_SECRET_KEYS_OLD`, or else a key file next
//! to the SQLite database, created on first start with owner-only permissions.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rotor_core::{Keyring, Secret, ServerKey};

/// Where the primary key was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// From the environment or configuration.
    Configured,
    /// Read from an existing key file.
    File(PathBuf),
    /// A new key, just written to this file.
    Created(PathBuf),
}

/// Builds the keyring from configured keys, or from (or into) `key_file`.
pub fn load_keyring(
    secret_key: Option<&Secret>,
    old_keys: Option<&Secret>,
    key_file: Option<&Path>,
    sealed_with: &[String],
) -> anyhow::Result<(Keyring, KeySource)> {
    let old = match old_keys {
        Some(list) => list
            .expose()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| ServerKey::from_base64(k).context("ROTOR_SECRET_KEYS_OLD"))
            .collect::<anyhow::Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    let (primary, source) = match (secret_key, key_file) {
        (Some(k), _) => (
            ServerKey::from_base64(k.expose()).context("ROTOR_SECRET_KEY")?,
            KeySource::Configured,
        ),
        (None, Some(path)) => read_or_create(path, sealed_with)?,
        (None, None) => bail!(
            "no server key: set ROTOR_SECRET_KEY to 32 random bytes in standard base64 \
             (e.g. `openssl rand -base64 32`); a key file is only created next to a SQLite file"
        ),
    };
    Ok((Keyring::with_old(primary, old), source))
}

/// Reads the key file, or creates it — only while no data is sealed yet
/// (`sealed_with` empty): a new key would make sealed data unreadable.
fn read_or_create(path: &Path, sealed_with: &[String]) -> anyhow::Result<(ServerKey, KeySource)> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = ServerKey::from_base64(&text)
                .with_context(|| format!("key file {}", path.display()))?;
            Ok((key, KeySource::File(path.to_owned())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !sealed_with.is_empty() => bail!(
            "the key file {} is missing, but the database holds data sealed under key id(s) {}: \
             restore the key file from your backup, or set ROTOR_SECRET_KEY (and \
             ROTOR_SECRET_KEYS_OLD) to the keys that sealed it. Rotor does not create a new key \
             here: it would make every client secret and upstream token unreadable",
            path.display(),
            sealed_with.join(", ")
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = ServerKey::generate();
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            match opts.open(path) {
                Ok(mut f) => {
                    f.write_all(format!("{}\n", key.to_base64()).as_bytes())
                        .and_then(|()| f.sync_all())
                        .with_context(|| format!("writing key file {}", path.display()))?;
                    Ok((key, KeySource::Created(path.to_owned())))
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    read_or_create(path, sealed_with)
                }
                Err(e) => Err(e).with_context(|| format!("creating key file {}", path.display())),
            }
        }
        Err(e) => Err(e).with_context(|| format!("reading key file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_file_is_created_for_a_database_with_sealed_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rotor.db.key");
        let e = load_keyring(None, None, Some(&path), &["4caa194b".into()]).unwrap_err();
        assert!(e.to_string().contains("4caa194b"), "{e}");
        assert!(e.to_string().contains("is missing"), "{e}");
        assert!(!path.exists());
    }

    #[test]
    fn a_key_file_is_created_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rotor.db.key");
        let (ring, src) = load_keyring(None, None, Some(&path), &[]).unwrap();
        assert_eq!(src, KeySource::Created(path.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (again, src) = load_keyring(None, None, Some(&path), &[]).unwrap();
        assert_eq!(src, KeySource::File(path));
        assert_eq!(ring.primary().id(), again.primary().id());
    }

    #[test]
    fn configured_keys_win_and_bad_ones_are_errors() {
        let k = ServerKey::generate();
        let old = ServerKey::generate();
        let (ring, src) = load_keyring(
            Some(&Secret::new(k.to_base64())),
            Some(&Secret::new(format!("{}, ", old.to_base64()))),
            None,
            &[],
        )
        .unwrap();
        assert_eq!(src, KeySource::Configured);
        assert_eq!(ring.primary().id(), k.id());
        let sealed = rotor_core::Keyring::new(old).seal(b"x", "a");
        assert_eq!(ring.open(&sealed, "a").unwrap(), b"x");
        assert!(load_keyring(Some(&Secret::new("short")), None, None, &[]).is_err());
        assert!(load_keyring(None, None, None, &[]).is_err());
    }
}
