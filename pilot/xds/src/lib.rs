//! Pure xDS generation: `(&Snapshot, &Proxy) -> ProxyResources`.
//!
//! ```text
//!  store ─► model: Snapshot ─► [ xDS generation ] ─► ADS server ─► Envoy
//!                                 ▲ you are here
//! ```
//!
//! The only crate in pilot that builds Envoy protos. It owns the output type,
//! [`ProxyResources`], which the ADS server serves without looking inside.
#![forbid(unsafe_code)]

pub mod resources;

pub use resources::{ProxyResources, Resource, TypeUrl};
