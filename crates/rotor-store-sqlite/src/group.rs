//! Group commit of refresh rotations, the hot path.
//!
//! Every rotation is a compare-and-swap plus three inserts/updates on the one
//! writer connection. Committing each on its own costs a WAL append and a
//! commit per rotation; one task here takes all rotations waiting at that
//! moment (up to [`MAX_BATCH`]) and runs them in one transaction, in arrival
//! order, then answers each. Within a batch a later rotation of the same pair
//! sees the earlier one's write and loses its CAS, exactly as across
//! transactions. If any statement of a batch fails, the batch is rolled back
//! and its rotations are run again one transaction each, so one bad rotation
//! cannot fail the others.

use rotor_core::{IssuedToken, NewEvent};
use rotor_store::{Rotation, StoreError, StoreResult};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::rows::ts;
use crate::store::{insert_events, insert_token};
use crate::{map_err, SqliteStore};

/// Most rotations committed together.
pub const MAX_BATCH: usize = 128;

/// One rotation waiting for the writer.
#[derive(Debug)]
pub(crate) struct Job {
    old_id: Uuid,
    successor: IssuedToken,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<StoreResult<Rotation>>,
}

/// Queues a rotation and waits for its commit.
pub(crate) async fn rotate(
    queue: &mpsc::Sender<Job>,
    old_id: Uuid,
    successor: &IssuedToken,
    events: &[NewEvent],
) -> StoreResult<Rotation> {
    let (reply, answer) = oneshot::channel();
    let job = Job {
        old_id,
        successor: successor.clone(),
        events: events.to_vec(),
        reply,
    };
    queue
        .send(job)
        .await
        .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
    answer
        .await
        .map_err(|_| StoreError::Other("the SQLite writer dropped a rotation".into()))?
}

/// Starts the writer task; it ends when every sender is dropped.
pub(crate) fn spawn(writer: SqlitePool) -> mpsc::Sender<Job> {
    let (tx, mut rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            match run_set(&writer, &batch).await {
                Ok(results) => {
                    for (job, r) in batch.drain(..).zip(results) {
                        let _ = job.reply.send(Ok(r));
                    }
                }
                Err(e) => {
                    if batch.len() > 1 {
                        tracing::warn!(error = %e, size = batch.len(), "rotation batch failed; running its rotations one by one");
                    }
                    for job in batch.drain(..) {
                        let r = run(&writer, std::slice::from_ref(&job))
                            .await
                            .map(|mut r| r.remove(0));
                        let _ = job.reply.send(r);
                    }
                }
            }
        }
    });
    tx
}

