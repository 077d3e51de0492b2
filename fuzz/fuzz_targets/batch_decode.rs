#![no_main]
//! Fuzz target: see `checks::batch_decode`.

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::batch_decode(data));
