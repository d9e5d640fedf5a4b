#![no_main]
//! libFuzzer entry point of [`tierlink_fuzz::directory`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| tierlink_fuzz::directory(data));
