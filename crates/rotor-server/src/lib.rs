//! Rotor's server: the HTTP routes, the use cases they call, start-up
//! (configuration, server key, store) and graceful shutdown.
//!
//! It depends on the store contract and the core, never on a backend's SQL;
//! the backend is chosen once, in [`startup::open_store`].
#![forbid(unsafe_code)]

pub mod background;
pub mod connections;
pub mod http;
pub mod keyfile;
pub mod service;
pub mod startup;
pub mod telemetry;
pub mod webhooks;

pub use http::{router, AppState};
pub use service::Service;
pub use startup::{serve, Config};
