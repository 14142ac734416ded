//! systemd's service notifications (sd_notify(3)): one datagram of
//! `KEY=VALUE` lines to the socket named by `$NOTIFY_SOCKET` (a path, or
//! an abstract name written with a leading `@`). Without the variable (not
//! under systemd) every call does nothing.
//!
//! - `READY=1` once the fast path is attached and every socket is bound;
//! - `RELOADING=1` … `READY=1` around a reload;
//! - `STOPPING=1` at shutdown;
//! - `WATCHDOG=1` every half of `$WATCHDOG_USEC`, but only after the
//!   daemon's event loop answered a ping that went through the registrar:
//!   a hung loop or registrar stops the keep-alives and systemd restarts us.
use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use crate::ctl::{self, Request, Response};

/// Sends `msg` (newline-separated assignments) to `$NOTIFY_SOCKET`.
pub(crate) fn notify(msg: &str) -> io::Result<()> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(to) => send_to(&to.to_string_lossy(), msg),
        None => Ok(()),
    }
}

/// Sends one notification datagram to `socket` (a path or `@abstract`).
pub(crate) fn send_to(socket: &str, msg: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            sock.send_to_addr(msg.as_bytes(), &addr)?;
        }
        None => {
            sock.send_to(msg.as_bytes(), socket)?;
        }
    }
    Ok(())
}

fn log_err(what: &str, r: io::Result<()>) {
    if let Err(e) = r {
        tracing::warn!("notifying systemd ({what}): {e}");
    }
}

/// Everything is up: the fast path attached, the sockets bound.
pub(crate) fn ready(status: &str) {
    log_err("READY", notify(&format!("READY=1\nSTATUS={status}")));
}

pub(crate) fn stopping() {
    log_err("STOPPING", notify("STOPPING=1\nSTATUS=shutting down"));
}

/// Runs a reload between `RELOADING=1` and `READY=1`.
pub(crate) async fn reloading<R>(f: impl std::future::Future<Output = R>) -> R {
    log_err("RELOADING", notify("RELOADING=1\nSTATUS=reloading"));
    let r = f.await;
    log_err("READY", notify("READY=1\nSTATUS=serving"));
    r
}

/// The watchdog period systemd asks for (`$WATCHDOG_USEC`, for us if
/// `$WATCHDOG_PID` is unset or our pid).
pub(crate) fn watchdog_period() -> Option<Duration> {
    period_of(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn period_of(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.parse().ok()?;
    if let Some(pid) = pid {
        if pid.parse::<u32>().ok()? != me {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Sends `WATCHDOG=1` every `period / 2` for as long as `ask(Ping)`
/// comes back with a pong within that time; a ping that hangs or fails
/// skips the keep-alive (systemd then kills and restarts us once a whole
/// period passed without one).
pub(crate) async fn watchdog(period: Duration, ask: ctl::Handler, keepalive: impl Fn()) {
    let every = period / 2;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match tokio::time::timeout(every, ask(Request::Ping)).await {
            Ok(Response::Pong) => keepalive(),
            Ok(other) => tracing::warn!(?other, "watchdog: the event loop answered no pong"),
            Err(_) => tracing::warn!(
                "watchdog: the event loop did not answer within {every:?}; no keep-alive"
            ),
        }
    }
}

/// The keep-alive itself.
pub(crate) fn keepalive() {
    log_err("WATCHDOG", notify("WATCHDOG=1"));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn listener() -> (UnixDatagram, crate::access::dhcp::tests::TmpDir, String) {
        let dir = crate::access::dhcp::tests::TmpDir::new("notify");
        let path = dir.0.join("notify.sock");
        let l = UnixDatagram::bind(&path).unwrap();
        l.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (l, dir, path.display().to_string())
    }

    fn recv(l: &UnixDatagram) -> Option<String> {
        let mut buf = [0u8; 512];
        let n = l.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[test]
    fn datagram_to_a_path_and_to_an_abstract_name() {
        let (l, _d, path) = listener();
        send_to(&path, "READY=1\nSTATUS=serving").unwrap();
        assert_eq!(recv(&l).unwrap(), "READY=1\nSTATUS=serving");
        use std::os::linux::net::SocketAddrExt;
        let name = format!("pmip-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let a = UnixDatagram::bind_addr(&addr).unwrap();
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        send_to(&format!("@{name}"), "WATCHDOG=1").unwrap();
        assert_eq!(recv(&a).unwrap(), "WATCHDOG=1");
    }

    /// Keep-alives flow while the loop answers, and stop when it hangs.
    #[tokio::test(start_paused = true)]
    async fn keepalives_only_while_the_loop_answers() {
        let hung = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let h2 = hung.clone();
        let ask: ctl::Handler = Arc::new(move |_| {
            let hung = h2.load(std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                if hung {
                    std::future::pending::<()>().await;
                }
                Response::Pong
            })
        });
        let sent = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let s2 = sent.clone();
        let task = tokio::spawn(watchdog(Duration::from_secs(10), ask, move || {
            s2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
        tokio::time::sleep(Duration::from_secs(21)).await;
        let before = sent.load(std::sync::atomic::Ordering::SeqCst);
        // Ticks at 0, 5, 10, 15, 20 s.
        assert_eq!(before, 5);
        hung.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), before);
        task.abort();
    }

    #[test]
    fn watchdog_period_is_for_our_pid_only() {
        let p = Some(Duration::from_secs(20));
        assert_eq!(period_of(Some("20000000"), Some("42"), 42), p);
        assert_eq!(period_of(Some("20000000"), None, 42), p);
        assert_eq!(period_of(Some("20000000"), Some("1"), 42), None);
        assert_eq!(period_of(Some("0"), None, 42), None);
        assert_eq!(period_of(None, None, 42), None);
    }
}
