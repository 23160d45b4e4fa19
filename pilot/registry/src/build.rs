//! The snapshot builder: a pure function of the store's good objects.
//!
//! Order matters where one kind feeds another: services and workloads first
//! (endpoints need both), then DestinationRules (subsets), DestinationPolicies
//! and RouteRules (which may add synthetic subsets), then VirtualServices,
//! so warnings about unknown hosts and subsets see everything, and security
//! policies last (their warnings need workloads and services).

use std::{
    collections::{btree_map::Entry, BTreeMap},
    sync::Arc,
};

use rudder_model::{
    DestinationPolicy, DestinationRules, Diagnostic, Endpoint, MeshConfig, Namespace, RouteTable,
    RuleRef, Service, Sidecar, Snapshot, TrafficPolicy, Workload,
};

use crate::{
    check::Checker,
    compile::{self, route_rule::Policies, Ctx},
    discovery,
    endpoints::{self, EndpointSources},
    object::{Body, Kind, Object, ObjectKey},
};
use rudder_config::MeshConfigSpec;

/// Validates one object alone (no cross-object context): what decides whether
/// the store accepts it. Warnings that need context come from the build.
pub fn validate_object(obj: &Object) -> Vec<Diagnostic> {
    let mut ck = Checker::new(&obj.key, &obj.origin);
    let cx = Ctx::alone(rudder_model::well_known::DEFAULT_DOMAIN_SUFFIX);
    let mut scratch = Policies::new();
    match &obj.body {
        Body::Namespace(_) => {}
        Body::MeshConfig(m) => {
            discovery::validate(m, &mut ck);
            compile::telemetry::defaults(Some(m), &mut ck);
        }
        Body::Service(s) => {
            compile::kube::service(s, &obj.key, &cx, &mut ck);
        }
        Body::Pod(p) => {
            compile::kube::workload(p, &obj.key, &mut ck);
        }
        Body::Endpoints(e) => {
            for (i, s) in e.subsets.iter().enumerate() {
                let all = s.addresses.iter().map(|a| ("addresses", a)).chain(
                    s.not_ready_addresses
                        .iter()
                        .map(|a| ("notReadyAddresses", a)),
                );
                for (j, (field, a)) in all.enumerate() {
                    if a.ip.parse::<std::net::IpAddr>().is_err() {
                        ck.error(
                            format!("subsets[{i}].{field}[{j}].ip"),
                            format!("invalid IP address {:?}", a.ip),
                        );
                    }
                }
            }
        }
        Body::EndpointSlice(s) => {
            if s.address_type.as_deref() != Some("FQDN") {
                for (i, ep) in s.endpoints.iter().enumerate() {
                    for (j, a) in ep.addresses.iter().enumerate() {
                        if a.parse::<std::net::IpAddr>().is_err() {
                            ck.error(
                                format!("endpoints[{i}].addresses[{j}]"),
                                format!("invalid IP address {a:?}"),
                            );
                        }
                    }
                }
            }
        }
        Body::VirtualService(s) => {
            compile::virtual_service::compile(s, &obj.key, &cx, &mut ck);
        }
        Body::DestinationRule(s) => {
            compile::destination_rule::compile(s, &obj.key, &cx, &mut ck);
        }
        Body::Sidecar(s) => {
            compile::sidecar::compile(s, &obj.key, &mut ck);
        }
        Body::ServiceEntry(s) => {
            compile::service_entry::service_entry(s, &obj.key, &mut ck);
        }
        Body::WorkloadEntry(s) => {
            compile::service_entry::workload_entry(s, &mut ck);
        }
        Body::RouteRule(s) => {
            compile::route_rule::compile(s, &obj.key, &cx, &mut scratch, &mut ck);
        }
        Body::DestinationPolicy(s) => {
            compile::route_rule::apply_destination_policy(s, &obj.key, &cx, &mut scratch, &mut ck);
        }
        Body::PeerAuthentication(s) => {
            compile::security::peer_authentication(s, &obj.key, None, &mut ck);
        }
        Body::AuthorizationPolicy(s) => {
            compile::security::authorization_policy(s, &obj.key, &mut ck);
        }
        Body::RequestAuthentication(s) => {
            compile::security::request_authentication(s, &obj.key, &mut ck);
        }
        Body::Telemetry(s) => {
            let cx = compile::telemetry::TelemetryCtx {
                mesh: None,
                services: None,
                domain: rudder_model::well_known::DEFAULT_DOMAIN_SUFFIX,
            };
            compile::telemetry::compile(s, &obj.key, &cx, &mut ck);
        }
        Body::Secret(s) => {
            compile::secret::secret(s, &obj.key, &mut ck);
        }
        Body::Gateway(s) => {
            compile::gateway::compile(s, &obj.key, &mut ck);
        }
        Body::Ingress(i) => compile::ingress::validate(i, &mut ck),
        Body::IngressClass(_) => {}
        Body::GatewayClass(_)
        | Body::KubeGateway(_)
        | Body::HttpRoute(_)
        | Body::GrpcRoute(_)
        | Body::TcpRoute(_)
        | Body::TlsRoute(_)
        | Body::ReferenceGrant(_) => compile::gateway_api::validate(&obj.body, &mut ck),
        Body::HttpProxy(s) => compile::contour::validate(s, &mut ck),
        Body::Mapping(s) => compile::emissary::validate(s, &mut ck),
    }
    ck.diagnostics
}

