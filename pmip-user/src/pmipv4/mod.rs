//! Proxy Mobile IPv4 (draft-leung-mip4-proxy-mode, RFC 3344).
