//! Fuzz the CSV and Defender-portal CSV parsers with several column layouts.
#![no_main]

use iocsync_ioc::formats::{Column, Format, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = chrono::DateTime::UNIX_EPOCH;
    let mut opts = ParseOptions::new(Format::Csv, now);
    let _ = iocsync_ioc::parse(data, &opts);
    opts.column = Some(Column::Name("url".into()));
    opts.type_column = Some(Column::Name("type".into()));
    let _ = iocsync_ioc::parse(data, &opts);
    opts.column = Some(Column::Index(1));
    opts.type_column = Some(Column::Index(0));
    let _ = iocsync_ioc::parse(data, &opts);
    let _ = iocsync_ioc::parse(data, &ParseOptions::new(Format::DefenderCsv, now));
});
