//! The accept loop: what axum's `serve` does, plus what a service reachable
//! by anyone needs — a header-read timeout (which also closes keep-alive
//! connections idle that long), a bounded header size, a maximum of open
//! connections kept below the process's descriptor limit, shedding of idle
//! connections when that maximum is reached (so a flood of idle or slowloris
//! connections cannot lock out real requests), and a shutdown that lets
//! requests in flight finish within a deadline and then closes the rest.
//!
//! Request deadlines and body limits are tower layers on the router
//! ([`crate::http::router`]); this module only owns connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

/// Connection limits and timeouts of the HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's headers, counted from when the
    /// server starts waiting for them (so also on an idle keep-alive
    /// connection). Default 10 s.
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers), bytes. Default 16 KiB.
    pub max_header_bytes: usize,
    /// Most open connections; `None` derives it from the descriptor limit.
    pub max_connections: Option<usize>,
    /// How long in-flight requests may run after shutdown starts. Default 10 s.
    pub drain_deadline: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_connections: None,
            drain_deadline: Duration::from_secs(10),
        }
    }
}

/// Descriptors kept free for the database, the webhook and upstream clients,
/// log files and the listener itself.
const FD_HEADROOM: u64 = 128;

/// Raises the soft open-files limit to the hard one and answers how many
/// connections fit below it with headroom.
pub fn connection_budget() -> usize {
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not read or raise the open-files limit; assuming 1024");
            1024
        }
    };
    soft.saturating_sub(FD_HEADROOM).clamp(16, 1_000_000) as usize
}

/// One open connection, as the shedder sees it.
struct Entry {
    /// Requests being handled on it now; 0 means idle (waiting for a
    /// request, or for the rest of one's headers).
    busy: Arc<AtomicUsize>,
    /// Closes it at once.
    close: Arc<Notify>,
    /// When it was accepted (the oldest idle one is shed first).
    since: Instant,
}

#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Entry>>,
}

impl Registry {
    fn len(&self) -> usize {
        self.open.lock().map(|o| o.len()).unwrap_or(0)
    }

    /// Closes the oldest idle connection; answers whether there was one.
    /// The victim leaves the registry at once, so a burst of new connections
    /// sheds a different idle one each instead of the same one again.
    fn shed_one(&self) -> bool {
        let Ok(mut open) = self.open.lock() else {
            return false;
        };
        let victim = open
            .iter()
            .filter(|(_, e)| e.busy.load(Ordering::Acquire) == 0)
            .min_by_key(|(_, e)| e.since)
            .map(|(id, _)| *id);
        match victim.and_then(|id| open.remove(&id)) {
            Some(e) => {
                e.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn close_all(&self) {
        if let Ok(open) = self.open.lock() {
            for e in open.values() {
                e.close.notify_one();
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting, lets requests in flight finish within the drain deadline, and
/// closes whatever is left.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = limits
        .max_connections
        .unwrap_or_else(connection_budget)
        .max(1);
    let registry = Arc::new(Registry::default());
    let (draining_tx, draining) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's own cap (past it: a bare 431 and the connection closed) is
        // well above the configured limit, which `head_refusal` enforces
        // with a JSON answer.
        .max_header_size(hyper_cap(limits.max_header_bytes))
        .max_buf_size(hyper_cap(limits.max_header_bytes) + 8192);
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    let mut shed_warned = Instant::now() - Duration::from_secs(60);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off a little instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        if registry.len() >= max {
            let shed = registry.shed_one();
            if shed_warned.elapsed() > Duration::from_secs(10) {
                shed_warned = Instant::now();
                tracing::warn!(
                    max_connections = max,
                    shed,
                    "connection limit reached: closing the oldest idle connection"
                );
            }
            if !shed {
                // Every connection is busy with a request: refuse this one.
                drop(stream);
                continue;
            }
        }
        let _ = stream.set_nodelay(true);
        let id = registry.next.fetch_add(1, Ordering::Relaxed);
        let busy = Arc::new(AtomicUsize::new(0));
        let close = Arc::new(Notify::new());
        if let Ok(mut open) = registry.open.lock() {
            open.insert(
                id,
                Entry {
                    busy: Arc::clone(&busy),
                    close: Arc::clone(&close),
                    since: Instant::now(),
                },
            );
        }
        let router = router.clone();
        let max_head = limits.max_header_bytes;
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let (router, busy) = (router.clone(), Arc::clone(&busy));
            req.extensions_mut().insert(ConnectInfo(peer));
            async move {
                busy.fetch_add(1, Ordering::AcqRel);
                let _idle_again = BusyGuard(busy);
                if let Some(refusal) = head_refusal(&req, max_head) {
                    return Ok(refusal);
                }
                router.oneshot(req).await
            }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let (registry, mut draining) = (Arc::clone(&registry), draining.clone());
        tasks.spawn(async move {
            tokio::pin!(conn);
            let mut graceful = false;
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    () = close.notified() => break,
                    changed = draining.changed(), if !graceful => {
                        if changed.is_ok() && *draining.borrow() {
                            // Finish the request in flight, take no more.
                            conn.as_mut().graceful_shutdown();
                        }
                        graceful = true;
                    }
                }
            }
            if let Ok(mut open) = registry.open.lock() {
                open.remove(&id);
            }
        });
    }
    drop(listener);
    let _ = draining_tx.send(true);
    let in_flight = registry.len();
    if in_flight > 0 {
        tracing::info!(
            connections = in_flight,
            deadline_ms = limits.drain_deadline.as_millis() as u64,
            "draining connections"
        );
    }
    let drained = tokio::time::timeout(limits.drain_deadline, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = registry.len(),
            "drain deadline passed: closing the connections still open"
        );
        registry.close_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// Longest request target Rotor reads; its routes need a few hundred bytes.
const MAX_URI_BYTES: usize = 8 * 1024;

/// hyper's hard cap on a request head for a configured limit.
fn hyper_cap(max_header_bytes: usize) -> usize {
    (max_header_bytes * 4).max(64 * 1024)
}

/// A JSON `414` for a request target over [`MAX_URI_BYTES`], or `431` for a
/// head (target and headers) over `max_head` bytes.
fn head_refusal(
    req: &hyper::Request<Incoming>,
    max_head: usize,
) -> Option<axum::response::Response> {
    use axum::response::IntoResponse;
    let uri = req.uri().to_string().len();
    let headers: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.as_bytes().len() + 4)
        .sum();
    let (status, detail) = if uri > MAX_URI_BYTES {
        (
            axum::http::StatusCode::URI_TOO_LONG,
            format!("The request target is longer than {MAX_URI_BYTES} bytes"),
        )
    } else if uri + headers > max_head {
        (
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("The request headers are larger than {max_head} bytes"),
        )
    } else {
        return None;
    };
    Some((status, axum::Json(serde_json::json!({ "detail": detail }))).into_response())
}

/// Marks the connection idle again when the request is answered (or dropped).
struct BusyGuard(Arc<AtomicUsize>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
