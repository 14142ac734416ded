//! Accounting records (RFC 2866): what a session is, what it carried, the Accounting-Request
//! built from them, and the file that keeps undelivered records across a restart.
use std::io::{self, BufRead, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::authz::{finish, push_nas, truncate};
use super::config::AaaConfig;
use super::wire::attr::{self, AttrRepr};
use super::wire::{Code, PacketRepr};

/// Acct-Status-Type (RFC 2866 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AcctStatus {
    Start,
    Stop,
    InterimUpdate,
    /// The NAS (re)started: every earlier session of it is over (RFC 2866 §5.1, 7).
    AccountingOn,
    AccountingOff,
}

impl AcctStatus {
    pub fn value(self) -> u32 {
        match self {
            AcctStatus::Start => 1,
            AcctStatus::Stop => 2,
            AcctStatus::InterimUpdate => 3,
            AcctStatus::AccountingOn => 7,
            AcctStatus::AccountingOff => 8,
        }
    }
}

/// Acct-Terminate-Cause (RFC 2866 §5.10) for the ways a pmip binding ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TerminateCause {
    /// 1: the subscriber released its lease (DHCPRELEASE).
    UserRequest,
    /// 2: detach detected (ARP polling found the subscriber gone).
    LostCarrier,
    /// 3: the anchor refused a refresh or revoked the binding.
    LostService,
    /// 4
    IdleTimeout,
    /// 5: lifetime or lease expired.
    SessionTimeout,
    /// 6: operator (`pmipctl clear binding`, Disconnect-Request).
    AdminReset,
    /// 7
    AdminReboot,
    /// 10: the gateway ended it (e.g. handover away to another access gateway).
    NasRequest,
    /// 11
    NasReboot,
    Other(u32),
}

impl TerminateCause {
    pub fn value(self) -> u32 {
        match self {
            TerminateCause::UserRequest => 1,
            TerminateCause::LostCarrier => 2,
            TerminateCause::LostService => 3,
            TerminateCause::IdleTimeout => 4,
            TerminateCause::SessionTimeout => 5,
            TerminateCause::AdminReset => 6,
            TerminateCause::AdminReboot => 7,
            TerminateCause::NasRequest => 10,
            TerminateCause::NasReboot => 11,
            TerminateCause::Other(v) => v,
        }
    }
}

/// The session a record is about: what stays the same from Start to Stop.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcctSession {
    /// Acct-Session-Id: unique per NAS; the agent keeps it across a handover where the seeds
    /// do (StarOS keeps the session, only the access side changes).
    pub session_id: String,
    pub multi_session_id: Option<String>,
    /// User-Name: the Access-Accept's if it had one (RFC 2865 §5.1), else the NAI.
    pub user_name: String,
    /// Calling-Station-Id.
    pub mac: [u8; 6],
    pub framed_ip: Option<Ipv4Addr>,
    pub framed_ipv6_prefix: Option<(Ipv6Addr, u8)>,
    /// Class attributes of the Access-Accept, echoed unchanged (RFC 2865 §5.25).
    pub class: Vec<Vec<u8>>,
    pub nas_port_id: Option<String>,
    pub called_station_id: Option<String>,
}

/// Cumulative counters of a session, from the subscriber's point of view as RFC 2866 §5.3/5.4
/// count them: input = received from the subscriber (uplink), output = sent to it (downlink).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    pub input_octets: u64,
    pub output_octets: u64,
    pub input_packets: u64,
    pub output_packets: u64,
}

impl Traffic {
    /// Field by field the larger: counters sent for a session never go backwards.
    pub fn max(self, o: Traffic) -> Traffic {
        Traffic {
            input_octets: self.input_octets.max(o.input_octets),
            output_octets: self.output_octets.max(o.output_octets),
            input_packets: self.input_packets.max(o.input_packets),
            output_packets: self.output_packets.max(o.output_packets),
        }
    }
    pub fn below(self, o: Traffic) -> bool {
        self.input_octets < o.input_octets
            || self.output_octets < o.output_octets
            || self.input_packets < o.input_packets
            || self.output_packets < o.output_packets
    }
}

/// One accounting record, as queued and as kept in the spool file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcctRecord {
    pub status: AcctStatus,
    pub session: AcctSession,
    pub traffic: Traffic,
    /// Acct-Session-Time (seconds since Start).
    pub session_time: u32,
    pub terminate_cause: Option<TerminateCause>,
    /// When the event happened (Unix seconds): Event-Timestamp, and the base of Acct-Delay-Time.
    pub event_unix: u32,
}

