#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| defender_fuzz::ingress_host::check(data));
