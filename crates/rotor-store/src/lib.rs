//! The storage contract of Rotor: one [`Store`] trait in domain verbs, and
//! [`StoreError`]. Backends (`rotor-store-sqlite`, later PostgreSQL) implement
//! it and map their rows to `rotor_core` records inside; nothing above this
//! crate sees SQL.
//!
//! Every verb that changes more than one row is atomic. The two verbs that
//! decide races are compare-and-swaps:
//!
//! * [`Store::exchange_grant`] consumes a grant code only if it is still there;
//! * [`Store::rotate_refresh`] retires a token only if it is still live and its
//!   family is not revoked, and in the same transaction inserts its successor.
//!
//! Whatever loses such a race gets an answer that says so
//! ([`StoreError::Conflict`], [`Rotation::Lost`]) and changes nothing, so a
//! grace window or reuse detection can be decided above the store.
#![forbid(unsafe_code)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rotor_core::{
    App, AttemptRecord, Ciphertext, DeliveryStatus, Event, EventFilter, Grant, IdentityFilter,
    Installation, InstallationFilter, InstallationStatus, IssuedToken, NewEvent, TokenHash,
    UpstreamIdentityRecord, UpstreamProvider, UsedJti, WebhookDelivery,
};
use uuid::Uuid;

/// The cause behind a store failure, kept for `Error::source` (shared, so
/// the error stays `Clone` for single-flight waiters).
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync>;

/// Why a store call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The record to change does not exist (or is deleted).
    #[error("not found")]
    NotFound,
    /// A uniqueness rule or a compare-and-swap refused the change.
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// The database cannot be reached right now; worth retrying later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// Anything else: a bug, corruption, or a row that does not map.
    #[error("store error: {0}")]
    Other(#[source] Cause),
}

impl StoreError {
    /// [`StoreError::Other`] with its cause (an error, or a message).
    pub fn other(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let cause: Box<dyn std::error::Error + Send + Sync> = cause.into();
        StoreError::Other(Cause::from(cause))
    }

    /// [`StoreError::Unavailable`] with its cause (an error, or a message).
    pub fn unavailable(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let cause: Box<dyn std::error::Error + Send + Sync> = cause.into();
        StoreError::Unavailable(Cause::from(cause))
    }
}

/// Which rule refused a change ([`StoreError::Conflict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// An app with this slug exists.
    #[error("slug")]
    Slug,
    /// An app with this client id exists.
    #[error("client_id")]
    ClientId,
    /// The app is already installed in the organization.
    #[error("installation")]
    Installation,
    /// The app still has this many live installations.
    #[error("the app has {0} live installation(s)")]
    LiveInstallations(i64),
    /// The grant code was already exchanged.
    #[error("grant_used")]
    GrantUsed,
    /// The JWT id was already used.
    #[error("jti")]
    Jti,
    /// A webhook delivery with this id exists.
    #[error("delivery")]
    Delivery,
    /// An upstream provider with this key exists.
    #[error("provider")]
    Provider,
    /// Another node holds the identity's refresh lease.
    #[error("lease")]
    Lease,
    /// A uniqueness rule the store does not name.
    #[error("unique")]
    Unique,
}

/// The result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// The outcome of [`Store::rotate_refresh`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The old pair is retired and the successor stored; the installation
    /// now points at the successor.
    Rotated,
    /// The old pair was no longer live (already retired or revoked, or its
    /// family revoked); here it is as it stands now. Nothing was written.
    Lost(Box<IssuedToken>),
}

/// Rows deleted by one [`Store::purge_expired`] call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Expired grant codes.
    pub grants: u64,
    /// Expired JWT ids.
    pub jtis: u64,
    /// Pairs whose refresh token expired.
    pub tokens: u64,
    /// Families without pairs.
    pub families: u64,
    /// Delivered or failed webhook deliveries past their retention (counted
    /// by the janitor, from [`OutboxStore::purge_deliveries`]).
    pub webhooks: u64,
    /// Events and audit records past their retention (counted by the
    /// janitor, from [`Store::purge_events`]).
    pub events: u64,
}

impl std::ops::AddAssign for Purged {
    fn add_assign(&mut self, other: Purged) {
        self.grants += other.grants;
        self.jtis += other.jtis;
        self.tokens += other.tokens;
        self.families += other.families;
        self.webhooks += other.webhooks;
        self.events += other.events;
    }
}

impl Purged {
    /// Total rows deleted.
    pub fn total(&self) -> u64 {
        self.grants + self.jtis + self.tokens + self.families + self.webhooks + self.events
    }
}

