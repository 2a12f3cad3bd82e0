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
            match run(&writer, &batch).await {
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

/// Runs `jobs` in one transaction; every result, or the first error.
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
