//! The invariants the fuzz targets check, one module per target. Each module
//! is self-contained, so tests/fuzz_regressions.rs can compile it on stable
//! and replay saved inputs through exactly the same checks.

pub mod admission_review;
pub mod ingress_host;
pub mod policy_file;