/// The Rotor store: issued tokens and their apps and installations here,
/// upstream identities in the [`UpstreamStore`] part of the contract.
#[async_trait]
pub trait Store: UpstreamStore + OutboxStore + Send + Sync + std::fmt::Debug + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;
    /// Which server keys sealed how many values (client secrets, provider
    /// secrets, identity tokens, pending webhook bodies), by key id.
    async fn sealed_key_ids(&self) -> StoreResult<Vec<(String, u64)>>;
    /// Rows by status, for the gauges of the metrics: `("identities",
    /// status, n)` for upstream identities, `("webhooks", "pending", n)` for
    /// the outbox backlog.
    async fn status_counts(&self) -> StoreResult<Vec<(String, String, u64)>>;
    /// Commits what is queued and closes the connections; later calls fail
    /// with `Unavailable`. Called once, at shutdown, after the last request.
    async fn close(&self);
    /// Checks that the database accepts writes now: writes one tiny row
    /// (`readiness`), so a full disk, a read-only file or a PostgreSQL in
    /// recovery fails it.
    async fn check_writable(&self, now: DateTime<Utc>) -> StoreResult<()>;

    // ---- apps ----

    /// Stores a new app. `Conflict("slug")` or `Conflict("client_id")` on a clash.
    async fn insert_app(&self, app: &App) -> StoreResult<()>;
    /// Replaces an app's settings, secret and `updated_at`. `NotFound` if absent.
    async fn update_app(&self, app: &App) -> StoreResult<()>;
    /// The app with this slug.
    async fn app_by_slug(&self, slug: &str) -> StoreResult<Option<App>>;
    /// The app with this client id.
    async fn app_by_client_id(&self, client_id: &str) -> StoreResult<Option<App>>;
    /// The app with this id.
    async fn app_by_id(&self, id: Uuid) -> StoreResult<Option<App>>;
    /// All apps, oldest first.
    async fn list_apps(&self) -> StoreResult<Vec<App>>;

    // ---- installations ----

    /// Stores an installation with its grant code and the webhook
    /// deliveries that announce it, atomically.
    /// `Conflict("installation")` when the organization already holds a live
    /// installation of the app; `NotFound` when the app does not exist.
    async fn create_installation(
        &self,
        installation: &Installation,
        grant: &Grant,
        outbox: &[WebhookDelivery],
    ) -> StoreResult<()>;
    /// The installation with this id, deleted or not.
    async fn installation(&self, id: Uuid) -> StoreResult<Option<Installation>>;
    /// Sets the status of a live installation. `NotFound` if absent or deleted.
    async fn set_installation_status(
        &self,
        id: Uuid,
        status: InstallationStatus,
    ) -> StoreResult<()>;
    /// Marks a live installation deleted, revokes every token family of it,
    /// deletes its grants and queues `outbox`, atomically. `NotFound` if
    /// absent or deleted (then nothing is queued).
    async fn delete_installation(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        outbox: &[WebhookDelivery],
    ) -> StoreResult<()>;

    // ---- grants and tokens ----

    /// The grant with this code hash.
    async fn grant(&self, code_hash: &TokenHash) -> StoreResult<Option<Grant>>;
    /// Consumes the grant and issues `token` as the first pair of a new
    /// family; the installation points at it (and becomes `installed` when
    /// `mark_installed`), and `events` are recorded. Atomic.
    /// `Conflict("grant_used")` when the grant is no longer there (a
    /// concurrent exchange won); then nothing is written.
    async fn exchange_grant(
        &self,
        code_hash: &TokenHash,
        token: &IssuedToken,
        mark_installed: bool,
        events: &[NewEvent],
    ) -> StoreResult<()>;
    /// The pair with this id (a token's selector), in any state.
    async fn token(&self, id: Uuid) -> StoreResult<Option<IssuedToken>>;
    /// The refresh path's reads in one: the pair `pair` and the installation
    /// `installation` — or, when that is `None`, the pair's own — each in
    /// any state. One statement on PostgreSQL (the default, two point
    /// reads, is what SQLite does: its reads are in-process).
    async fn token_with_installation(
        &self,
        pair: Uuid,
        installation: Option<Uuid>,
    ) -> StoreResult<(Option<IssuedToken>, Option<Installation>)> {
        let token = self.token(pair).await?;
        let id = installation.or(token.as_ref().map(|t| t.installation_id));
        let installation = match id {
            Some(id) => self.installation(id).await?,
            None => None,
        };
        Ok((token, installation))
    }
    /// Among the pairs issued before selector tokens (schema 7), the one
    /// whose refresh token has this hash, in any state. Pairs issued since
    /// are found by [`Store::token`] only.
    async fn legacy_token_by_refresh(
        &self,
        refresh_hash: &TokenHash,
    ) -> StoreResult<Option<IssuedToken>>;
    /// Among the pairs issued before selector tokens, the one whose access
    /// token has this hash, in any state.
    async fn legacy_token_by_access(
        &self,
        access_hash: &TokenHash,
    ) -> StoreResult<Option<IssuedToken>>;
    /// Compare-and-swap: if pair `old_id` is live and its family not revoked,
    /// retire it at `successor.created_at` with `successor_id` set to the
    /// successor's id, store `successor` (same family, `parent_id = old_id`)
    /// and record `events`, in one transaction; else change nothing and
    /// answer [`Rotation::Lost`]. The successor is stored as a selector pair
    /// (never found by hash).
    async fn rotate_refresh(
        &self,
        old_id: Uuid,
        successor: &IssuedToken,
        events: &[NewEvent],
    ) -> StoreResult<Rotation>;

    /// Revokes a whole token family (every pair descended from one grant)
    /// and records `events`, atomically. Linearizable with
    /// [`Store::rotate_refresh`]: a rotation of the family that commits after
    /// this cannot produce a live successor. Answers whether the family was
    /// live before; revoking twice changes nothing.
    async fn revoke_family(
        &self,
        family_id: Uuid,
        now: DateTime<Utc>,
        events: &[NewEvent],
    ) -> StoreResult<bool>;
    /// Manual refresh: remembers `jti` (`Conflict("jti")` when it was used
    /// before), revokes every live family of the token's installation,
    /// stores `token` as the first pair of a new family, points the
    /// installation at it and records `events`, atomically.
    async fn reissue(
        &self,
        jti: &UsedJti,
        token: &IssuedToken,
        events: &[NewEvent],
    ) -> StoreResult<()>;
    /// Remembers a client-assertion `jti` until it expires;
    /// `Conflict("jti")` when it was used before.
    async fn remember_jti(&self, jti: &UsedJti) -> StoreResult<()>;
    /// Deletes at most `batch` rows of each kind that nothing needs any more:
    /// grants and jtis past their expiry, pairs whose refresh token has expired
    /// (retired and revoked pairs are kept until then, for reuse detection),
    /// and, once a round has purged every such pair, families past their
    /// absolute end (no pair outlives its family). Call again while it
    /// deletes anything.
    async fn purge_expired(&self, now: DateTime<Utc>, batch: u32) -> StoreResult<Purged>;

    // ---- events ----

    /// Deletes events and audit records older than `before`: at most `batch`,
    /// taken from the oldest ids, so a pass costs the same however large the
    /// table. Answers how many.
    async fn purge_events(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64>;

    /// Appends an event or audit record.
    async fn record_event(&self, event: &NewEvent) -> StoreResult<()>;
    /// Events matching `filter`, newest first.
    async fn list_events(&self, filter: &EventFilter) -> StoreResult<Vec<Event>>;
    /// Live installations matching `filter`, in id order.
    async fn list_installations(
        &self,
        filter: &InstallationFilter,
    ) -> StoreResult<Vec<Installation>>;
    /// Deletes an app with everything issued for it (installations, grants,
    /// token families and pairs, its pending webhooks); its events stay.
    /// `Conflict` while it has a live installation, `NotFound` if it is gone.
    async fn delete_app(&self, id: Uuid) -> StoreResult<()>;
}

