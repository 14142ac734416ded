//! The gateway end to end with PMIPv6 (MAG/LMA): `pmipd run` in every role, a
//! stock DHCP client, real namespaces (scenarios in `pmip_tests::gateway_cases`).
pmip_tests::gateway_tests!(pmip_tests::lab::Proto::Pmipv6);

#[test]
fn over_ipv6_transport() {
    run(|_| pmip_tests::gateway_cases::ipv6_transport());
}