/// A later DestinationRule for a host that an older one already defines is
/// merged into it, as Istio merges them: its subsets are added (a subset name
/// the older rule has keeps the older definition, with a warning), its
/// top-level traffic policy applies only when the older rule has none, and
/// the merged rule is exported where either was (empty = everywhere).
fn merge_destination_rule(
    first: &mut DestinationPolicy,
    later: DestinationPolicy,
    ck: &mut Checker,
) {
    let older = rule_name(&first.source);
    for (name, subset) in later.subsets {
        match first.subsets.entry(name) {
            Entry::Occupied(e) => ck.warn(
                "spec.subsets",
                format!(
                    "subset {:?} of {} is already defined by {older}; the older definition is kept",
                    e.key(),
                    first.host
                ),
            ),
            Entry::Vacant(e) => {
                e.insert(subset);
            }
        }
    }
    if first.export_to.is_empty() || later.export_to.is_empty() {
        first.export_to.clear();
    } else {
        for ns in later.export_to {
            if !first.export_to.contains(&ns) {
                first.export_to.push(ns);
            }
        }
    }
    if later.traffic_policy != TrafficPolicy::default() {
        if first.traffic_policy == TrafficPolicy::default() {
            first.traffic_policy = later.traffic_policy;
        } else {
            ck.warn(
                "spec.trafficPolicy",
                format!("{older} already sets the traffic policy of {}; this one is ignored (subsets are merged)", first.host),
            );
        }
    }
}

/// Merges `p` into the policy of its host in `map` (or adds it).
fn merge_into(map: &mut Policies, p: Arc<DestinationPolicy>, ck: &mut Checker) {
    match map.get_mut(&p.host) {
        Some(first) => merge_destination_rule(Arc::make_mut(first), Arc::unwrap_or_clone(p), ck),
        None => {
            map.insert(p.host.clone(), p);
        }
    }
}

/// Adds a DestinationRule to its namespace's local and exported pools
/// ([`DestinationRules::pools`]); merge warnings are reported once (the
/// second merge reports to `quiet`).
fn add_to_pools(
    rules: &mut DestinationRules,
    p: &Arc<DestinationPolicy>,
    root: &str,
    ck: &mut Checker,
    quiet: &mut Checker,
) {
    let ns = &p.source.namespace;
    let (local, exported) = DestinationRules::pools(&p.export_to, ns, root);
    if local {
        merge_into(rules.local.entry(ns.clone()).or_default(), p.clone(), ck);
    }
    if exported {
        let ck = if local { quiet } else { ck };
        merge_into(rules.exported.entry(ns.clone()).or_default(), p.clone(), ck);
    }
}

/// Compiles the Sidecars, oldest first (selection takes the first that
/// applies); warns when a namespace has more than one default.
fn sidecars(objects: &[&Object], diagnostics: &mut Vec<Diagnostic>) -> Vec<Sidecar> {
    let mut out: Vec<Sidecar> = Vec::new();
    for o in by_age(objects.to_vec()) {
        if let Body::Sidecar(s) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            if let Some(sc) = compile::sidecar::compile(s, &o.key, &mut ck) {
                let older_default = out
                    .iter()
                    .find(|x| x.selector.is_none() && x.source.namespace == sc.source.namespace);
                if let (None, Some(first)) = (&sc.selector, older_default) {
                    ck.warn(
                        "spec",
                        format!(
                            "namespace {} already has a default Sidecar ({}, older): this one applies to no workload",
                            sc.source.namespace,
                            rule_name(&first.source)
                        ),
                    );
                }
                out.push(sc);
            }
            diagnostics.extend(ck.diagnostics);
        }
    }
    out
}

/// Istio's order for rules of the same host: oldest first, then namespace/name.
pub(crate) fn by_age(mut v: Vec<&Object>) -> Vec<&Object> {
    v.sort_by(|a, b| {
        (
            a.meta.creation_timestamp.as_deref().unwrap_or(""),
            &a.key.namespace,
            &a.key.name,
        )
            .cmp(&(
                b.meta.creation_timestamp.as_deref().unwrap_or(""),
                &b.key.namespace,
                &b.key.name,
            ))
    });
    v
}

/// Builds and seals the snapshot from good objects; `diagnostics` (from the
/// store: rejections, parse problems) are carried into it, followed by the
/// warnings the build finds. No `jwksUri` has been fetched (see
/// [`build_snapshot_with_jwks`]).
pub fn build_snapshot<'a>(
    objects: impl IntoIterator<Item = &'a Object>,
    diagnostics: Vec<Diagnostic>,
) -> Snapshot {
    build_snapshot_with_jwks(objects, diagnostics, &BTreeMap::new())
}

