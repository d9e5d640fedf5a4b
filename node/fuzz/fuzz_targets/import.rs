#![no_main]
//! libFuzzer entry point of [`tierlink_fuzz::import`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| tierlink_fuzz::import(data));
