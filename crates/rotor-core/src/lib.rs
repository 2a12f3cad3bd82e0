//! Rotor's domain: apps, installations, grant codes, issued tokens and their
//! families, events; the token format; the server keyring; the pure validation
//! steps of every exchange; and the errors that say in domain words why a
//! request is refused.
//!
//! This crate does no I/O and is not async: it never imports a database, HTTP or
//! runtime crate. Everything here can be tested with plain values and a
//! [`clock::ManualClock`].
#![forbid(unsafe_code)]

pub mod clock;
pub mod error;
pub mod keys;
pub mod model;
pub mod scope;
pub mod secret;
pub mod slug;
pub mod token;
pub mod upstream;
pub mod validate;
pub mod webhook;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::CoreError;
pub use keys::{Ciphertext, KeyError, Keyring, ServerKey};
pub use model::*;
pub use scope::ScopeVocabulary;
pub use secret::Secret;
pub use token::{Token, TokenFormatError, TokenHash, TokenKind};
pub use upstream::{IdentityFilter, IdentityStatus, UpstreamIdentityRecord, UpstreamProvider};
pub use webhook::{
    AttemptRecord, AttemptResult, DeliveryStatus, RetryPolicy, WebhookDelivery, WebhookTarget,
};