/// [`build_snapshot`] with the key sets pilot fetched, by `jwksUri`; the
/// snapshot keeps those its RequestAuthentications name.
pub fn build_snapshot_with_jwks<'a>(
    objects: impl IntoIterator<Item = &'a Object>,
    mut diagnostics: Vec<Diagnostic>,
    jwks: &BTreeMap<String, String>,
) -> Snapshot {
    let objects: Vec<&Object> = objects.into_iter().collect();
    let mesh_spec = objects.iter().find_map(|o| match &o.body {
        Body::MeshConfig(m) => Some(m),
        _ => None,
    });
    let mesh = mesh_config(mesh_spec);
    let of = by_kind(mesh_spec, objects);
    let get = |k: Kind| of.get(&k).cloned().unwrap_or_default();
    let mut snap = Snapshot::default();
    let domain = mesh.domain_suffix.clone();

    // Services and workloads first: endpoints need both.
    add_namespaces(&mut snap, get(Kind::Namespace));
    add_services(&mut snap, get(Kind::Service), &domain);
    add_service_entries(&mut snap, get(Kind::ServiceEntry), &mut diagnostics);
    (snap.workloads, snap.endpoints) = endpoint_state(&snap.services, &get, &mut diagnostics);

    // Subsets: DestinationRules, then DestinationPolicies and RouteRules
    // (which may add synthetic subsets).
    let with_services = Ctx {
        domain_suffix: &domain,
        services: Some(&snap.services),
        policies: None,
    };
    let (mut policies, mut dr_index) = destination_rules(
        get(Kind::DestinationRule),
        &with_services,
        &mesh.root_namespace,
        &mut diagnostics,
    );
    // What v1alpha2 rules change is told against the DestinationRules'
    // policies alone; without such rules there is nothing to tell (and no
    // copy of every policy to make).
    let v1alpha2 = !get(Kind::DestinationPolicy).is_empty() || !get(Kind::RouteRule).is_empty();
    let dr_only = if v1alpha2 {
        policies.clone()
    } else {
        Default::default()
    };
    apply_destination_policies(
        get(Kind::DestinationPolicy),
        &with_services,
        &mut policies,
        &mut diagnostics,
    );
    let rr_tables = route_rules(
        get(Kind::RouteRule),
        &with_services,
        &mut policies,
        &mut diagnostics,
    );

    // Ingresses become Gateways and VirtualServices (named Service ports
    // resolved through the Services).
    let classes = ingress_classes(get(Kind::IngressClass));
    let from_ingresses = ingresses(
        get(Kind::Ingress),
        &classes,
        &snap.services,
        &domain,
        &mesh.root_namespace,
        &mut diagnostics,
    );
    // Gateway API objects become Gateways and VirtualServices too.
    let gateway_api: Vec<&Object> = compile::gateway_api::KINDS
        .iter()
        .flat_map(|k| get(*k))
        .collect();
    let (from_gateway_api, gateway_api_findings) = compile::gateway_api::translate(
        &gateway_api,
        &compile::gateway_api::Inputs {
            namespaces: &snap.namespaces,
            services: &snap.services,
            domain: &domain,
        },
    );
    diagnostics.extend(gateway_api_findings);
    // Contour HTTPProxies and Emissary Mappings too, at the ingress gateway.
    let from_contour = compile::contour::translate(
        get(Kind::HttpProxy),
        &classes,
        &domain,
        &mesh.root_namespace,
        &mut diagnostics,
    );
    let from_emissary = compile::emissary::translate(
        get(Kind::Mapping),
        &domain,
        &mesh.root_namespace,
        &mut diagnostics,
    );
    let with_derived = |k: Kind| {
        let mut v = get(k);
        for derived in [
            &from_ingresses,
            &from_gateway_api,
            &from_contour,
            &from_emissary,
        ] {
            v.extend(derived.iter().filter(|o| o.key.kind == k));
        }
        v
    };

    // Routes: VirtualServices see every subset; RouteRule tables follow them.
    let full = Ctx {
        domain_suffix: &domain,
        services: Some(&snap.services),
        policies: Some(&policies),
    };
    add_virtual_services(
        &mut snap.route_tables,
        &mut snap.gateway_route_tables,
        with_derived(Kind::VirtualService),
        &full,
        &mut diagnostics,
    );
    snap.route_tables.extend(rr_tables);

    // Security last: its warnings need workloads and services.
    add_security(
        &mut snap,
        get(Kind::PeerAuthentication),
        get(Kind::AuthorizationPolicy),
        get(Kind::RequestAuthentication),
        &mesh.root_namespace,
        &mut diagnostics,
    );
    snap.security.jwks = snap
        .security
        .jwks_uris()
        .into_keys()
        .filter_map(|u| jwks.get(&u).map(|j| (u, j.clone())))
        .collect();
    // Hosts that v1alpha2 rules made or extended keep one mesh-wide policy.
    if v1alpha2 {
        dr_index.mesh_wide = policies
            .into_iter()
            .filter(|(host, p)| dr_only.get(host) != Some(p))
            .collect();
    }
    snap.destination_rules = Arc::new(dr_index);
    snap.sidecars = sidecars(&get(Kind::Sidecar), &mut diagnostics);
    snap.telemetry = telemetry(
        mesh_spec,
        &snap.services,
        &domain,
        get(Kind::Telemetry),
        &mut diagnostics,
    );
    snap.secrets = secrets(get(Kind::Secret));
    credential_warnings(&snap, get(Kind::DestinationRule), &mut diagnostics);
    snap.gateways = gateways(&snap, with_derived(Kind::Gateway), &mut diagnostics);
    warn_unbound_gateways(&snap, get(Kind::VirtualService), &mut diagnostics);
    snap.mesh = mesh;
    snap.diagnostics = diagnostics;
    snap.seal()
}

