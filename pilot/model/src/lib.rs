//! The mesh model: Rudder's intermediate representation.
//!
//! ```text
//!  sources ─► store ─► [ model: Snapshot ] ─► xDS generation ─► ADS server
//!                         ▲ you are here
//! ```
//!
//! Everything here is plain data: no kube, tonic or Envoy types, no I/O. A
//! [`Snapshot`] is built from the store after a debounce and shared read-only
//! (`Arc<Snapshot>`); generators are pure functions of `(&Snapshot, &Proxy)`.
//! Maps are `BTreeMap` so iteration (and so generated output) is deterministic,
//! and every type derives `Hash` so resource versions can be computed from the
//! model inputs rather than from encoded protobuf (whose map fields have no
//! stable order).
//!
//! Security policies (PeerAuthentication, AuthorizationPolicy,
//! RequestAuthentication with the key sets pilot fetched) are compiled
//! IR in [`security`], with Istio's precedence rules (effective mTLS mode of
//! a workload port, the policies that apply to a workload).
//!
//! Per-proxy scoping (Sidecar, `exportTo`) is in [`scope`]: which services
//! and route tables a proxy sees, identified by a [`ScopeKey`].
//!
//! This crate is also the shared vocabulary of all binaries: node ids and node
//! metadata ([`node`]), well-known ports and labels ([`well_known`]), SPIFFE ids
//! ([`identity`]) and Envoy cluster names ([`names`]).
//!
//! Where this sits among the other parts, and the contracts between them:
//! `docs/architecture.md` at the repository root.

#![forbid(unsafe_code)]

pub mod backoff;
pub mod diagnostics;
pub mod duration;
pub mod gateway;
pub mod identity;
pub mod locality;
pub mod names;
pub mod node;
pub mod policy;
pub mod route;
pub mod scope;
pub mod secret;
pub mod security;
pub mod service;
pub mod snapshot;
pub mod sync;
pub mod telemetry;
pub mod well_known;

pub use diagnostics::{Diagnostic, Severity};
pub use gateway::Gateway;
pub use locality::Locality;
pub use node::{NodeId, NodeMetadata, Proxy};
pub use policy::*;
pub use route::*;
pub use scope::{EgressHost, EgressNamespace, OutboundMode, Scope, ScopeKey, Sidecar};
pub use secret::TlsSecret;
pub use security::*;
pub use service::*;
pub use snapshot::{MeshConfig, Snapshot};
pub use sync::SyncState;
pub use telemetry::{EffectiveTelemetry, Telemetries};
