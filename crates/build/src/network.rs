//! The process's one network runtime and registry client.

use crate::error::{Error, Result};
use stagecraft_registry::{Registry, RegistryOptions};
use std::sync::Arc;

/// Runs a registry transfer on the process's one network runtime. One runtime for the whole
/// process matters: HTTP connections are pooled per registry and belong to the runtime that
/// opened them, so a second runtime would find them dead.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    type Shared = std::result::Result<tokio::runtime::Runtime, Arc<std::io::Error>>;
    static RUNTIME: std::sync::OnceLock<Shared> = std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(Arc::new)
    });
    match runtime {
        Ok(runtime) => Ok(runtime.block_on(future)),
        Err(e) => Err(Error::Runtime(Arc::clone(e))),
    }
}

/// A registry client; `insecure` registries are reached over plain HTTP (localhost and
/// 127.0.0.0/8 always are).
pub fn registry(insecure: &[String]) -> Registry {
    Registry::new(RegistryOptions {
        insecure: insecure.to_vec(),
    })
}
