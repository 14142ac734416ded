//! pmipctl protocol (placeholder, filled in the next commit).
