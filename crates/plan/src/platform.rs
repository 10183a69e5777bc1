//! The build arguments BuildKit predefines from the build and target platforms.

use stagecraft_image::Platform;

/// `BUILDPLATFORM`, `TARGETOS`, … as BuildKit defines them for a build on and for `platform`,
/// with `TARGETSTAGE` naming the target.
pub fn predefined_args(platform: &Platform, target_stage: &str) -> Vec<(&'static str, String)> {
    vec![
        ("BUILDPLATFORM", platform.to_string()),
        ("BUILDOS", platform.os.clone()),
        ("BUILDOSVERSION", String::new()),
        ("BUILDARCH", platform.architecture.clone()),
        ("BUILDVARIANT", platform.variant.clone()),
        ("TARGETPLATFORM", platform.to_string()),
        ("TARGETOS", platform.os.clone()),
        ("TARGETOSVERSION", String::new()),
        ("TARGETARCH", platform.architecture.clone()),
        ("TARGETVARIANT", platform.variant.clone()),
        ("TARGETSTAGE", target_stage.to_owned()),
    ]
}

/// Whether `name` is an argument BuildKit defines without an `ARG` (platform arguments, proxy
/// variables, `SOURCE_DATE_EPOCH`), so passing it with `--build-arg` is never "unused".
pub(crate) fn is_predefined(name: &str) -> bool {
    const OTHERS: [&str; 11] = [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "FTP_PROXY",
        "ftp_proxy",
        "NO_PROXY",
        "no_proxy",
        "ALL_PROXY",
        "all_proxy",
        "SOURCE_DATE_EPOCH",
    ];
    OTHERS.contains(&name)
        || predefined_args(&Platform::host(), "")
            .iter()
            .any(|(n, _)| *n == name)
}
