//! Fuzz the text, hosts and auto parsers: any bytes must parse without panicking.
#![no_main]

use iocsync_ioc::formats::{Format, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = chrono::DateTime::UNIX_EPOCH;
    for format in [Format::Text, Format::Hosts, Format::Auto] {
        if let Ok(parsed) = iocsync_ioc::parse(data, &ParseOptions::new(format, now)) {
            assert!(parsed.iocs.iter().all(|i| i.line >= 1));
        }
    }
});
