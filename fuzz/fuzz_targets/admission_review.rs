#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| defender_fuzz::admission_review::check(data));
