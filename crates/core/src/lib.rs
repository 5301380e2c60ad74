//! Pure sync logic of iocsync: policy, merge, allowlist, plan, capacity, batching, pacing, report.

pub mod pacing;
