//! iocsync application library: CLI, config, feed fetching, state store, engine, output.

pub mod feeds;
pub mod fetch;
pub mod state;
