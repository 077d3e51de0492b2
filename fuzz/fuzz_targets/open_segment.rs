#![no_main]
//! Fuzz target: see `checks::open_segment`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::open_segment(data));
