//! BuildKit's checks made while it dispatches each stage: they need the state a stage has
//! reached (its environment, declared ARGs, SHELL and WORKDIR), inherited by stages built
//! `FROM` it. Variables are expanded here exactly where BuildKit expands them.

use crate::image::ImageRef;
use crate::model::{At, Ctx, Sink, StageView, Step};
use crate::rules;
use regex::Regex;
use stagecraft_dockerfile::{CommandKind, Instruction, KeyValue, Word, go_quote, suggest};
use stagecraft_plan::Base;
use stagecraft_shell::{Expansion, Lexer};
use std::collections::BTreeSet;
use std::sync::LazyLock;

/// BuildKit's default `PATH`, which every Linux stage has even on `scratch`.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// ARGs BuildKit keeps out of the environment (so never "undefined").
const NON_ENV_ARGS: [&str; 2] = ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// BuildKit's secret-name test: a token such as `password` as a whole `_`-separated part of
/// the name, unless a part such as `file` says it is not the secret itself.
static SECRET_NAME: LazyLock<(Regex, Regex)> = LazyLock::new(|| {
    let words = |list: &[&str]| {
        Regex::new(&format!("(?i)(?:_|^)(?:{})(?:_|$)", list.join("|")))
            .expect("a valid regular expression")
    };
    (
        words(&[
            "apikey",
            "auth",
            "credential",
            "credentials",
            "key",
            "password",
            "pword",
            "passwd",
            "secret",
            "token",
        ]),
        words(&["public", "file", "version"]),
    )
});

/// What a stage has reached at some instruction.
#[derive(Debug, Clone, Default)]
struct StageState {
    /// `ENV` values and ARG values, in order (later entries win).
    env: Vec<(String, String)>,
    /// Every ARG declared, with or without a value.
    args: BTreeSet<String>,
    /// Whether the base image's environment is known completely (`scratch`, plain OS images):
    /// then a variable not set here is certainly undefined.
    env_complete: bool,
    shell_set: bool,
    workdir_set: bool,
}

pub(crate) fn check(ctx: &Ctx<'_>, sink: &mut Sink<'_>) {
    let globals: BTreeSet<&str> = ctx
        .plan
        .global_args
        .iter()
        .map(|(name, _)| name.as_str())
        .chain(
            ctx.model
                .meta_args
                .iter()
                .flat_map(|step| match &step.command.kind {
                    CommandKind::Arg(declarations) => {
                        declarations.iter().map(|d| d.name.as_str()).collect()
                    }
                    _ => Vec::new(),
                }),
        )
        .collect();
    let mut finished: Vec<Option<StageState>> = vec![None; ctx.model.stages.len()];
    for view in ctx.linted() {
        let index = view.stage.index;
        let state = match ctx.plan.stages.get(index).map(|s| &s.base) {
            Some(Base::Stage(parent)) => {
                finished.get(*parent).cloned().flatten().unwrap_or_default()
            }
            Some(Base::Context(_)) => fresh_state(false),
            Some(Base::Image(reference)) => match ctx.model.options.image_env.get(reference) {
                Some(env) => image_state(env),
                None => fresh_state(
                    ImageRef::parse(reference).is_some_and(|image| image.has_bare_environment()),
                ),
            },
            Some(Base::Scratch) | None => fresh_state(true),
        };
        let mut dispatcher = Dispatcher {
            ctx,
            sink,
            lexer: Lexer::new(ctx.model.file.escape),
            globals: &globals,
            state,
            cmd: None,
            entrypoint: None,
            healthcheck: None,
        };
        dispatcher.stage(view);
        if let Some(slot) = finished.get_mut(index) {
            *slot = Some(dispatcher.state);
        }
    }
}

fn fresh_state(env_complete: bool) -> StageState {
    StageState {
        env: vec![("PATH".to_owned(), DEFAULT_PATH.to_owned())],
        env_complete,
        ..StageState::default()
    }
}

/// A stage on an image whose environment is known: exactly what it sets is defined (and `PATH`,
/// which BuildKit gives every stage).
fn image_state(env: &[(String, String)]) -> StageState {
    let mut state = fresh_state(true);
    state.env.extend(env.iter().cloned());
    state
}

struct Dispatcher<'c, 's, 'f> {
    ctx: &'c Ctx<'c>,
    sink: &'s mut Sink<'f>,
    lexer: Lexer,
    globals: &'c BTreeSet<&'c str>,
    state: StageState,
    // The last CMD, ENTRYPOINT and HEALTHCHECK of this stage (not inherited, as in BuildKit).
    cmd: Option<&'c Instruction>,
    entrypoint: Option<&'c Instruction>,
    healthcheck: Option<&'c Instruction>,
}

