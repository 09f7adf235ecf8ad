//! Serving until stopped, and stopping: the hub's `shutdown`, [`Hub::stop`](crate::Hub::stop), SIGTERM and
//! SIGINT end the same way: new requests are refused, those in flight answer within the
//! grace period, the connection closes with status 1000.

use crate::connection::{reconnect, say_hello, subscribe_rest, Connection};
use crate::options::{first_hello_timeout, CLOSE_TIMEOUT};
use crate::pool::lock;
use crate::shared::Shared;
use crate::Error;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use crate::hub_tcp::Endpoint;
use std::sync::Arc;
use std::time::{Duration, Instant};


impl Shared {
    /// Ask `run` to stop: refuse new requests, let in-flight ones finish within `grace`.
    /// A second request while stopping shortens the wait, never lengthens it.
    pub(crate) fn request_stop(&self, grace: Duration) {
        let mut c = lock(&self.ctl);
        let deadline = Instant::now() + grace;
        c.stopping = true;
        c.deadline = Some(match c.deadline {
            Some(d) if d < deadline => d,
            _ => deadline,
        });
        drop(c);
        self.changed.notify_all();
    }

    pub(crate) fn finish_request(&self) {
        let mut c = lock(&self.ctl);
        c.inflight -= 1;
        drop(c);
        self.changed.notify_all();
    }
}

/// Hello (with the subscriptions), then serve until stopped (reconnecting when the connection is
/// lost), and close cleanly.
pub(crate) fn serve(shared: &Arc<Shared>, names: &[String], path: &Endpoint, conn: &mut Connection) -> Result<(), Error> {
    let sent = match say_hello(shared, names, first_hello_timeout()) {
        Ok(sent) => sent,
        Err(e) => {
            close(shared, &conn.control);
            return Err(e);
        }
    };
    lock(&shared.ctl).established = true;
    subscribe_rest(shared, &sent);

    loop {
        // Serve until asked to stop or the connection is gone.
        let mut c = lock(&shared.ctl);
        while !c.stopping && !c.closed {
            c = shared.changed.wait(c).unwrap_or_else(|e| e.into_inner());
        }
        if c.closed && !c.stopping {
            let (window, how) = (c.reconnect, c.lost.clone());
            drop(c);
            if window.is_zero() {
                return Err(Error::disconnected("the connection to the hub closed"));
            }
            let dispatch = conn.join()?;
            match reconnect(shared, names, path, dispatch, window, &how)? {
                Some(next) => {
                    *conn = next;
                    continue;
                }
                None => return Ok(()), // stopped while reconnecting
            }
        }
        // Stopping: in-flight requests answer, within the deadline.
        loop {
            if c.inflight == 0 || c.closed {
                break;
            }
            let now = Instant::now();
            let deadline = c.deadline.unwrap_or(now);
            if now >= deadline {
                eprintln!("logomesh: {} request(s) still running at the end of the grace period", c.inflight);
                break;
            }
            c = shared.changed.wait_timeout(c, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        drop(c);
        close(shared, &conn.control);
        return Ok(());
    }
}

/// Send a close frame (1000), wait briefly for the hub's, then drop the connection.
pub(crate) fn close(shared: &Shared, control: &UnixStream) {
    if let Some(mut link) = lock(&shared.writer).take() {
        let _ = link.writer.close(1000, "plugin stopping");
    }
    let c = lock(&shared.ctl);
    let _ = shared.changed.wait_timeout_while(c, CLOSE_TIMEOUT, |c| !c.closed);
    let _ = control.shutdown(Shutdown::Both);
}
