//! Conformance cases for grants, rotation, revocation, jtis and the janitor.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use chrono::Duration;
use rotor_core::{EventFilter, InstallationStatus, NewEvent, Token, TokenKind, UsedJti};
use rotor_store::{Conflict, Rotation, Store, StoreError};
use uuid::Uuid;

use crate::*;

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
        Err(StoreError::Conflict(Conflict::GrantUsed))
    ));
    assert_eq!(store.token(again.id).await.unwrap(), None);
    let got = store.installation(inst.id).await.unwrap().unwrap();
    assert_live(&*store, &p).await;
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
    let old = store.token(p.id).await.unwrap().unwrap();
    assert_eq!(old.retired_at, Some(next.created_at));
    let stored = store.token(next.id).await.unwrap().unwrap();
    assert_eq!(stored, next);
    assert_live(&*store, &next).await;
    let loser = successor(&app, &inst, &p);
    match store.rotate_refresh(p.id, &loser, &[]).await.unwrap() {
        Rotation::Lost(t) => assert_eq!(t.retired_at, Some(next.created_at)),
        other => panic!("second rotation must lose, got {other:?}"),
    }
    assert_eq!(store.token(loser.id).await.unwrap(), None);
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
                assert_eq!(store.token(next.id).await.unwrap(), None)
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one successor");
    assert_live(&*store, &winners[0]).await;
}

pub async fn rotation_after_revocation_is_lost<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    store
        .delete_installation(inst.id, now(), &[])
        .await
        .unwrap();
    let next = successor(&app, &inst, &p);
    assert!(
        matches!(store.rotate_refresh(p.id, &next, &[]).await.unwrap(), Rotation::Lost(t) if t.revoked_at.is_some())
    );
    assert_eq!(store.token(next.id).await.unwrap(), None);
}

pub async fn lookups_by_id<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    assert_eq!(store.token(p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(store.token(Uuid::now_v7()).await.unwrap(), None);
    // A pair issued now is found by its id only: the hash lookups cover the
    // pairs issued before selector tokens (their indexes are partial).
    assert_eq!(
        store.legacy_token_by_access(&p.access_hash).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .legacy_token_by_refresh(&p.refresh_hash)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .legacy_token_by_refresh(&Token::generate(TokenKind::Refresh).hash())
            .await
            .unwrap(),
        None
    );
}

pub async fn token_with_installation_reads_both<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let (_, other, _) = installed(&*store, "globex").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    let own = store.installation(inst.id).await.unwrap();
    let named = store.installation(other.id).await.unwrap();
    assert!(own.is_some() && named.is_some());
    assert_eq!(
        store.token_with_installation(p.id, None).await.unwrap(),
        (Some(p.clone()), own)
    );
    assert_eq!(
        store
            .token_with_installation(p.id, Some(other.id))
            .await
            .unwrap(),
        (Some(p.clone()), named.clone())
    );
    assert_eq!(
        store
            .token_with_installation(Uuid::now_v7(), Some(other.id))
            .await
            .unwrap(),
        (None, named)
    );
    assert_eq!(
        store
            .token_with_installation(Uuid::now_v7(), None)
            .await
            .unwrap(),
        (None, None)
    );
    assert_eq!(
        store
            .token_with_installation(p.id, Some(Uuid::now_v7()))
            .await
            .unwrap(),
        (Some(p), None)
    );
}

pub async fn rotation_records_the_successor<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    let next = successor(&app, &inst, &p);
    store.rotate_refresh(p.id, &next, &[]).await.unwrap();
    let old = store.token(p.id).await.unwrap().unwrap();
    assert_eq!(old.successor_id, Some(next.id));
    assert_eq!(old.retired_at, Some(next.created_at));
    let stored = store.token(next.id).await.unwrap().unwrap();
    assert_eq!((stored.parent_id, stored.successor_id), (Some(p.id), None));
    // A lost compare-and-swap leaves the recorded successor alone.
    let other = successor(&app, &inst, &p);
    assert!(matches!(
        store.rotate_refresh(p.id, &other, &[]).await.unwrap(),
        Rotation::Lost(_)
    ));
    assert_eq!(
        store.token(p.id).await.unwrap().unwrap().successor_id,
        Some(next.id)
    );
    assert_eq!(store.token(other.id).await.unwrap(), None);
}

