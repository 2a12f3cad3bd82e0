//! Group commit of rotations, as the SQLite writer does it.
//!
//! A refresh's compare-and-swap used to be one statement and one commit of
//! its own: under load PostgreSQL spent most of its CPU starting executors
//! and flushing WAL for a statement per rotation. Rotations now go through a
//! queue; one task takes every rotation waiting at that moment (up to
//! [`MAX_BATCH`]) and runs them as **one** statement over arrays: one
//! `UPDATE … FROM UNNEST(…)` retires every old pair that is still live (the
//! same conditions as before, re-checked under each row's lock), and the
//! successors and events are inserted only for the pairs it retired — so
//! each rotation still succeeds or loses on its own, exactly as if it had
//! run alone. Up to [`IN_FLIGHT`] batches run at once, each on its own
//! connection, so the next batch gathers while one executes. A lone
//! rotation is a batch of one: the same statement, one round trip, one
//! implicit transaction. No installation row is touched: a deleted
//! installation's families are revoked, so the compare-and-swap refuses. A
//! revocation of the family that commits after the family check still
//! revokes the successor: revocation lives on the family row, which every
//! token read joins.
//!
//! Two rotations of the same pair never share a batch (the second waits for
//! the next one and loses there, as it would have alone). If a batch
//! statement fails for any reason other than the database being away (a
//! deadlock with a concurrent batch, a constraint), each of its rotations is
//! run again as a batch of one, so one bad rotation cannot fail the others.
//! Batch sizes and failed batches are counted under the same metrics as the
//! SQLite writer's group commit.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rotor_core::{IssuedToken, NewEvent};
use rotor_store::{StoreError, StoreResult};
use sqlx::{PgPool, Row};
use tokio::sync::{mpsc, oneshot, Semaphore};
use uuid::Uuid;

use crate::map_err;
use crate::store::EventColumns;

/// Most rotations in one statement.
pub(crate) const MAX_BATCH: usize = 64;
/// Most batches executing at once (each holds a pooled connection).
pub(crate) const IN_FLIGHT: usize = 4;

/// One rotation waiting for its batch.
struct Job {
    old_id: Uuid,
    successor: IssuedToken,
    events: Vec<NewEvent>,
    /// `true` when the old pair was retired and the successor stored.
    reply: oneshot::Sender<StoreResult<bool>>,
}

/// The queue of rotations; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Rotations {
    queue: mpsc::Sender<Job>,
}

impl Rotations {
    /// Starts the batching task on `pool` (inside a tokio runtime).
    pub(crate) fn start(pool: PgPool) -> Self {
        let (queue, rx) = mpsc::channel(8 * MAX_BATCH);
        tokio::spawn(gather(pool, rx));
        Self { queue }
    }

    /// Retires `old_id` for `successor` and records `events`, in the next
    /// batch; answers whether this rotation won its compare-and-swap.
    pub(crate) async fn rotate(
        &self,
        old_id: Uuid,
        successor: &IssuedToken,
        events: &[NewEvent],
    ) -> StoreResult<bool> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            old_id,
            successor: successor.clone(),
            events: events.to_vec(),
            reply,
        };
        self.queue
            .send(job)
            .await
            .map_err(|_| StoreError::unavailable(CLOSED))?;
        answer.await.map_err(|_| StoreError::unavailable(CLOSED))?
    }
}

const CLOSED: &str = "the PostgreSQL rotation queue is closed";