/// The Accounting-Request for `rec`, signed (RFC 2866 §3: MD5 over the packet with a zero
/// Request Authenticator). `now_unix` gives Acct-Delay-Time (§5.2), which is why a record sent
/// again after a failover is rebuilt under a new Identifier.
pub(crate) fn accounting_request(
    cfg: &AaaConfig,
    secret: &[u8],
    rec: &AcctRecord,
    id: u8,
    now_unix: u32,
) -> Vec<u8> {
    let mut r = PacketRepr::new(Code::AccountingRequest, id);
    let s = &rec.session;
    r.push(AttrRepr::u32(attr::ACCT_STATUS_TYPE, rec.status.value()));
    let per_session = !matches!(
        rec.status,
        AcctStatus::AccountingOn | AcctStatus::AccountingOff
    );
    if per_session {
        r.push(AttrRepr::string(
            attr::ACCT_SESSION_ID,
            truncate(&s.session_id),
        ));
        if let Some(m) = &s.multi_session_id {
            r.push(AttrRepr::string(attr::ACCT_MULTI_SESSION_ID, truncate(m)));
        }
        r.push(AttrRepr::string(attr::USER_NAME, truncate(&s.user_name)));
    }
    push_nas(&mut r, cfg, cfg.attributes.nas_identifier_accounting);
    if cfg.attributes.nas_port_type {
        r.push(AttrRepr::u32(attr::NAS_PORT_TYPE, cfg.nas_port_type));
    }
    if per_session {
        session_attributes(&mut r, cfg, s);
    }
    r.push(AttrRepr::u32(attr::ACCT_AUTHENTIC, 1)); // RADIUS
    r.push(AttrRepr::u32(
        attr::ACCT_DELAY_TIME,
        now_unix.saturating_sub(rec.event_unix),
    ));
    if cfg.attributes.event_timestamp_accounting {
        r.push(AttrRepr::u32(attr::EVENT_TIMESTAMP, rec.event_unix));
    }
    if matches!(rec.status, AcctStatus::InterimUpdate | AcctStatus::Stop) {
        counters(&mut r, rec);
    }
    if let (AcctStatus::Stop, Some(c)) = (rec.status, rec.terminate_cause) {
        r.push(AttrRepr::u32(attr::ACCT_TERMINATE_CAUSE, c.value()));
    }
    finish(&r, secret, &[0; 16])
}

fn session_attributes(r: &mut PacketRepr, cfg: &AaaConfig, s: &AcctSession) {
    if let Some(p) = &s.nas_port_id {
        r.push(AttrRepr::string(attr::NAS_PORT_ID, truncate(p)));
    }
    if cfg.attributes.calling_station_id {
        r.push(AttrRepr::string(
            attr::CALLING_STATION_ID,
            &cfg.mac_format.format(&s.mac),
        ));
    }
    if let Some(c) = &s.called_station_id {
        r.push(AttrRepr::string(attr::CALLED_STATION_ID, truncate(c)));
    }
    if cfg.attributes.framed_ip_address {
        if let Some(ip) = s.framed_ip {
            r.push(AttrRepr::ipv4(attr::FRAMED_IP_ADDRESS, ip));
        }
        if let Some((p, l)) = s.framed_ipv6_prefix {
            r.push(AttrRepr::ipv6_prefix(attr::FRAMED_IPV6_PREFIX, p, l));
        }
    }
    for c in &s.class {
        r.push(AttrRepr::new(
            attr::CLASS,
            &c[..c.len().min(attr::MAX_VALUE)],
        ));
    }
}

/// Octets as low 32 bits plus Gigawords (RFC 2869 §5.1/5.2: how many times the 32-bit
/// counter wrapped); packets have no Gigawords and are sent modulo 2^32.
fn counters(r: &mut PacketRepr, rec: &AcctRecord) {
    let t = &rec.traffic;
    let values = [
        (attr::ACCT_SESSION_TIME, rec.session_time),
        (attr::ACCT_INPUT_OCTETS, t.input_octets as u32),
        (attr::ACCT_INPUT_GIGAWORDS, (t.input_octets >> 32) as u32),
        (attr::ACCT_OUTPUT_OCTETS, t.output_octets as u32),
        (attr::ACCT_OUTPUT_GIGAWORDS, (t.output_octets >> 32) as u32),
        (attr::ACCT_INPUT_PACKETS, t.input_packets as u32),
        (attr::ACCT_OUTPUT_PACKETS, t.output_packets as u32),
    ];
    for (ty, v) in values {
        r.push(AttrRepr::u32(ty, v));
    }
}

