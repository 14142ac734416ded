//! The HA told that the store refused a batch (as the shell tells it,
//! `Endpoint::stored`): a new registration of that batch is answered 130,
//! insufficient resources (RFC 3344 §3.4), and never reaches the maps; a
//! renewal is answered as usual (issue 17). The refusal is signed, echoes
//! the request's Identification and carries its NAI, made from the held
//! answer's key (`first_write::Refusal`).
use super::*;
use crate::store::StoreOp;

/// What the shell does after a pass: the store's batch (refused unless
/// `ok`), then the maps, then the answers.
fn flush(net: &mut Net, ok: bool) -> (Vec<StoreOp>, Vec<RegistrationReplyRepr>) {
    let now = net.now;
    let ha = net.ha(HA1);
    let batch: Vec<StoreOp> = std::iter::from_fn(|| Endpoint::poll_store(ha)).collect();
    Endpoint::stored(ha, now, ok);
    let i = net.idx(HA1);
    while let Some(c) = net.nodes[i].1.poll_dp() {
        net.nodes[i].2.apply(&c).unwrap();
    }
    let mut replies = vec![];
    while let Some(t) = net.nodes[i].1.poll_transmit() {
        if let Ok(Message::Reply(r)) = Message::parse(&t.payload) {
            // Every answer, a refusal too, is signed for the PMA.
            auth::verify_with(&t.payload, AuthKind::FaHa, &sa().clone().into()).expect("signed");
            replies.push(r);
        }
    }
    (batch, replies)
}

/// The PMA's next request, handed to the HA; returns its Identification.
fn request(net: &mut Net) -> u64 {
    let now = net.now;
    let t = Endpoint::poll_transmit(net.pma(PMA1)).expect("a request");
    let Ok(Message::Request(r)) = Message::parse(&t.payload) else {
        panic!("not a registration request");
    };
    Endpoint::handle(
        net.ha(HA1),
        now,
        Peer::V4(SocketAddrV4::new(PMA1, PORT)),
        &t.payload,
    );
    r.identification
}

#[test]
fn a_refused_write_refuses_a_new_registration_and_keeps_renewals() {
    let mut net = basic();
    let now = net.now;
    // ue1: registered, its record written.
    net.pma(PMA1).attach(now, sub("ue1@ex", 1));
    request(&mut net);
    let (batch, replies) = flush(&mut net, true);
    assert_eq!(batch.len(), 1);
    assert_eq!(replies[0].code, ReplyCode::Accepted);
    let ue1 = net.ha(HA1).binding("ue1@ex").unwrap();
    // ue2: its record refused.
    net.pma(PMA1).attach(now, sub("ue2@ex", 2));
    let ident = request(&mut net);
    let (_, replies) = flush(&mut net, false);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].code, ReplyCode::InsufficientResources);
    assert_eq!(replies[0].identification, ident);
    assert_eq!(replies[0].lifetime, 0);
    assert!(replies[0]
        .extensions
        .iter()
        .any(|e| matches!(e, ExtRepr::Nai(n) if n == b"ue2@ex")));
    let ha = net.ha(HA1);
    assert!(ha.binding("ue2@ex").is_none());
    assert_eq!(ha.counters().store_failed, 1);
    assert_eq!(ha.counters().registrations, 1);
    assert_eq!(ha.counters().insufficient_resources, 1);
    let events: Vec<HaEvent> = std::iter::from_fn(|| ha.poll_event()).collect();
    assert_eq!(events.len(), 1, "only ue1's: {events:?}");
    // Its record is deleted (the failed write must not land later).
    let (batch, _) = flush(&mut net, true);
    assert!(matches!(&batch[..], [StoreOp::Delete(_)]), "{batch:?}");
    // Only ue1 in the maps; ue2's address and key are free again.
    let dp = net.dp(HA1);
    assert_eq!(dp.anchor.len(), 1);
    assert!(dp.anchor.contains_key(&ue1.uplink_key));
    // ue1's renewal with its record refused: answered, binding kept.
    net.now += Duration::from_secs(400);
    let t = net.now;
    net.pma(PMA1).handle_timeout(t);
    request(&mut net);
    let (batch, replies) = flush(&mut net, false);
    assert_eq!(batch.len(), 1);
    assert_eq!(replies[0].code, ReplyCode::Accepted);
    assert_eq!(replies[0].home_address, ue1.home_address);
    assert!(net.ha(HA1).binding("ue1@ex").is_some());
    assert_eq!(net.dp(HA1).anchor.len(), 1);
}
