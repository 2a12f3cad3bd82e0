//! The token format: `rtr_<kind>_[<selector>]<body><checksum>`.
//!
//! * the prefix names the kind (`rtr_at_` access, `rtr_rt_` refresh, `rtr_gc_`
//!   grant code, `rtr_cs_` client secret) so secret scanners can find leaked
//!   tokens and a token used in the wrong place is refused by its shape;
//! * access and refresh tokens issued since schema 7 carry a **selector**: the
//!   id of their pair (a UUIDv7) as 22 base62 characters. The store finds the
//!   pair by that id (its sequential primary key) and the service checks the
//!   token's hash against the one stored, in constant time — the
//!   selector/verifier split. So issuing a pair appends to the id index
//!   instead of inserting into two indexes of random hashes. Tokens without a
//!   selector (grant codes, client secrets, and access and refresh tokens
//!   issued before) are 56 characters and found by their hash;
//! * the body is 32 bytes (256 bits) of randomness, or of an HMAC output for a
//!   derived token, written as exactly 43 base62 characters;
//! * the checksum is the CRC-32 of everything before it as 6 base62
//!   characters, so a mistyped or truncated token is refused before any
//!   database work.
//!
//! Only the SHA-256 of a token ([`TokenHash`]) is ever stored.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Characters of the body: the smallest n with 62^n >= 2^256.
pub const BODY_LEN: usize = 43;
/// Characters of the checksum: the smallest n with 62^n >= 2^32.
pub const CHECKSUM_LEN: usize = 6;
const PREFIX_LEN: usize = 7;
/// Characters of a selector: the smallest n with 62^n >= 2^128.
pub const SELECTOR_LEN: usize = 22;
/// Length of a token without a selector.
pub const TOKEN_LEN: usize = PREFIX_LEN + BODY_LEN + CHECKSUM_LEN;
/// Length of a token with a selector.
pub const SELECTOR_TOKEN_LEN: usize = TOKEN_LEN + SELECTOR_LEN;

/// What a token is for; each kind has its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A bearer access token issued to an installation.
    Access,
    /// A refresh token, traded for a new pair.
    Refresh,
    /// A single-use grant code handed out at install time.
    GrantCode,
    /// An app's client secret.
    ClientSecret,
}

impl TokenKind {
    /// The fixed prefix of this kind.
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::Access => "rtr_at_",
            TokenKind::Refresh => "rtr_rt_",
            TokenKind::GrantCode => "rtr_gc_",
            TokenKind::ClientSecret => "rtr_cs_",
        }
    }

    /// Every kind, for tests and for guessing a kind from a prefix.
    pub const ALL: [TokenKind; 4] = [
        TokenKind::Access,
        TokenKind::Refresh,
        TokenKind::GrantCode,
        TokenKind::ClientSecret,
    ];

    /// The kind whose prefix `s` starts with, if any.
    pub fn of(s: &str) -> Option<TokenKind> {
        Self::ALL.into_iter().find(|k| s.starts_with(k.prefix()))
    }
}

/// Why a string is not a token of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFormatError {
    /// It does not start with the expected prefix.
    #[error("token does not have the expected prefix")]
    WrongPrefix,
    /// It is neither 56 nor (with a selector) 78 characters long.
    #[error("token has the wrong length")]
    WrongLength,
    /// It holds a character outside base62.
    #[error("token contains an invalid character")]
    BadCharacter,
    /// The checksum does not match: mistyped or truncated.
    #[error("token checksum does not match")]
    BadChecksum,
    /// The selector is not a 128-bit number.
    #[error("token selector is out of range")]
    BadSelector,
}

/// A well-formed token. Its `Debug` shows only the kind and the last 4 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    kind: TokenKind,
    selector: Option<Uuid>,
    value: String,
}

impl Token {
    /// A new token of `kind` with 256 bits from the OS random generator and
    /// no selector (grant codes and client secrets).
    pub fn generate(kind: TokenKind) -> Token {
        Self::from_bytes(kind, None, &random_body())
    }

