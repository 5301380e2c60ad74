//! Fuzz the JSON formats: MISP events and manifests, STIX bundles and TAXII envelopes.
#![no_main]

use iocsync_ioc::formats::{Format, ParseOptions, misp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = chrono::DateTime::UNIX_EPOCH;
    for format in [Format::Misp, Format::Stix, Format::Taxii] {
        let _ = iocsync_ioc::parse(data, &ParseOptions::new(format, now));
    }
    let _ = misp::parse_manifest(data);
});
