//! The rule registry: every rule's id, default severity, origin and one-line summary.

use serde::Serialize;
use std::fmt;

/// How serious a finding is. Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A suggestion: the build is fine, it could be faster or smaller.
    Info,
    /// A practice that causes trouble: broken caching, bloated or fragile images, surprises.
    Warning,
    /// The build fails, or the image is badly wrong.
    Error,
}

impl Severity {
    /// `info`, `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a rule comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Origin {
    /// One of BuildKit's build checks, with its name, message and semantics.
    BuildKit,
    /// A widely taught Dockerfile practice (the kind hadolint checks).
    BestPractice,
    /// stagecraft's own rules about multi-stage builds and the build context.
    Stagecraft,
    /// Another tool's checks, run by stagecraft (ShellCheck).
    Tool,
    /// A check of the built image itself (its files and config), which only a builder can
    /// make: after every build, and with `stagecraft lint --image`.
    Image,
    /// Not a style rule: the file would not build.
    Build,
}

impl Origin {
    /// `buildkit`, `best-practice`, `stagecraft`, `tool`, `image` or `build`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::BuildKit => "buildkit",
            Origin::BestPractice => "best-practice",
            Origin::Stagecraft => "stagecraft",
            Origin::Tool => "tool",
            Origin::Image => "image",
            Origin::Build => "build",
        }
    }
}

/// A lint rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The id used in output and in `# check=skip=…` (BuildKit's names for BuildKit's rules).
    pub id: &'static str,
    /// The severity of its findings (before `# check=error=true`).
    pub severity: Severity,
    /// Where it comes from.
    pub origin: Origin,
    /// What the rule wants, in one line.
    pub summary: &'static str,
    /// Its documentation page, relative to the repository root.
    pub url: &'static str,
    /// Off unless enabled with `# check=experimental=<id>` (or `experimental=all`).
    pub experimental: bool,
    /// Its documentation page (Markdown), built into the binary: `lint --explain` prints it,
    /// SARIF carries it.
    pub docs: &'static str,
}

impl Rule {
    /// The page's "Why" section: what the rule checks and why it matters, in full.
    pub fn description(&self) -> &'static str {
        let Some((_, after)) = self.docs.split_once("## Why\n") else {
            return self.summary;
        };
        after.split("\n## ").next().unwrap_or(after).trim()
    }
}

/// Defines one constant per rule (named by its id, so `rules::StageNameCasing` reads like the
/// output) and the [`RULES`] list.
macro_rules! rules {
    ($($id:ident: $severity:ident, $origin:ident, $summary:literal $(, $experimental:ident)?;)*) => {
        $(
            #[doc = $summary]
            #[allow(non_upper_case_globals)] // ids are BuildKit's CamelCase rule names
            pub(crate) const $id: Rule = Rule {
                id: stringify!($id),
                severity: Severity::$severity,
                origin: Origin::$origin,
                summary: $summary,
                url: concat!("docs/rules/", stringify!($id), ".md"),
                experimental: rules!(@experimental $($experimental)?),
                docs: include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../docs/rules/",
                    stringify!($id),
                    ".md"
                )),
            };
        )*

        /// Every rule stagecraft knows, BuildKit's first.
        pub const RULES: &[Rule] = &[$($id),*];
    };
    (@experimental experimental) => { true };
    (@experimental) => { false };
}

