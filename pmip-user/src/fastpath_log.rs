//! The fast path's debug events in the agent's log: drops with their reason,
//! packets handed to the kernel for want of a next hop, data from new MACs
//! (pmip-ebpf/src/log.rs). The eBPF programs write them with aya-log into a
//! ring buffer; [`spawn`] reads it as it becomes readable (tokio `AsyncFd`:
//! aya-log 0.3 has no tokio support of its own) and re-emits each record as
//! a `tracing` event of target `pmip_ebpf`, at the record's level (debug).
//!
//! The programs write events only when loaded with
//! [`LoadOptions::log_events`](crate::loader::LoadOptions::log_events).
use anyhow::{Context, Result};
use aya_log::EbpfLogger;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::task::JoinHandle;

use crate::fastpath::FastPath;

/// Forwards the fast path's debug events into tracing until the task is
/// aborted. Call inside a tokio runtime, after [`FastPath::load`].
pub fn spawn(fp: &FastPath) -> Result<JoinHandle<()>> {
    let id = fp.program()?.info().context("fast path program info")?.id();
    // Finds the program's aya-log ring buffer (AYA_LOGS) by its id.
    let logger = EbpfLogger::init_from_id_with_logger(id, ToTracing)
        .context("opening the fast path's log ring buffer")?;
    // SAFETY: the logger owns the ring buffer's fd for as long as the AsyncFd lives.
    let mut fd = unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    Ok(tokio::spawn(async move {
        loop {
            let mut ready = match fd.readable_mut().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "fast path log: ring buffer unreadable; stopped");
                    return;
                }
            };
            ready.get_inner_mut().flush();
            ready.clear_ready();
        }
    }))
}

/// aya-log's records (a `log::Record` each) as tracing events. tracing wants
/// a constant target, so every record gets `pmip_ebpf`.
struct ToTracing;

impl log::Log for ToTracing {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, r: &log::Record<'_>) {
        let msg = r.args();
        match r.level() {
            log::Level::Error => tracing::error!(target: "pmip_ebpf", "{msg}"),
            log::Level::Warn => tracing::warn!(target: "pmip_ebpf", "{msg}"),
            log::Level::Info => tracing::info!(target: "pmip_ebpf", "{msg}"),
            log::Level::Debug => tracing::debug!(target: "pmip_ebpf", "{msg}"),
            log::Level::Trace => tracing::trace!(target: "pmip_ebpf", "{msg}"),
        }
    }

    fn flush(&self) {}
}
