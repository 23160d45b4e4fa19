//! Pure xDS generation: `(&Snapshot, &Proxy) -> ProxyResources`.
//!
//! ```text
//!  store ─► model: Snapshot ─► [ xDS generation ] ─► ADS server ─► Envoy
//!                                 ▲ you are here
//!
//!  Snapshot ─► Generator::new ─┬─ generate(&Proxy) ─► ProxyResources (CDS EDS LDS RDS)
//!  (Arc, immutable)            │   shared Arc<Resource>s, versions = hash of model inputs
//!                              └─ check_consistency / to_json / to_static_bootstrap
//! ```
//!
//! Security (issue 9) lives in three modules: `tls` (upstream TLS contexts,
//! auto mTLS, secret references per certificate mode), `inbound` (the
//! served ports' chains per PeerAuthentication mode), `rbac`
//! (AuthorizationPolicy → Envoy RBAC, HTTP and network) and `jwt`
//! (RequestAuthentication → Envoy `jwt_authn`, before RBAC).
//!
//! The only crate in pilot that builds Envoy protos. It owns the output type,
//! [`ProxyResources`], which the ADS server serves without looking inside.
//! Generation is pure (no I/O, no clock): the same snapshot and proxy give the
//! same resources and versions, which is what makes golden tests and caching
//! work. [`to_json`] renders resources as canonical proto3 JSON (sorted keys)
//! for goldens, config dumps and "identical xDS" comparisons;
//! [`to_static_bootstrap`] turns them into a static Envoy bootstrap so that
//! `envoy --mode validate` can check them.
//!
//! Where this sits among the other parts, and the contracts between them:
//! `docs/architecture.md` at the repository root.
#![forbid(unsafe_code)]

mod bootstrap;
mod cluster;
mod common;
mod consistency;
mod content;
mod endpoint;
/// Test builders (model fixtures, `envoy --mode validate`, the version
/// ledger): they run processes, so only tests and examples get them, through
/// the `testing` feature.
#[cfg(any(test, feature = "testing"))]
pub mod fixtures;
mod gateway;
mod generator;
mod hcm;
mod http_route;
mod inbound;
mod json;
mod jwt;
mod listener;
mod proxy;
mod rbac;
mod rds;
pub mod resources;
mod sds;
mod telemetry;
mod tls;
mod version;

pub use bootstrap::{to_static_bootstrap, BootstrapError};
pub use consistency::{check_consistency, internal_errors};
pub use generator::{generate, Generator};
pub use json::{any_to_json, descriptor_pool, resource_to_json, to_json, JsonError};
pub use jwt::FAKE_JWKS;
pub use proxy::{inbound_ports, resolve_proxy, InboundPort};
pub use resources::{same_versions, Content, ProxyResources, Resource, TypeUrl};
pub use version::GENERATOR_HASH;
