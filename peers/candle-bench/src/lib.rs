//! Bench-only peer crate: see `README.md`. The benches and the test live in
//! `benches/` and `tests/`; this library is empty.
