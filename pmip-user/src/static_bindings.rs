//! Static bindings from a config file (operators use static GRE tunnels).
