//! `[admission]`: what a flood of new MACs may cost an access gateway.
use std::time::Duration;

use super::Errors;
use crate::access::admission::AdmissionConfig;
use crate::config::file::File;

pub(super) fn check(f: &File, v: &mut Errors) -> AdmissionConfig {
    let a = &f.admission;
    for (key, val) in [
        ("max_pending_per_link", a.max_pending_per_link),
        ("max_pending", a.max_pending),
        ("attempts_per_s_per_link", a.attempts_per_s_per_link),
        ("attempts_per_s", a.attempts_per_s),
        ("backoff_initial_ms", a.backoff_initial_ms),
        ("backoff_max_s", a.backoff_max_s),
        ("new_mac_reports_per_s", a.new_mac_reports_per_s),
    ] {
        if val == 0 {
            v.err(format!("admission.{key}"), "must be > 0");
        }
    }
    if a.max_pending_per_link > a.max_pending {
        v.err(
            "admission.max_pending_per_link",
            format!("must not exceed max_pending ({})", a.max_pending),
        );
    }
    if a.attempts_per_s_per_link > a.attempts_per_s {
        v.err(
            "admission.attempts_per_s_per_link",
            format!("must not exceed attempts_per_s ({})", a.attempts_per_s),
        );
    }
    if u64::from(a.backoff_initial_ms) > u64::from(a.backoff_max_s) * 1000 {
        v.err(
            "admission.backoff_initial_ms",
            format!("must not exceed backoff_max_s ({} s)", a.backoff_max_s),
        );
    }
    AdmissionConfig {
        max_pending_per_link: a.max_pending_per_link,
        max_pending: a.max_pending,
        attempts_per_s_per_link: a.attempts_per_s_per_link,
        attempts_per_s: a.attempts_per_s,
        backoff_initial: Duration::from_millis(a.backoff_initial_ms.into()),
        backoff_max: Duration::from_secs(a.backoff_max_s.into()),
        new_mac_reports_per_s: a.new_mac_reports_per_s,
    }
}