    /// A new token of `kind` for the row `selector`, with 256 random bits.
    pub fn generate_for(kind: TokenKind, selector: Uuid) -> Token {
        Self::from_bytes(kind, Some(selector), &random_body())
    }

    /// A token of `kind` for the row `selector` derived from `input` under
    /// `key` (HMAC-SHA256 over the kind's prefix, the selector and the
    /// input). The same key, selector and input always give the same token;
    /// without the key it is as unpredictable as a random one. (Without a
    /// selector: how the successors of tokens issued before schema 7 were
    /// derived, kept to find them.)
    pub fn derive(kind: TokenKind, selector: Option<Uuid>, key: &[u8; 32], input: &[u8]) -> Token {
        Self::from_bytes(kind, selector, &mac_body(kind, selector, key, input))
    }

    fn from_bytes(kind: TokenKind, selector: Option<Uuid>, bytes: &[u8; 32]) -> Token {
        let mut value = String::with_capacity(SELECTOR_TOKEN_LEN);
        value.push_str(kind.prefix());
        if let Some(id) = selector {
            encode_base62(id.as_bytes(), SELECTOR_LEN, &mut value);
        }
        encode_base62(bytes, BODY_LEN, &mut value);
        let crc = crc32fast::hash(value.as_bytes());
        encode_base62(&crc.to_be_bytes(), CHECKSUM_LEN, &mut value);
        Token {
            kind,
            selector,
            value,
        }
    }

    /// Parses `s` as a token of `kind`: prefix, length, alphabet, checksum
    /// and, in a 78-character token, the selector.
    pub fn parse(kind: TokenKind, s: &str) -> Result<Token, TokenFormatError> {
        if !s.starts_with(kind.prefix()) {
            return Err(TokenFormatError::WrongPrefix);
        }
        if s.len() != TOKEN_LEN && s.len() != SELECTOR_TOKEN_LEN {
            return Err(TokenFormatError::WrongLength);
        }
        let rest = &s.as_bytes()[PREFIX_LEN..];
        if !rest.iter().all(u8::is_ascii_alphanumeric) {
            return Err(TokenFormatError::BadCharacter);
        }
        let (head, sum) = s.split_at(s.len() - CHECKSUM_LEN);
        let mut expected = String::with_capacity(CHECKSUM_LEN);
        encode_base62(
            &crc32fast::hash(head.as_bytes()).to_be_bytes(),
            CHECKSUM_LEN,
            &mut expected,
        );
        if expected != sum {
            return Err(TokenFormatError::BadChecksum);
        }
        let selector = if s.len() == SELECTOR_TOKEN_LEN {
            let digits = &s.as_bytes()[PREFIX_LEN..PREFIX_LEN + SELECTOR_LEN];
            Some(decode_base62_u128(digits).ok_or(TokenFormatError::BadSelector)?)
        } else {
            None
        };
        Ok(Token {
            kind,
            selector: selector.map(Uuid::from_u128),
            value: s.to_owned(),
        })
    }

    /// The kind of this token.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The id of the row this token belongs to, when it carries one.
    pub fn selector(&self) -> Option<Uuid> {
        self.selector
    }

    /// The token string itself; call only where it is handed to its owner.
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The SHA-256 of the token, the only form in which it is stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.value)
    }

    /// The last four characters, for logs.
    pub fn last4(&self) -> &str {
        crate::secret::last4(&self.value)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({}…{})", self.kind.prefix(), self.last4())
    }
}

/// The SHA-256 of a token: what the database holds and looks up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hashes a token string.
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Compares in constant time: a presented token's hash against the one
    /// a pair stores, when the pair was found by the token's selector.
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.0.as_slice(), other.0.as_slice()).into()
    }

    /// Rebuilds a hash read from storage; `None` when it is not 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<TokenHash> {
        bytes.try_into().ok().map(TokenHash)
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}…)", hex::encode(&self.0[..4]))
    }
}

fn random_body() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

