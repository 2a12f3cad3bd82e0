//! Where the server key comes from: `ROTOR_SECRET_KEY` (standard base64 of 32
//! bytes) with older keys in `ROTOR_SECRET_KEYS_OLD`, or else a key file next
//! to the SQLite database, created on first start with owner-only permissions.
//!
//! The key file holds one key per line, standard base64: the first is the
//! primary (it seals), the others are older keys still needed to open values
//! sealed before a rotation (`rotor keys rotate` adds one, `rotor keys
//! retire` drops those nothing is sealed under). Lines starting with `#` are
//! comments. It is only ever replaced whole: written beside, fsynced, renamed
//! over, and the directory fsynced, so a crash leaves the old file or the new
//! one, never a torn one.

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
    let mut old = old;
    let (primary, source) = match (secret_key, key_file) {
        (Some(k), _) => (
            ServerKey::from_base64(k.expose()).context("ROTOR_SECRET_KEY")?,
            KeySource::Configured,
        ),
        (None, Some(path)) => {
            let (mut keys, source) = read_or_create(path, sealed_with)?;
            let primary = keys.remove(0);
            old.extend(keys);
            (primary, source)
        }
        (None, None) => bail!(
            "no server key: set ROTOR_SECRET_KEY to 32 random bytes in standard base64 \
             (e.g. `openssl rand -base64 32`); a key file is only created next to a SQLite file"
        ),
    };
    Ok((Keyring::with_old(primary, old), source))
}

/// Reads the key file, or creates it — only while no data is sealed yet
/// (`sealed_with` empty): a new key would make sealed data unreadable.
fn read_or_create(
    path: &Path,
    sealed_with: &[String],
) -> anyhow::Result<(Vec<ServerKey>, KeySource)> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((
            parse_key_file(path, &text)?,
            KeySource::File(path.to_owned()),
        )),
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
                    Ok((vec![key], KeySource::Created(path.to_owned())))
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

/// The keys of a key file, primary first.
fn parse_key_file(path: &Path, text: &str) -> anyhow::Result<Vec<ServerKey>> {
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(n, l)| {
            ServerKey::from_base64(l)
                .with_context(|| format!("key file {}, key {}", path.display(), n + 1))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if keys.is_empty() {
        bail!("the key file {} holds no key", path.display());
    }
    Ok(keys)
}

/// Reads the keys of an existing key file, primary first.
pub fn read_key_file(path: &Path) -> anyhow::Result<Vec<ServerKey>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key file {}", path.display()))?;
    parse_key_file(path, &text)
}

/// Replaces the key file with `keys` (primary first), atomically: a
/// temporary file beside it (owner-only), written and fsynced, renamed over
/// it, and the directory fsynced so the rename itself survives a crash.
pub fn write_key_file(path: &Path, keys: &[ServerKey]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut text =
        String::from("# Rotor server keys: the first seals, the others only open older values.\n");
    for (n, k) in keys.iter().enumerate() {
        if n == 1 {
            text.push_str("# older keys, kept until `rotor keys retire`\n");
        }
        text.push_str(&k.to_base64());
        text.push('\n');
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".rotor-key-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary key file in {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("replacing key file {}", path.display()))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))?;
    Ok(())
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
    fn a_rewritten_key_file_keeps_old_keys_and_its_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rotor.db.key");
        let (first, _) = load_keyring(None, None, Some(&path), &[]).unwrap();
        let sealed = first.seal(b"secret", "aad");
        let new = ServerKey::generate();
        let old = read_key_file(&path).unwrap();
        write_key_file(&path, &[new.clone(), old[0].clone()]).unwrap();
        let (ring, src) = load_keyring(None, None, Some(&path), &["x".into()]).unwrap();
        assert_eq!(src, KeySource::File(path.clone()));
        assert_eq!(ring.primary().id(), new.id());
        assert_eq!(ring.open(&sealed, "aad").unwrap(), b"secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
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