impl<'c> Dispatcher<'c, '_, '_> {
    fn stage(&mut self, view: &'c StageView<'c>) {
        for step in &view.steps {
            self.step(step);
        }
    }

    fn step(&mut self, step: &'c Step<'c>) {
        let instruction = step.instruction;
        match &step.command.kind {
            CommandKind::Env(pairs) => {
                let expanded = self.key_values(pairs, step);
                for (pair, (key, _)) in pairs.iter().zip(&expanded) {
                    self.legacy_format(pair, instruction);
                    // An empty placeholder puts nothing into the image.
                    if !is_empty_literal(&pair.value.value) {
                        self.secret_name("ENV", key, step, Some(&pair.value.value));
                    }
                }
                self.state.env.extend(expanded);
            }
            CommandKind::Label(pairs) => {
                self.key_values(pairs, step);
                for pair in pairs {
                    self.legacy_format(pair, instruction);
                }
            }
            CommandKind::Copy(copy) => {
                self.flags([&copy.chown, &copy.chmod], step);
                let sources = self.paths(&copy.paths, step);
                if copy.from.is_none() {
                    self.ignored_sources("Copy", &sources, step);
                }
            }
            CommandKind::Add(add) => {
                self.flags([&add.chown, &add.chmod, &add.checksum], step);
                let sources = self.paths(&add.paths, step);
                let local: Vec<String> = sources.into_iter().filter(|s| !is_remote(s)).collect();
                self.ignored_sources("Add", &local, step);
            }
            CommandKind::Workdir(path) => {
                let expansion = self.expansion(self.lexer, &path.value, step);
                // `WORKDIR $HOME` on an image whose environment is not known: the variable is
                // unknown, not empty, and the rule does not guess.
                let unknown = expansion.as_ref().is_some_and(|e| {
                    !self.state.env_complete
                        && e.unmatched
                            .iter()
                            .any(|name| !self.state.args.contains(name))
                });
                let path = expansion.map_or_else(|| path.value.clone(), |e| e.result);
                if !self.state.workdir_set && !unknown && !is_absolute(&path) {
                    self.sink.report(
                        &rules::WorkdirRelativePath,
                        step.at(),
                        format!(
                            "Relative workdir {} can have unexpected results if the base image changes",
                            go_quote(&path)
                        ),
                        format!("write an absolute path, e.g. `WORKDIR /{}`", path.trim_start_matches("./")),
                    );
                }
                self.state.workdir_set = true;
            }
            CommandKind::User(word) | CommandKind::StopSignal(word) => {
                self.expand(&word.value, step);
            }
            CommandKind::Volume(words) => {
                for word in words {
                    self.expand(&word.value, step);
                }
            }
            CommandKind::Run(run) => {
                for mount in &run.mounts {
                    self.expand(&mount.value, step);
                }
            }
            CommandKind::Arg(declarations) => {
                for declaration in declarations {
                    self.secret_name(
                        "ARG",
                        &declaration.name,
                        step,
                        declaration.default.as_deref(),
                    );
                    let value = match (
                        self.ctx.model.options.build_args.get(&declaration.name),
                        &declaration.default,
                    ) {
                        (Some(value), _) => Some(value.clone()),
                        (None, Some(default)) => Some(self.expand(default, step)),
                        (None, None) => self
                            .ctx
                            .plan
                            .global_args
                            .iter()
                            .find(|(name, _)| *name == declaration.name)
                            .map(|(_, value)| value.clone()),
                    };
                    if let Some(value) = value
                        && !NON_ENV_ARGS.contains(&declaration.name.as_str())
                    {
                        self.state.env.push((declaration.name.clone(), value));
                    }
                    self.state.args.insert(declaration.name.clone());
                }
            }
            CommandKind::Expose(ports) => {
                for port in ports {
                    let words = self
                        .lexer
                        .process_words(&port.value, &self.state.env)
                        .unwrap_or_else(|_| vec![port.value.clone()]);
                    for raw in words {
                        self.port(&raw, step);
                    }
                }
            }
            CommandKind::Cmd(line) | CommandKind::Entrypoint(line) => {
                let tracker = if matches!(step.command.kind, CommandKind::Cmd(_)) {
                    &mut self.cmd
                } else {
                    &mut self.entrypoint
                };
                let previous = tracker.replace(instruction);
                self.used_once(previous, instruction);
                if line.prepend_shell && !self.state.shell_set {
                    let name = &instruction.keyword_text.value;
                    self.sink.report(
                        &rules::JSONArgsRecommended,
                        step.at(),
                        format!(
                            "JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"
                        ),
                        exec_form_hint(name, line.args.first().map_or("", String::as_str)),
                    );
                }
            }
            CommandKind::Healthcheck(_) => {
                let previous = self.healthcheck.replace(instruction);
                self.used_once(previous, instruction);
            }
            CommandKind::Shell(_) => self.state.shell_set = true,
            CommandKind::Maintainer(_) | CommandKind::Onbuild(_) => {}
        }
    }