/// The Telemetries (oldest first) with the mesh config's defaults; the
/// mesh config's own problems were reported when it was stored.
fn telemetry(
    mesh: Option<&MeshConfigSpec>,
    services: &BTreeMap<rudder_model::Hostname, Service>,
    domain: &str,
    objects: Vec<&Object>,
    diagnostics: &mut Vec<Diagnostic>,
) -> rudder_model::Telemetries {
    let quiet = ObjectKey::new(Kind::MeshConfig, "", "");
    let mut out =
        compile::telemetry::defaults(mesh, &mut Checker::new(&quiet, &Default::default()));
    let no_mesh = MeshConfigSpec::default();
    let cx = compile::telemetry::TelemetryCtx {
        mesh: Some(mesh.unwrap_or(&no_mesh)),
        services: Some(services),
        domain,
    };
    for o in by_age(objects) {
        if let Body::Telemetry(s) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            out.policies
                .extend(compile::telemetry::compile(s, &o.key, &cx, &mut ck));
            diagnostics.extend(ck.diagnostics);
        }
    }
    out
}

/// The TLS credentials among the Secrets (validated when stored; the
/// others are not credentials).
fn secrets(objects: Vec<&Object>) -> BTreeMap<String, rudder_model::TlsSecret> {
    let mut out = BTreeMap::new();
    for o in objects {
        if let Body::Secret(s) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            if let Some(t) = compile::secret::secret(s, &o.key, &mut ck) {
                out.insert(t.key(), t);
            }
        }
    }
    out
}

