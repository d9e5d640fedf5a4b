#![no_main]
//! libFuzzer entry point of [`tierlink_fuzz::batch`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| tierlink_fuzz::batch(data));
