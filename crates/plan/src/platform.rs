//! The build arguments BuildKit predefines from the build and target platforms.

use stagecraft_image::Platform;

/// `BUILDPLATFORM`, `TARGETOS`, … as BuildKit defines them for a build on `build` for
/// `target`, with `TARGETSTAGE` naming the target stage. `TARGET*` name the build's target
/// platform in every stage, also one `FROM --platform=$BUILDPLATFORM` moves onto the build
/// platform: that is how a cross-compiling stage learns what to compile for.
pub fn predefined_args(
    build: &Platform,
    target: &Platform,
    target_stage: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("BUILDPLATFORM", build.to_string()),
        ("BUILDOS", build.os.clone()),
        ("BUILDOSVERSION", build.os_version.clone()),
        ("BUILDARCH", build.architecture.clone()),
        ("BUILDVARIANT", build.variant.clone()),
        ("TARGETPLATFORM", target.to_string()),
        ("TARGETOS", target.os.clone()),
        ("TARGETOSVERSION", target.os_version.clone()),
        ("TARGETARCH", target.architecture.clone()),
        ("TARGETVARIANT", target.variant.clone()),
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
        || predefined_args(&Platform::host(), &Platform::host(), "")
            .iter()
            .any(|(n, _)| *n == name)
}
