//! The webhook outbox on SQLite. Deliveries are inserted by the verbs whose
//! change they report, in the same write; claiming is a compare-and-swap on
//! the lease columns run by the writer thread, so two workers (of this
//! process or another on the same file) never hold one delivery at once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rotor_core::{
    AttemptRecord, Ciphertext, DeliveryStatus, NewEvent, WebhookDelivery, WebhookTarget,
};
use rotor_store::{Claim, OutboxStore, StoreError, StoreResult};
use rusqlite::{params, Connection, Row};
use uuid::Uuid;

use crate::rows::{bad, from_ts, get, opt_ts, opt_uuid, ts, uuid_col};
use crate::store::{all, exec, insert_events, one};
use crate::{db, SqliteStore};

fn delivery(row: &Row<'_>) -> StoreResult<WebhookDelivery> {
    let target: String = get(row, "target")?;
    let status: String = get(row, "status")?;
    Ok(WebhookDelivery {
        id: uuid_col(row, "id")?,
        target: WebhookTarget::from_storage_key(&target).ok_or_else(|| bad("delivery target"))?,
        resource: get(row, "resource")?,
        event_type: get(row, "event_type")?,
        url: get(row, "url")?,
        body: Ciphertext {
            key_id: get(row, "body_key")?,
            bytes: get(row, "body_ct")?,
        },
        order_key: get(row, "order_key")?,
        installation_id: opt_uuid(row, "installation_id")?,
        org_slug: get(row, "org_slug")?,
        identity_id: opt_uuid(row, "identity_id")?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| bad("delivery status"))?,
        attempts: get(row, "attempts")?,
        response_code: get(row, "response_code")?,
        error: get(row, "error")?,
        created_at: from_ts(get(row, "created_at")?)?,
        retry_from: from_ts(get(row, "retry_from")?)?,
        last_attempt_at: opt_ts(get(row, "last_attempt_at")?)?,
        next_attempt_at: opt_ts(get(row, "next_attempt_at")?)?,
    })
}

/// Queues `deliveries` inside the caller's write.
pub(crate) fn insert_deliveries(
    conn: &Connection,
    deliveries: &[WebhookDelivery],
) -> StoreResult<()> {
    for d in deliveries {
        exec(
            conn,
            "INSERT INTO webhook_deliveries (id, target, resource, event_type, url, body_key, \
             body_ct, order_key, installation_id, org_slug, identity_id, status, attempts, \
             response_code, error, created_at, retry_from, last_attempt_at, next_attempt_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                d.id.to_string(),
                d.target.storage_key(),
                d.resource,
                d.event_type,
                d.url,
                d.body.key_id,
                d.body.bytes,
                d.order_key,
                d.installation_id.map(|i| i.to_string()),
                d.org_slug,
                d.identity_id.map(|i| i.to_string()),
                d.status.as_str(),
                d.attempts,
                d.response_code,
                d.error,
                ts(d.created_at),
                ts(d.retry_from),
                d.last_attempt_at.map(ts),
                d.next_attempt_at.map(ts),
            ],
        )?;
    }
    Ok(())
}

/// The deliveries a claim may take: due, pending, unleased, the head of
/// their order key, and within the per-target budget (rows already in
/// flight count against it).
const CLAIM: &str = "UPDATE webhook_deliveries SET lease_owner = ?1, lease_until = ?2 \
    WHERE seq IN (SELECT seq FROM ( \
        SELECT d.seq, d.next_attempt_at, \
            ROW_NUMBER() OVER (PARTITION BY d.target ORDER BY d.next_attempt_at, d.seq) AS rn, \
            (SELECT COUNT(*) FROM webhook_deliveries x WHERE x.target = d.target \
                AND x.status = 'pending' AND x.lease_until > ?3) AS busy \
        FROM webhook_deliveries d \
        WHERE d.status = 'pending' AND d.next_attempt_at <= ?3 \
          AND (d.lease_until IS NULL OR d.lease_until <= ?3) \
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.order_key = d.order_key \
                AND e.status = 'pending' AND e.seq < d.seq)) \
        WHERE rn + busy <= ?5 ORDER BY next_attempt_at, seq LIMIT ?4) \
    RETURNING *";

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn claim_deliveries(&self, claim: &Claim) -> StoreResult<Vec<WebhookDelivery>> {
        let claim = claim.clone();
        self.writer
            .write(move |c| {
                let mut out = all(
                    c,
                    CLAIM,
                    params![
                        claim.owner,
                        ts(claim.lease_until),
                        ts(claim.now),
                        i64::from(claim.limit),
                        i64::from(claim.per_target),
                    ],
                    delivery,
                )?;
                // RETURNING gives no order; hand them out soonest due first.
                out.sort_by_key(|d| (d.next_attempt_at, d.created_at));
                Ok(out)
            })
            .await
    }

    async fn finish_delivery(
        &self,
        id: Uuid,
        owner: &str,
        a: &AttemptRecord,
        events: &[NewEvent],
    ) -> StoreResult<bool> {
        let (a, owner, events) = (a.clone(), owner.to_owned(), events.to_vec());
        self.writer
            .write(move |c| {
                let n = exec(
                    c,
                    "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, \
                     response_code = ?, error = ?, last_attempt_at = ?, next_attempt_at = ?, \
                     lease_owner = NULL, lease_until = NULL \
                     WHERE id = ? AND lease_owner = ? AND status = 'pending'",
                    params![
                        a.status.as_str(),
                        a.response_code,
                        a.error,
                        ts(a.attempted_at),
                        a.next_attempt_at.map(ts),
                        id.to_string(),
                        owner,
                    ],
                )?;
                if n == 0 {
                    return Ok(false);
                }
                insert_events(c, &events)?;
                Ok(true)
            })
            .await
    }

    async fn delivery(&self, id: Uuid) -> StoreResult<Option<WebhookDelivery>> {
        self.readers.read(|c| {
            one(
                c,
                "SELECT * FROM webhook_deliveries WHERE id = ?",
                [id.to_string()],
                delivery,
            )
        })
    }

    async fn list_deliveries(
        &self,
        app_id: Option<Uuid>,
        status: Option<DeliveryStatus>,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        let target = app_id
            .map_or(WebhookTarget::Platform, WebhookTarget::App)
            .storage_key();
        db::read_blocking(&self.readers, move |c| {
            all(
                c,
                "SELECT * FROM webhook_deliveries WHERE target = ?1 \
                 AND (?2 IS NULL OR status = ?2) \
                 AND (?4 IS NULL OR seq < (SELECT seq FROM webhook_deliveries WHERE id = ?4)) \
                 ORDER BY seq DESC LIMIT ?3",
                params![
                    target,
                    status.map(DeliveryStatus::as_str),
                    i64::from(limit),
                    before.map(|b| b.to_string())
                ],
                delivery,
            )
        })
        .await
    }

    async fn redeliver(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        self.writer
            .write(move |c| {
                let n = exec(
                    c,
                    "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?1, \
                     retry_from = ?1, lease_owner = NULL, lease_until = NULL WHERE id = ?2",
                    params![ts(now), id.to_string()],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn purge_deliveries(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64> {
        self.writer
            .write(move |c| {
                let n = exec(
                    c,
                    "DELETE FROM webhook_deliveries WHERE seq IN (SELECT seq FROM \
                     webhook_deliveries WHERE status <> 'pending' AND last_attempt_at < ?1 LIMIT ?2)",
                    params![ts(before), i64::from(batch)],
                )?;
                Ok(n as u64)
            })
            .await
    }
}
