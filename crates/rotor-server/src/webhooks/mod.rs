//! Outbound webhooks: the address guard, the sender, the body types and the
//! settings. The outbox itself is the store's ([`rotor_store::OutboxStore`]);
//! what is queued when, and what an attempt does to a delivery, are use cases
//! in [`crate::service`]; the worker that drains the outbox is started with
//! the server's other background jobs ([`crate::startup::Background`]).

pub mod guard;
pub mod payload;
pub mod sender;

use std::time::Duration;

use rotor_core::{RetryPolicy, Secret};

pub use guard::AddressPolicy;
pub use sender::Sender;

/// The webhook settings of a node.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Internal networks deliveries may go to (`ROTOR_WEBHOOK_ALLOWED_NETWORKS`).
    pub policy: AddressPolicy,
    /// How long one attempt may take (`--webhook-timeout-seconds`, 5).
    pub timeout: Duration,
    /// Backoff and give-up window.
    pub retry: RetryPolicy,
    /// Delivered and failed deliveries are purged after this long (30 days).
    pub retention: chrono::Duration,
    /// The platform's endpoint for identity webhooks, if any.
    pub platform_url: Option<String>,
    /// The secret that signs them.
    pub platform_secret: Option<Secret>,
    /// Deliveries in flight on this node at most.
    pub concurrency: usize,
    /// Deliveries in flight per target (app or platform) at most, so one
    /// slow receiver cannot take every slot.
    pub per_target: u32,
    /// How often the worker looks for due deliveries queued by other
    /// processes (its own it hears about at once).
    pub poll: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            policy: AddressPolicy::default(),
            timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            retention: chrono::Duration::days(30),
            platform_url: None,
            platform_secret: None,
            concurrency: 32,
            per_target: 4,
            poll: Duration::from_secs(1),
        }
    }
}

impl WebhookSettings {
    /// How long a worker holds a claimed delivery: longer than any attempt
    /// can take, so a delivery is in flight on one node at a time; short
    /// enough that a crashed node's deliveries are soon taken over.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }
}