/// The upstream part of the store contract: providers, identities and the
/// refresh lease that keeps refreshes of one identity exactly-once across
/// nodes.
#[async_trait]
pub trait UpstreamStore: Send + Sync {
    /// Stores a provider; `Conflict("provider")` when the key is taken.
    async fn insert_provider(&self, provider: &UpstreamProvider) -> StoreResult<()>;
    /// The provider with this key.
    async fn provider(&self, key: &str) -> StoreResult<Option<UpstreamProvider>>;
    /// All providers, by key.
    async fn list_providers(&self) -> StoreResult<Vec<UpstreamProvider>>;
    /// Stores an identity; `NotFound` when its provider does not exist.
    async fn insert_identity(&self, identity: &UpstreamIdentityRecord) -> StoreResult<()>;
    /// The identity with this id.
    async fn identity(&self, id: Uuid) -> StoreResult<Option<UpstreamIdentityRecord>>;
    /// A page of identities in id order, filtered (the admin list).
    async fn identities_page(&self, f: &IdentityFilter)
        -> StoreResult<Vec<UpstreamIdentityRecord>>;
    /// Deletes an identity; `NotFound` if absent.
    async fn delete_identity(&self, id: Uuid) -> StoreResult<()>;
    /// Compare-and-swap: takes the refresh lease of identity `id` for
    /// `owner` until `until` when nobody holds an unexpired one. Answers
    /// whether `owner` holds it now.
    async fn claim_identity_lease(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Gives the lease back (only if `owner` holds it).
    async fn release_identity_lease(&self, id: Uuid, owner: &str) -> StoreResult<()>;
    /// Saves an identity's state after a refresh attempt (tokens, expiry,
    /// status, failure count, last error, next attempt), records `events`
    /// and queues `outbox`, atomically — only while `owner` holds the lease
    /// (`Conflict("lease")` otherwise, so a node whose lease ran out cannot
    /// overwrite a newer refresh). Releases the lease.
    async fn save_identity(
        &self,
        identity: &UpstreamIdentityRecord,
        owner: &str,
        events: &[NewEvent],
        outbox: &[WebhookDelivery],
    ) -> StoreResult<()>;
    /// Re-authorization: replaces an identity's tokens, expiry and scopes,
    /// sets it `active` with its failures reset and any lease dropped,
    /// records `events` and queues `outbox`, atomically. `NotFound` if absent.
    async fn reauthorize_identity(
        &self,
        identity: &UpstreamIdentityRecord,
        events: &[NewEvent],
        outbox: &[WebhookDelivery],
    ) -> StoreResult<()>;
    /// Compare-and-swap of a provider's sealed secrets (key rotation):
    /// replaces `old` by `new`; answers whether it did.
    async fn reseal_provider(
        &self,
        key: &str,
        old: &Ciphertext,
        new: &Ciphertext,
    ) -> StoreResult<bool>;
    /// Compare-and-swap of an identity's sealed tokens (key rotation): only
    /// when both still equal `old`; answers whether it did.
    async fn reseal_identity(
        &self,
        id: Uuid,
        old: (Option<&Ciphertext>, Option<&Ciphertext>),
        new: (Option<&Ciphertext>, Option<&Ciphertext>),
    ) -> StoreResult<bool>;
    /// Active identities whose next attempt is due at `now` and whose access
    /// token expires before `before`, or that were last refreshed (or
    /// created) before `idle_before`; soonest expiry first, at most `limit`.
    async fn identities_due(
        &self,
        before: DateTime<Utc>,
        idle_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<UpstreamIdentityRecord>>;
}

/// Which deliveries one [`OutboxStore::claim_deliveries`] call may take.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The claiming worker (node) name.
    pub owner: String,
    /// Now.
    pub now: DateTime<Utc>,
    /// The lease ends then; an attempt must be over before it.
    pub lease_until: DateTime<Utc>,
    /// At most this many deliveries.
    pub limit: u32,
    /// At most this many in flight per target (app or platform), counting
    /// those already leased: one dead receiver cannot take every slot.
    pub per_target: u32,
}

/// The webhook outbox: deliveries written with the change they report,
/// leased to one worker at a time, and their log.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Leases due pending deliveries to `claim.owner`: only the oldest
    /// pending delivery of each order key (so an installation's `created`
    /// goes before its `deleted`, even across nodes), only those not leased
    /// by anyone, respecting `per_target`; soonest due first.
    async fn claim_deliveries(&self, claim: &Claim) -> StoreResult<Vec<WebhookDelivery>>;
    /// Records an attempt on a delivery `owner` holds, releases the lease and
    /// records `events`, atomically. Answers `false` (writing nothing) when
    /// the lease was lost — it ran out and another worker took the delivery,
    /// or an operator asked for a redelivery meanwhile.
    async fn finish_delivery(
        &self,
        id: Uuid,
        owner: &str,
        attempt: &AttemptRecord,
        events: &[NewEvent],
    ) -> StoreResult<bool>;
    /// The delivery with this id.
    async fn delivery(&self, id: Uuid) -> StoreResult<Option<WebhookDelivery>>;
    /// An app's deliveries (or the platform's, with `None`), newest first,
    /// optionally of one status, queued before delivery `before` (the page
    /// cursor; none when that delivery is gone), at most `limit`.
    async fn list_deliveries(
        &self,
        app_id: Option<Uuid>,
        status: Option<DeliveryStatus>,
        before: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Makes a delivery pending and due at `now` again, its retry window
    /// restarting and any lease dropped. `NotFound` if absent.
    async fn redeliver(&self, id: Uuid, now: DateTime<Utc>) -> StoreResult<()>;
    /// Deletes at most `batch` delivered or failed deliveries whose last
    /// attempt was before `before`; answers how many.
    async fn purge_deliveries(&self, before: DateTime<Utc>, batch: u32) -> StoreResult<u64>;
}
