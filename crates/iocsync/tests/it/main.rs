//! Integration tests of the iocsync app crate (one test binary): the real binary driven against
//! the emulator on 127.0.0.1:0, plus the state store and feed fetching.

mod broken_feed;
mod change_control;
mod chaos;
mod cli;
mod commands;
mod console;
mod console_backend;
mod crash;
mod daemon;
mod deps;
mod emulator_cmd;
mod examples;
mod fetch;
mod harness;
mod hostile;
mod impact;
mod model;
mod ops;
mod ownership;
mod safety;
mod scale;
mod state;
mod strict;
mod sync;
mod taxii;
