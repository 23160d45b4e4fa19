//! proxy-init: the nat-table rules that send a pod's TCP traffic to Envoy.
//!
//! ```text
//!  injector template / pod harness            this crate                         kernel
//!  ───────────────────────────────            ──────────                         ──────
//!  flags or PROXY_INIT_* env ──► CaptureConfig ──► rules() ──► Rules (data)
//!                                                   │ restore_text(Family)
//!                                                   ▼
//!                     iptables-save -t nat ──► plan ──► iptables-restore --noflush ──► nat PREROUTING/OUTPUT
//!                                                   (one atomic call per family)     ─► REDIRECT :15000 (Envoy)
//! ```
//!
//! The builder ([`rules`]) is pure so its output can be golden-tested and reused
//! by the local mesh harness; everything that touches the system goes through the
//! [`Executor`] seam ([`apply`], [`cleanup`]), so the apply logic is tested
//! without root, and `proxy-init verify` ([`verify::verify`]) proves the rules
//! work from inside the namespace.
//!
//! Typical use from another crate:
//!
//! ```
//! use rudder_proxy_init::{rules, CaptureConfig, Family};
//! let text = rules(&CaptureConfig::default()).restore_text(Family::V4);
//! assert!(text.contains("-j REDIRECT --to-ports 15000"));
//! ```
//!
//! Where this sits among the other parts, and the contracts between them:
//! `docs/architecture.md` at the repository root.
#![forbid(unsafe_code)]

pub mod apply;
pub mod backend;
pub mod config;
pub mod exec;
pub mod plan;
pub mod rules;
pub mod verify;

pub use apply::{apply, cleanup, ApplyError, Plan};
pub use backend::{detect, Backend, BackendChoice, BackendError};
pub use config::{CaptureConfig, Cidr, CidrSet, ConfigError, PortSet};
pub use exec::{Executor, RecordingExecutor, SystemExecutor};
pub use rules::{rules, Family, Rule, Rules};