/// Takes the waiting rotations as batches and runs each on a task of its own.
async fn gather(pool: PgPool, mut rx: mpsc::Receiver<Job>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    // Rotations of a pair already in the batch being gathered, oldest first.
    let mut held: VecDeque<Job> = VecDeque::new();
    loop {
        let first = match held.pop_front() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        // Wait for a free slot before gathering, so the batch takes every
        // rotation that arrived meanwhile.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut ids = HashSet::with_capacity(MAX_BATCH);
        ids.insert(first.old_id);
        let mut batch = vec![first];
        let mut later = Vec::new();
        while batch.len() < MAX_BATCH {
            let next = match held.pop_front() {
                Some(job) => job,
                None => match rx.try_recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            if ids.insert(next.old_id) {
                batch.push(next);
            } else {
                later.push(next);
            }
        }
        held.extend(later);
        let pool = pool.clone();
        tokio::spawn(async move {
            run_batch(&pool, batch).await;
            drop(slot);
        });
    }
}

/// Runs `batch` and answers each of its rotations.
async fn run_batch(pool: &PgPool, batch: Vec<Job>) {
    metrics::histogram!("rotor_store_write_batch_size").record(batch.len() as f64);
    let failed = match rotate_many(pool, &batch).await {
        Ok(won) => {
            for job in batch {
                let _ = job.reply.send(Ok(won.contains(&job.old_id)));
            }
            return;
        }
        Err(e) => e,
    };
    metrics::counter!("rotor_store_write_batch_errors_total").increment(1);
    if batch.len() == 1 || matches!(failed, StoreError::Unavailable(_)) {
        for job in batch {
            let _ = job.reply.send(Err(failed.clone()));
        }
        return;
    }
    tracing::warn!(error = %failed, size = batch.len(), "rotation batch failed; running its rotations one by one");
    for job in batch {
        let answer = rotate_many(pool, std::slice::from_ref(&job))
            .await
            .map(|won| won.contains(&job.old_id));
        let _ = job.reply.send(answer);
    }
}

/// The columns of a batch's successors and events, as arrays.
#[derive(Default)]
struct Columns {
    old_ids: Vec<Uuid>,
    ids: Vec<Uuid>,
    families: Vec<Uuid>,
    installations: Vec<Uuid>,
    apps: Vec<Uuid>,
    access: Vec<Vec<u8>>,
    refresh: Vec<Vec<u8>>,
    scopes: Vec<String>,
    expires: Vec<DateTime<Utc>>,
    refresh_expires: Vec<DateTime<Utc>>,
    created: Vec<DateTime<Utc>>,
    /// The rotation each event belongs to, beside the events' columns.
    event_old_ids: Vec<Uuid>,
    events: EventColumns,
}

impl Columns {
    fn of(batch: &[Job]) -> Self {
        let mut c = Columns::default();
        for job in batch {
            let s = &job.successor;
            c.old_ids.push(job.old_id);
            c.ids.push(s.id);
            c.families.push(s.family_id);
            c.installations.push(s.installation_id);
            c.apps.push(s.app_id);
            c.access.push(s.access_hash.as_bytes().to_vec());
            c.refresh.push(s.refresh_hash.as_bytes().to_vec());
            // Scopes differ in length between apps and PostgreSQL arrays
            // must be rectangular: each row's list travels as JSON.
            c.scopes
                .push(serde_json::to_string(&s.scopes).unwrap_or_else(|_| "[]".into()));
            c.expires.push(s.expires_at);
            c.refresh_expires.push(s.refresh_expires_at);
            c.created.push(s.created_at);
            for e in &job.events {
                c.event_old_ids.push(job.old_id);
                c.events.push(e);
            }
        }
        c
    }
}

/// The batch as one statement; answers the old pairs it retired.
async fn rotate_many(pool: &PgPool, batch: &[Job]) -> StoreResult<HashSet<Uuid>> {
    let c = Columns::of(batch);
    let q = sqlx::query(
        "WITH input AS ( \
           SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], \
           $6::bytea[], $7::bytea[], $8::text[], $9::timestamptz[], $10::timestamptz[], \
           $11::timestamptz[]) AS x(old_id, id, family_id, installation_id, app_id, \
           access_hash, refresh_hash, scopes, expires_at, refresh_expires_at, created_at)), \
         retired AS ( \
           UPDATE tokens t SET retired_at = x.created_at, successor_id = x.id FROM input x \
           WHERE t.id = x.old_id AND t.family_id = x.family_id AND t.retired_at IS NULL \
           AND t.revoked_at IS NULL AND EXISTS (SELECT 1 FROM token_families f \
           WHERE f.id = t.family_id AND f.revoked_at IS NULL) \
           RETURNING t.id AS old_id, t.successor_id AS id), \
         successor AS ( \
           INSERT INTO tokens (id, family_id, installation_id, app_id, access_hash, \
           refresh_hash, scopes, expires_at, refresh_expires_at, created_at, parent_id, \
           retired_at, revoked_at, successor_id, legacy) \
           SELECT x.id, x.family_id, x.installation_id, x.app_id, x.access_hash, \
           x.refresh_hash, ARRAY(SELECT jsonb_array_elements_text(x.scopes::jsonb)), \
           x.expires_at, x.refresh_expires_at, x.created_at, x.old_id, NULL, NULL, NULL, false \
           FROM input x JOIN retired r ON r.id = x.id), \
         logged AS ( \
           INSERT INTO events (kind, installation_id, identity_id, exchange_type, ip, actor, \
           detail, created_at) \
           SELECT e.kind, e.installation_id, e.identity_id, e.exchange_type, e.ip, e.actor, \
           e.detail, e.created_at \
           FROM UNNEST($12::uuid[], $13::text[], $14::uuid[], $15::text[], $16::text[], \
           $17::text[], $18::text[], $19::text[], $20::timestamptz[]) WITH ORDINALITY \
           AS e(old_id, kind, installation_id, identity_id, exchange_type, ip, actor, detail, \
           created_at, n) \
           JOIN retired r ON r.old_id = e.old_id ORDER BY e.n) \
         SELECT old_id FROM retired",
    )
    .bind(c.old_ids)
    .bind(c.ids)
    .bind(c.families)
    .bind(c.installations)
    .bind(c.apps)
    .bind(c.access)
    .bind(c.refresh)
    .bind(c.scopes)
    .bind(c.expires)
    .bind(c.refresh_expires)
    .bind(c.created)
    .bind(c.event_old_ids);
    let rows = c.events.bind(q).fetch_all(pool).await.map_err(map_err)?;
    rows.iter()
        .map(|row| row.try_get::<Uuid, _>(0).map_err(map_err))
        .collect()
}