rules! {
    // BuildKit's build checks (frontend/dockerfile/linter/ruleset.go).
    StageNameCasing: Warning, BuildKit, "Stage names should be lowercase";
    FromAsCasing: Warning, BuildKit, "The 'as' keyword should match the case of the 'from' keyword";
    NoEmptyContinuation: Warning, BuildKit, "Empty continuation lines will become errors in a future release";
    ConsistentInstructionCasing: Warning, BuildKit, "All commands within the Dockerfile should use the same casing (either upper or lower)";
    DuplicateStageName: Warning, BuildKit, "Stage names should be unique";
    ReservedStageName: Warning, BuildKit, "Reserved words should not be used as stage names";
    JSONArgsRecommended: Warning, BuildKit, "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals";
    MaintainerDeprecated: Warning, BuildKit, "The MAINTAINER instruction is deprecated, use a label instead to define an image author";
    UndefinedArgInFrom: Warning, BuildKit, "FROM command must use declared ARGs";
    WorkdirRelativePath: Warning, BuildKit, "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes";
    UndefinedVar: Warning, BuildKit, "Variables should be defined before their use";
    MultipleInstructionsDisallowed: Warning, BuildKit, "Multiple instructions of the same type should not be used in the same stage";
    LegacyKeyValueFormat: Warning, BuildKit, "Legacy key/value format with whitespace separator should not be used";
    RedundantTargetPlatform: Warning, BuildKit, "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior";
    SecretsUsedInArgOrEnv: Warning, BuildKit, "Sensitive data should not be used in the ARG or ENV commands";
    InvalidDefaultArgInFrom: Warning, BuildKit, "Default value for global ARG results in an empty or invalid base image name";
    FromPlatformFlagConstDisallowed: Warning, BuildKit, "FROM --platform flag should not use a constant value";
    CopyIgnoredFile: Warning, BuildKit, "Attempting to Copy file that is excluded by .dockerignore";
    InvalidDefinitionDescription: Warning, BuildKit, "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`", experimental;
    ExposeProtoCasing: Warning, BuildKit, "Protocol in EXPOSE instruction should be lowercase";
    ExposeInvalidFormat: Warning, BuildKit, "IP address and host-port mapping should not be used in EXPOSE instruction";

    // Widely taught practices.
    UntaggedBaseImage: Warning, BestPractice, "Base images should be pinned to a tag or digest";
    LatestTag: Warning, BestPractice, "Base images should not use the moving 'latest' tag";
    AptGetNoInstallRecommends: Info, BestPractice, "apt-get install should use --no-install-recommends in shipped stages";
    AptListsNotCleaned: Warning, BestPractice, "apt package lists should be removed in the RUN that downloads them";
    PipNoCacheDir: Warning, BestPractice, "pip install should use --no-cache-dir (or a cache mount) in shipped stages";
    ApkAddNoCache: Info, BestPractice, "apk add should use --no-cache in shipped stages";
    CdInsteadOfWorkdir: Warning, BestPractice, "Use WORKDIR to change the working directory, not a leading `cd`";
    AddForLocalFile: Warning, BestPractice, "Use COPY for local files and directories; ADD is for URLs, git and archives";
    CopyFromUndefinedStage: Warning, BestPractice, "COPY --from should name a stage defined earlier in the Dockerfile";
    CopyFromOwnStage: Error, BestPractice, "COPY --from cannot name the stage it is in";
    PipefailMissing: Warning, BestPractice, "A download piped into a shell, interpreter or archive tool needs `set -o pipefail`, or a failed download goes unnoticed";
    LastUserRoot: Warning, BestPractice, "The final image should not switch back to the root user";
    FinalStageWithoutUser: Info, BestPractice, "The final image should say which unprivileged user it runs as";
    ExposePortOutOfRange: Error, BestPractice, "EXPOSE ports must be between 0 and 65535";
    SudoInRun: Warning, BestPractice, "RUN already runs as the stage's user: do not use sudo";
    AptGetInstallWithoutYes: Warning, BestPractice, "apt-get install needs -y: a build cannot answer its prompt";
    AptGetUpgrade: Info, BestPractice, "Upgrade packages by moving to a newer base image, not with apt-get upgrade";
    AddUrlWithoutChecksum: Warning, BestPractice, "ADD of an HTTP URL should pin the content with --checksum";
    PipInstallUnpinned: Info, BestPractice, "pip install in the final image should pin package versions";

    // stagecraft's multi-stage and build-context rules.
    SourcesBeforeDependencyInstall: Warning, Stagecraft, "Copy dependency manifests and install dependencies before copying the whole source tree";
    PackageManagerWithoutCacheMount: Info, Stagecraft, "Package downloads and compiles are faster with a RUN --mount=type=cache";
    NpmInstallInsteadOfCi: Warning, Stagecraft, "Use npm ci when a lockfile is copied into the image";
    NpmDevDependenciesInRuntime: Warning, Stagecraft, "The final stage should not install npm devDependencies";
    SdkImageInFinalStage: Warning, Stagecraft, "The final stage of a multi-stage build should use a runtime image, not the SDK";
    CompilerInRuntime: Warning, Stagecraft, "The final stage should not install compilers when an earlier stage builds";
    MissingDockerignore: Warning, Stagecraft, "Large or volatile directories in the context should be excluded by .dockerignore";
    SecretFileInContext: Warning, Stagecraft, "Secret files in the build context should be excluded by .dockerignore";
    GoScratchWithoutCgoDisabled: Warning, Stagecraft, "Go binaries shipped on scratch must be built with CGO_ENABLED=0";
    UnreachableStage: Info, Stagecraft, "Stages the target does not need are not built";
    ChownRecursiveAfterCopy: Warning, Stagecraft, "Set ownership with COPY --chown/--chmod, not a recursive chown/chmod afterwards";
    CopyBuilderSourceTree: Warning, Stagecraft, "The final stage should copy the build's output, not the builder's whole source tree";

    // Other tools' checks.
    ShellCheck: Info, Tool, "Shell scripts in RUN are checked by ShellCheck (findings SC1000–SC9999) when it is installed";

    // Checks of the built image: its files and config.
    EntrypointNotFound: Warning, Image, "The ENTRYPOINT/CMD program must exist in the image, be executable, and have its #! interpreter";
    UserNotInImage: Warning, Image, "A USER name must exist in the image's /etc/passwd (and a group in /etc/group)";
    MissingSharedLibrary: Warning, Image, "Every ELF program and library in the image must find its loader and the shared libraries it needs";
    WorldWritableOrSetuid: Info, Image, "The build's own layers should not add setuid/setgid programs or world-writable files";

    // Not a style rule.
    BuildError: Error, Build, "The Dockerfile would not build";
}

/// The rule with this id, if there is one.
pub fn find_rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|rule| rule.id == id)
}
