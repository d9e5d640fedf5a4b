#![no_main]
//! libFuzzer entry point of [`tierlink_fuzz::requester`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| tierlink_fuzz::requester(data));
