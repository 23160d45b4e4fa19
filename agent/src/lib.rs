//! The sidecar agent (pilot-agent): Envoy bootstrap, supervision, hot restart.
//!
//! ```text
//!   pod env + labels file ─┐                      pilot (ADS :15010)
//!   --cert-dir (watched) ──┤                           ▲
//!                          ▼                           │ xds-grpc
//!   agent ──bootstrap──► Envoy epoch N ◄──hot restart── Envoy epoch N+1
//!     │  ▲                  admin 127.0.0.1:15009, Prometheus :15090
//!     │  └── /healthz/ready :15021, /stats/prometheus + /quitquitquit :15020
//!     ├── [ you are here ]
//!     └── with --ca-address: key + CSR ──TLS──► pilot's CA (:15012); renews at half life;
//!         file mode: writes --cert-dir (hot restart) · SDS mode: serves `default`/`ROOTCA`
//!         on a Unix socket (no restart)
//! ```
//!
//! The library holds the pure parts that others call ([`bootstrap()`], the
//! Envoy command line in [`envoy::args`], label parsing in [`pod`],
//! certificate checks in [`certs`]) and the runtime pieces the thin `agent`
//! binary wires together ([`supervisor`], [`server`], [`watch`], [`wait`]).
//!
//! Where this sits among the other parts, and the contracts between them:
//! `docs/architecture.md` at the repository root.

#![forbid(unsafe_code)]

pub mod admin;
pub mod app_probe;
pub mod bootstrap;
pub mod certs;
pub mod drain;
pub mod envoy;
pub mod identity;
pub mod pod;
pub mod renew;
pub mod sds;
pub mod server;
pub mod state;
pub mod supervisor;
pub mod wait;
pub mod watch;

pub use bootstrap::{
    bootstrap, BootstrapConfig, CertSource, DiscoveryAddress, FileSecrets, XdsMode,
};