    /// Expands a word in the stage's scope, reporting the variables it uses that nothing
    /// defines. Returns the expansion (the word itself when it does not expand).
    fn expand(&mut self, word: &str, step: &Step<'_>) -> String {
        self.expand_with(self.lexer, word, step)
    }

    fn expand_with(&mut self, lexer: Lexer, word: &str, step: &Step<'_>) -> String {
        self.expansion(lexer, word, step)
            .map_or_else(|| word.to_owned(), |expansion| expansion.result)
    }

    /// Expands a word, reporting undefined variables; `None` when it does not expand.
    fn expansion(&mut self, lexer: Lexer, word: &str, step: &Step<'_>) -> Option<Expansion> {
        let expansion = lexer
            .process_word_with_matches(word, &self.state.env)
            .ok()?;
        for name in &expansion.unmatched {
            self.undefined(name, step);
        }
        Some(expansion)
    }

    fn undefined(&mut self, name: &str, step: &Step<'_>) {
        if self.state.args.contains(name) || NON_ENV_ARGS.contains(&name) {
            return;
        }
        let mut keys: Vec<String> = self.state.env.iter().map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys.dedup();
        let suggestion = suggest::closest_case_sensitive(name, &keys);
        // The environment of an image stagecraft does not know may define the variable; only
        // a one-letter slip from a defined name is worth reporting then (`$GOPATH` is two
        // edits from `$PATH`, and golang images define it).
        let typo = suggestion
            .as_ref()
            .is_some_and(|s| suggest::levenshtein(name, s) == 1);
        if !self.state.env_complete && !typo {
            return;
        }
        let hint = match &suggestion {
            Some(s) => format!("did you mean `${s}`? Otherwise define `{name}` before this line"),
            None if self.globals.contains(name) => format!(
                "`{name}` is only in the global scope (FROM lines): re-declare it in this stage \
                 with `ARG {name}`"
            ),
            None => format!("define it first with `ARG {name}` or `ENV {name}=…`"),
        };
        self.sink.report(
            &rules::UndefinedVar,
            step.at(),
            format!(
                "Usage of undefined variable '${name}'{}",
                suggestion
                    .map(|s| format!(" (did you mean ${s}?)"))
                    .unwrap_or_default()
            ),
            hint,
        );
    }

