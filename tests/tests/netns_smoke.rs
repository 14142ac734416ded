//! The namespace helpers themselves: a veth pair carries a ping, and drop removes the namespaces.
use pmip_tests::netns::{is_root, sh, veth, Netns};

#[test]
fn veth_pair_pings_and_cleans_up() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let names;
    {
        let a = Netns::new("smk").unwrap();
        let b = Netns::new("smk").unwrap();
        veth(&a, "va", &b, "vb").unwrap();
        a.exec(&["ip", "addr", "add", "192.0.2.1/24", "dev", "va"])
            .unwrap();
        b.exec(&["ip", "addr", "add", "192.0.2.2/24", "dev", "vb"])
            .unwrap();
        let out = a
            .exec(&["ping", "-c", "1", "-W", "2", "192.0.2.2"])
            .unwrap();
        assert!(out.contains("1 received"), "{out}");
        // A thread inside the namespace sees only its links.
        let links = a
            .run_in(|| std::fs::read_dir("/sys/class/net").unwrap().count())
            .unwrap();
        assert!(links >= 2);
        names = (a.name.clone(), b.name.clone());
    }
    let list = sh(&["ip", "netns", "list"]).unwrap();
    assert!(
        !list.contains(&names.0) && !list.contains(&names.1),
        "{list}"
    );
}
