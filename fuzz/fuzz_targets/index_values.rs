//! Fuzz target: `evlog_node::fuzzing::index_values` on every input.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| evlog_node::fuzzing::index_values(bytes));
