//! tokio shell: sockets and one timer around the MAG/LMA state machines.
