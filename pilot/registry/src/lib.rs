//! pilot's registry: typed objects in, validated immutable snapshots out.
//!
//! ```text
//!  DirectorySource (notify) ─┐            ┌──────────────┐   debounce    ┌───────────────────────┐
//!  Kubernetes watchers ──────┴─ Sink ───► │ Store         │ ────────────► │ build ─► Arc<Snapshot> │ ─► watch ─► xDS
//!  pilot validate (offline) ─────────────►│ (last good)   │               └───────────────────────┘
//!                                         └──────────────┘
//!            ▲ this crate: load, store, validate, build, publish
//! ```
//!
//! - [`load`]: YAML/JSON files → typed [`Object`]s with origins, or diagnostics.
//! - [`store`]: the [`Sink`] contract sources call, and the [`Store`] with
//!   last-good semantics.
//! - [`compile`] and [`build`]: spec → model, with Istio's validation rules.
//! - [`discovery`]: mesh config `discoverySelectors` (namespaces pilot ignores).
//! - [`registry`]: debounced publishing on a `watch` channel.
//! - [`directory`]: `--config-dir` (read + watch); [`validate`]: `pilot validate`.
//! - [`unsupported`]: naming the routing kinds Rudder does not serve.
//!
//! Where this sits among the other parts, and the contracts between them:
//! `docs/architecture.md` at the repository root.

#![forbid(unsafe_code)]

pub mod build;
pub mod check;
pub mod compile;
pub mod directory;
pub mod discovery;
pub mod endpoints;
pub mod load;
pub mod object;
pub mod registry;
pub mod store;
pub mod unsupported;
pub mod validate;

pub use object::{Body, Kind, Object, ObjectKey, Origin, Rejected};
pub use registry::{Pacer, Registry, RegistryHandle, RegistryOptions};
pub use store::{Batch, Sink, Store};
pub use validate::{validate_paths, ValidationReport};
