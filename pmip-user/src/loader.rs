//! Loads the eBPF object, attaches its programs and writes its maps.
