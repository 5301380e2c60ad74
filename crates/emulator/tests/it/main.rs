//! Integration tests of the emulator over real HTTP on 127.0.0.1:0, one module per behaviour.

mod batch_delete;
mod calllog;
mod capacity;
mod certificate;
mod common;
mod entity;
mod expiry;
mod faults;
mod hostile;
mod hunting;
mod import;
mod list_odata;
mod ratelimit;
mod routes;
mod state_file;
mod switches;
mod tokens;
mod validation;
mod visibility;
