//! Sidecar injection: the mutating admission webhook and offline kube-inject.
//!
//! ```text
//!  kubectl apply ─► API server ──AdmissionReview──► [ injector serve :15017 ]
//!                       ▲                                   │ admission::review
//!                       └────── JSON patch (diff) ◄─────────┤
//!  injector kube-inject -f app.yaml ─► kube_inject ─────────┤
//!                                                           ▼
//!                                     inject(pod, ctx): pure Pod -> Pod
//!                                       + rudder-init (proxy-init: iptables)
//!                                       + rudder-proxy (agent ─► Envoy ─► pilot :15012, TLS)
//!
//!  kubectl apply (Istio rule) ─► API server ──AdmissionReview──► POST /validate
//!                                 validation::validate_review: the registry's loader,
//!                                 per object; errors refuse the apply
//!
//!  no --tls-cert on a cluster: cluster_cert ─► Secret rudder-injector-tls (serve it)
//!                                          └─► rudder-sidecar-injector and
//!                                              rudder-validator caBundle
//! ```
//!
//! The core is [`inject()`], a pure function on a pod held as
//! `serde_json::Value` (so fields it does not know survive untouched), driven
//! by the template [`Values`]. The webhook diffs the injected pod against the
//! original into a JSON patch, as Istio does; kube-inject rewrites a YAML
//! stream. Names and ports come from `rudder_model::well_known`.
//!
//! Where this sits among the other parts, and the contracts between them:
//! `docs/architecture.md` at the repository root.

#![forbid(unsafe_code)]

pub mod admission;
pub mod capture;
pub mod cluster_cert;
pub mod decision;
pub mod inject;
pub mod kube_inject;
pub mod kubeapi;
pub mod pod;
pub mod probes;
pub mod server;
pub mod serving_cert;
pub mod sidecar;
pub mod template;
pub mod tls;
pub mod validation;
pub mod version;

pub use admission::{review, Outcome, ReviewContext, ReviewError};
pub use decision::{NamespacePolicy, SkipReason};
pub use inject::{inject, Decision, InjectContext};
pub use kube_inject::{kube_inject, KubeInjectError};
pub use pod::PodError;
pub use template::{CertMode, NativeSidecars, TemplateError, Values};
pub use validation::validate_review;
