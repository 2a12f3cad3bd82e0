//! Rotor's HTTP suite: one test binary (zero-to-production's layout), a
//! module per area, each case on SQLite and PostgreSQL through
//! `http_tests!` (see `common`). One binary links once, and shares one
//! `common` instead of fourteen copies.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

mod admin;
mod exchange;
mod faults;
mod fuzz;
mod hardening;
mod installation;
mod manual_refresh;
mod oauth;
mod oidc_e2e;
mod openapi;
mod operator;
mod parity;
mod rotation;
mod upgrade;
mod upstream;
mod webhooks;