    fn key_values(&mut self, pairs: &[KeyValue], step: &Step<'_>) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|pair| {
                (
                    self.expand(&pair.key.value, step),
                    self.expand(&pair.value.value, step),
                )
            })
            .collect()
    }

    fn flags<const N: usize>(&mut self, flags: [&Option<Word>; N], step: &Step<'_>) {
        for word in flags.into_iter().flatten() {
            self.expand(&word.value, step);
        }
    }

    /// Expands the sources, destination and heredoc contents of COPY/ADD; returns the sources.
    fn paths(
        &mut self,
        paths: &stagecraft_dockerfile::SourcesAndDest,
        step: &Step<'_>,
    ) -> Vec<String> {
        let sources: Vec<String> = paths
            .sources
            .iter()
            .map(|source| self.expand(&source.value, step))
            .collect();
        self.expand(&paths.dest.value, step);
        // Heredoc contents expand with `\` and without quote processing, whatever the escape.
        let raw = Lexer::new('\\').with_skip_process_quotes(true);
        for inline in paths.inline.iter().filter(|inline| inline.expand) {
            self.expand_with(raw, &inline.data, step);
        }
        sources
    }

    fn legacy_format(&mut self, pair: &KeyValue, instruction: &Instruction) {
        if !pair.legacy {
            return;
        }
        let name = &instruction.keyword_text.value;
        self.sink.report(
            &rules::LegacyKeyValueFormat,
            At::instruction(instruction),
            format!(
                "\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"
            ),
            format!(
                "write `{name} {}={}`",
                pair.key.value,
                quote_if_spaced(&pair.value.value)
            ),
        );
    }

    /// SecretsUsedInArgOrEnv, as BuildKit decides by the name alone, except for a value
    /// that is written out and plainly public: OpenPGP key fingerprints (`GPG_KEY=7169…`).
    fn secret_name(&mut self, instruction: &str, key: &str, step: &Step<'_>, value: Option<&str>) {
        let (deny, allow) = &*SECRET_NAME;
        if deny.is_match(key) && !allow.is_match(key) && !value.is_some_and(is_key_fingerprints) {
            self.sink.report(
                &rules::SecretsUsedInArgOrEnv,
                step.at(),
                format!(
                    "Do not use ARG or ENV instructions for sensitive data ({instruction} {})",
                    go_quote(key)
                ),
                "ARG and ENV values stay in the image history; pass secrets with `RUN \
                 --mount=type=secret,id=…` (`docker build --secret`) instead",
            );
        }
    }

    /// MultipleInstructionsDisallowed, reported at the earlier instruction (the one ignored),
    /// under the check configuration of the later one, as BuildKit does.
    fn used_once(&mut self, previous: Option<&Instruction>, current: &Instruction) {
        let Some(previous) = previous else {
            return;
        };
        let name = &current.keyword_text.value;
        self.sink.report(
            &rules::MultipleInstructionsDisallowed,
            At::Offset(previous.span.start, &current.comments),
            format!(
                "Multiple {name} instructions should not be used in the same stage because only the last one will be used"
            ),
            format!("delete this {name}: the one on line {} replaces it", current.start_line),
        );
    }

    /// ExposeProtoCasing and ExposeInvalidFormat for one port after expansion.
    fn port(&mut self, raw: &str, step: &Step<'_>) {
        let parts: Vec<&str> = raw.split(':').collect();
        let (ip_and_host, container) = match parts.split_last() {
            Some((container, rest)) => (rest, *container),
            None => return,
        };
        let (port, protocol) = container.split_once('/').unwrap_or((container, ""));
        // An invalid port or protocol fails the build before the checks run.
        if port.is_empty()
            || !matches!(
                protocol.to_lowercase().as_str(),
                "" | "tcp" | "udp" | "sctp"
            )
        {
            return;
        }
        if protocol != protocol.to_lowercase() {
            self.sink.report(
                &rules::ExposeProtoCasing,
                step.at(),
                format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase"),
                format!("write `EXPOSE {port}/{}`", protocol.to_lowercase()),
            );
        }
        if ip_and_host.iter().any(|part| !part.is_empty()) {
            self.sink.report(
                &rules::ExposeInvalidFormat,
                step.at(),
                format!(
                    "EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'"
                ),
                format!(
                    "write `EXPOSE {container}`: which host address and port to publish on is \
                     decided at run time (`docker run -p`)"
                ),
            );
        }
    }

    /// CopyIgnoredFile: sources the `.dockerignore` excludes are not in the context.
    fn ignored_sources(&mut self, verb: &str, sources: &[String], step: &Step<'_>) {
        let Some(ignore) = &self.ctx.model.ignore else {
            return;
        };
        // With `!` patterns a file inside an excluded directory may be re-included, which BuildKit
        // does not try to decide statically.
        if ignore.matcher.is_empty() || ignore.matcher.exclusions() {
            return;
        }
        let ignores_root = ignore
            .patterns
            .iter()
            .any(|p| matches!(p.as_str(), "*" | "**" | "**/*"));
        for source in sources {
            let source = stagecraft_gopath::clean(source);
            if (source == "." || source == "/") && !ignores_root {
                continue;
            }
            if ignore.matcher.matches(&source) {
                self.sink.report(
                    &rules::CopyIgnoredFile,
                    step.at(),
                    format!(
                        "Attempting to {verb} file {} that is excluded by .dockerignore",
                        go_quote(&source)
                    ),
                    "the file is not in the build context, so the build fails or copies nothing: \
                     remove the pattern from .dockerignore (or add a `!` exception), or stop \
                     copying it",
                );
            }
        }
    }
}

/// An absolute path: `/app`, or on Windows images `C:\app` or `\app` (an offline linter
/// cannot ask the base image for its OS; nobody writes those on Linux).
/// A value that is empty as written: `""`, `''` or nothing.
fn is_empty_literal(raw: &str) -> bool {
    matches!(raw.trim(), "" | "\"\"" | "''")
}

