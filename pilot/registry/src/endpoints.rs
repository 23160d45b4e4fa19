//! Endpoints per service port: from Endpoints/EndpointSlices when any exist
//! for a Service (a live cluster, or a user who wrote them), else computed from
//! the Service's selector over the pods of its namespace (a directory of YAML
//! has no endpoints controller).

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
};

use rudder_config::kube;
use rudder_model::{
    Endpoint, EntryEndpoint, Hostname, Locality, Resolution, Service, TargetPort, Workload,
};

/// Endpoint objects relevant to the build, by `namespace/service name`.
#[derive(Default)]
pub struct EndpointSources<'a> {
    /// core/v1 Endpoints (named like their Service).
    pub endpoints: BTreeMap<String, Vec<&'a kube::Endpoints>>,
    /// EndpointSlices (label `kubernetes.io/service-name`).
    pub slices: BTreeMap<String, Vec<&'a kube::EndpointSlice>>,
}

/// Endpoints of every service, by FQDN then service port; sorted.
pub fn compute(
    services: &BTreeMap<Hostname, Service>,
    workloads: &BTreeMap<String, Workload>,
    sources: &EndpointSources<'_>,
) -> BTreeMap<Hostname, BTreeMap<u16, Vec<Endpoint>>> {
    let mut out = BTreeMap::new();
    let by_label = index(workloads);
    for (host, svc) in services {
        let id = format!("{}/{}", svc.namespace, svc.name);
        let eps = sources
            .endpoints
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let slices = sources
            .slices
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut by_port: BTreeMap<u16, Vec<Endpoint>> = BTreeMap::new();
        // A ServiceEntry's endpoints never come from Endpoints objects
        // (which belong to a Kubernetes Service of the same name).
        if svc.entry.is_some() || (eps.is_empty() && slices.is_empty()) {
            from_selector(svc, &by_label, &mut by_port);
        } else {
            from_objects(svc, workloads, eps, slices, &mut by_port);
        }
        for v in by_port.values_mut() {
            v.sort();
            v.dedup();
        }
        out.insert(host.clone(), by_port);
    }
    out
}

/// Adds the endpoints of ServiceEntries (their STATIC `endpoints`) and of
/// WorkloadEntries (`(namespace, entry)`) that a service's selector picks
/// (a ServiceEntry's `workloadSelector`, or a Kubernetes Service's selector,
/// as Istio does), for each service port: the entry's port of that name,
/// else the target port (a named target port needs the entry to name it).
pub fn add_entries(
    services: &BTreeMap<Hostname, Service>,
    workload_entries: &[(&str, EntryEndpoint)],
    out: &mut BTreeMap<Hostname, BTreeMap<u16, Vec<Endpoint>>>,
) {
    for (host, svc) in services {
        let own = svc
            .entry
            .iter()
            .filter(|e| e.resolution == Resolution::Static)
            .flat_map(|e| e.endpoints.iter());
        let selected = workload_entries
            .iter()
            .filter(|(ns, e)| {
                *ns == svc.namespace
                    && !svc.selector.is_empty()
                    && rudder_model::service::selects(&svc.selector, &e.labels)
            })
            .map(|(_, e)| e);
        let mut added = false;
        for e in own.chain(selected) {
            let Ok(address) = e.address.parse::<IpAddr>() else {
                continue;
            };
            for sp in &svc.ports {
                let port = match (e.ports.get(&sp.name), &sp.target_port) {
                    (Some(p), _) => *p,
                    (None, TargetPort::Number(n)) => *n,
                    (None, TargetPort::Name(_)) => continue,
                };
                added = true;
                out.entry(host.clone())
                    .or_default()
                    .entry(sp.port)
                    .or_default()
                    .push(Endpoint {
                        address,
                        port,
                        labels: e.labels.clone(),
                        pod_name: None,
                        namespace: svc.namespace.clone(),
                        service_account: e.service_account.clone(),
                        ready: true,
                        locality: e.locality.clone(),
                        weight: e.weight,
                    });
            }
        }
        if added {
            if let Some(by_port) = out.get_mut(host) {
                for v in by_port.values_mut() {
                    v.sort();
                    v.dedup();
                }
            }
        }
    }
}

/// Workloads by (namespace, label key, label value), in name order: a
/// selector's first label narrows a Service's candidates from every pod to
/// the pods carrying it (a rebuild per pod change stays linear in pods).
type ByLabel<'a> = HashMap<(&'a str, &'a str, &'a str), Vec<&'a Workload>>;

fn index(workloads: &BTreeMap<String, Workload>) -> ByLabel<'_> {
    let mut by_label: ByLabel<'_> = HashMap::new();
    for w in workloads.values() {
        for (k, v) in &w.labels {
            by_label
                .entry((w.namespace.as_str(), k.as_str(), v.as_str()))
                .or_default()
                .push(w);
        }
    }
    by_label
}

