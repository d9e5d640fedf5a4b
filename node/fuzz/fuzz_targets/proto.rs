#![no_main]
//! libFuzzer entry point of [`tierlink_fuzz::proto`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| tierlink_fuzz::proto(data));
