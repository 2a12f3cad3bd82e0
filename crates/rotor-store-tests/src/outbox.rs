//! Conformance cases of the webhook outbox: deliveries commit with their
//! change, claims are exclusive and ordered, leases expire, redelivery and
//! purge.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Duration;
use rotor_core::{
    AttemptRecord, Ciphertext, DeliveryStatus, Grant, Installation, InstallationStatus, Token,
    TokenKind, WebhookDelivery, WebhookTarget, GRANT_TTL,
};
use rotor_store::{Claim, Store, StoreError};
use uuid::Uuid;

use crate::{installed, now, sample_app};

/// A pending delivery to `app` under `order_key`, due now.
pub fn sample_delivery(app: Uuid, order_key: &str) -> WebhookDelivery {
    WebhookDelivery::new(
        Uuid::now_v7(),
        WebhookTarget::App(app),
        "installation",
        "installation.created",
        "https://example.test/hook",
        Ciphertext {
            key_id: "k1".into(),
            bytes: vec![9, 9, 9],
        },
        order_key.to_owned(),
        now(),
    )
}

fn claim(owner: &str, limit: u32) -> Claim {
    let t = now();
    Claim {
        owner: owner.to_owned(),
        now: t,
        lease_until: t + Duration::seconds(30),
        limit,
        per_target: 100,
    }
}

fn delivered() -> AttemptRecord {
    AttemptRecord {
        status: DeliveryStatus::Delivered,
        response_code: Some(200),
        error: None,
        attempted_at: now(),
        next_attempt_at: None,
    }
}

async fn queue<S: Store>(store: &S, deliveries: &[WebhookDelivery]) {
    // Deliveries are only ever written with a change: here, an installation.
    let app = sample_app(&format!("app-{}", Uuid::new_v4().simple()));
    store.insert_app(&app).await.unwrap();
    let (inst, grant) = installation_of(&app.id, &app.slug, "org");
    store
        .create_installation(&inst, &grant, deliveries)
        .await
        .unwrap();
}

fn installation_of(app_id: &Uuid, app_slug: &str, org: &str) -> (Installation, Grant) {
    let t = now();
    let inst = Installation {
        id: Uuid::new_v4(),
        app_id: *app_id,
        app_slug: app_slug.to_owned(),
        org_slug: org.to_owned(),
        status: InstallationStatus::Pending,
        created_at: t,
        deleted_at: None,
    };
    let grant = Grant {
        code_hash: Token::generate(TokenKind::GrantCode).hash(),
        installation_id: inst.id,
        app_id: *app_id,
        expires_at: t + GRANT_TTL,
        created_at: t,
    };
    (inst, grant)
}

/// An installation and its delivery are one write: a refused installation
/// queues nothing, a deletion queues its own.
pub async fn deliveries_commit_with_their_change<S: Store>(store: Arc<S>) {
    let (app, inst, _) = installed(store.as_ref(), "acme").await;
    let (dup, grant) = installation_of(&app.id, &app.slug, "acme");
    let d = sample_delivery(app.id, &dup.id.to_string());
    assert!(matches!(
        store
            .create_installation(&dup, &grant, std::slice::from_ref(&d))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.delivery(d.id).await.unwrap(), None);

    let gone = sample_delivery(app.id, &inst.id.to_string());
    store
        .delete_installation(inst.id, now(), std::slice::from_ref(&gone))
        .await
        .unwrap();
    let stored = store.delivery(gone.id).await.unwrap().unwrap();
    assert_eq!(stored, gone);
    // A second delete is refused and queues nothing.
    let again = sample_delivery(app.id, &inst.id.to_string());
    assert!(matches!(
        store
            .delete_installation(inst.id, now(), std::slice::from_ref(&again))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.delivery(again.id).await.unwrap(), None);
}

/// Only the oldest pending delivery of an order key is handed out, and only
/// to one worker; the next one follows once it is done.
pub async fn claims_take_the_head_of_each_order_key<S: Store>(store: Arc<S>) {
    let app = Uuid::new_v4();
    let first = sample_delivery(app, "inst-1");
    let second = sample_delivery(app, "inst-1");
    let other = sample_delivery(app, "inst-2");
    queue(
        store.as_ref(),
        &[first.clone(), second.clone(), other.clone()],
    )
    .await;

    let got: HashSet<Uuid> = store
        .claim_deliveries(&claim("a", 10))
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(got, HashSet::from([first.id, other.id]));
    assert!(store
        .claim_deliveries(&claim("b", 10))
        .await
        .unwrap()
        .is_empty());

    assert!(store
        .finish_delivery(first.id, "a", &delivered(), &[])
        .await
        .unwrap());
    let next = store.claim_deliveries(&claim("b", 10)).await.unwrap();
    assert_eq!(
        next.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![second.id]
    );
    let done = store.delivery(first.id).await.unwrap().unwrap();
    assert_eq!(done.status, DeliveryStatus::Delivered);
    assert_eq!(done.attempts, 1);
    assert_eq!(done.response_code, Some(200));
}

/// Workers claiming at once each get different deliveries, and together all.
pub async fn concurrent_claims_never_share_a_delivery<S: Store>(store: Arc<S>) {
    let app = Uuid::new_v4();
    let all: Vec<WebhookDelivery> = (0..40)
        .map(|i| sample_delivery(app, &format!("k{i}")))
        .collect();
    queue(store.as_ref(), &all).await;
    let mut tasks = Vec::new();
    for w in 0..4 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..10 {
                let got = store
                    .claim_deliveries(&claim(&format!("w{w}"), 3))
                    .await
                    .unwrap();
                mine.extend(got.into_iter().map(|d| d.id));
            }
            mine
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id), "delivery {id} was claimed twice");
        }
    }
    // A claim skips rows another has locked at that moment (PostgreSQL's
    // SKIP LOCKED), so the workers may leave some behind: a last claim
    // takes those, and none a worker already holds.
    for d in store.claim_deliveries(&claim("last", 100)).await.unwrap() {
        assert!(seen.insert(d.id), "delivery {} was claimed twice", d.id);
    }
    assert_eq!(seen, all.iter().map(|d| d.id).collect::<HashSet<_>>());
}

