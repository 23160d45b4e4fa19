//! pilot's Kubernetes source: kube-rs watchers feeding the registry, the
//! Istio CRDs, and status conditions on route rules. The only pilot crate
//! that names `kube`.
//!
//! ```text
//!  API server ──list/watch──► [ rudder-kube ]                    ┌──────────────────────┐
//!   Namespaces, Services,      source.rs: watcher per kind ─Sink─► rudder-registry store │─► snapshot ─► xDS
//!   EndpointSlices, Pods,      resources.rs: trimmed types       └──────────┬───────────┘
//!   rudder-mesh ConfigMap,                                                  │ diagnostics
//!   VS/DR/RouteRule/DP   ◄──PATCH status── status.rs ◄── lease.rs (one writer)
//!   CRD YAML ◄── crds.rs (CustomResource over rudder-config specs) ── bin rudder-crds
//! ```
//!
//! Everything after the store is shared with the directory source, so a
//! cluster and a directory holding the same objects serve identical xDS.

#![forbid(unsafe_code)]

pub mod crds;
pub mod lease;
pub mod resources;
pub mod run;
pub mod source;
pub mod status;
pub mod structural;

pub use crds::{crds, crds_yaml, Condition, CrdError, RuleStatus};
pub use lease::{default_identity, LeaseOptions, STATUS_LEASE};
pub use run::KubeRuntime;
pub use source::{connect, scope_of, KubeOptions, KubeSource, SourceError, WATCHED_KINDS};
pub use status::{RuleIndex, StatusOptions, StatusWriter};

/// Where Rudder is installed (Settled details: `rudder-system`).
pub const INSTALL_NAMESPACE: &str = "rudder-system";