/// Compiles the Gateways, oldest first; warns for a `credentialName` whose
/// Secret is missing in the namespaces of the gateway pods it selects (the
/// Gateway's own namespace when it selects none yet): that server waits
/// for it, the others keep serving.
fn gateways(
    snap: &Snapshot,
    objects: Vec<&Object>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<rudder_model::Gateway> {
    let mut out = Vec::new();
    for o in by_age(objects) {
        let Body::Gateway(s) = &o.body else {
            continue;
        };
        let mut ck = Checker::new(&o.key, &o.origin);
        if let Some(g) = compile::gateway::compile(s, &o.key, &mut ck) {
            let mut namespaces: Vec<&str> = snap
                .workloads
                .values()
                .filter(|w| g.selects(&w.labels))
                .map(|w| w.namespace.as_str())
                .collect();
            namespaces.sort();
            namespaces.dedup();
            if namespaces.is_empty() {
                namespaces.push(&o.key.namespace);
            }
            for (i, srv) in g.servers.iter().enumerate() {
                if let Some(rudder_model::gateway::ServerCredential::Secret(name)) =
                    srv.tls.as_ref().and_then(|t| t.credential.as_ref())
                {
                    for ns in &namespaces {
                        check_credential(
                            snap,
                            ns,
                            &format!("spec.servers[{i}].tls.credentialName"),
                            name,
                            &mut ck,
                        );
                    }
                }
            }
            out.push(g);
        }
        diagnostics.extend(ck.diagnostics);
    }
    out
}

/// The IngressClasses by name (they decide which Ingresses and HTTPProxies
/// are Rudder's).
fn ingress_classes(objects: Vec<&Object>) -> BTreeMap<String, rudder_config::kube::IngressClass> {
    objects
        .into_iter()
        .filter_map(|o| match &o.body {
            Body::IngressClass(c) => Some((o.key.name.clone(), c.clone())),
            _ => None,
        })
        .collect()
}

/// The Gateways and VirtualServices the served Ingresses stand for
/// ([`compile::ingress`]), each with its Ingress's origin; an Ingress of
/// another class is named with a warning and left to its controller.
fn ingresses(
    objects: Vec<&Object>,
    classes: &BTreeMap<String, rudder_config::kube::IngressClass>,
    services: &BTreeMap<rudder_model::Hostname, Service>,
    domain: &str,
    gateway_namespace: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Object> {
    let mut out = Vec::new();
    for o in by_age(objects) {
        let Body::Ingress(i) = &o.body else {
            continue;
        };
        let mut ck = Checker::new(&o.key, &o.origin);
        match compile::ingress::served(i, classes) {
            Err(class) => ck.warn(
                "spec.ingressClassName",
                format!(
                    "class {class} is not Rudder's (istio or rudder): this Ingress is left to its controller"
                ),
            ),
            Ok(()) => {
                let c = compile::ingress::convert(
                    i,
                    &o.key,
                    services,
                    domain,
                    gateway_namespace,
                    &mut ck,
                );
                let (meta, spec) = c.gateway;
                out.push(Object::new(meta, Body::Gateway(spec), o.origin.clone()));
                for (meta, spec) in c.virtual_services {
                    out.push(Object::new(
                        meta,
                        Body::VirtualService(spec),
                        o.origin.clone(),
                    ));
                }
            }
        }
        diagnostics.extend(ck.diagnostics);
    }
    out
}

/// Warns for a VirtualService naming a gateway that does not exist.
fn warn_unbound_gateways(
    snap: &Snapshot,
    objects: Vec<&Object>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for o in objects {
        let Body::VirtualService(s) = &o.body else {
            continue;
        };
        let mut ck = Checker::new(&o.key, &o.origin);
        for (i, g) in s.gateways.iter().enumerate() {
            let q = rudder_model::gateway::qualify_gateway(g, &o.key.namespace);
            if q != rudder_model::MESH_GATEWAY
                && !snap.gateways.iter().any(|gw| gw.qualified_name() == q)
            {
                ck.warn(
                    format!("spec.gateways[{i}]"),
                    format!("no Gateway {q}: these routes apply to no gateway until it exists"),
                );
            }
        }
        diagnostics.extend(ck.diagnostics);
    }
}

/// Warnings for `credentialName`s whose Secret is not there: the
/// DestinationRule's proxies (in its namespace) would wait for it. A name
/// in another namespace is read by no proxy outside it.
fn credential_warnings(snap: &Snapshot, objects: Vec<&Object>, diagnostics: &mut Vec<Diagnostic>) {
    for o in objects {
        let Body::DestinationRule(s) = &o.body else {
            continue;
        };
        let mut ck = Checker::new(&o.key, &o.origin);
        for (at, name) in compile::destination_rule::credential_names(s) {
            check_credential(snap, &o.key.namespace, &at, &name, &mut ck);
        }
        diagnostics.extend(ck.diagnostics);
    }
}

/// Warns when `credentialName` `name`, used by proxies of `namespace`,
/// names a Secret that is missing or that they may not read.
pub(crate) fn check_credential(
    snap: &Snapshot,
    namespace: &str,
    at: &str,
    name: &str,
    ck: &mut Checker,
) {
    let r = rudder_model::secret::CredentialRef::parse(name);
    match r.readable_from(namespace) {
        None => ck.warn(
            at,
            format!(
                "Secret {name} is in namespace {}: a proxy reads only Secrets of its own \
                 namespace ({namespace}), so it gets nothing",
                r.namespace.as_deref().unwrap_or_default()
            ),
        ),
        Some(ns) => {
            let key = rudder_model::secret::secret_key(ns, &r.name);
            let ca_key = rudder_model::secret::secret_key(
                ns,
                &format!("{}{}", r.name, rudder_model::secret::CACERT_SUFFIX),
            );
            if !snap.secrets.contains_key(&key) && !snap.secrets.contains_key(&ca_key) {
                ck.warn(
                    at,
                    format!(
                        "no TLS Secret {ns}/{}: proxies using it wait for it (the rest keeps serving)",
                        r.name
                    ),
                );
            }
        }
    }
}

/// The mesh settings: the defaults, overridden by the `rudder-mesh` ConfigMap.
fn mesh_config(spec: Option<&MeshConfigSpec>) -> MeshConfig {
    let mut mesh = MeshConfig::default();
    if let Some(m) = spec {
        if let Some(v) = &m.domain_suffix {
            mesh.domain_suffix = v.clone();
        }
        if let Some(v) = &m.trust_domain {
            mesh.trust_domain = v.clone();
        }
        if let Some(v) = &m.root_namespace {
            mesh.root_namespace = v.clone();
        }
        if let Some("REGISTRY_ONLY") = m
            .outbound_traffic_policy
            .as_ref()
            .and_then(|p| p.mode.as_deref())
        {
            mesh.outbound_mode = rudder_model::OutboundMode::RegistryOnly;
        }
    }
    mesh
}

/// The objects discovery keeps (the mesh config's namespace selectors), by
/// kind, in input order.
fn by_kind<'a>(
    mesh_spec: Option<&MeshConfigSpec>,
    objects: Vec<&'a Object>,
) -> BTreeMap<Kind, Vec<&'a Object>> {
    let selected = discovery::Selected::new(mesh_spec, &objects);
    let mut of: BTreeMap<Kind, Vec<&Object>> = BTreeMap::new();
    for o in objects.into_iter().filter(|o| selected.keeps(o)) {
        of.entry(o.key.kind).or_default().push(o);
    }
    of
}

fn add_namespaces(snap: &mut Snapshot, objects: Vec<&Object>) {
    for o in objects {
        snap.namespaces.insert(
            o.key.name.clone(),
            Namespace {
                name: o.key.name.clone(),
                labels: o.meta.labels.clone(),
            },
        );
    }
}

