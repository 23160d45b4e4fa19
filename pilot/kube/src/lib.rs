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
//!   Ingress status.loadBalancer ◄── ingress_status.rs (Lease holder) ◄── Service rudder-ingressgateway
//!   CRD YAML ◄── crds.rs (CustomResource over rudder-config specs) ── bin rudder-crds
//!   Secret rudder-ca-root ◄──create once (Lease holder)── ca_root.rs ──► rudder-ca root ─┐
//!   ConfigMap rudder-ca-root-cert (every ns) ◄── root_cert.rs (Lease holder) ◄──────────┘
//!   TokenReview ◄── token_review.rs ◄── rudder-ca TokenReviewAuthenticator (15012)
//! ```
//!
//! Everything after the store is shared with the directory source, so a
//! cluster and a directory holding the same objects serve identical xDS.
//!
//! Where this sits among the other parts, and the contracts between them:
//! `docs/architecture.md` at the repository root.

#![forbid(unsafe_code)]

pub mod ca_root;
pub mod crds;
pub mod formats;
pub mod ingress_status;
pub mod lease;
pub mod resources;
pub mod root_cert;
pub mod run;
pub mod source;
pub mod status;
pub mod structural;
pub mod token_review;

pub use ca_root::{CaRoot, CaRootError, CaRootOptions, CA_ROOT_SECRET};
pub use crds::{crds, crds_yaml, Condition, CrdError, RuleStatus};
pub use lease::{default_identity, LeaseOptions, STATUS_LEASE};
pub use root_cert::{RootCertPublisher, ROOT_CERT_CONFIGMAP, ROOT_CERT_KEY};
pub use run::KubeRuntime;
pub use source::{connect, scope_of, KubeOptions, KubeSource, SourceError, WATCHED_KINDS};
pub use status::{RuleIndex, StatusOptions, StatusWriter};
pub use token_review::{KubeTokenReviewer, TokenReviewError};

/// Where Rudder is installed (Settled details: `rudder-system`).
pub const INSTALL_NAMESPACE: &str = "rudder-system";
