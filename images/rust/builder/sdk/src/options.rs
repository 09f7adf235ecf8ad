//! How a plugin is configured: the defaults of its options, and what it reads from the
//! environment LogoMesh sets.

use std::time::Duration;

/// How long in-flight requests may take to finish after SIGTERM or SIGINT (the hub's
/// `shutdown` message carries its own `graceMs`).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// The most requests served at once; more wait for a free worker thread.
pub const DEFAULT_MAX_CONCURRENCY: usize = 16;

pub(crate) const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `run` waits for the answer to its first hello: for a warm standby
/// (`LOGOMESH_STANDBY=1`, set by the controller), whose hello the hub answers only when it is
/// switched in, which may be hours later, as long as it takes (a century).
pub(crate) fn first_hello_timeout() -> Duration {
    if std::env::var("LOGOMESH_STANDBY").as_deref() == Ok("1") {
        Duration::from_secs(100 * 365 * 24 * 3600)
    } else {
        HELLO_TIMEOUT
    }
}
pub(crate) const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long `run` waits for the hub's socket to appear.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `run` tries to reconnect after an established connection is lost, when
/// `LOGOMESH_RECONNECT_MS` is not set.
pub const DEFAULT_RECONNECT: Duration = Duration::from_millis(60_000);

/// The backoff between reconnect attempts: 100 ms, doubled after each failure, at most 2 s.
pub(crate) const RECONNECT_FIRST_DELAY: Duration = Duration::from_millis(100);
pub(crate) const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);

/// The hub enforces a call's timeout and answers `LM_TIMEOUT`; the SDK gives up on its own
/// this much later, so the hub's answer (or a just-in-time result) normally wins.
pub(crate) const LOCAL_TIMEOUT_SLACK: Duration = Duration::from_millis(500);

/// LOGOMESH_RECONNECT_MS, milliseconds (0: never reconnect).
pub(crate) fn reconnect_from_env() -> Duration {
    match std::env::var("LOGOMESH_RECONNECT_MS") {
        Err(_) => DEFAULT_RECONNECT,
        Ok(raw) if raw.trim().is_empty() => DEFAULT_RECONNECT,
        Ok(raw) => match raw.trim().parse::<u64>() {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => {
                eprintln!(
                    "logomesh: LOGOMESH_RECONNECT_MS={raw:?} is not a number of milliseconds >= 0; using {}",
                    DEFAULT_RECONNECT.as_millis()
                );
                DEFAULT_RECONNECT
            }
        },
    }
}