/// A written-out list of OpenPGP fingerprints or long key ids (hex, 16 or 40 digits, `0x`
/// allowed, spaces between groups or keys): public identifiers of the keys that verify a
/// download, not secrets.
fn is_key_fingerprints(raw: &str) -> bool {
    let value = raw.trim().trim_matches(|c| c == '"' || c == '\'');
    if value.is_empty() || value.contains('$') {
        return false;
    }
    // Keys are separated by spaces or commas; a fingerprint may be written in ten groups of 4.
    let words: Vec<&str> = value
        .split([' ', '\t', ',', ';'])
        .filter(|w| !w.is_empty())
        .collect();
    let keys: Vec<String> = if words.len().is_multiple_of(10) && words.iter().all(|w| w.len() == 4)
    {
        words.chunks(10).map(<[&str]>::concat).collect()
    } else {
        words.iter().map(|w| (*w).to_owned()).collect()
    };
    !keys.is_empty()
        && keys.iter().all(|key| {
            let hex = key
                .strip_prefix("0x")
                .or_else(|| key.strip_prefix("0X"))
                .unwrap_or(key);
            matches!(hex.len(), 16 | 40) && hex.chars().all(|c| c.is_ascii_hexdigit())
        })
}

fn is_absolute(path: &str) -> bool {
    let mut chars = path.chars();
    path.starts_with(['/', '\\'])
        || (chars.next().is_some_and(|c| c.is_ascii_alphabetic()) && chars.next() == Some(':'))
}

/// A URL or git source of ADD (never in the build context).
pub(crate) fn is_remote(source: &str) -> bool {
    ["http://", "https://", "git@", "git://", "ssh://"]
        .iter()
        .any(|prefix| source.starts_with(prefix))
}

fn quote_if_spaced(value: &str) -> String {
    if value.contains(char::is_whitespace) && !value.starts_with(['"', '\'']) {
        go_quote(value)
    } else {
        value.to_owned()
    }
}

/// How to write a shell-form CMD/ENTRYPOINT in exec form: spelled out when the command uses no
/// shell syntax.
fn exec_form_hint(name: &str, command: &str) -> String {
    let shell_syntax = command.contains([
        '$', '|', '&', ';', '<', '>', '*', '?', '(', ')', '{', '}', '\'', '"', '`', '\\', '~',
    ]);
    if shell_syntax || command.trim().is_empty() {
        return format!(
            "write `{name} [\"executable\", \"arg\"]`; if the command needs a shell, wrap it in a \
             script, or declare the shell with SHELL [\"/bin/sh\", \"-c\"]"
        );
    }
    let words: Vec<String> = command.split_whitespace().map(go_quote).collect();
    format!("write `{name} [{}]`", words.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        let (deny, allow) = &*SECRET_NAME;
        let secret = |k: &str| deny.is_match(k) && !allow.is_match(k);
        assert!(secret("AWS_SECRET_ACCESS_KEY") && secret("api_key") && secret("GITHUB_TOKEN"));
        assert!(secret("password") && secret("AUTH"));
        assert!(!secret("PUBLIC_KEY") && !secret("KEY_FILE") && !secret("TOKEN_VERSION"));
        assert!(!secret("KEYBOARD") && !secret("MONKEY") && !secret("AUTHOR"));
    }

    #[test]
    fn key_fingerprints() {
        assert!(is_key_fingerprints(
            "7169605F62C751356D054A26A821E680E5FA6305"
        ));
        assert!(is_key_fingerprints(
            "\"0x7169605F62C75135 A821E680E5FA6305\""
        ));
        assert!(is_key_fingerprints(
            "7169 605F 62C7 5135 6D05  4A26 A821 E680 E5FA 6305"
        ));
        assert!(!is_key_fingerprints("s3cr3t-value") && !is_key_fingerprints("${GPG_KEY}"));
        assert!(!is_key_fingerprints("deadbeef") && !is_key_fingerprints(""));
        assert!(is_empty_literal("\"\"") && is_empty_literal("") && !is_empty_literal("x"));
    }

    #[test]
    fn exec_form_hints() {
        assert_eq!(
            exec_form_hint("CMD", "node server.js"),
            "write `CMD [\"node\", \"server.js\"]`"
        );
        assert!(exec_form_hint("CMD", "echo $HOME").contains("script"));
    }
}
