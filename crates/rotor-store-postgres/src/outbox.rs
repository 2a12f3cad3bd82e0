//! The webhook outbox on PostgreSQL. Deliveries are inserted by the verbs
//! whose change they report, in the same transaction. A claim locks the
//! candidate rows with `FOR UPDATE SKIP LOCKED` and re-checks the lease in
//! its `UPDATE`, so two nodes never hold one delivery at once; a row another
//! node has just leased is skipped, not waited for.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rotor_core::{
    AttemptRecord, Ciphertext, DeliveryStatus, NewEvent, WebhookDelivery, WebhookTarget,
};
use rotor_store::{Claim, OutboxStore, StoreError, StoreResult};
use sqlx::postgres::PgRow;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::rows::get;
use crate::{map_err, PgStore};

fn delivery(row: &PgRow) -> StoreResult<WebhookDelivery> {
    let target: String = get(row, "target")?;
    let status: String = get(row, "status")?;
    Ok(WebhookDelivery {
        id: get(row, "id")?,
        target: WebhookTarget::from_storage_key(&target)
            .ok_or_else(|| StoreError::other("unreadable delivery target"))?,
        resource: get(row, "resource")?,
        event_type: get(row, "event_type")?,
        url: get(row, "url")?,
        body: Ciphertext {
            key_id: get(row, "body_key")?,
            bytes: get(row, "body_ct")?,
        },
        order_key: get(row, "order_key")?,
        installation_id: get(row, "installation_id")?,
        org_slug: get(row, "org_slug")?,
        identity_id: get(row, "identity_id")?,
        status: DeliveryStatus::parse(&status)
            .ok_or_else(|| StoreError::other("unreadable delivery status"))?,
        attempts: get(row, "attempts")?,
        response_code: get(row, "response_code")?,
        error: get(row, "error")?,
        created_at: get(row, "created_at")?,
        retry_from: get(row, "retry_from")?,
        last_attempt_at: get(row, "last_attempt_at")?,
        next_attempt_at: get(row, "next_attempt_at")?,
    })
}

/// Queues `deliveries` inside the caller's transaction.
pub(crate) async fn insert_deliveries(
    conn: &mut PgConnection,
    deliveries: &[WebhookDelivery],
) -> StoreResult<()> {
    for d in deliveries {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, target, resource, event_type, url, body_key, \
             body_ct, order_key, installation_id, org_slug, identity_id, status, attempts, \
             response_code, error, created_at, retry_from, last_attempt_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19)",
        )
        .bind(d.id)
        .bind(d.target.storage_key())
        .bind(&d.resource)
        .bind(&d.event_type)
        .bind(&d.url)
        .bind(&d.body.key_id)
        .bind(&d.body.bytes)
        .bind(&d.order_key)
        .bind(d.installation_id)
        .bind(&d.org_slug)
        .bind(d.identity_id)
        .bind(d.status.as_str())
        .bind(d.attempts)
        .bind(d.response_code)
        .bind(&d.error)
        .bind(d.created_at)
        .bind(d.retry_from)
        .bind(d.last_attempt_at)
        .bind(d.next_attempt_at)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    }
    Ok(())
}

/// See the SQLite backend's `CLAIM`; here the chosen rows are locked with
/// `SKIP LOCKED` and the lease condition is checked again by the `UPDATE`
/// on the latest committed row version.
const CLAIM: &str = "WITH cand AS ( \
        SELECT seq, next_attempt_at FROM ( \
            SELECT d.seq, d.next_attempt_at, \
                ROW_NUMBER() OVER (PARTITION BY d.target ORDER BY d.next_attempt_at, d.seq) AS rn, \
                (SELECT COUNT(*) FROM webhook_deliveries x WHERE x.target = d.target \
                    AND x.status = 'pending' AND x.lease_until > $3) AS busy \
            FROM webhook_deliveries d \
            WHERE d.status = 'pending' AND d.next_attempt_at <= $3 \
              AND (d.lease_until IS NULL OR d.lease_until <= $3) \
              AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.order_key = d.order_key \
                    AND e.status = 'pending' AND e.seq < d.seq)) ranked \
        WHERE rn + busy <= $5 ORDER BY next_attempt_at, seq LIMIT $4), \
    locked AS (SELECT w.seq FROM webhook_deliveries w JOIN cand USING (seq) \
        FOR UPDATE OF w SKIP LOCKED) \
    UPDATE webhook_deliveries w SET lease_owner = $1, lease_until = $2 FROM locked \
    WHERE w.seq = locked.seq AND w.status = 'pending' \
      AND (w.lease_until IS NULL OR w.lease_until <= $3) \
    RETURNING w.*";

#[async_trait]
impl OutboxStore for PgStore {
    async fn claim_deliveries(&self, claim: &Claim) -> StoreResult<Vec<WebhookDelivery>> {
        let mut out = sqlx::query(CLAIM)
            .bind(&claim.owner)
            .bind(claim.lease_until)
            .bind(claim.now)
            .bind(i64::from(claim.limit))
            .bind(i64::from(claim.per_target))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(delivery)
            .collect::<StoreResult<Vec<_>>>()?;
        out.sort_by_key(|d| (d.next_attempt_at, d.created_at));
        Ok(out)
    }

    async fn finish_delivery(
        &self,
        id: Uuid,
        owner: &str,
        a: &AttemptRecord,
        events: &[NewEvent],
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, \
             response_code = $2, error = $3, last_attempt_at = $4, next_attempt_at = $5, \
             lease_owner = NULL, lease_until = NULL \
             WHERE id = $6 AND lease_owner = $7 AND status = 'pending'",
        )
        .bind(a.status.as_str())
        .bind(a.response_code)
        .bind(&a.error)
        .bind(a.attempted_at)
        .bind(a.next_attempt_at)
        .bind(id)
        .bind(owner)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        crate::store::insert_events(&mut tx, events).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn delivery(&self, id: Uuid) -> StoreResult<Option<WebhookDelivery>> {
        sqlx::query("SELECT * FROM webhook_deliveries WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(delivery)
            .transpose()
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
        sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE target = $1 \
             AND ($2::text IS NULL OR status = $2) \
             AND ($4::uuid IS NULL OR seq < (SELECT seq FROM webhook_deliveries WHERE id = $4)) \
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(target)
        .bind(status.map(DeliveryStatus::as_str))
        .bind(i64::from(limit))
        .bind(before)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?
        .iter()
        .map(delivery)
        .collect()
    }

    async fn redeliver(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, \
             retry_from = $1, lease_owner = NULL, lease_until = NULL WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn purge_deliveries(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE seq IN (SELECT seq FROM webhook_deliveries \
             WHERE status <> 'pending' AND last_attempt_at < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(i64::from(batch))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }
}
