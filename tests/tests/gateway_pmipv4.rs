//! The gateway end to end with PMIPv4 (PMA/HA): `pmipd run` in every role, a
//! stock DHCP client, real namespaces (scenarios in `pmip_tests::gateway_cases`).
use pmip_tests::gateway_cases as cases;
use pmip_tests::lab::{Proto, Trigger};

const P: Proto = Proto::Pmipv4;

fn run(f: fn(Proto) -> anyhow::Result<()>) {
    if cases::skip() {
        return;
    }
    if let Err(e) = f(P) {
        panic!("{e:#}");
    }
}

#[test]
fn attach_and_traffic() {
    run(cases::attach_and_traffic);
}

#[test]
fn attach_and_traffic_vlan() {
    run(cases::attach_and_traffic_vlan);
}

#[test]
fn handover_keeps_address_and_tcp_stream() {
    run(|p| cases::handover(p, Trigger::Data));
}

#[test]
fn handover_by_dhcp_reconfirmation() {
    run(|p| cases::handover(p, Trigger::Dhcp));
}

#[test]
fn attach_and_traffic_tc_ingress() {
    run(cases::attach_and_traffic_tc);
}

#[test]
fn handover_tc_ingress() {
    run(cases::handover_tc);
}

#[test]
fn dhcp_release_deregisters() {
    run(cases::release);
}

#[test]
fn isc_dhclient_attaches_and_releases() {
    run(cases::dhclient);
}

#[test]
fn dhcp_renewal_answered_locally() {
    run(cases::renewal_answered_locally);
}

#[test]
fn lease_end_deregisters() {
    run(cases::lease_end);
}

#[test]
fn arp_polling_detects_detach() {
    run(cases::detach_by_arp);
}

#[test]
fn anchor_expires_binding_of_dead_gateway() {
    run(cases::lifetime_expiry);
}

#[test]
fn anchor_revocation_drops_subscriber_at_gateway() {
    run(cases::revocation);
}

/// Needs no root: validation happens before any socket or interface.
#[test]
fn bad_configs_refused_naming_the_key() {
    if let Err(e) = cases::bad_configs(P) {
        panic!("{e:#}");
    }
}
