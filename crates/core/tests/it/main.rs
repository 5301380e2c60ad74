//! Integration tests of iocsync-core: the allowlist on the real MISP warninglists, property tests
//! of the plan, and the policy -> merge -> allowlist -> plan pipeline.

mod allowlist_feeds;
mod ownership;
mod pipeline;
mod plan_props;

/// Reads a file from the shared feed folder beside the repository checkout.
pub fn feed(rel: &str) -> Vec<u8> {
    let path = format!("{}/../../../shared/feeds/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}
