//! Gateway restarts with pinned maps (issue 11), both protocols, both roles:
//! `pmipd run` in namespaces, scenarios in `pmip_tests::reliability`.
use pmip_tests::lab::Proto;
use pmip_tests::reliability::{self as cases, Role};

fn run(f: impl FnOnce() -> anyhow::Result<()>) {
    if cases::skip() {
        return;
    }
    if let Err(e) = f() {
        pmip_tests::lab::fail(e);
    }
}

#[test]
fn pmipv6_access_restart_never_leaks_to_a_new_subscriber() {
    run(|| cases::restart_then_new_subscriber(Proto::Pmipv6, Role::Access));
}

#[test]
fn pmipv6_anchor_restart_never_leaks_to_a_new_subscriber() {
    run(|| cases::restart_then_new_subscriber(Proto::Pmipv6, Role::Anchor));
}

#[test]
fn pmipv4_access_restart_never_leaks_to_a_new_subscriber() {
    run(|| cases::restart_then_new_subscriber(Proto::Pmipv4, Role::Access));
}

#[test]
fn pmipv4_anchor_restart_never_leaks_to_a_new_subscriber() {
    run(|| cases::restart_then_new_subscriber(Proto::Pmipv4, Role::Anchor));
}
