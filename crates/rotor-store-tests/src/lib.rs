//! The store conformance suite: one set of behaviours every backend of
//! [`rotor_store::Store`] must show, written once and run against each.
//!
//! A backend's test file calls [`store_conformance!`] with an async expression
//! that yields a fresh, empty, migrated store; the macro expands to one
//! `#[tokio::test]` per case below, so a failure names the case.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)] // a test suite: a failed unwrap is a failed test

use chrono::{DateTime, Duration, SubsecRound, Utc};
use rotor_core::{
    App, AppSettings, Ciphertext, Grant, Installation, InstallationStatus, IssuedToken,
    ReusePolicy, Token, TokenKind, GRANT_TTL,
};
use rotor_store::{Store, StoreError};
use uuid::Uuid;

/// Expands to one `#[tokio::test]` per conformance case, each with a store
/// from `$make` (an async expression yielding `impl Store`).
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::store_conformance!(@cases $make;
            apps_round_trip, app_slug_and_client_id_are_unique, app_update,
            installation_round_trip, one_live_installation_per_org_and_app,
            delete_installation_revokes_and_is_final, grant_exchange_is_single_use,
            exchange_marks_installed_when_asked, rotation_is_compare_and_swap,
            concurrent_rotations_have_one_winner, concurrent_rotations_of_many_chains_all_win,
            a_failing_rotation_fails_alone,
            rotation_after_revocation_is_lost,
            lookups_by_id, rotation_records_the_successor, token_with_installation_reads_both, events_filter_and_order, revoke_family_is_final,
            revocation_and_rotation_race, reissue_uses_each_jti_once,
            purge_is_bounded_and_keeps_what_is_needed,
            deliveries_commit_with_their_change, claims_take_the_head_of_each_order_key,
            concurrent_claims_never_share_a_delivery, an_expired_lease_passes_to_another_worker,
            redelivery_listing_and_purge, one_target_cannot_take_every_slot,
            events_are_purged_oldest_first_in_bounded_batches, a_writable_store_says_so,
            sealed_key_ids_count_every_sealed_value);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = ::std::sync::Arc::new($make);
                $crate::$case(store).await;
            }
        )*
    };
}

/// Microsecond precision, as every backend stores times.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A new app record (not yet stored) with slug `slug`.
pub fn sample_app(slug: &str) -> App {
    App {
        id: Uuid::new_v4(),
        slug: slug.to_owned(),
        client_id: format!("client-{}", Uuid::new_v4().simple()),
        client_secret: Ciphertext {
            key_id: "k1".into(),
            bytes: vec![1, 2, 3],
        },
        settings: AppSettings {
            name: slug.to_owned(),
            scopes: vec!["event:read".into(), "project:read".into()],
            webhook_url: Some("https://example.test/hook".into()),
            redirect_url: Some("https://example.test/setup".into()),
            verify_install: true,
            access_token_ttl_seconds: 28_800,
            refresh_grace_seconds: 60,
            reuse_policy: ReusePolicy::RevokeFamily,
        },
        created_at: now(),
        updated_at: now(),
    }
}

/// A stored app, a stored installation of it in `org`, and its grant code.
pub async fn installed<S: Store>(store: &S, org: &str) -> (App, Installation, Token) {
    let app = sample_app(&format!("app-{}", Uuid::new_v4().simple()));
    store.insert_app(&app).await.expect("insert app");
    let (inst, code) = install(store, &app, org).await.expect("install");
    (app, inst, code)
}

/// Installs `app` into `org` with a fresh grant code.
pub async fn install<S: Store>(
    store: &S,
    app: &App,
    org: &str,
) -> Result<(Installation, Token), StoreError> {
    let t = now();
    let inst = Installation {
        id: Uuid::new_v4(),
        app_id: app.id,
        app_slug: app.slug.clone(),
        org_slug: org.to_owned(),
        status: InstallationStatus::Pending,
        created_at: t,
        deleted_at: None,
    };
    let code = Token::generate(TokenKind::GrantCode);
    let grant = Grant {
        code_hash: code.hash(),
        installation_id: inst.id,
        app_id: app.id,
        expires_at: t + GRANT_TTL,
        created_at: t,
    };
    store.create_installation(&inst, &grant, &[]).await?;
    Ok((inst, code))
}

/// A new pair for `inst` in `family` (not yet stored).
pub fn pair(app: &App, inst: &Installation, family: Uuid, parent: Option<Uuid>) -> IssuedToken {
    let t = now();
    IssuedToken {
        id: Uuid::new_v4(),
        family_id: family,
        installation_id: inst.id,
        app_id: app.id,
        access_hash: Token::generate(TokenKind::Access).hash(),
        refresh_hash: Token::generate(TokenKind::Refresh).hash(),
        scopes: app.settings.scopes.clone(),
        expires_at: t + Duration::hours(8),
        refresh_expires_at: t + Duration::days(30),
        family_expires_at: t + Duration::days(365),
        created_at: t,
        parent_id: parent,
        successor_id: None,
        retired_at: None,
        revoked_at: None,
    }
}

/// The successor of `parent` (same family, not yet stored).
pub fn successor(app: &App, inst: &Installation, parent: &IssuedToken) -> IssuedToken {
    IssuedToken {
        family_expires_at: parent.family_expires_at,
        ..pair(app, inst, parent.family_id, Some(parent.id))
    }
}

/// Exchanges the installation's grant for a first pair and returns it.
pub async fn first_pair<S: Store>(
    store: &S,
    app: &App,
    inst: &Installation,
    code: &Token,
) -> IssuedToken {
    let p = pair(app, inst, Uuid::new_v4(), None);
    store
        .exchange_grant(&code.hash(), &p, false, &[])
        .await
        .expect("exchange");
    p
}

mod outbox;
mod records;
mod tokens;

pub use outbox::*;
pub use records::*;
pub use tokens::*;
