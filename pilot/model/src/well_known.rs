//! Well-known ports, labels, identities and paths (see docs/architecture.md,
//! "Contracts").

/// Where proxy-init REDIRECTs captured traffic (outbound, and inbound by default).
pub const PROXY_PORT: u16 = 15000;
/// pilot: xDS (ADS, gRPC, plaintext).
pub const XDS_PORT: u16 = 15010;
/// pilot: xDS and certificate signing over TLS.
pub const XDS_TLS_PORT: u16 = 15012;
/// pilot: `/metrics`, `/ready`, `/debug/*`.
pub const MONITORING_PORT: u16 = 15014;
/// injector: admission webhook (HTTPS).
pub const INJECTOR_PORT: u16 = 15017;
/// agent: merged Prometheus metrics, `/quitquitquit` and the rewritten app
/// probes (`/app-health/...`).
pub const AGENT_METRICS_PORT: u16 = 15020;
/// agent: `/healthz/ready`.
pub const AGENT_HEALTH_PORT: u16 = 15021;
/// Envoy: Prometheus stats.
pub const ENVOY_STATS_PORT: u16 = 15090;
/// Envoy: admin (bound to 127.0.0.1 only).
pub const ENVOY_ADMIN_PORT: u16 = 15009;

/// The UID and GID Envoy (and the agent) run as; never captured on the way out.
pub const PROXY_UID: u32 = 1337;
/// See [`PROXY_UID`].
pub const PROXY_GID: u32 = 1337;

/// Ports proxy-init keeps out of inbound capture by default (agent and Envoy stats).
pub const DEFAULT_EXCLUDED_INBOUND_PORTS: [u16; 3] =
    [AGENT_METRICS_PORT, AGENT_HEALTH_PORT, ENVOY_STATS_PORT];

/// Source address Envoy uses when it delivers inbound traffic to the app (Istio ≥ 1.10).
pub const INBOUND_PASSTHROUGH_SOURCE: &str = "127.0.0.6";
/// Its IPv6 twin (Istio's): proxy-init puts it on `lo` when it captures IPv6.
pub const INBOUND_PASSTHROUGH_SOURCE_V6: &str = "::6";

/// Default Kubernetes DNS domain suffix.
pub const DEFAULT_DOMAIN_SUFFIX: &str = "cluster.local";
/// Default SPIFFE trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// Rudder's install namespace (also the default mesh root namespace).
pub const SYSTEM_NAMESPACE: &str = "rudder-system";

/// Namespace label that turns injection on (`enabled`) or off (`disabled`).
pub const INJECTION_NAMESPACE_LABEL: &str = "istio-injection";
/// Pod label or annotation overriding the namespace's injection default.
pub const INJECT_POD_KEY: &str = "sidecar.istio.io/inject";
/// Annotation recording what the injector added.
pub const INJECT_STATUS_ANNOTATION: &str = "sidecar.istio.io/status";
/// Label marking meshed endpoints (auto mTLS uses it).
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// Label carrying a workload's version (subsets conventionally match on it).
pub const VERSION_LABEL: &str = "version";

/// Where the injector points an app container's rewritten probes, on
/// [`AGENT_METRICS_PORT`]: `/app-health/<container>/<livez|readyz|startupz>`.
pub const APP_HEALTH_PATH_PREFIX: &str = "/app-health/";
/// The sidecar's environment variable holding the app's original probes
/// (JSON: path under [`APP_HEALTH_PATH_PREFIX`] → probe), Istio's name.
pub const APP_PROBERS_ENV: &str = "ISTIO_KUBE_APP_PROBERS";

/// Where the agent keeps the workload certificates in file cert mode (its
/// `--cert-dir`; the injector mounts a writable volume there).
pub const CERT_DIR: &str = "/etc/certs";
/// The workload certificate chain's file name in [`CERT_DIR`].
pub const CERT_CHAIN_FILE: &str = "cert-chain.pem";
/// The workload key's file name in [`CERT_DIR`].
pub const KEY_FILE: &str = "key.pem";
/// The mesh root's file name: in [`CERT_DIR`], in [`ROOT_CERT_DIR`] (the
/// root ConfigMap's key) and in pilot's `--ca-dir`.
pub const ROOT_CERT_FILE: &str = "root-cert.pem";
/// Where the injector mounts the root ConfigMap.
pub const ROOT_CERT_DIR: &str = "/var/run/secrets/istio";
/// The agent's default `--ca-root`: [`ROOT_CERT_FILE`] in [`ROOT_CERT_DIR`].
pub const ROOT_CERT_PATH: &str = "/var/run/secrets/istio/root-cert.pem";
/// Where the injector mounts the projected service-account token.
pub const TOKEN_DIR: &str = "/var/run/secrets/tokens";
/// The token's file name in [`TOKEN_DIR`].
pub const TOKEN_FILE: &str = "istio-token";
/// The agent's default `--token-file`: [`TOKEN_FILE`] in [`TOKEN_DIR`].
pub const TOKEN_PATH: &str = "/var/run/secrets/tokens/istio-token";
/// The projected token's audience (pilot's TokenReview checks it).
pub const TOKEN_AUDIENCE: &str = "istio-ca";
/// The directory of the agent's SDS socket (SDS cert mode).
pub const WORKLOAD_SOCKET_DIR: &str = "/var/run/secrets/workload-spiffe-uds";
/// Where setup installs the real Envoy binary (0755, runnable by [`PROXY_UID`]);
/// the agent, the harness, the local-mesh runner and the tests fall back to it
/// when `ENVOY_BIN` is not set.
pub const INSTALLED_ENVOY_BIN: &str = "/opt/rudder/bin/envoy";

/// The agent's SDS socket (SDS cert mode): Envoy fetches `default` and `ROOTCA`
/// from it. Istio's path, so Istio-shaped pod specs keep working.
pub const SDS_SOCKET_PATH: &str = "/var/run/secrets/workload-spiffe-uds/socket";
