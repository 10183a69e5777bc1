//! Applying an arbitrary (possibly hostile) layer must never panic and never write outside the
//! target directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stagecraft_layer::{ApplyOptions, WhiteoutMode, apply_layer};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("root");
    let sentinel = dir.path().join("sentinel");
    std::fs::write(&sentinel, b"untouched").expect("sentinel");
    for whiteouts in [WhiteoutMode::Delete, WhiteoutMode::Overlay(Default::default())] {
        let options = ApplyOptions { chown: false, whiteouts };
        let _ = apply_layer(data, &root, &options);
    }
    // Nothing beside the root may appear, change or disappear.
    let siblings: Vec<_> = std::fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
    assert_eq!(siblings.len(), 2, "something was written beside the root: {siblings:?}");
    assert_eq!(std::fs::read(&sentinel).expect("sentinel"), b"untouched");
});
