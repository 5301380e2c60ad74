//! Fuzz the STIX pattern parser: any text yields values or an error, never a panic or overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(pattern) = std::str::from_utf8(data) {
        if let Ok(values) = iocsync_ioc::formats::stix::parse_pattern(pattern) {
            assert!(!values.is_empty());
        }
    }
});
