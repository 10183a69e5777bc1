//! Dockerfile semantics (BuildKit's `dockerfile2llb`): each instruction applied to a stage's
//! state, with variable expansion and errors located at the instruction.

use crate::cache::key::{CacheKey, describe_owner};
use crate::convert::config::{add_env, go_quote_list, normalize_workdir, parse_port};
use crate::convert::copy::CopyArgs;
use crate::fs::users::resolve_owner;
use crate::options::BuildOptions;
use crate::outcome::BuildError;
use crate::state::{BuildRun, DEFAULT_SHELL, MASK, StageState, StepCtx};
use stagecraft_dockerfile::{
    Code, Command, CommandKind, Diagnostic, Healthcheck as ParsedHealthcheck, KeyValue,
};
use stagecraft_image::Healthcheck;
use std::collections::BTreeSet;
use std::path::Path;

impl BuildRun<'_> {
    /// A diagnostic of kind `code` at `command`.
    pub(crate) fn diagnostic(
        &self,
        command: &Command,
        code: Code,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::new(code, &self.file.source, command.location.span, message)
    }

    /// The build's error for a failure of kind `code` at `command`.
    pub(crate) fn located(
        &self,
        command: &Command,
        code: Code,
        message: impl Into<String>,
    ) -> BuildError {
        BuildError::Step(self.diagnostic(command, code, message))
    }

    pub(crate) fn expand(
        &self,
        command: &Command,
        word: &str,
        state: &StageState,
    ) -> Result<String, BuildError> {
        let expansion = self
            .lexer
            .process_word_with_matches(word, &state.scope)
            .map_err(|e| self.located(command, Code::Expansion, e.to_string()))?;
        self.refuse_secret_args(command, &expansion.matched, state)?;
        Ok(expansion.result)
    }

    /// Like [`Self::expand`], split into words at unquoted whitespace (BuildKit's
    /// `ProcessWords`).
    pub(crate) fn expand_words(
        &self,
        command: &Command,
        word: &str,
        state: &StageState,
    ) -> Result<Vec<String>, BuildError> {
        let (expansion, words) = self
            .lexer
            .process_words_with_matches(word, &state.scope)
            .map_err(|e| self.located(command, Code::Expansion, e.to_string()))?;
        self.refuse_secret_args(command, &expansion.matched, state)?;
        Ok(words)
    }

    /// Secret build arguments reach `RUN` only: anything else the frontend expands ends up
    /// in the image (config, paths, history).
    pub(crate) fn refuse_secret_args(
        &self,
        command: &Command,
        used: &BTreeSet<String>,
        state: &StageState,
    ) -> Result<(), BuildError> {
        use stagecraft_shell::EnvGetter;
        let secret = used.iter().find(|name| {
            self.options.secret_args.contains(*name)
                // Still the secret: an ENV of the same name replaces it with a plain value.
                && state.scope.get(name) == self.options.plan.build_args.get(*name).map(String::as_str)
        });
        match secret {
            Some(name) => Err(BuildError::Step(
                self.diagnostic(
                    command,
                    Code::Secret,
                    format!("the secret build argument {name} would be written into the image here"),
                )
                .with_hint(format!(
                    "secret build arguments reach RUN only, as the variable ${name}; pass values that belong in the image with --build-arg"
                )),
            )),
            None => Ok(()),
        }
    }

    /// `line` with every secret value replaced by [`MASK`].
    pub(crate) fn mask(&self, line: &str) -> String {
        mask_secrets(line, &self.shared.secret_values)
    }

    /// Applies one instruction. Returns whether something ran (a cache miss).
    pub(crate) fn dispatch(
        &self,
        ctx: StepCtx,
        command: &Command,
        state: &mut StageState,
    ) -> Result<bool, BuildError> {
        let created = &self.shared.created;
        match &command.kind {
            CommandKind::Env(pairs) => {
                let mut message = String::from("ENV");
                for (key, value) in self.expand_pairs(command, pairs, state)? {
                    state.scope.set(&key, &value);
                    add_env(&mut state.config.config.env, &key, &value);
                    message.push_str(&format!(" {key}={value}"));
                }
                state.history(message, false, created);
            }
            CommandKind::Label(pairs) => {
                let mut message = String::from("LABEL");
                for (key, value) in self.expand_pairs(command, pairs, state)? {
                    message.push_str(&format!(" {key}={value}"));
                    state.config.config.labels.insert(key, value);
                }
                state.history(message, false, created);
            }
            CommandKind::Maintainer(word) => {
                state.config.author = word.value.clone();
                state.history(format!("MAINTAINER {}", word.value), false, created);
            }
            CommandKind::Arg(declarations) => {
                let mut parts = Vec::new();
                for declaration in declarations {
                    let from_cli = self.options.plan.build_args.get(&declaration.name).cloned();
                    let value = match (&from_cli, &declaration.default) {
                        (Some(value), _) => Some(value.clone()),
                        (None, Some(default)) => Some(self.expand(command, default, state)?),
                        (None, None) => self
                            .plan
                            .global_args
                            .iter()
                            .find(|(k, _)| *k == declaration.name)
                            .map(|(_, v)| v.clone()),
                    };
                    // BuildKit's `nonEnvArgs`: the SBOM scan switches are read by the
                    // scanner alone, never expanded nor seen by RUN as variables.
                    let non_env = matches!(
                        declaration.name.as_str(),
                        "BUILDKIT_SBOM_SCAN_STAGE" | "BUILDKIT_SBOM_SCAN_CONTEXT"
                    );
                    if let Some(value) = &value
                        && !non_env
                    {
                        state.scope.set(&declaration.name, value);
                    }
                    parts.push(match &value {
                        Some(_) if self.options.secret_args.contains(&declaration.name) => {
                            format!("{}={MASK}", declaration.name)
                        }
                        Some(v) => format!("{}={v}", declaration.name),
                        None => declaration.name.clone(),
                    });
                    state.args.push((declaration.name.clone(), value));
                }
                state.history(format!("ARG {}", parts.join(" ")), false, created);
            }
            CommandKind::User(word) => {
                let user = self.expand(command, &word.value, state)?;
                state.history(format!("USER {user}"), false, created);
                state.config.config.user = user;
            }
            CommandKind::Volume(words) => {
                let mut volumes = Vec::new();
                for word in words {
                    let volume = self.expand(command, &word.value, state)?;
                    state.config.config.volumes.insert(volume.clone());
                    volumes.push(volume);
                }
                state.history(format!("VOLUME [{}]", volumes.join(" ")), false, created);
            }
            CommandKind::StopSignal(word) => {
                let signal = self.expand(command, &word.value, state)?;
                state.history(format!("STOPSIGNAL {signal}"), false, created);
                state.config.config.stop_signal = signal;
            }
            CommandKind::Expose(words) => {
                let mut ports = Vec::new();
                for word in words {
                    for port in self.expand_words(command, &word.value, state)? {
                        ports.extend(parse_port(&port).map_err(|e| {
                            self.located(command, Code::Instruction, e.to_string())
                        })?);
                    }
                }
                for port in &ports {
                    state.config.config.exposed_ports.insert(port.clone());
                }
                state.history(format!("EXPOSE [{}]", ports.join(" ")), false, created);
            }
            CommandKind::Cmd(line) => {
                let args = self.with_shell(state, &line.args, line.prepend_shell);
                state.history(format!("CMD {}", go_quote_list(&args)), false, created);
                state.config.config.cmd = Some(args);
                state.config.config.args_escaped = true;
                state.cmd_set = true;
            }
            CommandKind::Entrypoint(line) => {
                let args = self.with_shell(state, &line.args, line.prepend_shell);
                state.history(
                    format!("ENTRYPOINT {}", go_quote_list(&args)),
                    false,
                    created,
                );
                state.config.config.entrypoint = if args.is_empty() { None } else { Some(args) };
                if !state.cmd_set {
                    state.config.config.cmd = None;
                }
            }
            CommandKind::Shell(shell) => {
                state.config.config.shell = shell.clone();
                state.history(format!("SHELL [{}]", shell.join(" ")), false, created);
            }
            CommandKind::Onbuild(expression) => {
                state.config.config.on_build.push(expression.clone());
            }
            CommandKind::Healthcheck(health) => {
                let healthcheck = match health {
                    ParsedHealthcheck::None => Healthcheck {
                        test: vec!["NONE".to_owned()],
                        ..Healthcheck::default()
                    },
                    ParsedHealthcheck::Check {
                        test,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => Healthcheck {
                        test: test.clone(),
                        interval: interval.as_nanos() as i64,
                        timeout: timeout.as_nanos() as i64,
                        start_period: start_period.as_nanos() as i64,
                        start_interval: start_interval.as_nanos() as i64,
                        retries: i64::from(*retries),
                    },
                };
                state.history(
                    format!("HEALTHCHECK {:?}", healthcheck.test),
                    false,
                    created,
                );
                state.config.config.healthcheck = Some(healthcheck);
            }
            CommandKind::Workdir(word) => {
                let path = self.expand(command, &word.value, state)?;
                let workdir = normalize_workdir(&state.config.config.working_dir, &path);
                state.config.config.working_dir = workdir.clone();
                if workdir == "/" {
                    state.history(format!("WORKDIR {workdir}"), false, created);
                    return Ok(false);
                }
                let name = format!("WORKDIR {workdir}");
                let owner = if state.config.config.user.is_empty() {
                    None
                } else {
                    Some(
                        resolve_owner(&state.config.config.user, &state.view())
                            .map_err(|e| self.located(command, Code::Instruction, e.to_string()))?,
                    )
                };
                let key = CacheKey::new("WORKDIR")
                    .text("parent", &state.key)
                    .text("path", &workdir)
                    .owner("owner", owner)
                    .finish();
                let view = state.view();
                let inputs = vec![
                    ("WORKDIR".to_owned(), workdir.clone()),
                    ("owner".to_owned(), describe_owner(owner)),
                ];
                let ran = self.layer_step(ctx, &name, &key, false, inputs, state, |upper| {
                    if view
                        .lookup_follow(Path::new(&workdir))
                        .is_some_and(|f| f.metadata.is_dir())
                    {
                        return Ok(());
                    }
                    let owner = owner.unwrap_or(crate::fs::users::Owner { uid: 0, gid: 0 });
                    crate::ops::copy::ensure_dir(upper, Path::new(&workdir), &view, owner)
                        .map(drop)
                        .map_err(Into::into)
                })?;
                state.history(name, true, created);
                return Ok(ran);
            }
            CommandKind::Run(run) => {
                return self.run_step(ctx, command, run, state);
            }
            CommandKind::Copy(copy) => {
                return self.copy_step(
                    ctx,
                    command,
                    state,
                    CopyArgs {
                        is_add: false,
                        paths: &copy.paths,
                        from: copy.from.as_ref().map(|w| w.value.as_str()),
                        chown: copy.chown.as_ref().map(|w| w.value.as_str()),
                        chmod: copy.chmod.as_ref().map(|w| w.value.as_str()),
                        excludes: &copy.excludes,
                        link: copy.link,
                        parents: copy.parents,
                        unpack: Some(false),
                        checksum: None,
                        keep_git_dir: None,
                    },
                );
            }
            CommandKind::Add(add) => {
                return self.copy_step(
                    ctx,
                    command,
                    state,
                    CopyArgs {
                        is_add: true,
                        paths: &add.paths,
                        from: None,
                        chown: add.chown.as_ref().map(|w| w.value.as_str()),
                        chmod: add.chmod.as_ref().map(|w| w.value.as_str()),
                        excludes: &add.excludes,
                        link: add.link,
                        parents: false,
                        unpack: add.unpack,
                        checksum: add.checksum.as_ref().map(|w| w.value.as_str()),
                        keep_git_dir: add.keep_git_dir,
                    },
                );
            }
        }
        Ok(false)
    }

    pub(crate) fn expand_pairs(
        &self,
        command: &Command,
        pairs: &[KeyValue],
        state: &StageState,
    ) -> Result<Vec<(String, String)>, BuildError> {
        pairs
            .iter()
            .map(|pair| {
                Ok((
                    self.expand(command, &pair.key.value, state)?,
                    self.expand(command, &pair.value.value, state)?,
                ))
            })
            .collect()
    }

    pub(crate) fn with_shell(
        &self,
        state: &StageState,
        args: &[String],
        prepend_shell: bool,
    ) -> Vec<String> {
        if !prepend_shell {
            return args.to_vec();
        }
        let mut full: Vec<String> = if state.config.config.shell.is_empty() {
            DEFAULT_SHELL.iter().map(|s| (*s).to_owned()).collect()
        } else {
            state.config.config.shell.clone()
        };
        full.push(args.join(" "));
        full
    }
}

/// Instructions that produce a layer (and a numbered step in the progress view).
pub(crate) fn changes_filesystem(kind: &CommandKind) -> bool {
    matches!(
        kind,
        CommandKind::Run(_) | CommandKind::Copy(_) | CommandKind::Add(_) | CommandKind::Workdir(_)
    )
}

/// The values to mask in output: secret build arguments and `--secret`s (as text, without a
/// trailing newline), longest first so a value containing another is masked whole.
pub(crate) fn secret_values(options: &BuildOptions) -> Vec<String> {
    let args = options
        .secret_args
        .iter()
        .filter_map(|name| options.plan.build_args.get(name).cloned());
    let secrets = options.secrets.values().filter_map(|bytes| {
        std::str::from_utf8(bytes)
            .ok()
            .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
    });
    let mut values: Vec<String> = args.chain(secrets).filter(|v| !v.is_empty()).collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.dedup();
    values
}

/// `line` with every occurrence of each of `values` replaced by [`MASK`].
pub(crate) fn mask_secrets(line: &str, values: &[String]) -> String {
    values.iter().fold(line.to_owned(), |line, value| {
        line.replace(value.as_str(), MASK)
    })
}
