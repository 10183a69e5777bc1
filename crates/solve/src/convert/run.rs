//! `RUN`: mounts prepared (cache, bind, tmpfs, secret, ssh), the command, environment and user
//! resolved, and the step run through the engine's [`stagecraft_exec::Run`] on top of the stage's layers.

use crate::cache::key::CacheKey;
use crate::cache::step::distinct_layers;
use crate::convert::config::{
    add_env, go_quote_list, heredoc_command, normalize_workdir, run_command_string,
};
use crate::mounts::{MountSpec, MountType, parse_mount_with};
use crate::ops::copy::{CopyPlan, CopySpec};
use crate::outcome::BuildError;
use crate::progress::{Event, Stream};
use crate::state::{BuildRun, StageState, StepCtx};
use stagecraft_dockerfile::{Code, Command};
use stagecraft_exec::{ExecSpec, Mount, MountKind, Network, Rootfs, SecretData, Security};
use stagecraft_imagefs::MergedView;
use stagecraft_store::ScratchDir;
use stagecraft_store::{CacheMountAccess, CacheMountLock};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A `RUN` command that ended unsuccessfully, with its exit code (128 + the signal when a
/// signal ended it).
#[derive(Debug, thiserror::Error)]
#[error("exit code: {0}")]
struct ExitCode(i32);

impl BuildRun<'_> {
    /// A `RUN` that asks for a privilege the build was not granted (`--allow`) is an error.
    pub(crate) fn check_entitlements(
        &self,
        command: &Command,
        run: &stagecraft_dockerfile::RunCommand,
    ) -> Result<(), BuildError> {
        let granted = &self.options.entitlements;
        if run.security == "insecure" && !granted.contains(&crate::Entitlement::SecurityInsecure) {
            // BuildKit's words; buildx's flag in the hint.
            return Err(BuildError::Step(
                self.diagnostic(
                    command,
                    Code::Entitlement,
                    "RUN --security=insecure: security.insecure is not allowed",
                )
                .with_hint("grant it with `stagecraft build --allow security.insecure`"),
            ));
        }
        if run.network == "host" && !granted.contains(&crate::Entitlement::NetworkHost) {
            let host = crate::Entitlement::NetworkHost;
            return Err(BuildError::Step(
                self.diagnostic(
                    command,
                    Code::Entitlement,
                    format!("RUN --network=host: entitlement {host} is not allowed"),
                )
                .with_hint(format!(
                    "the host's network (its interfaces, its loopback services) is an \
                     entitlement: pass `--allow {host}` to stagecraft build to grant it, as \
                     with `docker buildx build --allow {host}`; without --network=host the \
                     step runs in the build's network sandbox"
                )),
            ));
        }
        Ok(())
    }

    /// The network of a `RUN` step: its own `--network`, else the build's (the entitlement
    /// for `host` is checked by [`BuildRun::check_entitlements`]).
    fn run_network(&self, run: &stagecraft_dockerfile::RunCommand) -> Network {
        match run.network.as_str() {
            "host" => Network::Host,
            "none" => Network::None,
            _ => self.options.network,
        }
    }

    pub(crate) fn prepare_mounts(
        &self,
        command: &Command,
        run: &stagecraft_dockerfile::RunCommand,
        state: &StageState,
        cwd: &str,
    ) -> Result<PreparedMounts, BuildError> {
        let store = self.engine.store;
        let mut prepared = PreparedMounts {
            mounts: Vec::new(),
            key: String::new(),
            env: Vec::new(),
            _scratch: Vec::new(),
            _locks: Vec::new(),
        };
        let scratch_dir = || {
            store.scratch_dir("mount").map_err(|e| BuildError::Store {
                what: "creating a mount directory".into(),
                source: e,
            })
        };
        let mut ssh_mounts = 0;
        // Each cache mount once, with the strongest access the step asks for: two locks on one
        // mount, one of them exclusive, would wait for each other forever.
        let mut cache_locks: BTreeMap<String, CacheMountAccess> = BTreeMap::new();
        for word in &run.mounts {
            // Errors show the value as written: an expanded one may hold a secret.
            let written = &word.value;
            // BuildKit expands each field's value after the CSV split; an expansion error
            // (a secret build argument, say) keeps its own message.
            let mut expansion_error = None;
            let parsed = parse_mount_with(written, &mut |value| {
                self.expand(command, value, state).map_err(|e| {
                    let message = e.to_string();
                    expansion_error = Some(e);
                    message
                })
            });
            if let Some(error) = expansion_error {
                return Err(error);
            }
            let spec = parsed.map_err(|e| {
                self.located(command, Code::Mount, format!("--mount={written}: {e}"))
            })?;
            let target = |default: String| {
                let raw = spec.target.clone().unwrap_or(default);
                normalize_workdir(cwd, &raw)
            };
            match spec.kind {
                MountType::Cache => {
                    let id = spec.cache_id();
                    let dir = self.cache_mount_dir(command, &spec, &id, written)?;
                    let access = if spec.sharing == "locked" || spec.sharing == "private" {
                        CacheMountAccess::Exclusive
                    } else {
                        CacheMountAccess::Shared
                    };
                    let held = cache_locks.entry(id).or_insert(access);
                    *held = access.max(*held);
                    prepared.mounts.push(Mount {
                        target: target(String::new()),
                        kind: MountKind::Bind {
                            source: dir,
                            readonly: spec.readonly,
                        },
                    });
                }
                MountType::Tmpfs => prepared.mounts.push(Mount {
                    target: target(String::new()),
                    kind: MountKind::Tmpfs { size: spec.size },
                }),
                MountType::Bind => {
                    let source = spec.source.clone().unwrap_or_else(|| "/".to_owned());
                    let (copy_source, origin) = match &spec.from {
                        Some(from) => self.source_view(command, from)?,
                        None => (self.shared.context.copy_source(), "context".to_owned()),
                    };
                    let sources = [source.clone()];
                    let copy_spec = CopySpec::as_is(&sources);
                    let plan = CopyPlan::resolve(&copy_source, &copy_spec, &MergedView::default())
                        .map_err(|e| {
                            self.located(command, Code::Mount, format!("--mount={written}: {e}"))
                        })?;
                    let digest = plan
                        .content_digest()
                        .map_err(|e| self.located(command, Code::Mount, e.to_string()))?;
                    prepared.key.push_str(&format!(
                        "bind {} {} {origin} {digest}\n",
                        target(String::new()),
                        spec.readonly
                    ));
                    // A private copy: `rw` changes are thrown away and the context stays untouched.
                    let copy = scratch_dir()?;
                    plan.write(copy.path(), &MergedView::default())
                        .map_err(|e| BuildError::Operation(e.into()))?;
                    let single_file = plan_single_file(copy.path());
                    prepared.mounts.push(Mount {
                        target: target(String::new()),
                        kind: MountKind::Bind {
                            source: single_file.unwrap_or_else(|| copy.path().to_owned()),
                            readonly: spec.readonly,
                        },
                    });
                    prepared._scratch.push(copy);
                }
                MountType::Secret => {
                    let id = spec.secret_id();
                    let Some(value) = self.options.secrets.get(&id) else {
                        if spec.required {
                            return Err(self.located(command, Code::Secret, format!("secret {id} is required but was not provided (pass it with --secret id={id},src=FILE)")));
                        }
                        continue;
                    };
                    if let Some(name) = &spec.env {
                        prepared
                            .env
                            .push(format!("{name}={}", String::from_utf8_lossy(value)));
                        if spec.target.is_none() {
                            continue;
                        }
                    }
                    // Never written here: the executor serves it from a tmpfs of the step's own.
                    prepared.mounts.push(Mount {
                        target: target(format!("/run/secrets/{id}")),
                        kind: MountKind::Secret {
                            data: SecretData::new(value.clone()),
                            mode: spec.mode.unwrap_or(0o400),
                            uid: spec.uid.unwrap_or(0),
                            gid: spec.gid.unwrap_or(0),
                        },
                    });
                }
                MountType::Ssh => {
                    let id = spec.id.clone().unwrap_or_else(|| "default".to_owned());
                    let Some(socket) = self.options.ssh.get(&id) else {
                        if spec.required {
                            return Err(self.located(command, Code::Secret, format!("no SSH agent {id:?} was forwarded (pass it with --ssh {id}=$SSH_AUTH_SOCK)")));
                        }
                        continue;
                    };
                    // BuildKit numbers the default targets by the mount's place among the
                    // ssh mounts, and points SSH_AUTH_SOCK at the first one.
                    let target = target(format!("/run/buildkit/ssh_agent.{ssh_mounts}"));
                    ssh_mounts += 1;
                    if ssh_mounts == 1 {
                        prepared.env.push(format!("SSH_AUTH_SOCK={target}"));
                    }
                    prepared.mounts.push(Mount {
                        target,
                        kind: MountKind::Bind {
                            source: socket.clone(),
                            readonly: false,
                        },
                    });
                }
            }
        }
        // In id order, so that steps running in parallel cannot each hold a mount the other
        // waits for.
        for (id, access) in cache_locks {
            let lock = store
                .lock_cache_mount(&id, access)
                .map_err(|e| BuildError::Store {
                    what: format!("locking cache mount {id:?}"),
                    source: e,
                })?;
            prepared._locks.push(lock);
        }
        Ok(prepared)
    }

    /// The directory of cache mount `id`, made on first use: with the mount's `mode`, `uid` and
    /// `gid`, and seeded from `from=` (and `source=`, a path in it), which BuildKit uses as a
    /// new cache's initial content.
    pub(crate) fn cache_mount_dir(
        &self,
        command: &Command,
        spec: &MountSpec,
        id: &str,
        written: &str,
    ) -> Result<PathBuf, BuildError> {
        let store = self.engine.store;
        let store_error = |e: stagecraft_store::Error| BuildError::Store {
            what: format!("cache mount {id:?}"),
            source: e,
        };
        if let Some(dir) = store.use_cache_mount(id).map_err(store_error)? {
            return Ok(dir);
        }
        let fresh = store.new_cache_mount(id).map_err(store_error)?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(
            fresh.path(),
            std::fs::Permissions::from_mode(spec.mode.unwrap_or(0o755)),
        );
        let _ = std::os::unix::fs::chown(
            fresh.path(),
            Some(spec.uid.unwrap_or(0)),
            Some(spec.gid.unwrap_or(0)),
        );
        if let Some(from) = &spec.from {
            let (source, _) = self.source_view(command, from)?;
            let sources = [spec.source.clone().unwrap_or_else(|| "/".to_owned())];
            let seed = CopySpec::as_is(&sources);
            CopyPlan::resolve(&source, &seed, &MergedView::default())
                .and_then(|plan| plan.write(fresh.path(), &MergedView::default()))
                .map_err(|e| {
                    self.located(
                        command,
                        Code::Mount,
                        format!("--mount={written}: seeding the cache: {e}"),
                    )
                })?;
        }
        fresh.install().map_err(store_error)
    }

    pub(crate) fn run_step(
        &self,
        ctx: StepCtx,
        command: &Command,
        run: &stagecraft_dockerfile::RunCommand,
        state: &mut StageState,
    ) -> Result<bool, BuildError> {
        // Again for the RUNs of ONBUILD triggers, which `build` could not see.
        self.check_entitlements(command, run)?;
        let network = self.run_network(run);
        // The parser accepted only `sandbox` and `insecure`; the entitlement is checked.
        let security = if run.security == "insecure" {
            Security::Insecure
        } else {
            Security::Sandbox
        };
        let mut args = run.command.args.clone();
        if let Some(first) = run.command.heredocs.first() {
            args = heredoc_command(&args, &run.command.heredocs, first);
        }
        let args = self.with_shell(state, &args, run.command.prepend_shell);
        let env = state.scope.env_list();
        let cwd = if state.config.config.working_dir.is_empty() {
            "/".to_owned()
        } else {
            state.config.config.working_dir.clone()
        };
        let user = state.config.config.user.clone();
        let args_json = serde_json::to_string(&args).unwrap_or_default();
        let env_json = serde_json::to_string(&env).unwrap_or_default();
        let prepared = self.prepare_mounts(command, run, state, &cwd)?;
        let mut key = CacheKey::new("RUN")
            .text("parent", &state.key)
            .text("args", &args_json)
            .text("env", &env_json)
            .text("cwd", &cwd)
            .text("user", &user)
            .text("network", network_key(network))
            .text("security", security.name())
            // Emulated or not, what a RUN makes depends on the platform it runs as.
            .text(
                "platform",
                &self.plan.stages[ctx.stage].image_platform.to_string(),
            )
            // BuildKit keys the exec op on its extra hosts too: /etc/hosts is what RUN saw.
            .text(
                "extra hosts",
                &self
                    .options
                    .extra_hosts
                    .iter()
                    .map(|h| format!("{} {}", h.host, h.ip))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
            .text("mounts", &prepared.key);
        // As BuildKit's exec op meta, the limits are part of the step; keyed only when set, so
        // builds without them keep their keys.
        if !self.options.ulimits.is_empty() {
            let ulimits: Vec<String> = self
                .options
                .ulimits
                .iter()
                .map(ToString::to_string)
                .collect();
            key = key.text("ulimits", &ulimits.join(","));
        }
        if let Some(bytes) = self.options.shm_size {
            key = key.text("shm size", &bytes.to_string());
        }
        let key = key.finish();
        let mut run_env = env.clone();
        for entry in &prepared.env {
            let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
            add_env(&mut run_env, key, value);
        }
        let name = format!(
            "RUN {}",
            args.last().map(String::as_str).unwrap_or_default()
        );
        let history = format!(
            "RUN {} # buildkit",
            run_command_string(&args, &state.args, &state.scope, &self.options.secret_args)
        );
        let lowers = distinct_layers(&state.snapshots);
        let progress = self.engine.progress;
        let runner = self.engine.runner;
        let tail: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
        let mut inputs = vec![
            ("command".to_owned(), args.join(" ")),
            ("working directory".to_owned(), cwd.clone()),
            ("user".to_owned(), user.clone()),
            ("network".to_owned(), network_key(network).to_owned()),
            ("mounts".to_owned(), prepared.key.clone()),
        ];
        if security != Security::Sandbox {
            inputs.push(("security".to_owned(), security.name().to_owned()));
        }
        for limit in &self.options.ulimits {
            inputs.push((
                format!("ulimit {}", limit.resource.name()),
                limit.to_string(),
            ));
        }
        if let Some(bytes) = self.options.shm_size {
            inputs.push(("shm size".to_owned(), bytes.to_string()));
        }
        inputs.extend(env.iter().map(|entry| {
            let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
            let shown = if self.options.secret_args.contains(name) {
                // Enough to say it changed, without keeping the value in the store.
                format!(
                    "secret {}",
                    &CacheKey::new("secret build argument")
                        .text("value", value)
                        .finish()[..12]
                )
            } else {
                value.to_owned()
            };
            (format!("variable {name}"), shown)
        }));
        let ran =
            self.layer_step_with(ctx, &name, &key, false, inputs, state, |upper, work, id| {
                let mut spec = ExecSpec::new(
                    Rootfs::Overlay {
                        // overlayfs wants the topmost layer first.
                        lower_dirs: lowers.iter().rev().cloned().collect(),
                        upper_dir: upper.to_owned(),
                        work_dir: work.to_owned(),
                    },
                    args.clone(),
                );
                spec.env = run_env.clone();
                spec.cwd = cwd.clone();
                spec.user = user.clone();
                spec.network = network;
                spec.security = security;
                spec.extra_hosts = self.options.extra_hosts.clone();
                spec.ulimits = self.options.ulimits.clone();
                spec.shm_size = self.options.shm_size;
                spec.mounts = prepared.mounts.clone();
                let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
                let mut emit = |stream: stagecraft_exec::Stream, bytes: &[u8]| {
                    let stream = Stream::from(stream);
                    let buffer = &mut pending[usize::from(stream == Stream::Stderr)];
                    buffer.extend_from_slice(bytes);
                    while let Some(newline) = buffer.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=newline).collect();
                        let line = self.mask(&String::from_utf8_lossy(&line[..line.len() - 1]));
                        let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                        tail.push_back(line.clone());
                        if tail.len() > 20 {
                            tail.pop_front();
                        }
                        progress.event(Event::Log { id, stream, line });
                    }
                };
                let status = runner.run(&spec, &mut emit)?;
                for (i, rest) in pending.iter().enumerate() {
                    if !rest.is_empty() {
                        let line = self.mask(&String::from_utf8_lossy(rest));
                        tail.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push_back(line.clone());
                        progress.event(Event::Log {
                            id,
                            stream: if i == 0 {
                                Stream::Stdout
                            } else {
                                Stream::Stderr
                            },
                            line,
                        });
                    }
                }
                if !status.success() {
                    return Err(ExitCode(status.code()).into());
                }
                Ok(())
            });
        let ran = ran.map_err(|error| match error {
            // As before the errors had types: whatever failed while the step ran (the command,
            // its directories, its layer) is reported as the process's failure, at the RUN.
            message @ (BuildError::Operation(_)
            | BuildError::Store { .. }
            | BuildError::Io { .. }
            | BuildError::Layer { .. }) => {
                let tail: Vec<String> = tail
                    .into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .into_iter()
                    .collect();
                let mut text = format!(
                    "process {} did not complete successfully: {message}",
                    go_quote_list(&args)
                );
                if !tail.is_empty() {
                    text.push_str("\n  output (last lines):\n");
                    for line in tail {
                        text.push_str(&format!("    {line}\n"));
                    }
                }
                self.located(command, Code::Step, text)
            }
            other => other,
        })?;
        state.history(history, true, &self.shared.created);
        Ok(ran)
    }
}