fn add_services(snap: &mut Snapshot, objects: Vec<&Object>, domain: &str) {
    let cx0 = Ctx::alone(domain);
    for o in objects {
        if let Body::Service(s) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            if let Some(svc) = compile::kube::service(s, &o.key, &cx0, &mut ck) {
                snap.services.insert(svc.hostname.clone(), svc);
            }
        }
    }
}

/// ServiceEntries, oldest first, one service per host; a host that a
/// Kubernetes Service or an older ServiceEntry already defines keeps that
/// definition (said in a warning).
fn add_service_entries(
    snap: &mut Snapshot,
    objects: Vec<&Object>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut owner: BTreeMap<String, String> = BTreeMap::new();
    for o in by_age(objects) {
        if let Body::ServiceEntry(s) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            let services = compile::service_entry::service_entry(s, &o.key, &mut ck);
            for (i, svc) in services.into_iter().enumerate() {
                match snap.services.get(&svc.hostname) {
                    Some(first) => {
                        let by = owner.get(&svc.hostname).cloned().unwrap_or_else(|| {
                            format!("Service {}/{}", first.namespace, first.name)
                        });
                        ck.warn(
                            format!("spec.hosts[{i}]"),
                            format!(
                                "host {} is already defined by {by}; that definition is kept",
                                svc.hostname
                            ),
                        );
                    }
                    None => {
                        owner.insert(svc.hostname.clone(), o.key.to_string());
                        snap.services.insert(svc.hostname.clone(), svc);
                    }
                }
            }
            diagnostics.extend(ck.diagnostics);
        }
    }
}

/// Two views of the DestinationRules, oldest first: Istio's per-namespace
/// pools (what proxies use) and one merged map per host (what RouteRules
/// extend and validation warnings consult).
fn destination_rules(
    objects: Vec<&Object>,
    cx: &Ctx<'_>,
    root_namespace: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Policies, DestinationRules) {
    let mut policies = Policies::new();
    let mut dr_index = DestinationRules::default();
    for o in by_age(objects) {
        if let Body::DestinationRule(s) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            if let Some(p) = compile::destination_rule::compile(s, &o.key, cx, &mut ck) {
                let mut quiet = Checker::new(&o.key, &o.origin);
                let p = Arc::new(p);
                add_to_pools(&mut dr_index, &p, root_namespace, &mut ck, &mut quiet);
                merge_into(&mut policies, p, &mut quiet);
            }
            diagnostics.extend(ck.diagnostics);
        }
    }
    (policies, dr_index)
}

/// v1alpha2 DestinationPolicies, oldest first, into the merged map.
fn apply_destination_policies(
    objects: Vec<&Object>,
    cx: &Ctx<'_>,
    policies: &mut Policies,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for o in by_age(objects) {
        if let Body::DestinationPolicy(s) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            compile::route_rule::apply_destination_policy(s, &o.key, cx, policies, &mut ck);
            diagnostics.extend(ck.diagnostics);
        }
    }
}

/// v1alpha2 RouteRules: all rules of one destination merge into one table,
/// by precedence (descending), then name.
fn route_rules(
    mut rules: Vec<&Object>,
    cx: &Ctx<'_>,
    policies: &mut Policies,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<RouteTable> {
    rules.sort_by_key(|o| match &o.body {
        Body::RouteRule(s) => (
            std::cmp::Reverse(s.precedence),
            o.key.name.clone(),
            o.key.namespace.clone(),
        ),
        _ => (
            std::cmp::Reverse(0),
            o.key.name.clone(),
            o.key.namespace.clone(),
        ),
    });
    let mut rr_tables: Vec<RouteTable> = Vec::new();
    for o in rules {
        if let Body::RouteRule(s) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            if let Some((host, route)) =
                compile::route_rule::compile(s, &o.key, cx, policies, &mut ck)
            {
                match rr_tables.iter_mut().find(|t| t.hosts[0] == host) {
                    Some(t) => t.http.push(route),
                    None => rr_tables.push(RouteTable {
                        source: RuleRef {
                            kind: "RouteRule".into(),
                            namespace: o.key.namespace.clone(),
                            name: o.key.name.clone(),
                        },
                        hosts: vec![host],
                        export_to: vec![],
                        http: vec![route],
                        tcp: vec![],
                        tls: vec![],
                        gateways: vec![],
                    }),
                }
            }
            diagnostics.extend(ck.diagnostics);
        }
    }
    rr_tables
}

