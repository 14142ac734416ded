//! Where the fast path's eBPF object comes from: built into pmipd (the
//! `embed-ebpf` feature, which `cargo xtask package` turns on, so the
//! installed binary needs no file beside it) or read from a file
//! (`--ebpf-object`, `$PMIP_EBPF_OBJECT`, next to the binary, or
//! target/bpf/ of this checkout, which plain `cargo build`/`cargo test` use:
//! they build without the object).
use std::borrow::Cow;
use std::path::PathBuf;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The object built into this binary, if it was built with `embed-ebpf`.
pub fn embedded() -> Option<&'static [u8]> {
    #[cfg(feature = "embed-ebpf")]
    {
        // Aligned: the ELF parser reads its headers in place.
        static OBJECT: &[u8] =
            aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pmip-ebpf.o"));
        Some(OBJECT)
    }
    #[cfg(not(feature = "embed-ebpf"))]
    None
}

/// The build id of the object built into pmipd, known to every binary of
/// the same build (pmipctl prints it), None without `embed-ebpf`.
pub const EMBEDDED_BUILD_ID: Option<&str> = option_env!("PMIP_EBPF_BUILD_ID");

/// An eBPF object to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectSource {
    File(PathBuf),
    Embedded(&'static [u8]),
}

impl ObjectSource {
    /// `explicit` (a command-line path) or `$PMIP_EBPF_OBJECT` if given;
    /// otherwise the embedded object; otherwise the default file.
    pub fn choose(explicit: Option<PathBuf>) -> ObjectSource {
        if let Some(p) = explicit {
            return ObjectSource::File(p);
        }
        if let Some(p) = std::env::var_os("PMIP_EBPF_OBJECT") {
            return ObjectSource::File(PathBuf::from(p));
        }
        match embedded() {
            Some(b) => ObjectSource::Embedded(b),
            None => ObjectSource::File(super::default_object_path()),
        }
    }

    /// The object's bytes.
    pub fn bytes(&self) -> Result<Cow<'static, [u8]>> {
        match self {
            ObjectSource::Embedded(b) => Ok(Cow::Borrowed(b)),
            ObjectSource::File(p) => std::fs::read(p)
                .map(Cow::Owned)
                .with_context(|| format!("reading eBPF object {}", p.display())),
        }
    }

    /// "embedded" or the file's path, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            ObjectSource::Embedded(_) => "embedded".into(),
            ObjectSource::File(p) => p.display().to_string(),
        }
    }

    /// "eBPF object embedded, build id 3f2a…" for `--version` and the log at
    /// start; a missing file is said so, not an error.
    pub fn version_line(&self) -> String {
        if let (ObjectSource::Embedded(_), Some(id)) = (self, EMBEDDED_BUILD_ID) {
            return format!("eBPF object embedded, build id {id}");
        }
        match self.bytes() {
            Ok(b) => format!("eBPF object {}, build id {}", self.describe(), build_id(&b)),
            Err(_) => format!("eBPF object {} (not found)", self.describe()),
        }
    }
}

/// The object's build id: the first 16 hex digits of its SHA-256 (the
/// bpf-linker emits no GNU build-id note). Two builds of the same source
/// with the same toolchain give the same id.
pub fn build_id(object: &[u8]) -> String {
    let d = Sha256::digest(object);
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_id_is_a_stable_hash_prefix() {
        // SHA-256("") = e3b0c44298fc1c14...
        assert_eq!(build_id(b""), "e3b0c44298fc1c14");
        assert_ne!(build_id(b"a"), build_id(b"b"));
    }

    #[test]
    fn explicit_path_wins() {
        let s = ObjectSource::choose(Some("/nonexistent/x.o".into()));
        assert_eq!(s, ObjectSource::File("/nonexistent/x.o".into()));
        assert!(s.version_line().contains("(not found)"));
        assert!(format!("{:#}", s.bytes().unwrap_err()).contains("/nonexistent/x.o"));
    }
}
