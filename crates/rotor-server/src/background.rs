//! The server's background jobs, owned by its lifecycle: the janitor
//! (expired rows, old events), the upstream refresher (tokens due soon or
//! idle), and the webhook worker. Started after the store opens, stopped
//! (and awaited) before it closes.

use crate::service::Service;
use crate::webhooks::Sender;

/// Rows the janitor deletes per statement, and statements per pass: bounded
/// so that a pass never holds the writer for long.
const JANITOR_BATCH: u32 = 1000;
const JANITOR_MAX_BATCHES: u32 = 50;

/// The server's background jobs (janitor, upstream refresher, webhook
/// worker). Every job stops on the same signal and [`Background::stop`]
/// waits for all of them, so nothing is cut off mid-write at shutdown.
#[derive(Debug)]
pub struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    jobs: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
}

impl Default for Background {
    fn default() -> Self {
        Self::new()
    }
}

/// Sleeps `d`; answers `false` when the stop signal came first.
async fn pause(stop: &mut tokio::sync::watch::Receiver<bool>, d: std::time::Duration) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = stop.changed() => false,
        () = tokio::time::sleep(d) => !*stop.borrow(),
    }
}

impl Background {
    /// No jobs yet.
    pub fn new() -> Self {
        Self {
            stop: tokio::sync::watch::channel(false).0,
            jobs: Vec::new(),
        }
    }

    /// Runs the janitor every `every` (with jitter).
    pub fn janitor(&mut self, service: Service, every: std::time::Duration) {
        let mut stop = self.stop.subscribe();
        let job = tokio::spawn(async move {
            loop {
                let jitter = rand::random::<f64>() * 0.2 + 0.9;
                if !pause(&mut stop, every.mul_f64(jitter)).await {
                    break;
                }
                if let Err(e) = service.purge(JANITOR_BATCH, JANITOR_MAX_BATCHES).await {
                    tracing::warn!(error = %e, "janitor pass failed; will retry");
                }
            }
        });
        self.jobs.push(("janitor", job));
    }

    /// Drains the metrics recorder's histogram samples into their buckets
    /// every 5 s. Without it the samples pile up until a scrape renders
    /// them: with no Prometheus scraping (`--management-listen off`, or a
    /// scraper down) memory grew by every request's latency sample, about
    /// 34 MiB in a 10-minute refresh run.
    pub fn metrics_upkeep(&mut self, metrics: crate::telemetry::Metrics) {
        let mut stop = self.stop.subscribe();
        let job = tokio::spawn(async move {
            while pause(&mut stop, std::time::Duration::from_secs(5)).await {
                metrics.run_upkeep();
            }
        });
        self.jobs.push(("metrics upkeep", job));
    }

    /// Runs the upstream background refresher every `every` (with jitter):
    /// renews identities ahead of expiry so callers rarely wait for a provider.
    pub fn upstream_refresher(&mut self, service: Service, every: std::time::Duration) {
        let mut stop = self.stop.subscribe();
        let job = tokio::spawn(async move {
            loop {
                let jitter = rand::random::<f64>() * 0.4 + 0.8;
                if !pause(&mut stop, every.mul_f64(jitter)).await {
                    break;
                }
                match service.refresh_due().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(refreshed = n, "background refresher renewed identities")
                    }
                    Err(e) => tracing::warn!(error = %e, "background refresher pass failed"),
                }
            }
        });
        self.jobs.push(("upstream refresher", job));
    }

    /// Runs the webhook worker: claims due deliveries (a lease per delivery,
    /// so one node at a time has it in flight), sends each in a task of its
    /// own (one slow receiver holds up only its own deliveries), and looks
    /// again when a change on this node queued one, when an attempt ends, or
    /// every `poll`. At stop it claims nothing more and waits for the
    /// attempts in flight (each bounded by the attempt timeout).
    pub fn webhook_worker(&mut self, service: Service) -> anyhow::Result<()> {
        let settings = service.webhook_settings();
        let sender =
            Sender::new(settings.policy.clone(), settings.timeout).map_err(anyhow::Error::msg)?;
        let owner = format!("webhooks-{}", uuid::Uuid::new_v4());
        let mut stop = self.stop.subscribe();
        let job = tokio::spawn(async move {
            let mut inflight = tokio::task::JoinSet::new();
            loop {
                while inflight.try_join_next().is_some() {}
                let room = settings.concurrency.saturating_sub(inflight.len());
                if room > 0 {
                    match service.claim_webhooks(&owner, room as u32).await {
                        Ok(claimed) => {
                            for d in claimed {
                                let (svc, sender, owner) =
                                    (service.clone(), sender.clone(), owner.clone());
                                inflight.spawn(async move {
                                    if let Err(e) = svc.attempt_webhook(&sender, &owner, d).await {
                                        tracing::warn!(error = %e, "could not record a webhook attempt; its lease will expire and it is sent again");
                                    }
                                });
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "could not claim webhook deliveries"),
                    }
                }
                tokio::select! {
                    _ = stop.changed() => break,
                    () = service.webhooks_queued() => {},
                    Some(_) = inflight.join_next(), if !inflight.is_empty() => {},
                }
            }
            while inflight.join_next().await.is_some() {}
        });
        self.jobs.push(("webhook worker", job));
        Ok(())
    }

    /// Signals every job to stop and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for (name, job) in self.jobs {
            if job.await.is_err() {
                tracing::error!(job = name, "background job panicked");
            }
        }
    }
}
