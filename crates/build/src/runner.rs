//! `RUN` through stagecraft's own namespace executor (this binary re-executed as its helper).

use crate::error::{Error, Result};
use stagecraft_exec::{ExecError, ExecSpec, ExitStatus, Network};
use stagecraft_layer::OverlayXattr;
use stagecraft_solve::progress::{Event, ProgressSink};
use stagecraft_store::Store;
use std::sync::{Arc, OnceLock};

/// Runs `RUN` steps with stagecraft's own namespace executor (this binary re-executed). One per
/// build: its network sandbox is the build's, started for the first step that needs it and
/// stopped when the runner is dropped.
pub struct NamespaceRunner<'a> {
    /// Where warnings go (the build's progress).
    progress: &'a dyn ProgressSink,
    executor: stagecraft_exec::Executor,
    /// A rootless build's directory for the per-run state, removed with the runner.
    _state: Option<stagecraft_store::ScratchDir>,
    /// The executor for [`Network::Sandbox`] steps, `None` when the sandbox could not start.
    sandboxed: OnceLock<Option<stagecraft_exec::Executor>>,
}

impl<'a> NamespaceRunner<'a> {
    /// An executor that re-executes this binary as its helper. A rootless build keeps the
    /// per-run state in a scratch directory of the store too: it writes nothing outside its
    /// store.
    pub fn new(store: &Store, progress: &'a dyn ProgressSink) -> Result<NamespaceRunner<'a>> {
        let helper = stagecraft_exec::HelperCommand::current_exe();
        let executor = stagecraft_exec::Executor::new(helper);
        Ok(match store.overlay_xattr() {
            OverlayXattr::User => {
                let state = store
                    .scratch_dir("exec")
                    .map_err(Error::store("creating the executor's state directory"))?;
                NamespaceRunner {
                    progress,
                    executor: executor.with_state_dir(state.path()),
                    _state: Some(state),
                    sandboxed: OnceLock::new(),
                }
            }
            OverlayXattr::Trusted => NamespaceRunner {
                progress,
                executor,
                _state: None,
                sandboxed: OnceLock::new(),
            },
        })
    }
}

impl<'a> NamespaceRunner<'a> {
    /// The executor for `network`, starting the build's sandbox on first use. When it cannot
    /// start, the steps get the host's network, and the user a warning: never silently.
    fn executor_for(&self, network: Network) -> (&stagecraft_exec::Executor, Network) {
        if network != Network::Sandbox {
            return (&self.executor, network);
        }
        let sandboxed =
            self.sandboxed.get_or_init(|| {
                match stagecraft_exec::NetworkSandbox::start(self.executor.helper()) {
                    Ok(sandbox) => Some(
                        self.executor
                            .clone()
                            .with_network_sandbox(Arc::new(sandbox)),
                    ),
                    Err(error) => {
                        self.progress.event(Event::Info {
                        context_files: None,
                        message: format!(
                        "warning: RUN steps get the host's network (its interfaces and loopback \
                         services): the build's network sandbox could not start: {error}\n  \
                         = help: BuildKit isolates RUN in a network of its own; for the same, \
                         install slirp4netns and allow network namespaces (a rootless build also \
                         needs /dev/net/tun mode 0666, as udev sets it); or pass --network=host \
                         to choose the host's network and silence this"
                    ),
                    });
                        None
                    }
                }
            });
        match sandboxed {
            Some(executor) => (executor, Network::Sandbox),
            None => (&self.executor, Network::Host),
        }
    }
}

impl stagecraft_exec::Run for NamespaceRunner<'_> {
    fn run(
        &self,
        spec: &ExecSpec,
        output: &mut dyn FnMut(stagecraft_exec::Stream, &[u8]),
    ) -> std::result::Result<ExitStatus, ExecError> {
        let (executor, network) = self.executor_for(spec.network);
        if network == spec.network {
            return executor.run(spec, output);
        }
        // The sandbox could not start: the step gets the host's network (the user was told).
        let fallback = ExecSpec {
            network,
            ..spec.clone()
        };
        executor.run(&fallback, output)
    }
}
