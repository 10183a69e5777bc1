//! Unit tests of the step's init.

use super::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn look_path_follows_go() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(bin.join("subdir")).unwrap();
    for (name, mode) in [("tool", 0o755), ("data", 0o644)] {
        std::fs::write(bin.join(name), "").unwrap();
        std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let bin = bin.to_str().unwrap();
    let path = format!("/nonexistent::{bin}");
    assert_eq!(
        look_path("tool", Some(&path)).map_err(|e| e.to_string()),
        Ok(format!("{bin}/tool"))
    );
    assert_eq!(
        look_path("data", Some(&path)).map_err(|e| e.to_string()),
        Err("exec: \"data\": executable file not found in $PATH".into())
    );
    assert_eq!(
        look_path("tool", Some("")).map_err(|e| e.to_string()),
        Err("exec: \"tool\": executable file not found in $PATH".into())
    );
    assert_eq!(
        look_path("/no/such", None).map_err(|e| e.to_string()),
        Err("exec: \"/no/such\": stat /no/such: no such file or directory".into())
    );
    let data = format!("{bin}/data");
    assert_eq!(
        look_path(&data, None).map_err(|e| e.to_string()),
        Err(format!("exec: {data:?}: permission denied"))
    );
    let subdir = format!("{bin}/subdir");
    assert_eq!(
        look_path(&subdir, None).map_err(|e| e.to_string()),
        Err(format!("exec: {subdir:?}: is a directory"))
    );
}
