//! Integration tests of the Defender client against the emulator on 127.0.0.1:0.

mod auth;
mod canned;
mod common;
mod delete;
mod hostile;
mod import;
mod limits;
mod list;
mod resilience;
