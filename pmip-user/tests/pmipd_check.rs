//! `pmipd run --check` refuses what start would refuse (issue 11): a
//! `max_subscribers` whose maps the kernel cannot give memory for; and
//! `pmipd unpin` leaves a directory that is not on bpffs alone. No root needed.
use std::process::Command;

fn pmipd(args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_pmipd"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn scratch(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pmipd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn check_refuses_maps_the_kernel_cannot_allocate() {
    let d = scratch("check");
    let example = include_str!("../../examples/anchor-pmipv6.toml");
    let ok = d.join("ok.toml");
    std::fs::write(&ok, example).unwrap();
    let (code, out, err) = pmipd(&["run", "--check", "--config", ok.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("configuration OK"), "{out}");
    assert!(out.contains("note: fast path maps for"), "{out}");
    // 2^31 subscribers: hundreds of GiB of maps.
    let mut doc: toml::Value = toml::from_str(example).unwrap();
    let root = doc.as_table_mut().unwrap();
    let fp = root
        .entry("fastpath")
        .or_insert_with(|| toml::Value::Table(Default::default()));
    fp.as_table_mut()
        .unwrap()
        .insert("max_subscribers".into(), toml::Value::Integer(1 << 31));
    let big = d.join("big.toml");
    std::fs::write(&big, toml::to_string(&doc).unwrap()).unwrap();
    let (code, out, err) = pmipd(&["run", "--check", "--config", big.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        err.contains("fastpath.max_subscribers: 2147483648 subscribers need about"),
        "{err}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn unpin_refuses_a_directory_not_on_bpffs() {
    let d = scratch("unpin");
    std::fs::write(d.join("precious"), b"data").unwrap();
    let (code, _, err) = pmipd(&["unpin", d.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(err.contains("not on a bpffs mount"), "{err}");
    assert!(d.join("precious").exists());
    std::fs::remove_dir_all(&d).unwrap();
}
