//! The ADS server: serves each Envoy the resources pilot hands it, over the
//! Aggregated Discovery Service, state-of-the-world and Delta, on one port.
//!
//! ```text
//!  model ─► xDS generation ─► ProxyResources ─watch─► [ ADS server ] ─gRPC─► Envoy
//!                             (per proxy, by pilot)      ▲ you are here
//! ```
//!
//! The server never reads the model: pilot implements [`ProxyDirectory`],
//! which maps a stream's node to a `watch::Receiver<Arc<ProxyResources>>`;
//! the server turns changes on that channel into xDS responses, keeping the
//! protocol state (versions, nonces, subscriptions, what each proxy holds)
//! per stream, never per node id (hot restarts run two streams per node).
//!
//! Where the rules live:
//! - `subscription`: wildcard and named subscriptions;
//! - [`order`]: push order, one response in flight per type, the warming
//!   trap, make-before-break removal;
//! - `sotw` and `delta`: request classification and responses for each
//!   protocol variant;
//! - [`auth`]: the credentials of a stream's client, checked by pilot's
//!   authorizer on the TLS port before the node is served;
//! - `stream`: the per-stream task; [`status`]: `/debug/syncz`;
//!   [`metrics`]: `/metrics`.
//!
//! Debouncing is not done here (the registry debounces snapshots); updates
//! that arrive while a type waits for its ACK coalesce to the newest.
//!
//! Where this sits among the other parts, and the contracts between them:
//! `docs/architecture.md` at the repository root.
#![forbid(unsafe_code)]

pub mod auth;
mod delta;
pub mod metrics;
pub mod node;
pub mod order;
mod server;
mod shared;
mod sotw;
pub mod status;
mod stream;
mod subscription;
pub mod transport;

pub use auth::{PeerCredentials, StreamAuthorizer};
pub use metrics::Metrics;
pub use node::{NodeError, NodeInfo};
pub use server::{bind, configure, AdsOptions, AdsServer, ServeError, LISTEN_BACKLOG};
pub use shared::ProxyDirectory;
pub use status::{ConnectionStatus, Nack, Names, Sent, TypeStatus};
pub use transport::AdsService;
