//! Where pmipd's log goes and how it looks: plain text on stderr (colour
//! only on a terminal), one JSON object per line with `--log-format json`,
//! or straight into the journal with its fields as journal fields when
//! systemd runs us. The filter is `RUST_LOG` (default `info`).
//!
//! Events a remote party can trigger at will (unknown peers, failed
//! authentication, spoofed sources, floods from unknown MACs) go through
//! [`log_limited!`](crate::log_limited): at most a burst per call site and
//! then one every two seconds, with the number suppressed, so a flood of bad packets
//! cannot fill the disk.
use std::io::IsTerminal;

use anyhow::{anyhow, Result};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

mod ratelimit;

pub use ratelimit::RateLimit;

/// `--log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// The journal when stderr is connected to it (systemd sets
    /// JOURNAL_STREAM), text otherwise.
    #[default]
    Auto,
    /// Human-readable lines; colour only when stderr is a terminal.
    Text,
    /// One JSON object per line: timestamp, level, target and the event's
    /// fields (subscriber, NAI, MAC, peer, GRE keys, status...) at the top level.
    Json,
    /// Native journal entries: each field becomes a journal field
    /// (`NAI=`, `PEER=`...), the level its priority.
    Journald,
}

/// What `Auto` means here: is stderr the journal stream systemd gave us?
/// (JOURNAL_STREAM is "DEV:INODE" of that stream, systemd.exec(5).)
pub(crate) fn stderr_is_journal() -> bool {
    use std::os::fd::AsRawFd;
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    // SAFETY: fstat on our own stderr into a zeroed stat.
    let st = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(std::io::stderr().as_raw_fd(), &mut st) != 0 {
            return false;
        }
        st
    };
    dev.parse() == Ok(st.st_dev) && ino.parse() == Ok(st.st_ino)
}

fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber for `format`; `identifier` names the
/// program in the journal (SYSLOG_IDENTIFIER).
pub fn init(format: LogFormat, identifier: &str) -> Result<()> {
    let format = match format {
        LogFormat::Auto if stderr_is_journal() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Text,
        f => f,
    };
    let layer: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(j) => j
                .with_syslog_identifier(identifier.to_string())
                .with_field_prefix(None)
                .boxed(),
            // No journal socket (a container without journald): text, which
            // systemd still collects from stderr.
            Err(_) => text_layer().boxed(),
        },
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
        _ => text_layer().boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter()))
        .try_init()
        .map_err(|e| anyhow!("installing the log subscriber: {e}"))
}

fn text_layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(std::io::stderr)
}

/// `tracing::<level>!`, rate-limited per call site: at most
/// [`RateLimit::BURST`] at once, then one per [`RateLimit::REFILL_PERIOD`].
/// The first event let through after some were dropped carries
/// `suppressed = N`. For events a remote party can trigger at will (forged
/// signaling, floods from unknown MACs), so a flood costs a bounded number
/// of log lines; security events say so with `security = true` and an
/// `event` field.
///
/// ```
/// # let peer = std::net::Ipv4Addr::LOCALHOST;
/// pmip_user::log_limited!(warn, security = true, event = "unknown_peer", %peer, "signaling from an unconfigured peer");
/// ```
#[macro_export]
macro_rules! log_limited {
    ($level:ident, $($arg:tt)+) => {{
        static LIMIT: $crate::logs::RateLimit = $crate::logs::RateLimit::per_call_site();
        if let Some(suppressed) = LIMIT.allow(::std::time::Instant::now()) {
            if suppressed > 0 {
                ::tracing::$level!(suppressed, $($arg)+);
            } else {
                ::tracing::$level!($($arg)+);
            }
        }
    }};
}
