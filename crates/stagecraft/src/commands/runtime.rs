//! Shared plumbing for commands that touch the store: opening it, leases, clean interrupts.

use super::CommandError;
pub(crate) use stagecraft_build::{
    block_on, fill_output_dir, registry, write_archive_to, write_output_file,
};
use stagecraft_store::Store;

/// Opens the store and takes a lease for the rest of the command: content a command writes
/// (blobs, then the tag that makes them reachable) must not be pruned in between. The lease
/// removes what killed commands left in the store's `ingest/`; SIGINT and SIGTERM from now on
/// remove this command's own scratch files before it exits.
pub(crate) fn open_store_leased() -> Result<(Store, stagecraft_store::Lease), CommandError> {
    let store = open_store()?;
    let lease = store
        .lease()
        .map_err(|e| CommandError(format!("error: locking the store: {e}")))?;
    stop_cleanly_on_signals(store.clone())?;
    Ok((store, lease))
}

/// On SIGINT or SIGTERM: remove this process's scratch files and directories (and partial
/// outputs) and exit with 130. Running `RUN` steps stop by themselves: their helpers cancel
/// when this process goes away, and every mount lives in their private namespaces.
fn stop_cleanly_on_signals(store: Store) -> Result<(), CommandError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| CommandError(format!("error: installing signal handlers: {e}")))?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            eprintln!("interrupted (signal {signal}): cleaning up");
            store.remove_own_scratch();
            std::process::exit(130);
        }
    });
    Ok(())
}

/// Opens the store at `$STAGECRAFT_ROOT` or the default location, removing what killed
/// commands left in it.
pub(crate) fn open_store() -> Result<Store, CommandError> {
    let store = match std::env::var_os("STAGECRAFT_ROOT") {
        Some(root) => Store::open(std::path::PathBuf::from(root)),
        None => Store::open_default(),
    };
    let store = store.map_err(|e| {
        CommandError(format!(
            "error: opening the store: {e}\n  = help: set STAGECRAFT_ROOT to a writable directory"
        ))
    })?;
    // Every command removes what killed ones left behind (the first lease does that), unless a
    // prune or verify holds the store: then that one removes it. Best effort, like the sweep.
    let _ = store.try_lease();
    Ok(store)
}
