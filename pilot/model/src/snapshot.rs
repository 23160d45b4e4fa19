//! The immutable snapshot of the mesh that generators read.

use std::{
    collections::BTreeMap,
    hash::{Hash, Hasher},
    net::IpAddr,
    sync::Arc,
};

use crate::{
    diagnostics::Diagnostic,
    policy::DestinationRules,
    route::RouteTable,
    scope::{OutboundMode, Sidecar},
    secret::TlsSecret,
    security::SecurityPolicies,
    service::{selects, Endpoint, Hostname, Namespace, Service, Workload},
    well_known::{DEFAULT_DOMAIN_SUFFIX, DEFAULT_TRUST_DOMAIN, SYSTEM_NAMESPACE},
};

/// Mesh-wide settings (the `rudder-mesh` ConfigMap).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MeshConfig {
    /// DNS suffix, `cluster.local`.
    pub domain_suffix: String,
    /// SPIFFE trust domain, `cluster.local`.
    pub trust_domain: String,
    /// Namespace whose policies apply mesh-wide (`rudder-system`; Istio users
    /// set `istio-system`).
    pub root_namespace: String,
    /// `outboundTrafficPolicy.mode`: what sidecars without a Sidecar saying
    /// otherwise do with destinations outside the registry.
    pub outbound_mode: OutboundMode,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            domain_suffix: DEFAULT_DOMAIN_SUFFIX.into(),
            trust_domain: DEFAULT_TRUST_DOMAIN.into(),
            root_namespace: SYSTEM_NAMESPACE.into(),
            outbound_mode: OutboundMode::AllowAny,
        }
    }
}

/// Everything the generators know about the mesh at one point in time.
///
/// Build it with the public fields, then call [`Snapshot::seal`] to compute the
/// version and the lookup indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Mesh settings.
    pub mesh: MeshConfig,
    /// Namespaces by name.
    pub namespaces: BTreeMap<String, Namespace>,
    /// Services by FQDN.
    pub services: BTreeMap<Hostname, Service>,
    /// Endpoints by service FQDN, then service port.
    pub endpoints: BTreeMap<Hostname, BTreeMap<u16, Vec<Endpoint>>>,
    /// Pods by `namespace/name`.
    pub workloads: BTreeMap<String, Workload>,
    /// Compiled route rules, in precedence order: for the same host, the first
    /// (oldest) table wins whole, as Istio does for sidecars.
    pub route_tables: Vec<RouteTable>,
    /// Destination policies, indexed for Istio's lookup order (see
    /// [`Snapshot::destination_policy`]).
    /// Shared with the snapshots an endpoint-only rebuild derives from this
    /// one (`rebuild_endpoints`), so generators can tell a policy by address
    /// from one of those snapshots to the next.
    pub destination_rules: Arc<DestinationRules>,
    /// Sidecars, oldest first (see [`crate::scope`]).
    pub sidecars: Vec<Sidecar>,
    /// PeerAuthentications and AuthorizationPolicies (oldest first).
    pub security: SecurityPolicies,
    /// Telemetries and the mesh's telemetry defaults (see [`crate::telemetry`]).
    pub telemetry: crate::telemetry::Telemetries,
    /// Gateways, oldest first.
    pub gateways: Vec<crate::gateway::Gateway>,
    /// Route tables that bind to some gateway (`spec.gateways` naming one),
    /// oldest first; those that also name `mesh` are in `route_tables` too.
    pub gateway_route_tables: Vec<RouteTable>,
    /// TLS credentials from Secrets, by `namespace/name` (see
    /// [`crate::secret`]).
    pub secrets: BTreeMap<String, TlsSecret>,
    /// What validation found (errors: the object was skipped).
    pub diagnostics: Vec<Diagnostic>,
    /// Content hash of everything above but the diagnostics (set by `seal`).
    pub version: String,
    /// Content hash of the configuration alone: everything but endpoints,
    /// workloads and diagnostics (set by `seal`). Two snapshots with the same
    /// one differ only in pods and endpoints.
    pub config_version: String,
    /// Content hash of the configuration but the routes of the sidecars'
    /// route tables (set by `seal`): two snapshots with the same one and
    /// different `config_version`s differ only in those routes (and maybe
    /// in pods and endpoints). Their route tables name the same hosts, in
    /// the same order, for the same namespaces, to the same destinations.
    pub base_version: String,
    /// Pod key by IP (set by `seal`).
    pub workloads_by_ip: BTreeMap<IpAddr, String>,
}

