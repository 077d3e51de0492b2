#![no_main]
//! Fuzz target: see `checks::fetch_request_decode`.

#[path = "../checks.rs"]
#[allow(dead_code, reason = "each target uses one of the shared checks")]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::fetch_request_decode(data));
