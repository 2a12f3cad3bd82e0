//! Throttling of failed authentication: past a number of failures in a
//! window, per client id and per client IP (and per IP for the admin token),
//! further attempts are refused with a `Retry-After` until the window ends —
//! without checking the credential, so guessing costs the attacker time and
//! Rotor nothing. Valid credentials never count, so one client's failures
//! never slow another client's requests, and a correct secret works at once
//! when the window is over.
//!
//! Counters are per node (in memory); behind a load balancer of N nodes an
//! attacker gets up to N times the budget.
//!
//! (A fixed window of our own rather than `governor`: governor answers
//! "allowed?" only by spending a cell, and here a request must be refused
//! *before* its credential is checked, while only failures are spent.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

/// A point in time, from the service's clock.
type Instant = DateTime<Utc>;

/// Limits of the throttle.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleSettings {
    /// Failures allowed per client id in a window (default 10).
    pub per_client: u32,
    /// Failures allowed per client IP in a window (default 50: several
    /// clients may share an address).
    pub per_ip: u32,
    /// The window (default 60 s).
    pub window: Duration,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        Self {
            per_client: 10,
            per_ip: 50,
            window: Duration::seconds(60),
        }
    }
}

/// What is counted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ThrottleKey {
    /// A client id (failed client authentication).
    Client(String),
    /// An IP address (failed client or admin authentication).
    Ip(String),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Counts failures; refuses keys over their limit until their window ends.
#[derive(Debug)]
pub struct AuthThrottle {
    settings: ThrottleSettings,
    windows: Mutex<HashMap<ThrottleKey, Window>>,
    /// The latest end (Unix µs) of any key's refusal: while `now` is past
    /// it no key is refused, and [`AuthThrottle::refused`] — on the path of
    /// every exchange — answers without taking the lock.
    refusing_until: AtomicI64,
}

/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 100_000;

impl AuthThrottle {
    /// A throttle with these limits.
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            settings,
            windows: Mutex::new(HashMap::new()),
            refusing_until: AtomicI64::new(i64::MIN),
        }
    }

    fn limit(&self, key: &ThrottleKey) -> u32 {
        match key {
            ThrottleKey::Client(_) => self.settings.per_client,
            ThrottleKey::Ip(_) => self.settings.per_ip,
        }
    }

    /// When any of `keys` is over its limit now: how long until it is not.
    pub fn refused(&self, keys: &[ThrottleKey], now: Instant) -> Option<Duration> {
        if now.timestamp_micros() >= self.refusing_until.load(Ordering::Acquire) {
            return None;
        }
        let windows = self.windows.lock().ok()?;
        keys.iter()
            .filter_map(|k| {
                let w = windows.get(k)?;
                let ends = w.started + self.settings.window;
                (w.failures >= self.limit(k) && now < ends).then(|| ends - now)
            })
            .max()
    }

    /// Counts a failure for each of `keys`; answers the keys that reached
    /// their limit with this failure (to be logged once per window).
    pub fn failed(&self, keys: &[ThrottleKey], now: Instant) -> Vec<ThrottleKey> {
        let Ok(mut windows) = self.windows.lock() else {
            return Vec::new();
        };
        if windows.len() >= SWEEP_AT {
            let window = self.settings.window;
            windows.retain(|_, w| now < w.started + window);
        }
        let mut reached = Vec::new();
        for k in keys {
            let w = windows.entry(k.clone()).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now >= w.started + self.settings.window {
                *w = Window {
                    started: now,
                    failures: 0,
                };
            }
            w.failures += 1;
            if w.failures == self.limit(k) {
                let ends = (w.started + self.settings.window).timestamp_micros();
                self.refusing_until.fetch_max(ends, Ordering::AcqRel);
                reached.push(k.clone());
            }
        }
        reached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> AuthThrottle {
        AuthThrottle::new(ThrottleSettings {
            per_client: 3,
            per_ip: 5,
            window: Duration::seconds(60),
        })
    }

    #[test]
    fn a_key_is_refused_after_its_limit_until_the_window_ends() {
        let th = t();
        let now = Utc::now();
        let c = ThrottleKey::Client("a".into());
        for _ in 0..2 {
            assert!(th.failed(std::slice::from_ref(&c), now).is_empty());
            assert_eq!(th.refused(std::slice::from_ref(&c), now), None);
        }
        assert_eq!(th.failed(std::slice::from_ref(&c), now), vec![c.clone()]);
        let wait = th.refused(std::slice::from_ref(&c), now + Duration::seconds(10));
        assert_eq!(wait, Some(Duration::seconds(50)));
        // Another client is not affected.
        assert_eq!(th.refused(&[ThrottleKey::Client("b".into())], now), None);
        // The window ends: allowed again, counting from zero.
        let later = now + Duration::seconds(61);
        assert_eq!(th.refused(std::slice::from_ref(&c), later), None);
        assert!(th.failed(std::slice::from_ref(&c), later).is_empty());
    }

    #[test]
    fn ip_and_client_limits_are_separate() {
        let th = t();
        let now = Utc::now();
        let ip = ThrottleKey::Ip("1.2.3.4".into());
        for n in 0..5 {
            let c = ThrottleKey::Client(format!("c{n}"));
            th.failed(&[c, ip.clone()], now);
        }
        assert!(th
            .refused(&[ThrottleKey::Client("fresh".into()), ip.clone()], now)
            .is_some());
        assert!(th
            .refused(&[ThrottleKey::Client("c0".into())], now)
            .is_none());
    }
}
