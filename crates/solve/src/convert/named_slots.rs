//! The state of a build's named contexts (`--build-context`), apart from the code that fills
//! it (`named.rs`), so the build's shared state can hold it without importing the conversion
//! that uses the build's state.

use crate::fs::local_context::LocalContext;
use crate::options::NamedContext;
use crate::outcome::{BuildError, Material};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// A build's named contexts, shared by every platform's graph.
pub(crate) struct NamedContexts {
    pub(super) slots: BTreeMap<String, Slot>,
}

/// One named context.
pub(super) struct Slot {
    pub(super) source: NamedContext,
    /// The files of a directory, checkout or download: read (or fetched) once, by the first
    /// stage of any graph that needs them. The error is shared, reported at each use.
    pub(super) files: OnceLock<Result<Fetched, Arc<BuildError>>>,
}

/// The files of a named context, ready to copy.
pub(super) struct Fetched {
    pub(super) context: LocalContext,
    /// What the build took from outside for it (a commit, a download), for provenance.
    pub(super) material: Option<Material>,
    /// How progress names loading it (after `[context NAME]`).
    pub(super) title: String,
    /// The history text of the layer it gives a stage, as BuildKit describes the snapshot.
    pub(super) description: String,
}