/// Runs `jobs` in one transaction with a handful of set-based statements per
/// batch instead of four per rotation: one conditional `UPDATE … RETURNING`
/// decides every compare-and-swap at once (a pair listed twice is retired once:
/// the first job in arrival order wins, as it would one by one), then one
/// multi-row insert of the winners' successors, one update of their
/// installations, one insert of their events, and one read of the losers' rows.
async fn run_set(writer: &SqlitePool, jobs: &[Job]) -> StoreResult<Vec<Rotation>> {
    use std::collections::HashSet;
    if jobs.len() == 1 {
        return run(writer, jobs).await;
    }
    let mut tx = writer.begin().await.map_err(map_err)?;
    let mut q = sqlx::QueryBuilder::<Sqlite>::new("UPDATE tokens SET retired_at = CASE id ");
    for j in jobs {
        q.push("WHEN ")
            .push_bind(j.old_id.to_string())
            .push(" THEN ")
            .push_bind(ts(j.successor.created_at))
            .push(" ");
    }
    q.push("END WHERE (id, family_id) IN (VALUES ");
    let mut sep = q.separated(", ");
    for j in jobs {
        sep.push("(")
            .push_bind_unseparated(j.old_id.to_string())
            .push_unseparated(", ")
            .push_bind_unseparated(j.successor.family_id.to_string())
            .push_unseparated(")");
    }
    q.push(
        ") AND retired_at IS NULL AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM \
            token_families f WHERE f.id = tokens.family_id AND f.revoked_at IS NULL) RETURNING id",
    );
    let mut retired: HashSet<String> = q
        .build_query_scalar::<String>()
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?
        .into_iter()
        .collect();
    let won: Vec<bool> = jobs
        .iter()
        .map(|j| retired.remove(&j.old_id.to_string()))
        .collect();
    let winners: Vec<&Job> = jobs
        .iter()
        .zip(&won)
        .filter(|(_, w)| **w)
        .map(|(j, _)| j)
        .collect();
    if !winners.is_empty() {
        let mut ins = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO tokens (id, family_id, installation_id, app_id, access_hash, refresh_hash, \
             scopes, expires_at, refresh_expires_at, created_at, parent_id, retired_at, revoked_at) ",
        );
        ins.push_values(&winners, |mut b, j| {
            let t = &j.successor;
            b.push_bind(t.id.to_string())
                .push_bind(t.family_id.to_string())
                .push_bind(t.installation_id.to_string())
                .push_bind(t.app_id.to_string())
                .push_bind(t.access_hash.as_bytes().to_vec())
                .push_bind(t.refresh_hash.as_bytes().to_vec())
                .push_bind(crate::rows::scopes_json(&t.scopes))
                .push_bind(ts(t.expires_at))
                .push_bind(ts(t.refresh_expires_at))
                .push_bind(ts(t.created_at))
                .push_bind(t.parent_id.map(|p| p.to_string()))
                .push("NULL")
                .push("NULL");
        });
        ins.build().execute(&mut *tx).await.map_err(map_err)?;
        let mut upd = sqlx::QueryBuilder::<Sqlite>::new(
            "UPDATE installations SET current_token_id = CASE id ",
        );
        for j in &winners {
            upd.push("WHEN ")
                .push_bind(j.successor.installation_id.to_string())
                .push(" THEN ")
                .push_bind(j.successor.id.to_string())
                .push(" ");
        }
        upd.push("ELSE current_token_id END WHERE deleted_at IS NULL AND id IN (");
        let mut sep = upd.separated(", ");
        for j in &winners {
            sep.push_bind(j.successor.installation_id.to_string());
        }
        upd.push(")");
        upd.build().execute(&mut *tx).await.map_err(map_err)?;
        let events: Vec<NewEvent> = winners
            .iter()
            .flat_map(|j| j.events.iter().cloned())
            .collect();
        insert_events(&mut tx, &events).await?;
    }
    let mut results = Vec::with_capacity(jobs.len());
    for (j, w) in jobs.iter().zip(won) {
        results.push(if w {
            Rotation::Rotated
        } else {
            Rotation::Lost(Box::new(
                SqliteStore::token_by_id_in(&mut tx, j.old_id).await?,
            ))
        });
    }
    tx.commit().await.map_err(map_err)?;
    Ok(results)
}

/// Runs `jobs` in one transaction, one after the other; every result, or the
/// first error. The fallback when a set-based batch fails.
async fn run(writer: &SqlitePool, jobs: &[Job]) -> StoreResult<Vec<Rotation>> {
    let mut tx = writer.begin().await.map_err(map_err)?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        results.push(rotate_in(&mut tx, job).await?);
    }
    tx.commit().await.map_err(map_err)?;
    Ok(results)
}

async fn rotate_in(tx: &mut Transaction<'_, Sqlite>, job: &Job) -> StoreResult<Rotation> {
    let s = &job.successor;
    // The compare-and-swap: retire the old pair only while it is live and its
    // family stands.
    let retired = sqlx::query(
        "UPDATE tokens SET retired_at = ? WHERE id = ? AND retired_at IS NULL \
         AND revoked_at IS NULL AND family_id = ? AND EXISTS (SELECT 1 FROM token_families f \
         WHERE f.id = tokens.family_id AND f.revoked_at IS NULL)",
    )
    .bind(ts(s.created_at))
    .bind(job.old_id.to_string())
    .bind(s.family_id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    if retired.rows_affected() == 0 {
        let now = SqliteStore::token_by_id_in(tx, job.old_id).await?;
        return Ok(Rotation::Lost(Box::new(now)));
    }
    insert_token(tx, s).await?;
    sqlx::query(
        "UPDATE installations SET current_token_id = ? WHERE id = ? AND deleted_at IS NULL",
    )
    .bind(s.id.to_string())
    .bind(s.installation_id.to_string())
    .execute(&mut **tx)
    .await
    .map_err(map_err)?;
    insert_events(tx, &job.events).await?;
    Ok(Rotation::Rotated)
}
