//! Benchmarks only: `benches/keyed.rs` (many principals: memory, per-request cost, churn) and
//! `benches/cold_start.rs` (a cold start over many tenants against the emulator's rate limit).
//! Run them with `cargo xtask bench`, which writes their figures into `BENCHMARKS.md`.
