//! What an Access-Accept gave a subscriber, in the form its store record keeps
//! ([`AaaProfile`], a field of `store::AccessRecord`), and back.
//!
//! The registrar writes the record; the glue hands it the profile with the attach
//! (`AttachRequest::aaa`) and gets it back with `AccessEvent::Restored`. So a restarted
//! gateway serves a subscriber authorized by RADIUS with what RADIUS gave — lease bound by
//! the Session-Timeout that started at the first attach, DNS, interim interval, accounting
//! User-Name and Class — and not with the local profile's values (which may not even
//! exist: without a default profile, a RADIUS subscriber has no local profile at all).
use std::time::{Duration, SystemTime};

use super::profile::Extras;
use crate::config::{Profile, Service};
use crate::store::{wall_ms, AaaProfile};

/// The record of an authorized profile; `now`: when the Session-Timeout starts.
pub(crate) fn record(p: &Profile, ex: &Extras, user_name: &str, now: SystemTime) -> AaaProfile {
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32);
    AaaProfile {
        name: p.name.clone(),
        anchor: p.anchor.clone(),
        alternate: p.alternate_anchor.clone(),
        home_address: p.home_address,
        apn: p.apn.clone(),
        pool: p.pool.clone(),
        service: p.service.map(|s| service_name(s).to_string()),
        dns: p.dns.clone(),
        dns6: p.dns6.clone(),
        user_name: user_name.to_string(),
        class: ex.class.clone(),
        interim_s: secs(ex.interim),
        session_timeout_s: secs(ex.session_timeout),
        session_start_ms: wall_ms(now),
    }
}

/// The profile and extras a record stands for (`nai`: the record's NAI).
pub(crate) fn profile(r: &AaaProfile, nai: &str) -> (Profile, Extras) {
    let secs = |s: Option<u32>| s.filter(|s| *s > 0).map(|s| Duration::from_secs(s.into()));
    let p = Profile {
        name: r.name.clone(),
        nai: Some(nai.to_string()),
        mac: None,
        anchor: r.anchor.clone(),
        alternate_anchor: r.alternate.clone(),
        home_address: r.home_address,
        apn: r.apn.clone(),
        imsi: None,
        dns: r.dns.clone(),
        service: r.service.as_deref().and_then(service_of),
        dns6: r.dns6.clone(),
        pool: r.pool.clone(),
    };
    let ex = Extras {
        user_name: Some(r.user_name.clone()).filter(|u| !u.is_empty()),
        class: r.class.clone(),
        interim: secs(r.interim_s),
        session_timeout: secs(r.session_timeout_s),
        stored: Some(Box::new(r.clone())),
        ..Extras::default()
    };
    (p, ex)
}

/// How much of the record's Session-Timeout is left at `now` (`None`: it has none).
pub(crate) fn session_left(r: &AaaProfile, now: SystemTime) -> Option<Duration> {
    r.session_left(now)
}

fn service_name(s: Service) -> &'static str {
    match s {
        Service::Ipv4 => "ipv4",
        Service::Ipv6 => "ipv6",
        Service::Dual => "dual",
    }
}

fn service_of(s: &str) -> Option<Service> {
    [Service::Ipv4, Service::Ipv6, Service::Dual]
        .into_iter()
        .find(|x| service_name(*x) == s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn accepted() -> (Profile, Extras) {
        let p = Profile {
            name: "radius+default".into(),
            nai: Some("mn0@example.com".into()),
            mac: None,
            anchor: Some("lma".into()),
            alternate_anchor: Some("lma2".into()),
            home_address: Some(Ipv4Addr::new(10, 64, 0, 9)),
            apn: Some("example.com".into()),
            imsi: None,
            dns: vec![Ipv4Addr::new(198, 51, 100, 53)],
            service: Some(Service::Dual),
            dns6: vec!["2001:db8::53".parse().unwrap()],
            pool: Some("p1".into()),
        };
        let ex = Extras {
            class: vec![b"lab-class".to_vec()],
            interim: Some(Duration::from_secs(2)),
            session_timeout: Some(Duration::from_secs(90)),
            ..Extras::default()
        };
        (p, ex)
    }

    #[test]
    fn a_record_gives_back_the_profile_and_extras() {
        let (p, ex) = accepted();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let r = record(&p, &ex, "02-00-00-00-aa-01", t0);
        let (p2, ex2) = profile(&r, "mn0@example.com");
        assert_eq!(p2, p);
        assert_eq!(ex2.interim, ex.interim);
        assert_eq!(ex2.session_timeout, ex.session_timeout);
        assert_eq!(ex2.class, ex.class);
        assert_eq!(ex2.user_name.as_deref(), Some("02-00-00-00-aa-01"));
        // The Session-Timeout counts from the first attach, not from the restart.
        let later = t0 + Duration::from_secs(30);
        assert_eq!(session_left(&r, later), Some(Duration::from_secs(60)));
        assert_eq!(
            session_left(&r, t0 + Duration::from_secs(200)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn old_and_partial_records_load() {
        // A record of a build before this field, and one with only some keys.
        let r: AaaProfile = serde_json::from_str(r#"{"user_name":"u","interim_s":5}"#).unwrap();
        let (p, ex) = profile(&r, "n");
        assert_eq!(ex.interim, Some(Duration::from_secs(5)));
        assert_eq!(ex.session_timeout, None);
        assert_eq!(session_left(&r, SystemTime::now()), None);
        assert!(p.dns.is_empty() && p.service.is_none());
        let unknown: AaaProfile = serde_json::from_str(r#"{"service":"ipv9"}"#).unwrap();
        assert_eq!(profile(&unknown, "n").0.service, None);
    }
}
