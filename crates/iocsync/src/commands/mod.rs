//! One module per command that does more than call the engine.

pub mod adopt;
pub mod check;
pub mod console;
pub mod emulator;
pub mod explain;
pub mod history;
pub mod init;
pub mod list;
pub mod man;
pub mod parse;
pub mod purge;
