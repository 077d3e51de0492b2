#![no_main]
//! Fuzz target: see `checks::open_segment`.

#[path = "../checks.rs"]
#[allow(dead_code, reason = "each target uses one of the shared checks")]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::open_segment(data));
