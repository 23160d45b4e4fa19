//! rudder: the local mesh runner (`rudder mesh ...`) and, later, istioctl-like commands.
//!
//! ```text
//!  DIR of Kubernetes YAML ─► [ rudder mesh up ] ──────────────────────────────┐
//!    manifest → plan (injector::inject decides sidecars, VIPs allocated)     │ writes Namespaces,
//!        │                                                                    │ Services, Pods, rules
//!        ▼                 <state>/ca: root + token key ─► pilot --ca-dir, :15012 ▼
//!  harness Net: bridge rdr-<name> ── pod netns ── proxy-init, agent(1337)→Envoy ◄─xDS── pilot serve
//!                                  └─ pod netns ── app (python3 app.py), DNAT if unmeshed   --config-dir
//!        ▲ you are here: runner (pods, files, supervisor), down/status/apply/load
//! ```
//!
//! The runner turns Deployments into pods exactly as a cluster would: the
//! injector library decides and rewrites each pod, and the runner executes
//! the resulting containers (init containers, the sidecar with its postStart
//! `agent wait`, then the apps) as host processes inside the pod's network
//! namespace, with per-pod files bind-mounted where the template expects
//! them. pilot reads the resulting Pods from a directory, like it would watch
//! an API server. Module by concern:
//!
//! - [`manifest`]: reading the YAML; [`container`]: containers, env, probes, volumes;
//! - [`plan`]: VIPs, pods, injection (pure); [`render`], [`dnat`]: files and rules (pure);
//! - [`pods`]: running one pod; [`supervise`]: readiness → pilot + DNAT;
//! - [`pilot`]: pilot's config dir and process; [`record`]: what `down` needs;
//! - [`identity`]: the mesh root, the token key and each pod's token;
//! - [`runner`]: `up`, holding its running `instance`; [`admin`]: `down`,
//!   `status`, `apply`, `load`; [`traffic`]: the split.
//! - istioctl-like commands: [`ctl`] (how they reach pilot and the agents),
//!   [`proxy_status`], [`proxy_config`], [`analyze`].
//!
//! Where this sits among the other parts, and the contracts between them:
//! `docs/architecture.md` at the repository root.

#![forbid(unsafe_code)]

pub mod admin;
pub mod analyze;
pub mod container;
pub mod ctl;
pub mod dnat;
pub mod identity;
mod instance;
pub mod manifest;
pub mod pilot;
pub mod plan;
pub mod pods;
pub mod prereq;
pub mod proxy_config;
pub mod proxy_status;
pub mod record;
pub mod render;
pub mod runner;
pub mod signals;
pub mod supervise;
pub mod traffic;

/// The default instance name.
pub const DEFAULT_NAME: &str = "rudder";
