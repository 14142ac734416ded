//! With the `embed-ebpf` feature, copies the fast path's eBPF object into
//! OUT_DIR for `include_bytes_aligned!` (fastpath/object.rs). Without the
//! feature it does nothing, so `cargo build`/`cargo test` work on a machine
//! where the object has not been built.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=PMIP_EBPF_OBJECT");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_EMBED_EBPF").is_none() {
        return;
    }
    let src = match std::env::var_os("PMIP_EBPF_OBJECT") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
            .join("../target/bpf/pmip-ebpf.o"),
    };
    println!("cargo:rerun-if-changed={}", src.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("pmip-ebpf.o");
    let bytes = std::fs::read(&src).unwrap_or_else(|e| {
        panic!(
            "feature embed-ebpf: cannot read the eBPF object {} ({e}); build it first with \
             `cargo xtask build-ebpf`, or point PMIP_EBPF_OBJECT at it",
            src.display()
        )
    });
    std::fs::write(&out, &bytes).expect("writing the object to OUT_DIR");
    // The build id (fastpath::build_id, computed the same way) for binaries
    // that do not carry the object themselves (pmipctl --version).
    use sha2::Digest;
    let id: String = sha2::Sha256::digest(&bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("cargo:rustc-env=PMIP_EBPF_BUILD_ID={id}");
}