impl Snapshot {
    /// Computes the version and indexes. Call after filling the fields.
    pub fn seal(mut self) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.mesh.hash(&mut h);
        self.namespaces.hash(&mut h);
        self.services.hash(&mut h);
        self.destination_rules.hash(&mut h);
        self.sidecars.hash(&mut h);
        self.security.hash(&mut h);
        self.telemetry.hash(&mut h);
        self.secrets.hash(&mut h);
        self.gateways.hash(&mut h);
        self.gateway_route_tables.hash(&mut h);
        // Listeners of headless Services carry their endpoints' addresses:
        // for the generators those are configuration.
        for (host, svc) in &self.services {
            if svc.is_headless() {
                self.endpoints.get(host).hash(&mut h);
            }
        }
        // What scopes read of the route tables (which hosts they name, for
        // whom, and where they send traffic), not their routes.
        self.route_tables.len().hash(&mut h);
        for t in &self.route_tables {
            crate::scope::hash_shape(t, &mut h);
        }
        self.base_version = format!("{:016x}", h.finish());
        self.route_tables.hash(&mut h);
        let config_version = format!("{:016x}", h.finish());
        self.seal_endpoints(config_version)
    }

    /// Whether some Service is headless (see [`Snapshot::seal`]).
    pub fn has_headless(&self) -> bool {
        self.services.values().any(Service::is_headless)
    }

    /// [`Snapshot::seal`] for a snapshot whose configuration is that of
    /// another sealed one, taken as it was (only workloads and endpoints
    /// were filled anew): `config_version` is that snapshot's, not hashed
    /// again.
    pub fn seal_endpoints(mut self, config_version: String) -> Self {
        self.workloads_by_ip = self
            .workloads
            .iter()
            .flat_map(|(key, w)| w.ips.iter().map(move |ip| (*ip, key.clone())))
            .collect();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        config_version.hash(&mut h);
        self.endpoints.hash(&mut h);
        self.workloads.hash(&mut h);
        self.version = format!("{:016x}", h.finish());
        self.config_version = config_version;
        self
    }

    /// The pod with this IP.
    pub fn workload_by_ip(&self, ip: &IpAddr) -> Option<&Workload> {
        self.workloads_by_ip
            .get(ip)
            .and_then(|k| self.workloads.get(k))
    }

    /// The FQDN of `name` as written in a rule of `namespace`: short names
    /// (`reviews`) resolve in the rule's namespace, `reviews.other` to
    /// `reviews.other.svc.<domain>`; FQDNs and wildcards stay as they are.
    pub fn resolve_host(&self, name: &str, namespace: &str) -> Hostname {
        resolve_host(name, namespace, &self.mesh.domain_suffix)
    }

    /// Services whose selector selects this pod (same namespace).
    pub fn services_for_workload<'a>(
        &'a self,
        w: &'a Workload,
    ) -> impl Iterator<Item = &'a Service> + 'a {
        self.services.values().filter(move |s| {
            s.namespace == w.namespace && !s.selector.is_empty() && selects(&s.selector, &w.labels)
        })
    }

    /// Route tables naming `host` that a proxy in `namespace` may see, in
    /// precedence order.
    pub fn route_tables_for<'a>(
        &'a self,
        host: &'a str,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a RouteTable> + 'a {
        self.route_tables
            .iter()
            .filter(move |t| t.visible_to(namespace) && t.hosts.iter().any(|h| h == host))
    }

    /// The DestinationPolicy a proxy in `namespace` uses for `host`: the
    /// client's namespace first, then the service's, then the root namespace
    /// ([`DestinationRules`]).
    pub fn destination_policy(
        &self,
        namespace: &str,
        host: &str,
    ) -> Option<&crate::policy::DestinationPolicy> {
        let service_ns = self.services.get(host).map(|s| s.namespace.as_str());
        self.destination_rules
            .lookup(&self.mesh.root_namespace, namespace, host, service_ns)
    }

    /// The effective mTLS mode of a workload on a target port (see
    /// [`SecurityPolicies::mtls_mode`]).
    pub fn mtls_mode(
        &self,
        namespace: &str,
        labels: &crate::service::Labels,
        port: u16,
    ) -> crate::security::MtlsMode {
        self.security
            .mtls_mode(&self.mesh.root_namespace, namespace, labels, port)
    }

    /// The telemetry of a workload (see [`crate::telemetry`]).
    pub fn telemetry_for(
        &self,
        namespace: &str,
        labels: &crate::service::Labels,
    ) -> crate::telemetry::EffectiveTelemetry {
        self.telemetry
            .effective(&self.mesh.root_namespace, namespace, labels)
    }

    /// The authorization policies that apply to a workload, in order.
    pub fn authz_for<'a>(
        &'a self,
        namespace: &'a str,
        labels: &'a crate::service::Labels,
    ) -> impl Iterator<Item = &'a crate::security::AuthzPolicy> + 'a {
        self.security
            .authz_for(&self.mesh.root_namespace, namespace, labels)
    }

    /// Ready endpoints of a service port.
    pub fn endpoints_of(&self, host: &str, port: u16) -> &[Endpoint] {
        self.endpoints
            .get(host)
            .and_then(|p| p.get(&port))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// See [`Snapshot::resolve_host`].
pub fn resolve_host(name: &str, namespace: &str, domain_suffix: &str) -> Hostname {
    if name.contains('*') || name.ends_with(&format!(".svc.{domain_suffix}")) {
        return name.to_string();
    }
    match name.split('.').count() {
        1 => format!("{name}.{namespace}.svc.{domain_suffix}"),
        2 => format!("{name}.svc.{domain_suffix}"),
        3 if name.ends_with(".svc") => format!("{name}.{domain_suffix}"),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_resolve_like_istio() {
        let d = "cluster.local";
        assert_eq!(
            resolve_host("reviews", "default", d),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("reviews.prod", "default", d),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("reviews.prod.svc", "default", d),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("reviews.prod.svc.cluster.local", "default", d),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("www.example.com", "default", d),
            "www.example.com"
        );
        assert_eq!(resolve_host("*.example.com", "default", d), "*.example.com");
    }

    #[test]
    fn version_tracks_content() {
        let a = Snapshot::default().seal();
        let b = Snapshot::default().seal();
        assert_eq!(a.version, b.version);
        let mut c = Snapshot::default();
        c.namespaces.insert("x".into(), Default::default());
        assert_ne!(c.seal().version, a.version);
    }
}
