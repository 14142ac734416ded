//! One connection to etcd for the whole daemon: the client, the runtime its
//! connections live on, and the layout of the cluster's keys.
//!
//! The client lives on a runtime of its own (one thread, "etcd"): the store
//! trait is synchronous (the registrar's shell calls it between two inputs)
//! and waits for etcd by blocking, which must never stall the tasks that
//! drive the client's connections or keep this member's lease alive.
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use etcd_client::{Client, ConnectOptions};
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use crate::agent::blocks::Space;
use crate::config::{EtcdSettings, StoreLayout};
use crate::store::RecordKey;

/// The daemon's etcd client, usable from async and from blocking code.
#[derive(Clone)]
pub struct EtcdConn {
    client: Client,
    rt: Handle,
    pub timeout: Duration,
    pub max_txn_ops: usize,
    /// How binding records are laid out (`store.layout`).
    pub layout: StoreLayout,
    pub keys: Keyspace,
}

/// The runtime of the etcd client; stopped (without waiting) on drop.
pub struct EtcdRuntime(Option<Runtime>);

impl Drop for EtcdRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Client options: requests fail fast on a member without a leader (so a
/// cluster that lost its quorum is seen as such, not as slow), HTTP/2 pings
/// notice a dead connection within two seconds. (Half a second to answer
/// a ping was too little on a loaded host: after a quorum came back the
/// anchors' connections timed out one after another for seconds, and
/// their leases went unrenewed that long.)
pub(crate) fn options(timeout: Duration) -> ConnectOptions {
    ConnectOptions::new()
        .with_connect_timeout(timeout)
        .with_timeout(timeout)
        .with_keep_alive(Duration::from_millis(500), Duration::from_millis(1500))
        .with_keep_alive_while_idle(true)
        .with_require_leader(true)
}

impl EtcdConn {
    /// Starts the etcd runtime and connects (the members need not all be up).
    pub async fn connect(s: &EtcdSettings) -> Result<(EtcdConn, EtcdRuntime)> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd")
            .enable_all()
            .build()
            .context("starting the etcd client runtime")?;
        let eps = s.endpoints.clone();
        let opts = options(s.timeout);
        let client = rt
            .spawn(async move { Client::connect(eps, Some(opts)).await })
            .await
            .map_err(|e| anyhow!("etcd connect task: {e}"))?
            .with_context(|| format!("store.endpoints: connecting to {:?}", s.endpoints))?;
        let conn = EtcdConn {
            client,
            rt: rt.handle().clone(),
            timeout: s.timeout,
            max_txn_ops: s.max_txn_ops as usize,
            layout: s.layout,
            keys: Keyspace::new(&s.prefix),
        };
        Ok((conn, EtcdRuntime(Some(rt))))
    }

    /// A client handle (cheap: they share the connections).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The runtime the client's connections live on.
    pub fn runtime(&self) -> &Handle {
        &self.rt
    }

    /// `f`, failed after the request timeout.
    pub async fn timed<T, E: Into<anyhow::Error>>(
        &self,
        what: &str,
        f: impl Future<Output = std::result::Result<T, E>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r
                .map_err(Into::into)
                .with_context(|| format!("etcd {what}")),
            Err(_) => Err(anyhow!("etcd {what}: no answer within {:?}", self.timeout)),
        }
    }

    /// `make()`'s request, tried again while etcd answers that it cannot
    /// take it now (a member down, a connection being rebuilt: the next try
    /// may reach another member), until the request timeout.
    pub async fn retried<T, F, Fut>(&self, what: &str, mut make: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let end = tokio::time::Instant::now() + self.timeout;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            let e = match tokio::time::timeout(left, make()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(_) => return Err(anyhow!("etcd {what}: no answer within {:?}", self.timeout)),
            };
            if !transient(&e) || tokio::time::Instant::now() + RETRY_PAUSE >= end {
                return Err(e.context(format!("etcd {what}")));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Runs `f` on the etcd runtime and waits for it, from synchronous code:
    /// outside any runtime, on a current-thread runtime (a test), or on a
    /// worker of the daemon's multi-thread runtime (which hands its other
    /// tasks to another thread meanwhile).
    pub fn block_on<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        let wait = move || rx.recv();
        let r = match Handle::try_current() {
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        r.map_err(|_| anyhow!("etcd: the request was dropped (client runtime stopped)"))?
    }
}

/// Pause between two tries of a request etcd could not take.
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// An error worth another try at once: no connection to the member picked,
/// or a member that is not ready; never a refusal of the request itself.
pub(crate) fn transient(e: &anyhow::Error) -> bool {
    let s = format!("{e:#}");
    [
        "connect error",
        "unavailable",
        "Unavailable",
        "transport error",
        "broken pipe",
        "Connection reset",
    ]
    .iter()
    .any(|m| s.contains(m))
        && !s.contains("no leader")
}

/// Where things are in etcd, under the cluster's prefix `P`:
///
/// ```text
///  P/members/<member>           member record (address, lease), under the member's lease
///  P/owner/<service address>    the member serving it, under that member's lease
///  P/svc/<address>/node         the service address's restart counter (RFC 5847)
///  P/svc/<address>/lma/<id>     binding records (store::record), under expiry-bucket leases
///  P/svc/<address>/ha/<nai>
///  P/svc/<address>/pack/<bucket end>/<member>/<seq>   packed layout: a batch's binding records (store::pack)
///  P/blocks/<space>/<block>     the service address a block of numbers belongs to
///  P/load/<service address>     bindings served there, for runtime assignment
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyspace {
    prefix: String,
}

impl Keyspace {
    pub fn new(prefix: &str) -> Keyspace {
        Keyspace {
            prefix: prefix.trim_end_matches('/').to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn members(&self) -> String {
        format!("{}/members/", self.prefix)
    }
    pub fn member(&self, name: &str) -> String {
        format!("{}/members/{name}", self.prefix)
    }
    pub fn owners(&self) -> String {
        format!("{}/owner/", self.prefix)
    }
    pub fn owner(&self, addr: IpAddr) -> String {
        format!("{}/owner/{addr}", self.prefix)
    }
    /// Every record of a service address.
    pub fn service(&self, addr: IpAddr) -> String {
        format!("{}/svc/{addr}/", self.prefix)
    }
    pub fn services(&self) -> String {
        format!("{}/svc/", self.prefix)
    }
    pub fn record(&self, addr: IpAddr, key: &RecordKey) -> String {
        format!("{}{}", self.service(addr), key.path())
    }
    /// A pack of binding records (`store::pack`): bucket end and sequence
    /// zero-padded, so a bucket's packs sort together and in order.
    pub fn pack(&self, addr: IpAddr, bucket_end: u64, member: &str, seq: u64) -> String {
        format!(
            "{}{}{bucket_end:013}/{member}/{seq:020}",
            self.service(addr),
            crate::store::pack::SEGMENT
        )
    }
    pub fn blocks(&self, space: Space) -> String {
        format!("{}/blocks/{}/", self.prefix, space.name())
    }
    /// Zero-padded, so the keys sort in block order.
    pub fn block(&self, space: Space, b: u32) -> String {
        format!("{}{b:08}", self.blocks(space))
    }
    pub fn loads(&self) -> String {
        format!("{}/load/", self.prefix)
    }
    pub fn load(&self, addr: IpAddr) -> String {
        format!("{}/load/{addr}", self.prefix)
    }

    /// The address of an owner, service or load key (`P/owner/10.0.0.1`).
    pub fn addr_in(&self, key: &str, under: &str) -> Option<IpAddr> {
        key.strip_prefix(under)?.split('/').next()?.parse().ok()
    }
}

/// The end of the key range of everything under `prefix` (etcd's "prefix
/// end": the prefix with its last byte incremented).
pub(crate) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut e = prefix.as_bytes().to_vec();
    while let Some(last) = e.pop() {
        if last < 0xff {
            e.push(last + 1);
            return e;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_a_cluster() {
        let k = Keyspace::new("/pmip/east/");
        let a: IpAddr = "10.255.0.101".parse().unwrap();
        assert_eq!(k.owner(a), "/pmip/east/owner/10.255.0.101");
        assert_eq!(
            k.record(a, &RecordKey::Binding(7)),
            "/pmip/east/svc/10.255.0.101/lma/7"
        );
        assert_eq!(k.block(Space::Home4, 3), "/pmip/east/blocks/home4/00000003");
        assert_eq!(k.addr_in(&k.owner(a), &k.owners()), Some(a));
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert_eq!(
            k.addr_in(&k.record(v6, &RecordKey::Node), &k.services()),
            Some(v6)
        );
        assert_eq!(k.addr_in("/pmip/east/owner/nonsense", &k.owners()), None);
    }

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end("/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }
}
