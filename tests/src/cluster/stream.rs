//! A paced UDP stream with sequence numbers, sender and receiver each in a
//! namespace of the lab: what a takeover costs, counted packet by packet —
//! the packets lost and the longest silence at the receiver, and when the
//! first packet arrived after a given moment (the owner's death).
use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::netns::Netns;

/// A running stream; `finish` stops it and returns what arrived.
pub struct Stream {
    stop: Arc<AtomicBool>,
    sender: JoinHandle<Result<u64>>,
    receiver: JoinHandle<Result<Vec<(u64, Instant)>>>,
    pub started: Instant,
}

/// What a stream saw.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    /// Longest time without a packet at the receiver, and when it ended.
    pub max_gap: Duration,
    pub gap_end: Option<Instant>,
    /// Runs of sequence numbers that never arrived (first, last).
    pub missing: Vec<(u64, u64)>,
    arrivals: Vec<(u64, Instant)>,
}

impl Outcome {
    /// The first packet received after `t` (and how long after `t`).
    pub fn first_after(&self, t: Instant) -> Option<Duration> {
        self.arrivals
            .iter()
            .map(|(_, at)| *at)
            .filter(|at| *at > t)
            .min()
            .map(|at| at - t)
    }

    /// The longest silence that ended after `t`, and how long after `t` it ended.
    pub fn gap_after(&self, t: Instant) -> Option<(Duration, Duration)> {
        let mut times: Vec<Instant> = self.arrivals.iter().map(|(_, a)| *a).collect();
        times.sort();
        times
            .windows(2)
            .filter(|w| w[1] > t)
            .map(|w| (w[1] - w[0], w[1] - t))
            .max_by_key(|(g, _)| *g)
    }
}

impl Stream {
    /// Sends `pps` packets a second from `from` to `to` (an address of
    /// `to_ns`, where the receiver listens), until `finish`.
    pub fn start(from: &Netns, to_ns: &Netns, to: SocketAddrV4, pps: u32) -> Result<Stream> {
        let stop = Arc::new(AtomicBool::new(false));
        let rx_sock = to_ns.run_in(move || UdpSocket::bind(to))??;
        rx_sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        // Room for seconds of packets: a receiver thread starved of CPU on a
        // busy machine must not count as packets lost in the network.
        rx_buffer(&rx_sock, 8 << 20);
        let s2 = stop.clone();
        let receiver = std::thread::spawn(move || -> Result<Vec<(u64, Instant)>> {
            let mut got = Vec::with_capacity(1 << 20);
            let mut buf = [0u8; 64];
            // Keep listening a moment after the sender stops (packets in flight).
            let mut stop_at: Option<Instant> = None;
            loop {
                if s2.load(Ordering::Relaxed) {
                    let t = *stop_at.get_or_insert(Instant::now() + Duration::from_millis(300));
                    if Instant::now() > t {
                        return Ok(got);
                    }
                }
                if let Ok((n, _)) = rx_sock.recv_from(&mut buf) {
                    if n >= 8 {
                        let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
                        got.push((seq, Instant::now()));
                    }
                }
            }
        });
        let s3 = stop.clone();
        let sender = from.thread(move || -> Result<u64> {
            let sock = UdpSocket::bind("0.0.0.0:0").context("sender socket")?;
            let per = Duration::from_secs(1) / pps.max(1);
            let t0 = Instant::now();
            let mut seq = 0u64;
            let mut payload = [0u8; 64];
            while !s3.load(Ordering::Relaxed) {
                // Catch up with the schedule (sleep granularity is ~1 ms).
                let due = t0 + per * (seq as u32);
                let now = Instant::now();
                if now < due {
                    std::thread::sleep((due - now).min(Duration::from_millis(1)));
                    continue;
                }
                payload[..8].copy_from_slice(&seq.to_be_bytes());
                // A refused send (no route during a takeover) still counts as sent.
                let _ = sock.send_to(&payload, to);
                seq += 1;
            }
            Ok(seq)
        })?;
        Ok(Stream {
            stop,
            sender,
            receiver,
            started: Instant::now(),
        })
    }

    pub fn finish(self) -> Result<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self
            .sender
            .join()
            .map_err(|_| anyhow::anyhow!("sender panicked"))??;
        let mut arrivals = self
            .receiver
            .join()
            .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
        arrivals.sort_by_key(|(_, t)| *t);
        let mut seqs: Vec<u64> = arrivals.iter().map(|(s, _)| *s).collect();
        seqs.sort_unstable();
        seqs.dedup();
        let received = seqs.len() as u64;
        let (max_gap, gap_end) = arrivals
            .windows(2)
            .map(|w| (w[1].1 - w[0].1, Some(w[1].1)))
            .max_by_key(|(g, _)| *g)
            .unwrap_or((Duration::ZERO, None));
        let mut missing = Vec::new();
        let mut next = 0u64;
        for s in seqs.iter().copied().chain([sent]) {
            if s > next {
                missing.push((next, s - 1));
            }
            next = next.max(s + 1);
        }
        Ok(Outcome {
            sent,
            received,
            lost: sent.saturating_sub(received),
            max_gap,
            gap_end,
            missing,
            arrivals,
        })
    }
}

/// SO_RCVBUFFORCE (root), else SO_RCVBUF: best effort.
fn rx_buffer(sock: &UdpSocket, bytes: i32) {
    use std::os::fd::AsRawFd;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid socket and a c_int option value of the right size.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return;
        }
    }
}
