//! The server keyring: 32-byte keys, each with a short id, used to encrypt
//! secrets at rest with XChaCha20-Poly1305 and to derive purpose-bound subkeys.
//!
//! XChaCha20-Poly1305 is chosen over AES-GCM because its 192-bit nonce can be
//! drawn at random for every encryption without a birthday bound worth
//! counting, and it is constant time without AES-NI.
//!
//! Every ciphertext carries the id of the key that made it, and associated data
//! that binds it to its row and field, so a ciphertext copied to another row
//! does not decrypt. Older keys stay in the ring for decryption only while they
//! are rotated out.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 24;

/// Why a key could not be loaded or a ciphertext not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key text is not standard base64 of exactly 32 bytes.
    #[error("a server key must be 32 bytes in standard base64")]
    BadKey,
    /// The ciphertext names a key that is not in the ring.
    #[error("no key with id {0} in the keyring")]
    UnknownKey(String),
    /// Authentication failed: wrong key, wrong associated data, or tampering.
    #[error("ciphertext does not decrypt under its key")]
    Decrypt,
}

/// One 32-byte server key.
#[derive(Clone)]
pub struct ServerKey {
    bytes: [u8; 32],
    id: String,
}

impl ServerKey {
    /// A new random key.
    pub fn generate() -> ServerKey {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> ServerKey {
        let digest = Sha256::new()
            .chain_update(b"rotor key id v1")
            .chain_update(bytes)
            .finalize();
        ServerKey {
            bytes,
            id: hex::encode(&digest[..4]),
        }
    }

    /// Parses standard base64 of 32 bytes (surrounding white space allowed).
    pub fn from_base64(text: &str) -> Result<ServerKey, KeyError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::BadKey)?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| KeyError::BadKey)?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key as standard base64, for writing a key file.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.bytes)
    }

    /// The key's public id: 8 hex characters of a hash of the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A 32-byte subkey for one purpose, so no two uses share key material.
    pub fn subkey(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes).expect("HMAC takes any key length");
        mac.update(b"rotor subkey v1:");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerKey(id={}, [redacted])", self.id)
    }
}

/// A sealed secret: the id of the key that sealed it and `nonce || ciphertext`.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext {
    /// Id of the key in the [`Keyring`] that sealed this.
    pub key_id: String,
    /// The 24-byte nonce followed by the ciphertext and its tag.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Ciphertext(key={}, {} bytes)",
            self.key_id,
            self.bytes.len()
        )
    }
}

/// The current key (seals) and older keys (open only, until rotated out).
#[derive(Clone, Debug)]
pub struct Keyring {
    primary: ServerKey,
    old: Vec<ServerKey>,
}

impl Keyring {
    /// A ring with one key.
    pub fn new(primary: ServerKey) -> Keyring {
        Keyring {
            primary,
            old: Vec::new(),
        }
    }

    /// A ring with older keys kept for decryption.
    pub fn with_old(primary: ServerKey, old: Vec<ServerKey>) -> Keyring {
        Keyring { primary, old }
    }

    /// Every key, the primary first.
    pub fn all(&self) -> impl Iterator<Item = &ServerKey> {
        std::iter::once(&self.primary).chain(self.old.iter())
    }

    /// Whether `sealed` was made by the primary key.
    pub fn is_current(&self, sealed: &Ciphertext) -> bool {
        sealed.key_id == self.primary.id
    }

    /// The key new ciphertexts are sealed with.
    pub fn primary(&self) -> &ServerKey {
        &self.primary
    }

    /// Seals `plaintext`, bound to `aad` (say, `"app:<uuid>:client_secret"`).
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> Ciphertext {
        let cipher = XChaCha20Poly1305::new((&self.primary.bytes).into());
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory buffers");
        let mut bytes = Vec::with_capacity(NONCE_LEN + ct.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ct);
        Ciphertext {
            key_id: self.primary.id.clone(),
            bytes,
        }
    }

    /// Opens a ciphertext sealed by any key in the ring under the same `aad`.
    pub fn open(&self, sealed: &Ciphertext, aad: &str) -> Result<Vec<u8>, KeyError> {
        let key = std::iter::once(&self.primary)
            .chain(self.old.iter())
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| KeyError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() < NONCE_LEN {
            return Err(KeyError::Decrypt);
        }
        let (nonce, ct) = sealed.bytes.split_at(NONCE_LEN);
        XChaCha20Poly1305::new((&key.bytes).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| KeyError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip() {
        let ring = Keyring::new(ServerKey::generate());
        let ct = ring.seal(b"secret", "app:1:client_secret");
        assert_eq!(ring.open(&ct, "app:1:client_secret").unwrap(), b"secret");
        assert!(!ct.bytes.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn a_ciphertext_moved_to_another_row_does_not_open() {
        let ring = Keyring::new(ServerKey::generate());
        let ct = ring.seal(b"secret", "app:1:client_secret");
        assert_eq!(
            ring.open(&ct, "app:2:client_secret"),
            Err(KeyError::Decrypt)
        );
    }

    #[test]
    fn old_keys_still_open_after_rotation() {
        let old = ServerKey::generate();
        let ct = Keyring::new(old.clone()).seal(b"x", "a");
        let ring = Keyring::with_old(ServerKey::generate(), vec![old]);
        assert_eq!(ring.open(&ct, "a").unwrap(), b"x");
        let other = Keyring::new(ServerKey::generate());
        assert!(matches!(other.open(&ct, "a"), Err(KeyError::UnknownKey(_))));
    }

    #[test]
    fn tampering_is_detected() {
        let ring = Keyring::new(ServerKey::generate());
        let mut ct = ring.seal(b"secret", "a");
        let last = ct.bytes.len() - 1;
        ct.bytes[last] ^= 1;
        assert_eq!(ring.open(&ct, "a"), Err(KeyError::Decrypt));
        ct.bytes.truncate(3);
        assert_eq!(ring.open(&ct, "a"), Err(KeyError::Decrypt));
    }

    #[test]
    fn base64_round_trip_and_errors() {
        let k = ServerKey::generate();
        let k2 = ServerKey::from_base64(&format!(" {}\n", k.to_base64())).unwrap();
        assert_eq!(k.id(), k2.id());
        assert_eq!(
            ServerKey::from_base64("AAAA").unwrap_err(),
            KeyError::BadKey
        );
        assert_eq!(
            ServerKey::from_base64("not base64!").unwrap_err(),
            KeyError::BadKey
        );
        assert!(!format!("{k:?}").contains(&k.to_base64()));
    }

    #[test]
    fn subkeys_differ_by_purpose() {
        let k = ServerKey::generate();
        assert_ne!(k.subkey("a"), k.subkey("b"));
        assert_eq!(k.subkey("a"), k.subkey("a"));
    }
}