/// Writes `records` to `path`, replacing it atomically (a temporary file renamed over it):
/// one JSON record per line. An empty list removes the file.
pub fn save_spool(path: &Path, records: &[AcctRecord]) -> io::Result<()> {
    if records.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let tmp = path.with_extension("tmp");
    {
        // Subscribers' names and addresses: readable by pmipd only.
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut f = io::BufWriter::new(file);
        for r in records {
            serde_json::to_writer(&mut f, r)?;
            f.write_all(b"\n")?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Reads a spool written by [`save_spool`]: the records, and how many lines could not be read
/// (a torn last line after a crash, say). A missing file is an empty spool.
pub fn load_spool(path: &Path) -> io::Result<(Vec<AcctRecord>, usize)> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    let mut bad = 0;
    for line in io::BufReader::new(f).lines() {
        match serde_json::from_str(&line?) {
            Ok(r) => out.push(r),
            Err(_) => bad += 1,
        }
    }
    Ok((out, bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aaa::wire::{auth, Packet};

    pub(crate) fn record(status: AcctStatus) -> AcctRecord {
        AcctRecord {
            status,
            session: AcctSession {
                session_id: "0000002A".into(),
                user_name: "mn0@example.com".into(),
                mac: [0, 0x24, 0xd7, 0x8e, 0x21, 0xa4],
                framed_ip: Some("192.0.2.1".parse().unwrap()),
                class: vec![b"cls".to_vec()],
                ..AcctSession::default()
            },
            traffic: Traffic {
                input_octets: (5 << 32) + 7,
                output_octets: 1234,
                input_packets: 10,
                output_packets: (1 << 32) + 3,
            },
            session_time: 60,
            terminate_cause: Some(TerminateCause::LostCarrier),
            event_unix: 1_000,
        }
    }

    fn cfg() -> AaaConfig {
        AaaConfig {
            nas_identifier: Some("MAG1".into()),
            ..AaaConfig::default()
        }
    }

    #[test]
    fn stop_record_attributes() {
        let b = accounting_request(&cfg(), b"k", &record(AcctStatus::Stop), 4, 1_003);
        assert_eq!(auth::verify(&b, b"k", &[0; 16], false), Ok(false));
        let p = Packet::new_checked(&b[..]).unwrap();
        let u = |t| p.attr(t).unwrap().as_u32().unwrap();
        assert_eq!(u(attr::ACCT_STATUS_TYPE), 2);
        assert_eq!(u(attr::ACCT_INPUT_OCTETS), 7);
        assert_eq!(u(attr::ACCT_INPUT_GIGAWORDS), 5);
        assert_eq!(u(attr::ACCT_OUTPUT_OCTETS), 1234);
        assert_eq!(u(attr::ACCT_OUTPUT_GIGAWORDS), 0);
        assert_eq!(u(attr::ACCT_INPUT_PACKETS), 10);
        assert_eq!(u(attr::ACCT_OUTPUT_PACKETS), 3);
        assert_eq!(u(attr::ACCT_SESSION_TIME), 60);
        assert_eq!(u(attr::ACCT_TERMINATE_CAUSE), 2);
        assert_eq!(u(attr::ACCT_DELAY_TIME), 3);
        assert_eq!(u(attr::EVENT_TIMESTAMP), 1_000);
        assert_eq!(p.attr(attr::ACCT_SESSION_ID).unwrap().value, b"0000002A");
        assert_eq!(p.attr(attr::CLASS).unwrap().value, b"cls");
        assert_eq!(p.attr(attr::NAS_IDENTIFIER).unwrap().value, b"MAG1");
        assert_eq!(
            p.attr(attr::CALLING_STATION_ID).unwrap().value,
            b"00-24-d7-8e-21-a4"
        );
        assert_eq!(
            p.attr(attr::FRAMED_IP_ADDRESS).unwrap().as_ipv4(),
            Some("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn start_has_no_counters_and_on_has_no_session() {
        let b = accounting_request(&cfg(), b"k", &record(AcctStatus::Start), 4, 1_000);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.attr(attr::ACCT_INPUT_OCTETS).is_none());
        assert!(p.attr(attr::ACCT_TERMINATE_CAUSE).is_none());
        let b = accounting_request(&cfg(), b"k", &record(AcctStatus::AccountingOn), 4, 1_000);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.attr(attr::ACCT_STATUS_TYPE).unwrap().as_u32(), Some(7));
        assert!(p.attr(attr::ACCT_SESSION_ID).is_none());
        assert!(p.attr(attr::NAS_IDENTIFIER).is_some());
    }

    #[test]
    fn spool_round_trip_and_torn_lines() {
        let dir = std::env::temp_dir().join(format!("pmip-spool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("acct.spool");
        let recs = vec![record(AcctStatus::Start), record(AcctStatus::Stop)];
        save_spool(&path, &recs).unwrap();
        assert_eq!(load_spool(&path).unwrap(), (recs.clone(), 0));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{\"status\":\"Sto");
        std::fs::write(&path, text).unwrap();
        assert_eq!(load_spool(&path).unwrap(), (recs, 1));
        save_spool(&path, &[]).unwrap();
        assert!(!path.exists());
        assert_eq!(load_spool(&path).unwrap(), (vec![], 0));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
