//! Kube-free spec types for everything pilot reads: Istio's
//! `networking.istio.io` VirtualService, DestinationRule, Sidecar, ServiceEntry
//! and WorkloadEntry, the Kubernetes Gateway API (`gateway.networking.k8s.io`),
//! Contour's HTTPProxy and Emissary's Mapping,
//! `security.istio.io`
//! PeerAuthentication, RequestAuthentication and AuthorizationPolicy,
//! `telemetry.istio.io` Telemetry, the older
//! `config.istio.io/v1alpha2` RouteRule and DestinationPolicy, trimmed
//! Kubernetes kinds, and the `rudder-mesh` mesh config.
//!
//! ```text
//!  YAML / kube watch ─► [ rudder-config: typed specs ] ─► registry (validate, store)
//!                          ▲ you are here                  ─► model Snapshot ─► xDS
//! ```
//!
//! Why a separate crate: the Kubernetes crate wraps these specs with kube's
//! `CustomResource` derive and generates CRD YAML from their `JsonSchema`, while
//! the directory source and `pilot validate` need no kube at all.
//!
//! Faithfulness rules:
//! - Istio specs use Istio's camelCase field names and reject unknown fields
//!   (`deny_unknown_fields`), so a typo is an error naming the field instead of
//!   a silently ignored rule.
//! - Durations stay strings (`"10s"`, `"1.5s"`, `"100ms"`); the registry parses
//!   them during validation so the error can name the field.
//! - Numbers users can get wrong in sign (weights, attempts, statuses) are
//!   signed, so a negative value reaches validation instead of failing as a
//!   type error with a less helpful message.
//! - Kubernetes kinds are trimmed to the fields Rudder uses and ignore the rest.
//!
//! Where this sits among the other parts, and the contracts between them:
//! `docs/architecture.md` at the repository root.

#![forbid(unsafe_code)]

pub mod contour;
pub mod destination_rule;
pub mod emissary;
pub mod gateway;
pub mod gateway_api;
pub mod kube;
pub mod mesh;
pub mod meta;
pub mod security;
pub mod service_entry;
pub mod sidecar;
pub mod telemetry;
pub mod v1alpha2;
pub mod virtual_service;

pub use destination_rule::DestinationRuleSpec;
pub use gateway::GatewaySpec;
pub use mesh::MeshConfigSpec;
pub use meta::{ObjectMeta, Resource, StringMatch};
pub use security::{AuthorizationPolicySpec, PeerAuthenticationSpec, RequestAuthenticationSpec};
pub use service_entry::{ServiceEntrySpec, WorkloadEntrySpec};
pub use sidecar::SidecarSpec;
pub use telemetry::TelemetrySpec;
pub use v1alpha2::{DestinationPolicySpec, RouteRuleSpec};
pub use virtual_service::VirtualServiceSpec;

/// API groups of the Istio kinds Rudder reads.
pub mod groups {
    /// `networking.istio.io` (VirtualService, DestinationRule, Sidecar, Gateway, and kinds Rudder does not serve).
    pub const NETWORKING: &str = "networking.istio.io";
    /// `config.istio.io` (v1alpha2 RouteRule and DestinationPolicy).
    pub const CONFIG: &str = "config.istio.io";
    /// Versions of `networking.istio.io` accepted for VirtualService, DestinationRule, Sidecar, ServiceEntry, WorkloadEntry and Gateway (same spec per kind).
    pub const NETWORKING_VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];
    /// The only `config.istio.io` version with RouteRule and DestinationPolicy.
    pub const CONFIG_VERSION: &str = "v1alpha2";
    /// `security.istio.io` (PeerAuthentication, RequestAuthentication, AuthorizationPolicy).
    pub const SECURITY: &str = "security.istio.io";
    /// Versions of `security.istio.io` accepted (same spec).
    pub const SECURITY_VERSIONS: [&str; 2] = ["v1", "v1beta1"];
    /// `telemetry.istio.io` (Telemetry).
    pub const TELEMETRY: &str = "telemetry.istio.io";
    /// Versions of `telemetry.istio.io` accepted (same spec).
    pub const TELEMETRY_VERSIONS: [&str; 2] = ["v1", "v1alpha1"];
}

#[cfg(test)]
mod tests;