/// VirtualServices, oldest first, each warned about the hosts an older one
/// already routes.
fn add_virtual_services(
    route_tables: &mut Vec<RouteTable>,
    gateway_tables: &mut Vec<RouteTable>,
    objects: Vec<&Object>,
    cx: &Ctx<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let delegates: compile::delegate::Delegates<'_> = objects
        .iter()
        .filter_map(|o| match &o.body {
            Body::VirtualService(s) if compile::delegate::is_delegate(s) => {
                Some(((o.key.namespace.clone(), o.key.name.clone()), s))
            }
            _ => None,
        })
        .collect();
    for o in by_age(objects) {
        if let Body::VirtualService(s) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            let merged;
            let s = if s.http.iter().any(|r| r.delegate.is_some()) {
                merged = compile::delegate::merge(s, &o.key.namespace, &delegates, cx, &mut ck);
                &merged
            } else {
                s
            };
            if let Some(t) = compile::virtual_service::compile(s, &o.key, cx, &mut ck) {
                if t.gateways.iter().any(|g| g != rudder_model::MESH_GATEWAY) {
                    gateway_tables.push(t.clone());
                }
                if t.applies_to_mesh() {
                    warn_shadowed_hosts(&t, route_tables, &mut ck);
                    route_tables.push(t);
                }
            }
            diagnostics.extend(ck.diagnostics);
        }
    }
}

/// Security policies, oldest first: where Istio picks one of several
/// (PeerAuthentications at one level), the oldest wins.
fn add_security(
    snap: &mut Snapshot,
    peer_authentications: Vec<&Object>,
    authorization_policies: Vec<&Object>,
    request_authentications: Vec<&Object>,
    root_namespace: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for o in by_age(request_authentications) {
        if let Body::RequestAuthentication(s) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            if let Some(p) = compile::security::request_authentication(s, &o.key, &mut ck) {
                snap.security.request_authentications.push(p);
            }
            diagnostics.extend(ck.diagnostics);
        }
    }
    for o in by_age(peer_authentications) {
        if let Body::PeerAuthentication(s) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            if let Some(p) =
                compile::security::peer_authentication(s, &o.key, Some(root_namespace), &mut ck)
            {
                snap.security.peer_authentications.push(p);
            }
            diagnostics.extend(ck.diagnostics);
        }
    }
    for o in by_age(authorization_policies) {
        if let Body::AuthorizationPolicy(s) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            if let Some(p) = compile::security::authorization_policy(s, &o.key, &mut ck) {
                compile::security::warn_http_rules_on_tcp(&p, snap, root_namespace, &mut ck);
                snap.security.authorization_policies.push(p);
            }
            diagnostics.extend(ck.diagnostics);
        }
    }
}

/// [`Snapshot::endpoints`]: by service FQDN, then service port.
type EndpointsByHost = BTreeMap<String, BTreeMap<u16, Vec<Endpoint>>>;

/// Workloads (the pods not finished) and endpoints, from the endpoint kinds
/// (`of` lists the build's objects of a kind).
/// WorkloadEntries are read too (their warnings go to `diagnostics`): they
/// are configuration for the debounce clock (so a change to one is a full
/// build, with its warnings), and endpoints here.
fn endpoint_state<'a>(
    services: &BTreeMap<String, Service>,
    of: &impl Fn(Kind) -> Vec<&'a Object>,
    diagnostics: &mut Vec<Diagnostic>,
) -> (BTreeMap<String, Workload>, EndpointsByHost) {
    let mut workloads = BTreeMap::new();
    for o in of(Kind::Pod) {
        if let Body::Pod(p) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            if let Some(w) =
                compile::kube::workload(p, &o.key, &mut ck).filter(|_| !compile::kube::finished(p))
            {
                workloads.insert(format!("{}/{}", o.key.namespace, o.key.name), w);
            }
        }
    }
    let mut sources = EndpointSources::default();
    for o in of(Kind::Endpoints) {
        if let Body::Endpoints(e) = &o.body {
            sources
                .endpoints
                .entry(format!("{}/{}", o.key.namespace, o.key.name))
                .or_default()
                .push(e);
        }
    }
    for o in of(Kind::EndpointSlice) {
        if let Body::EndpointSlice(s) = &o.body {
            if let Some(svc) = o.meta.labels.get(rudder_config::kube::SERVICE_NAME_LABEL) {
                sources
                    .slices
                    .entry(format!("{}/{}", o.key.namespace, svc))
                    .or_default()
                    .push(s);
            }
        }
    }
    let mut endpoints = endpoints::compute(services, &workloads, &sources);
    let mut entries = Vec::new();
    for o in of(Kind::WorkloadEntry) {
        if let Body::WorkloadEntry(s) = &o.body {
            let mut ck = Checker::new(&o.key, &o.origin);
            if let Some(e) = compile::service_entry::workload_entry(s, &mut ck) {
                entries.push((o.key.namespace.as_str(), e));
            }
            diagnostics.extend(ck.diagnostics);
        }
    }
    endpoints::add_entries(services, &entries, &mut endpoints);
    (workloads, endpoints)
}

/// Whether a build after changes to endpoint kinds alone (Pods, Endpoints,
/// EndpointSlices) may take `previous`'s configuration as it is
/// ([`rebuild_endpoints`]): it was built (not the empty start), and none of
/// its AuthorizationPolicies has an HTTP-only rule, whose warning about
/// TCP ports is the one result of the configuration's build that reads
/// pods.
pub fn endpoints_rebuildable(previous: &Snapshot) -> bool {
    !previous.config_version.is_empty()
        && !previous
            .security
            .authorization_policies
            .iter()
            .any(|p| p.rules.iter().any(|r| r.is_http_only()))
}