fn from_selector(svc: &Service, by_label: &ByLabel<'_>, out: &mut BTreeMap<u16, Vec<Endpoint>>) {
    let Some((k, v)) = svc.selector.iter().next() else {
        return;
    };
    let candidates = by_label
        .get(&(svc.namespace.as_str(), k.as_str(), v.as_str()))
        .map(Vec::as_slice)
        .unwrap_or_default();
    let pods = candidates
        .iter()
        .filter(|w| rudder_model::service::selects(&svc.selector, &w.labels));
    for w in pods {
        let Some(ip) = w.ips.first() else { continue };
        for sp in &svc.ports {
            let port = match &sp.target_port {
                TargetPort::Number(n) => *n,
                TargetPort::Name(name) => match w.named_ports.get(name) {
                    Some(p) => *p,
                    None => continue,
                },
            };
            out.entry(sp.port).or_default().push(endpoint(
                *ip,
                port,
                Some(w),
                &w.namespace,
                w.ready,
                None,
            ));
        }
    }
}

fn from_objects(
    svc: &Service,
    workloads: &BTreeMap<String, Workload>,
    eps: &[&kube::Endpoints],
    slices: &[&kube::EndpointSlice],
    out: &mut BTreeMap<u16, Vec<Endpoint>>,
) {
    let pod = |r: &Option<kube::ObjectReference>| {
        r.as_ref()
            .filter(|r| r.kind.as_deref().is_none_or(|k| k == "Pod"))
            .and_then(|r| {
                workloads.get(&format!(
                    "{}/{}",
                    r.namespace.as_deref().unwrap_or(&svc.namespace),
                    r.name.as_deref()?
                ))
            })
    };
    for e in eps {
        for subset in &e.subsets {
            for ep_port in &subset.ports {
                let Some((svc_port, port)) = match_port(svc, ep_port, subset.ports.len()) else {
                    continue;
                };
                let all = subset
                    .addresses
                    .iter()
                    .map(|a| (a, true))
                    .chain(subset.not_ready_addresses.iter().map(|a| (a, false)));
                for (addr, ready) in all {
                    let Ok(ip) = addr.ip.parse::<IpAddr>() else {
                        continue;
                    };
                    out.entry(svc_port).or_default().push(endpoint(
                        ip,
                        port,
                        pod(&addr.target_ref),
                        &svc.namespace,
                        ready,
                        None,
                    ));
                }
            }
        }
    }
    for s in slices {
        if s.address_type.as_deref().is_some_and(|t| t == "FQDN") {
            continue;
        }
        for ep_port in &s.ports {
            let Some((svc_port, port)) = match_port(svc, ep_port, s.ports.len()) else {
                continue;
            };
            for ep in &s.endpoints {
                let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else {
                    continue;
                };
                let ready = ep.conditions.ready.unwrap_or(true);
                out.entry(svc_port).or_default().push(endpoint(
                    ip,
                    port,
                    pod(&ep.target_ref),
                    &svc.namespace,
                    ready,
                    ep.zone.as_deref(),
                ));
            }
        }
    }
}

/// The service port an endpoint port serves (matched by name, or the only
/// port of each), and the endpoint's port number.
fn match_port(svc: &Service, p: &kube::EndpointPort, n_ports: usize) -> Option<(u16, u16)> {
    let port = u16::try_from(p.port?).ok().filter(|p| *p > 0)?;
    let name = p.name.as_deref().unwrap_or("");
    let sp = svc
        .ports
        .iter()
        .find(|sp| sp.name == name)
        .or_else(|| (svc.ports.len() == 1 && n_ports == 1).then(|| &svc.ports[0]))?;
    Some((sp.port, port))
}

fn endpoint(
    address: IpAddr,
    port: u16,
    pod: Option<&Workload>,
    namespace: &str,
    ready: bool,
    zone: Option<&str>,
) -> Endpoint {
    // The pod's own locality labels, else the slice's zone (Rudder does not
    // watch Nodes, so a node's topology labels are not read).
    let locality = pod
        .map(|w| Locality::from_labels(&w.labels))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| Locality {
            zone: zone.unwrap_or_default().to_string(),
            ..Locality::default()
        });
    Endpoint {
        address,
        port,
        labels: pod.map(|w| w.labels.clone()).unwrap_or_default(),
        pod_name: pod.map(|w| w.name.clone()),
        namespace: pod.map_or(namespace.to_string(), |w| w.namespace.clone()),
        service_account: pod.map(|w| w.service_account.clone()),
        ready,
        locality,
        weight: 0,
    }
}