pub async fn revoke_family_is_final<S: Store>(store: Arc<S>) {
    let (app, inst, code) = installed(&*store, "acme").await;
    let p = first_pair(&*store, &app, &inst, &code).await;
    let next = successor(&app, &inst, &p);
    store.rotate_refresh(p.id, &next, &[]).await.unwrap();
    let t = now();
    let ev = NewEvent {
        installation_id: Some(inst.id),
        ..NewEvent::new(rotor_core::EventKind::RefreshTokenReused, t)
    };
    assert!(store
        .revoke_family(p.family_id, t, std::slice::from_ref(&ev))
        .await
        .unwrap());
    assert!(
        !store.revoke_family(p.family_id, t, &[]).await.unwrap(),
        "second revoke is a no-op"
    );
    for id in [p.id, next.id] {
        let tok = store.token(id).await.unwrap().unwrap();
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
            kind: Some(rotor_core::EventKind::RefreshTokenReused),
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
        let next_id = next.id;
        let s2 = store.clone();
        let rotate = tokio::spawn(async move { s2.rotate_refresh(p.id, &next, &[]).await });
        store.revoke_family(p.family_id, now(), &[]).await.unwrap();
        rotate.await.unwrap().unwrap();
        let t = now();
        let old = store.token(p.id).await.unwrap().unwrap();
        assert!(!old.refresh_is_live(t) && !old.access_is_live(t));
        if let Some(s) = store.token(next_id).await.unwrap() {
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
    let old = store.token(p.id).await.unwrap().unwrap();
    assert!(old.revoked_at.is_some(), "the previous family is revoked");
    let got = store.token(fresh.id).await.unwrap().unwrap();
    assert_eq!(got, fresh);
    assert_live(&*store, &fresh).await;
    let again = pair(&app, &inst, Uuid::new_v4(), None);
    assert!(matches!(
        store.reissue(&jti, &again, &[]).await,
        Err(StoreError::Conflict(Conflict::Jti))
    ));
    assert!(matches!(
        store.remember_jti(&jti).await,
        Err(StoreError::Conflict(Conflict::Jti))
    ));
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
        store.token(again.id).await.unwrap(),
        None,
        "nothing written"
    );
    assert!(store
        .token(fresh.id)
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
    assert!(store.token(live.id).await.unwrap().is_some());
    assert!(store.token(next.id).await.unwrap().is_some());
}

pub async fn concurrent_rotations_of_many_chains_all_win<S: Store>(store: Arc<S>) {
    // Many different pairs rotated at once (a backend may batch them), each
    // twice: exactly one rotation of each pair wins, its successor is stored
    // as given (scopes of different lengths too) and its event recorded; the
    // loser writes nothing, whether or not it shared the winner's batch.
    let mut chains = Vec::new();
    for n in 0..40 {
        let (app, inst, code) = installed(&*store, &format!("org-{n}")).await;
        let p = first_pair(&*store, &app, &inst, &code).await;
        chains.push((app, inst, p));
    }
    let mut tasks = Vec::new();
    for (n, (app, inst, p)) in chains.iter().enumerate() {
        for attempt in 0..2 {
            let store = store.clone();
            let mut next = successor(app, inst, p);
            next.scopes = (0..(n + attempt) % 4).map(|i| format!("s:{i}")).collect();
            let event = NewEvent {
                installation_id: Some(inst.id),
                detail: Some(format!("attempt {attempt}")),
                ..NewEvent::new(rotor_core::EventKind::TokenExchanged, next.created_at)
            };
            let old = p.id;
            tasks.push(tokio::spawn(async move {
                let r = store.rotate_refresh(old, &next, &[event]).await;
                (r, next)
            }));
        }
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    for ((_, inst, p), pair) in chains.iter().zip(results.chunks(2)) {
        let winners: Vec<&IssuedToken> = pair
            .iter()
            .filter(|(r, _)| matches!(r, Ok(Rotation::Rotated)))
            .map(|(_, next)| next)
            .collect();
        assert_eq!(winners.len(), 1, "one rotation of each pair wins");
        let next = winners[0];
        for (r, other) in pair {
            if other.id != next.id {
                assert!(matches!(r, Ok(Rotation::Lost(_))), "{r:?}");
                assert_eq!(store.token(other.id).await.unwrap(), None);
            }
        }
        assert_eq!(store.token(next.id).await.unwrap(), Some(next.clone()));
        let old = store.token(p.id).await.unwrap().unwrap();
        assert!(old.retired_at.is_some());
        assert_eq!(old.successor_id, Some(next.id));
        assert_live(&*store, next).await;
        let events = store
            .list_events(&EventFilter {
                installation_id: Some(inst.id),
                limit: 10,
                ..EventFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "only the winner's event is recorded");
    }
}

pub async fn a_failing_rotation_fails_alone<S: Store>(store: Arc<S>) {
    // Rotations at once (a backend may batch them, and must not let one bad
    // rotation fail the others): one successor reuses an existing pair's
    // id, so it cannot be stored. That rotation fails and changes nothing;
    // every other one wins with its event. (Three such, among 40, so that on
    // a batching backend at least one shares its batch with good ones.)
    let mut chains = Vec::new();
    for n in 0..40 {
        let (app, inst, code) = installed(&*store, &format!("org-{n}")).await;
        let p = first_pair(&*store, &app, &inst, &code).await;
        chains.push((app, inst, p));
    }
    let taken = chains[0].2.id;
    let bad = |n: usize| [7, 19, 33].contains(&n);
    let tasks: Vec<_> = chains
        .iter()
        .enumerate()
        .map(|(n, (app, inst, p))| {
            let store = store.clone();
            let mut next = successor(app, inst, p);
            if bad(n) {
                next.id = taken;
            }
            let event = NewEvent {
                installation_id: Some(inst.id),
                ..NewEvent::new(rotor_core::EventKind::TokenExchanged, next.created_at)
            };
            let old = p.id;
            tokio::spawn(async move { store.rotate_refresh(old, &next, &[event]).await })
        })
        .collect();
    for (n, (task, (_, inst, p))) in tasks.into_iter().zip(&chains).enumerate() {
        let result = task.await.unwrap();
        let old = store.token(p.id).await.unwrap().unwrap();
        let events = store
            .list_events(&EventFilter {
                installation_id: Some(inst.id),
                limit: 10,
                ..EventFilter::default()
            })
            .await
            .unwrap();
        if bad(n) {
            assert!(result.is_err(), "{result:?}");
            assert_eq!((old.retired_at, old.successor_id), (None, None));
            assert!(events.is_empty(), "the failed rotation recorded nothing");
        } else {
            assert_eq!(result.unwrap(), Rotation::Rotated, "chain {n}");
            assert!(old.retired_at.is_some());
            assert_eq!(events.len(), 1);
        }
    }
}

/// The pair is stored and neither retired nor revoked.
async fn assert_live<S: Store + ?Sized>(store: &S, t: &IssuedToken) {
    let got = store
        .token(t.id)
        .await
        .unwrap()
        .expect("the pair is stored");
    assert_eq!(got.id, t.id);
    assert!(
        got.retired_at.is_none() && got.revoked_at.is_none(),
        "{got:?}"
    );
}
