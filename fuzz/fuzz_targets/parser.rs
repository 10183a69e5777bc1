//! The Dockerfile parser must never panic, and what it accepts must render both ways.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = stagecraft_dockerfile::parse_bytes("Dockerfile", data) {
        let dump = file.dump();
        assert_eq!(dump.lines().count(), file.instructions.len());
        let _ = file.to_json();
        for instruction in &file.instructions {
            // Every span must point inside the source.
            assert!(instruction.span.end <= file.source.text().len());
            for flag in &instruction.flags {
                assert!(flag.span.end <= file.source.text().len());
            }
        }
    }
});