/// Mounts prepared for one `RUN`, with what must stay alive while it runs.
pub(crate) struct PreparedMounts {
    mounts: Vec<Mount>,
    /// What the mounts contribute to the cache key (bind mount contents only: caches, tmpfs
    /// and secrets never change the key).
    key: String,
    /// `KEY=VALUE` for the command only (never in the key or the image): secrets exposed as
    /// environment variables, `SSH_AUTH_SOCK`.
    env: Vec<String>,
    /// Temporary directories holding bind mounts' copies, removed after the run.
    _scratch: Vec<ScratchDir>,
    /// Locks of the cache mounts (shared or exclusive, by their `sharing`), released after the
    /// run.
    _locks: Vec<CacheMountLock>,
}

/// A bind mount of a single file: the copy holds exactly one regular file, mount that file.
pub(crate) fn plan_single_file(dir: &Path) -> Option<PathBuf> {
    let mut entries = std::fs::read_dir(dir).ok()?;
    let first = entries.next()?.ok()?;
    (entries.next().is_none() && first.file_type().ok()?.is_file()).then(|| first.path())
}

/// A network mode as cache keys and `--explain` name it: `RUN --network`'s words, the sandbox
/// being the default (as BuildKit's exec op leaves its network unset for it).
fn network_key(network: Network) -> &'static str {
    match network {
        Network::Sandbox => "default",
        Network::Host => "host",
        Network::None => "none",
    }
}
