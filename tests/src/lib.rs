//! Helpers for the integration tests: network namespaces, veths, cleanup on drop.
pub mod aaa_lab;
pub mod affinity;
pub mod agent;
pub mod baseline;
pub mod bench6;
pub mod capture;
pub mod cluster;
pub mod conformance;
pub mod cpu;
pub mod etcd;
pub mod failover;
pub mod fixture;
pub mod gateway_cases;
pub mod handover;
pub mod heap;
pub mod hostile;
pub mod lab;
pub mod lab6;
pub mod lossy;
pub mod netns;
pub mod packet;
pub mod pages;
pub mod pcap;
pub mod radius;
pub mod recovery;
pub mod reliability;
pub mod replay;
pub mod scale;
pub mod tput;

/// A scratch directory under the system temp dir, removed on drop (also when
/// the test fails). Named by tag and process id, created empty.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("pmip-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("creating a temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
