//! The gateway end to end with PMIPv4 (PMA/HA): `pmipd run` in every role, a
//! stock DHCP client, real namespaces (scenarios in `pmip_tests::gateway_cases`).
pmip_tests::gateway_tests!(pmip_tests::lab::Proto::Pmipv4);
