//! The store conformance suite: one set of behaviours every backend of
//! [`rotor_store::Store`] must show, written once and run against each.
//!
//! A backend's test file calls [`store_conformance!`] with an async expression
//! that yields a fresh, empty, migrated store; the macro expands to one
//! `#[tokio::test]` per case below, so a failure names the case.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)] // a test suite: a failed unwrap is a failed test

use std::sync::Arc;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use rotor_core::{
    App, AppSettings, Ciphertext, EventFilter, Grant, Installation, InstallationStatus,
    IssuedToken, NewEvent, ReusePolicy, Token, TokenKind, UsedJti, GRANT_TTL,
};
use rotor_store::{Rotation, Store, StoreError};
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
            concurrent_rotations_have_one_winner, rotation_after_revocation_is_lost,
            lookups_by_hash, events_filter_and_order, revoke_family_is_final,
            revocation_and_rotation_race, reissue_uses_each_jti_once,
            purge_is_bounded_and_keeps_what_is_needed);
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
        current_token_id: None,
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
    store.create_installation(&inst, &grant).await?;
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

pub async fn apps_round_trip<S: Store>(store: Arc<S>) {
    let a = sample_app("alpha");
    let b = sample_app("beta");
    store.insert_app(&a).await.unwrap();
    store.insert_app(&b).await.unwrap();
    assert_eq!(store.app_by_slug("alpha").await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.app_by_client_id(&b.client_id).await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(store.app_by_id(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.app_by_slug("gamma").await.unwrap(), None);
    let all = store.list_apps().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all.contains(&a) && all.contains(&b));
}

pub async fn app_slug_and_client_id_are_unique<S: Store>(store: Arc<S>) {
    let a = sample_app("alpha");
    store.insert_app(&a).await.unwrap();
    let mut same_slug = sample_app("alpha");
    same_slug.id = Uuid::new_v4();
    assert!(
        matches!(store.insert_app(&same_slug).await, Err(StoreError::Conflict(w)) if w == "slug")
    );
    let mut same_client = sample_app("other");
    same_client.client_id = a.client_id.clone();
    assert!(
        matches!(store.insert_app(&same_client).await, Err(StoreError::Conflict(w)) if w == "client_id")
    );
    assert_eq!(store.list_apps().await.unwrap().len(), 1);
}

pub async fn app_update<S: Store>(store: Arc<S>) {
    let mut a = sample_app("alpha");
    store.insert_app(&a).await.unwrap();
    a.settings.scopes = vec!["org:read".into()];
    a.settings.webhook_url = None;
    a.settings.reuse_policy = ReusePolicy::Reject;
    a.settings.refresh_grace_seconds = 0;
    a.client_secret.bytes = vec![9; 40];
    a.updated_at = now() + Duration::seconds(1);
    store.update_app(&a).await.unwrap();
    assert_eq!(store.app_by_slug("alpha").await.unwrap(), Some(a.clone()));
    let ghost = sample_app("ghost");
    assert!(matches!(
        store.update_app(&ghost).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn installation_round_trip<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    assert_eq!(
        store.installation(inst.id).await.unwrap(),
        Some(inst.clone())
    );
    let g = store
        .grant(&code.hash())
        .await
        .unwrap()
        .expect("grant stored");
    assert_eq!((g.installation_id, g.app_id), (inst.id, app.id));
    store
        .set_installation_status(inst.id, InstallationStatus::Installed)
        .await
        .unwrap();
    let got = store.installation(inst.id).await.unwrap().unwrap();
    assert_eq!(got.status, InstallationStatus::Installed);
    assert_eq!(store.installation(Uuid::new_v4()).await.unwrap(), None);
    let mut orphan = sample_app("orphan");
    orphan.id = Uuid::new_v4();
    assert!(install(&*store, &orphan, "acme").await.is_err());
}

pub async fn one_live_installation_per_org_and_app<S: Store>(store: Arc<S>) {
    let (app, inst, _) = installed(&*store, "acme").await;
    assert!(matches!(
        install(&*store, &app, "acme").await,
        Err(StoreError::Conflict(w)) if w == "installation"
    ));
    install(&*store, &app, "other-org")
        .await
        .expect("another org may install");
    store.delete_installation(inst.id, now()).await.unwrap();
    install(&*store, &app, "acme")
        .await
        .expect("reinstall after delete");
}

pub async fn delete_installation_revokes_and_is_final<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    let t = now();
    store.delete_installation(inst.id, t).await.unwrap();
    let got = store.installation(inst.id).await.unwrap().unwrap();
    assert_eq!(got.deleted_at, Some(t));
    let tok = store
        .token_by_access(&p.access_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        tok.revoked_at,
        Some(t),
        "tokens of a deleted installation are revoked"
    );
    assert!(matches!(
        store.delete_installation(inst.id, t).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .set_installation_status(inst.id, InstallationStatus::Installed)
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn grant_exchange_is_single_use<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    assert_eq!(
        store.grant(&code.hash()).await.unwrap(),
        None,
        "grant consumed"
    );
    let again = pair(&app, &inst, Uuid::new_v4(), None);
    assert!(matches!(
        store.exchange_grant(&code.hash(), &again, false, &[]).await,
        Err(StoreError::Conflict(w)) if w == "grant_used"
    ));
    assert_eq!(
        store.token_by_refresh(&again.refresh_hash).await.unwrap(),
        None
    );
    let got = store.installation(inst.id).await.unwrap().unwrap();
    assert_eq!(got.current_token_id, Some(p.id));
    assert_eq!(got.status, InstallationStatus::Pending);
}

pub async fn exchange_marks_installed_when_asked<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = pair(&app, &inst, Uuid::new_v4(), None);
    store
        .exchange_grant(&code.hash(), &p, true, &[])
        .await
        .unwrap();
    let got = store.installation(inst.id).await.unwrap().unwrap();
    assert_eq!(got.status, InstallationStatus::Installed);
}

pub async fn rotation_is_compare_and_swap<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    let next = successor(&app, &inst, &p);
    assert_eq!(
        store.rotate_refresh(p.id, &next, &[]).await.unwrap(),
        Rotation::Rotated
    );
    let old = store
        .token_by_refresh(&p.refresh_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.retired_at, Some(next.created_at));
    let stored = store
        .token_by_refresh(&next.refresh_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, next);
    assert_eq!(
        store
            .installation(inst.id)
            .await
            .unwrap()
            .unwrap()
            .current_token_id,
        Some(next.id)
    );
    let loser = successor(&app, &inst, &p);
    match store.rotate_refresh(p.id, &loser, &[]).await.unwrap() {
        Rotation::Lost(t) => assert_eq!(t.retired_at, Some(next.created_at)),
        other => panic!("second rotation must lose, got {other:?}"),
    }
    assert_eq!(
        store.token_by_refresh(&loser.refresh_hash).await.unwrap(),
        None
    );
}

pub async fn concurrent_rotations_have_one_winner<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let store = store.clone();
        let next = successor(&app, &inst, &p);
        tasks.push(tokio::spawn(async move {
            let r = store.rotate_refresh(p.id, &next, &[]).await;
            (r, next)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (r, next) = t.await.unwrap();
        match r.unwrap() {
            Rotation::Rotated => winners.push(next),
            Rotation::Lost(_) => {
                assert_eq!(
                    store.token_by_refresh(&next.refresh_hash).await.unwrap(),
                    None
                )
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one successor");
    assert_eq!(
        store
            .installation(inst.id)
            .await
            .unwrap()
            .unwrap()
            .current_token_id,
        Some(winners[0].id)
    );
}

pub async fn rotation_after_revocation_is_lost<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    store.delete_installation(inst.id, now()).await.unwrap();
    let next = successor(&app, &inst, &p);
    assert!(
        matches!(store.rotate_refresh(p.id, &next, &[]).await.unwrap(), Rotation::Lost(t) if t.revoked_at.is_some())
    );
    assert_eq!(
        store.token_by_refresh(&next.refresh_hash).await.unwrap(),
        None
    );
}

pub async fn lookups_by_hash<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    assert_eq!(
        store.token_by_access(&p.access_hash).await.unwrap(),
        Some(p.clone())
    );
    assert_eq!(
        store.token_by_refresh(&p.refresh_hash).await.unwrap(),
        Some(p.clone())
    );
    assert_eq!(store.token_by_access(&p.refresh_hash).await.unwrap(), None);
    assert_eq!(
        store
            .token_by_refresh(&Token::generate(TokenKind::Refresh).hash())
            .await
            .unwrap(),
        None
    );
}

pub async fn events_filter_and_order<S: Store>(store: Arc<S>) {
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    for (i, (inst, kind)) in [
        (a, "token_exchanged"),
        (b, "token_exchanged"),
        (a, "installation_created"),
    ]
    .into_iter()
    .enumerate()
    {
        store
            .record_event(&NewEvent {
                kind: kind.into(),
                installation_id: Some(inst),
                exchange_type: Some("refresh".into()),
                ip: Some(format!("127.0.0.{i}")),
                created_at: now(),
                ..NewEvent::default()
            })
            .await
            .unwrap();
    }
    let all = store
        .list_events(&EventFilter {
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    assert!(
        all[0].id > all[1].id && all[1].id > all[2].id,
        "newest first"
    );
    assert_eq!(all[0].event.kind, "installation_created");
    let of_a = store
        .list_events(&EventFilter {
            installation_id: Some(a),
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(of_a.len(), 2);
    let typed = store
        .list_events(&EventFilter {
            installation_id: Some(a),
            kind: Some("token_exchanged".into()),
            limit: 10,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(typed.len(), 1);
    assert_eq!(typed[0].event.ip.as_deref(), Some("127.0.0.0"));
    let limited = store
        .list_events(&EventFilter {
            limit: 1,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
}

pub async fn revoke_family_is_final<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    let next = successor(&app, &inst, &p);
    store.rotate_refresh(p.id, &next, &[]).await.unwrap();
    let t = now();
    let ev = NewEvent {
        kind: "refresh_token_reused".into(),
        installation_id: Some(inst.id),
        created_at: t,
        ..NewEvent::default()
    };
    assert!(store
        .revoke_family(p.family_id, t, std::slice::from_ref(&ev))
        .await
        .unwrap());
    assert!(
        !store.revoke_family(p.family_id, t, &[]).await.unwrap(),
        "second revoke is a no-op"
    );
    for hash in [&p.refresh_hash, &next.refresh_hash] {
        let tok = store.token_by_refresh(hash).await.unwrap().unwrap();
        assert_eq!(
            tok.revoked_at,
            Some(t),
            "every pair of the family is revoked"
        );
    }
    let after = successor(&app, &inst, &next);
    assert!(matches!(
        store.rotate_refresh(next.id, &after, &[]).await.unwrap(),
        Rotation::Lost(_)
    ));
    let evs = store
        .list_events(&EventFilter {
            kind: Some("refresh_token_reused".into()),
            limit: 5,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(evs.len(), 1);
}

pub async fn revocation_and_rotation_race<S: Store>(store: Arc<S>) {
    // Whatever the interleaving, once revoke_family has returned, no pair of
    // the family is live: a successor stored before it is revoked with the
    // family, a rotation after it loses its compare-and-swap.
    for round in 0..20 {
        let (app, inst, code) = installed(&*store, &format!("org-{round}")).await;
        let p = first_pair(&*store, &app, &inst, &code).await;
        let next = successor(&app, &inst, &p);
        let next_hash = next.refresh_hash;
        let s2 = store.clone();
        let rotate = tokio::spawn(async move { s2.rotate_refresh(p.id, &next, &[]).await });
        store.revoke_family(p.family_id, now(), &[]).await.unwrap();
        rotate.await.unwrap().unwrap();
        let t = now();
        let old = store
            .token_by_refresh(&p.refresh_hash)
            .await
            .unwrap()
            .unwrap();
        assert!(!old.refresh_is_live(t) && !old.access_is_live(t));
        if let Some(s) = store.token_by_refresh(&next_hash).await.unwrap() {
            assert!(
                s.revoked_at.is_some(),
                "a successor outlived the revocation"
            );
        }
    }
}

pub async fn reissue_uses_each_jti_once<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    let jti = UsedJti {
        app_id: app.id,
        jti: "abc".into(),
        expires_at: now() + Duration::minutes(5),
    };
    let fresh = pair(&app, &inst, Uuid::new_v4(), None);
    store.reissue(&jti, &fresh, &[]).await.unwrap();
    let old = store
        .token_by_refresh(&p.refresh_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(old.revoked_at.is_some(), "the previous family is revoked");
    let got = store
        .token_by_refresh(&fresh.refresh_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, fresh);
    assert_eq!(
        store
            .installation(inst.id)
            .await
            .unwrap()
            .unwrap()
            .current_token_id,
        Some(fresh.id)
    );
    let again = pair(&app, &inst, Uuid::new_v4(), None);
    assert!(
        matches!(store.reissue(&jti, &again, &[]).await, Err(StoreError::Conflict(w)) if w == "jti")
    );
    assert!(matches!(store.remember_jti(&jti).await, Err(StoreError::Conflict(w)) if w == "jti"));
    let other = UsedJti {
        jti: "def".into(),
        ..jti.clone()
    };
    store.remember_jti(&other).await.unwrap();
    assert!(matches!(
        store.remember_jti(&other).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.token_by_refresh(&again.refresh_hash).await.unwrap(),
        None,
        "nothing written"
    );
    assert!(store
        .token_by_refresh(&fresh.refresh_hash)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_none());
}

pub async fn purge_is_bounded_and_keeps_what_is_needed<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let live = first_pair(&*store, &app, &inst, &code).await;
    // 25 expired families of one pair each (in another installation), and
    // one retired pair still needed.
    let (_, other, _) = installed(&*store, "expired").await;
    for _ in 0..25 {
        let mut p = pair(&app, &other, Uuid::new_v4(), None);
        p.app_id = other.app_id;
        p.refresh_expires_at = now() - Duration::seconds(1);
        p.family_expires_at = now() - Duration::seconds(1);
        let jti = UsedJti {
            app_id: other.app_id,
            jti: Uuid::new_v4().to_string(),
            expires_at: now() - Duration::seconds(1),
        };
        store.reissue(&jti, &p, &[]).await.unwrap();
    }
    let next = successor(&app, &inst, &live);
    assert_eq!(
        store.rotate_refresh(live.id, &next, &[]).await.unwrap(),
        Rotation::Rotated
    );
    let t = now();
    let first = store.purge_expired(t, 10).await.unwrap();
    assert_eq!(
        (first.tokens, first.jtis),
        (10, 10),
        "bounded by the batch size: {first:?}"
    );
    let mut total = first.total();
    loop {
        let p = store.purge_expired(t, 10).await.unwrap();
        assert!(p.tokens <= 10 && p.families <= 10 && p.jtis <= 10 && p.grants <= 10);
        if p.total() == 0 {
            break;
        }
        total += p.total();
    }
    assert_eq!(total, 25 + 25 + 25, "25 pairs, 25 jtis, 25 families");
    // The retired pair and its successor are kept (reuse detection needs the former).
    assert!(store
        .token_by_refresh(&live.refresh_hash)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .token_by_refresh(&next.refresh_hash)
        .await
        .unwrap()
        .is_some());
}
