//! Fuzz target: `evlog_node::fuzzing::stored_records` on every input.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| evlog_node::fuzzing::stored_records(bytes));
