//! `[store]`: where the binding state survives a restart.
use super::Errors;
use crate::config::file::File;
use crate::config::{StoreBackend, StoreSettings};

pub(super) fn check(f: &File, v: &mut Errors) -> StoreSettings {
    let s = &f.store;
    if s.backend == StoreBackend::Embedded {
        if !s.path.is_absolute() {
            v.err("store.path", "must be an absolute file path");
        } else if s.path.file_name().is_none() || s.path.to_string_lossy().ends_with('/') {
            v.err("store.path", "must name a file, not a directory");
        }
    }
    StoreSettings {
        backend: s.backend,
        path: s.path.clone(),
    }
}
