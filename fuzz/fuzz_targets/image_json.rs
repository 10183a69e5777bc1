//! The image config and manifest readers must never panic, and what they accept must write
//! back out and read again to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stagecraft_image::{AnyManifest, ImageConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = ImageConfig::from_slice(data) {
        let bytes = config.to_json().expect("a parsed config serializes");
        let again = ImageConfig::from_slice(&bytes).expect("our own output parses");
        assert_eq!(again.to_json().expect("serializes"), bytes);
    }
    let _ = AnyManifest::from_slice(data, None);
});
