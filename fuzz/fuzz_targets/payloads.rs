//! Any bytes through both providers' payload parsers: a value or an error, never a
//! panic, and the same answer twice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::payload::{livetip, pluggy};

fuzz_target!(|data: &[u8]| {
    let first = livetip::parse(data);
    assert_eq!(first, livetip::parse(data));
    let head = pluggy::parse_head(data);
    assert_eq!(head, pluggy::parse_head(data));
});