/// A lease that ran out lets another worker take the delivery, and the first
/// worker's late result is refused.
pub async fn an_expired_lease_passes_to_another_worker<S: Store>(store: Arc<S>) {
    let d = sample_delivery(Uuid::new_v4(), "k");
    queue(store.as_ref(), std::slice::from_ref(&d)).await;
    let t = now();
    let short = Claim {
        lease_until: t + Duration::seconds(5),
        ..claim("slow", 10)
    };
    assert_eq!(store.claim_deliveries(&short).await.unwrap().len(), 1);
    let later = Claim {
        now: t + Duration::seconds(6),
        lease_until: t + Duration::seconds(36),
        ..claim("fast", 10)
    };
    assert_eq!(store.claim_deliveries(&later).await.unwrap().len(), 1);
    assert!(!store
        .finish_delivery(d.id, "slow", &delivered(), &[])
        .await
        .unwrap());
    assert!(store
        .finish_delivery(d.id, "fast", &delivered(), &[])
        .await
        .unwrap());
    assert_eq!(store.delivery(d.id).await.unwrap().unwrap().attempts, 1);
}

/// The log lists an app's deliveries newest first by status; a redelivery
/// makes one pending and due again; the purge takes only finished, old ones.
pub async fn redelivery_listing_and_purge<S: Store>(store: Arc<S>) {
    let app = Uuid::new_v4();
    let old = sample_delivery(app, "a");
    let new = sample_delivery(app, "b");
    queue(store.as_ref(), &[old.clone(), new.clone()]).await;
    store.claim_deliveries(&claim("w", 10)).await.unwrap();
    store
        .finish_delivery(old.id, "w", &delivered(), &[])
        .await
        .unwrap();

    let all = store
        .list_deliveries(Some(app), None, None, 10)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![new.id, old.id]
    );
    // The cursor: after the newest, the older one only.
    let page = store
        .list_deliveries(Some(app), None, Some(new.id), 10)
        .await
        .unwrap();
    assert_eq!(page.iter().map(|d| d.id).collect::<Vec<_>>(), vec![old.id]);
    let done = store
        .list_deliveries(Some(app), Some(DeliveryStatus::Delivered), None, 10)
        .await
        .unwrap();
    assert_eq!(done.iter().map(|d| d.id).collect::<Vec<_>>(), vec![old.id]);
    assert!(store
        .list_deliveries(None, None, None, 10)
        .await
        .unwrap()
        .is_empty());

    // In flight (leased by "w"), pending: not purged; the finished one is,
    // once older than the cut-off.
    let later = now() + Duration::days(31);
    assert_eq!(
        store
            .purge_deliveries(now() - Duration::days(1), 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.purge_deliveries(later, 100).await.unwrap(), 1);
    assert_eq!(store.delivery(old.id).await.unwrap(), None);
    assert!(store.delivery(new.id).await.unwrap().is_some());

    // Redelivery drops the lease and makes it due at once.
    let at = now();
    store.redeliver(new.id, at).await.unwrap();
    let again = store.delivery(new.id).await.unwrap().unwrap();
    assert_eq!(again.status, DeliveryStatus::Pending);
    assert_eq!(again.next_attempt_at, Some(at));
    assert_eq!(again.retry_from, at);
    assert_eq!(
        store.claim_deliveries(&claim("v", 10)).await.unwrap().len(),
        1
    );
    assert!(!store
        .finish_delivery(new.id, "w", &delivered(), &[])
        .await
        .unwrap());
    assert!(matches!(
        store.redeliver(Uuid::new_v4(), at).await,
        Err(StoreError::NotFound)
    ));
}

/// A target with many due deliveries gets at most `per_target` in flight;
/// another target's deliveries are still handed out.
pub async fn one_target_cannot_take_every_slot<S: Store>(store: Arc<S>) {
    let busy = Uuid::new_v4();
    let quiet = Uuid::new_v4();
    let mut many: Vec<WebhookDelivery> = (0..10)
        .map(|i| sample_delivery(busy, &format!("busy{i}")))
        .collect();
    queue(store.as_ref(), &many).await;
    let q = sample_delivery(quiet, "quiet");
    many.push(q.clone());
    queue(store.as_ref(), std::slice::from_ref(&q)).await;

    let capped = Claim {
        per_target: 2,
        ..claim("w", 50)
    };
    let first = store.claim_deliveries(&capped).await.unwrap();
    let of = |list: &[WebhookDelivery], app: Uuid| {
        list.iter()
            .filter(|d| d.target == WebhookTarget::App(app))
            .count()
    };
    assert_eq!(of(&first, busy), 2);
    assert_eq!(of(&first, quiet), 1);
    // The two in flight still count: nothing more for the busy target.
    assert!(store.claim_deliveries(&capped).await.unwrap().is_empty());
}
