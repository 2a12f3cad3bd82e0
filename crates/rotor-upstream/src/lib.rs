//! The client side of Rotor: upstream provider kinds and how each one
//! refreshes a token.
//!
//! * [`config`] parses and checks a provider's configuration when it is
//!   created, splitting public settings from write-only secrets;
//! * [`kinds`] builds each provider's refresh request exactly as that provider
//!   expects it, or mints the token locally (App Store Connect), and reads the
//!   answer into a [`Refreshed`];
//! * [`classify`] sorts failures into "needs re-authorization" and "try again";
//! * outbound HTTP goes through the [`HttpClient`] trait ([`ReqwestClient`] in
//!   production, a local stand-in in tests).
//!
//! No storage and no scheduling here: the server's use case decides when to
//! refresh (single-flight, leases, backoff) and stores the result.
#![forbid(unsafe_code)]

pub mod classify;
pub mod config;
pub mod http;
pub mod kinds;

pub use classify::Failure;
pub use config::{ProviderConfig, ProviderKind, ProviderSecrets};
pub use http::{HttpClient, HttpRequest, HttpResponse, ReqwestClient};
pub use kinds::{refresh, Refreshed, UpstreamIdentity};
