#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| defender_fuzz::policy_file::check(data));