/// The snapshot after changes to endpoint kinds alone since `previous` was
/// built from the same store (and the store's own diagnostics unchanged):
/// `previous`'s configuration and diagnostics as they are, workloads and
/// endpoints computed anew from `objects`. Equal to [`build_snapshot`] over
/// the same objects when [`endpoints_rebuildable`] holds; a pod change then
/// costs its endpoints, not a compile of every rule in the mesh.
pub fn rebuild_endpoints<'a>(
    previous: &Snapshot,
    objects: impl IntoIterator<Item = &'a Object>,
) -> Snapshot {
    let objects: Vec<&Object> = objects.into_iter().collect();
    let mesh_spec = objects.iter().find_map(|o| match &o.body {
        Body::MeshConfig(m) => Some(m),
        _ => None,
    });
    let selected = discovery::Selected::new(mesh_spec, &objects);
    let mut of: BTreeMap<Kind, Vec<&Object>> = BTreeMap::new();
    for o in objects.iter().filter(|o| {
        matches!(
            o.key.kind,
            Kind::Pod | Kind::Endpoints | Kind::EndpointSlice | Kind::WorkloadEntry
        ) && selected.keeps(o)
    }) {
        of.entry(o.key.kind).or_default().push(o);
    }
    let get = |k: Kind| of.get(&k).cloned().unwrap_or_default();
    // (WorkloadEntries are unchanged since `previous`: their warnings are
    // in its diagnostics already.)
    let (workloads, endpoints) = endpoint_state(&previous.services, &get, &mut Vec::new());
    let snapshot = Snapshot {
        mesh: previous.mesh.clone(),
        namespaces: previous.namespaces.clone(),
        services: previous.services.clone(),
        endpoints,
        workloads,
        route_tables: previous.route_tables.clone(),
        destination_rules: previous.destination_rules.clone(),
        sidecars: previous.sidecars.clone(),
        security: previous.security.clone(),
        telemetry: previous.telemetry.clone(),
        secrets: previous.secrets.clone(),
        gateways: previous.gateways.clone(),
        gateway_route_tables: previous.gateway_route_tables.clone(),
        diagnostics: previous.diagnostics.clone(),
        // Set by `seal_endpoints`.
        version: String::new(),
        config_version: String::new(),
        base_version: previous.base_version.clone(),
        workloads_by_ip: BTreeMap::new(),
    };
    if snapshot.has_headless() {
        // Headless endpoints enter the configuration's version (`seal`).
        snapshot.seal()
    } else {
        snapshot.seal_endpoints(previous.config_version.clone())
    }
}

/// Lets `built` share `previous`'s DestinationRules when they are equal, as
/// an endpoint-only rebuild does ([`rebuild_endpoints`]): generators tell a
/// policy by its address, so a change to routes alone (the same
/// [`Snapshot::base_version`]) keeps every cluster built for a policy.
pub fn share_unchanged(previous: &Snapshot, built: &mut Snapshot) {
    if previous.destination_rules == built.destination_rules {
        built.destination_rules = previous.destination_rules.clone();
    }
}

/// A sidecar gets one route table per host: the oldest VirtualService naming
/// it (generators take the first table), as Istio does for sidecars; Istio
/// merges VirtualServices only for gateways, which Rudder does not serve yet.
/// A younger VirtualService naming a host an older one already routes, for a
/// namespace that sees both, is served for none of that host's traffic there:
/// say so, naming the one in use.
fn warn_shadowed_hosts(table: &RouteTable, older: &[RouteTable], ck: &mut Checker) {
    for (i, host) in table.hosts.iter().enumerate() {
        let winner = older
            .iter()
            .find(|o| o.hosts.contains(host) && visible_together(o, table));
        if let Some(winner) = winner {
            ck.warn(
                format!("spec.hosts[{i}]"),
                format!(
                    "{host} is already routed by the older {}: sidecars use one VirtualService per host (the oldest), so this one's routes for it are ignored",
                    rule_name(&winner.source)
                ),
            );
        }
    }
}

/// Whether some namespace sees both tables (their `exportTo` overlap).
fn visible_together(a: &RouteTable, b: &RouteTable) -> bool {
    /// `None`: every namespace; else the namespaces named.
    fn audience(t: &RouteTable) -> Option<Vec<&str>> {
        if t.export_to.is_empty() || t.export_to.iter().any(|n| n == "*") {
            return None;
        }
        Some(
            t.export_to
                .iter()
                .map(|n| {
                    if n == "." {
                        t.source.namespace.as_str()
                    } else {
                        n.as_str()
                    }
                })
                .filter(|n| *n != "~")
                .collect(),
        )
    }
    match (audience(a), audience(b)) {
        (None, None) => true,
        (None, Some(x)) | (Some(x), None) => !x.is_empty(),
        (Some(x), Some(y)) => x.iter().any(|n| y.contains(n)),
    }
}

fn rule_name(r: &RuleRef) -> String {
    format!("{} {}/{}", r.kind, r.namespace, r.name)
}