fn mac_body(kind: TokenKind, selector: Option<Uuid>, key: &[u8; 32], input: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(kind.prefix().as_bytes());
    if let Some(id) = selector {
        mac.update(id.as_bytes());
    }
    mac.update(&(input.len() as u64).to_be_bytes());
    mac.update(input);
    mac.finalize().into_bytes().into()
}

/// The number written by base62 `digits` (most significant first), if it
/// fits in 128 bits.
fn decode_base62_u128(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'A'..=b'Z' => d - b'A' + 10,
            b'a'..=b'z' => d - b'a' + 36,
            _ => return None,
        };
        acc.checked_mul(62)?.checked_add(u128::from(v))
    })
}

/// Writes `bytes` (big-endian) as exactly `width` base62 digits onto `out`.
fn encode_base62(bytes: &[u8], width: usize, out: &mut String) {
    // The base-62 digits of the big-endian number `bytes`, least significant
    // first, then reversed: long division by 62^5 (which fits in a u32) over
    // 32-bit limbs yields five digits per pass, so a 256-bit body is nine
    // passes of eight cheap 64-by-32-bit divisions.
    const CHUNK: u64 = 62u64.pow(5);
    let mut limbs = [0u32; 8];
    let n = bytes.len().min(32);
    let mut num = [0u8; 32];
    num[32 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    for (limb, four) in limbs.iter_mut().zip(num.chunks_exact(4)) {
        *limb = u32::from_be_bytes([four[0], four[1], four[2], four[3]]);
    }
    let mut digits = [0u8; 65];
    let mut produced = 0;
    while produced < width {
        let mut rem: u64 = 0;
        for limb in limbs.iter_mut() {
            let acc = (rem << 32) | u64::from(*limb);
            // acc < CHUNK * 2^32, so the quotient fits in a u32.
            *limb = (acc / CHUNK) as u32;
            rem = acc % CHUNK;
        }
        for _ in 0..5 {
            digits[produced] = ALPHABET[(rem % 62) as usize];
            rem /= 62;
            produced += 1;
        }
    }
    for &d in digits[..width].iter().rev() {
        out.push(d as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The encoder as first written: one digit per long division by 62 over
    /// bytes. Kept as the reference the fast one must match digit for digit,
    /// since every token ever issued was encoded this way.
    fn encode_base62_reference(bytes: &[u8], width: usize) -> String {
        let mut num = [0u8; 32];
        let n = bytes.len().min(32);
        num[32 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
        let mut digits = Vec::new();
        for _ in 0..width {
            let mut rem: u32 = 0;
            for byte in num.iter_mut() {
                let acc = (rem << 8) | u32::from(*byte);
                *byte = (acc / 62) as u8;
                rem = acc % 62;
            }
            digits.push(ALPHABET[rem as usize] as char);
        }
        digits.iter().rev().collect()
    }

    proptest! {
        #[test]
        fn fast_base62_matches_the_reference(bytes in proptest::array::uniform32(any::<u8>()), crc in any::<u32>()) {
            let mut body = String::new();
            encode_base62(&bytes, BODY_LEN, &mut body);
            prop_assert_eq!(&body, &encode_base62_reference(&bytes, BODY_LEN));
            let mut sum = String::new();
            encode_base62(&crc.to_be_bytes(), CHECKSUM_LEN, &mut sum);
            prop_assert_eq!(&sum, &encode_base62_reference(&crc.to_be_bytes(), CHECKSUM_LEN));
        }
    }

    #[test]
    fn base62_edges_match_the_reference() {
        for bytes in [[0u8; 32], [0xff; 32]] {
            let mut body = String::new();
            encode_base62(&bytes, BODY_LEN, &mut body);
            assert_eq!(body, encode_base62_reference(&bytes, BODY_LEN));
        }
    }

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        for kind in TokenKind::ALL {
            let t = Token::generate(kind);
            assert_eq!(t.expose().len(), TOKEN_LEN);
            assert!(t.expose().starts_with(kind.prefix()));
            assert_eq!(Token::parse(kind, t.expose()), Ok(t.clone()));
        }
    }

    #[test]
    fn selector_tokens_carry_their_row_id() {
        let id = Uuid::now_v7();
        for kind in TokenKind::ALL {
            let t = Token::generate_for(kind, id);
            assert_eq!(t.expose().len(), SELECTOR_TOKEN_LEN);
            assert_eq!(t.selector(), Some(id));
            let parsed = Token::parse(kind, t.expose()).expect("round trip");
            assert_eq!(parsed, t);
            assert_eq!(parsed.selector(), Some(id));
        }
        for edge in [Uuid::nil(), Uuid::max()] {
            let t = Token::generate_for(TokenKind::Refresh, edge);
            assert_eq!(
                Token::parse(TokenKind::Refresh, t.expose()).map(|t| t.selector()),
                Ok(Some(edge))
            );
        }
        assert_eq!(Token::generate(TokenKind::Access).selector(), None);
    }

    #[test]
    fn a_selector_beyond_128_bits_is_refused() {
        // "z" x 22 is 62^22 - 1 > 2^128 - 1; the checksum is right, so only
        // the range check can refuse it.
        let mut value = String::from(TokenKind::Refresh.prefix());
        value.push_str(&"z".repeat(SELECTOR_LEN));
        encode_base62(&[1u8; 32], BODY_LEN, &mut value);
        let crc = crc32fast::hash(value.as_bytes());
        encode_base62(&crc.to_be_bytes(), CHECKSUM_LEN, &mut value);
        assert_eq!(
            Token::parse(TokenKind::Refresh, &value),
            Err(TokenFormatError::BadSelector)
        );
    }

    /// Known answers, computed outside Rust (Python's `hmac`, `zlib.crc32`
    /// and a base62 of its own): successors derived by servers before
    /// schema 7 are found by re-deriving them, so the selector-less
    /// derivation must never change, and tokens issued since must keep
    /// their shape.
    #[test]
    fn derivation_matches_answers_computed_elsewhere() {
        let key = [7u8; 32];
        assert_eq!(
            Token::derive(TokenKind::Refresh, None, &key, b"input").expose(),
            "rtr_rt_ZmKOfvXhsNRhaFLVlpUnkUzC2UIJzhq9w51RRNtZz5P1NR7mX"
        );
        let id = Uuid::parse_str("01938a5e-7c2b-7d4e-8f00-123456789abc").expect("uuid");
        assert_eq!(
            Token::derive(TokenKind::Refresh, Some(id), &key, b"input").expose(),
            "rtr_rt_02yPwoQtH2F2MC3OhkcosGLRYFGoFPAJ7sMXamP07w0bJexShzEjwaCOmo9J1g4lo1LQdGm"
        );
    }

    #[test]
    fn derived_selector_tokens_depend_on_the_selector() {
        let key = [9u8; 32];
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let t = Token::derive(TokenKind::Refresh, Some(a), &key, b"in");
        assert_eq!(t, Token::derive(TokenKind::Refresh, Some(a), &key, b"in"));
        assert_ne!(
            t.expose()[7 + SELECTOR_LEN..],
            Token::derive(TokenKind::Refresh, Some(b), &key, b"in").expose()[7 + SELECTOR_LEN..]
        );
        assert_eq!(t.selector(), Some(a));
    }

    #[test]
    fn two_tokens_differ() {
        assert_ne!(
            Token::generate(TokenKind::Access),
            Token::generate(TokenKind::Access)
        );
    }

    #[test]
    fn the_wrong_kind_is_refused() {
        let t = Token::generate(TokenKind::Access);
        assert_eq!(
            Token::parse(TokenKind::Refresh, t.expose()),
            Err(TokenFormatError::WrongPrefix)
        );
        assert_eq!(TokenKind::of(t.expose()), Some(TokenKind::Access));
    }

    #[test]
    fn derivation_is_deterministic_and_keyed() {
        let k1 = [7u8; 32];
        let k2 = [8u8; 32];
        let a = Token::derive(TokenKind::Refresh, None, &k1, b"input");
        assert_eq!(a, Token::derive(TokenKind::Refresh, None, &k1, b"input"));
        assert_ne!(a, Token::derive(TokenKind::Refresh, None, &k2, b"input"));
        assert_ne!(a, Token::derive(TokenKind::Refresh, None, &k1, b"other"));
        assert_ne!(
            a.expose()[7..],
            Token::derive(TokenKind::Access, None, &k1, b"input").expose()[7..]
        );
        assert!(Token::parse(TokenKind::Refresh, a.expose()).is_ok());
    }

    #[test]
    fn debug_shows_no_secret() {
        let t = Token::generate(TokenKind::Refresh);
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(&t.expose()[7..40]));
        assert!(dbg.ends_with(&format!("{})", t.last4())));
    }

    #[test]
    fn base62_of_known_values() {
        let mut s = String::new();
        encode_base62(&[0, 0, 0, 61], 6, &mut s);
        assert_eq!(s, "00000z");
        s.clear();
        encode_base62(&[0, 0, 0, 62], 6, &mut s);
        assert_eq!(s, "000010");
        s.clear();
        encode_base62(&[0xff; 4], 6, &mut s);
        assert_eq!(s, "4gfFC3");
        s.clear();
        encode_base62(&[0xff; 32], 43, &mut s);
        assert_eq!(s.len(), 43);
        assert!(!s.starts_with('0'), "2^256-1 needs all 43 digits: {s}");
    }

    proptest! {
        #[test]
        fn every_derived_token_round_trips(key in any::<[u8; 32]>(), input in proptest::collection::vec(any::<u8>(), 0..64)) {
            for kind in TokenKind::ALL {
                let t = Token::derive(kind, None, &key, &input);
                prop_assert_eq!(Token::parse(kind, t.expose()), Ok(t.clone()));
                prop_assert_eq!(t.hash(), TokenHash::of(t.expose()));
            }
        }

        #[test]
        fn any_single_character_change_is_refused(pos in 7usize..TOKEN_LEN, c in proptest::char::range('0', 'z')) {
            let t = Token::generate(TokenKind::Access);
            let mut bytes = t.expose().as_bytes().to_vec();
            prop_assume!(c.is_ascii_alphanumeric() && bytes[pos] != c as u8);
            bytes[pos] = c as u8;
            let changed = String::from_utf8(bytes).expect("ascii");
            prop_assert_eq!(Token::parse(TokenKind::Access, &changed), Err(TokenFormatError::BadChecksum));
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,80}") {
            for kind in TokenKind::ALL {
                let _ = Token::parse(kind, &s);
            }
        }

        #[test]
        fn truncation_is_refused(cut in 1usize..TOKEN_LEN) {
            let t = Token::generate(TokenKind::Refresh);
            prop_assert!(Token::parse(TokenKind::Refresh, &t.expose()[..TOKEN_LEN - cut]).is_err());
            let s = Token::generate_for(TokenKind::Refresh, Uuid::now_v7());
            prop_assert!(Token::parse(TokenKind::Refresh, &s.expose()[..SELECTOR_TOKEN_LEN - cut]).is_err());
        }

        #[test]
        fn any_change_to_a_selector_token_is_refused(pos in 7usize..SELECTOR_TOKEN_LEN, c in proptest::char::range('0', 'z')) {
            let t = Token::generate_for(TokenKind::Access, Uuid::now_v7());
            let mut bytes = t.expose().as_bytes().to_vec();
            prop_assume!(c.is_ascii_alphanumeric() && bytes[pos] != c as u8);
            bytes[pos] = c as u8;
            let changed = String::from_utf8(bytes).expect("ascii");
            prop_assert!(Token::parse(TokenKind::Access, &changed).is_err());
        }

        #[test]
        fn selectors_round_trip(v in any::<u128>()) {
            let id = Uuid::from_u128(v);
            let t = Token::generate_for(TokenKind::Access, id);
            prop_assert_eq!(Token::parse(TokenKind::Access, t.expose()).map(|t| t.selector()), Ok(Some(id)));
        }
    }
}
