//! Inbound filter chains of one served port, with its mTLS mode, the
//! RequestAuthentications (`jwt_authn`, HTTP only) and the authorization
//! policies of the workload.
//!
//! ```text
//!  DISABLE     inbound|P          plaintext                      [rbac] HCM | tcp_proxy
//!  STRICT      inbound|P|mtls     TLS, client cert required      [rbac] HCM (XFCC) | tcp_proxy
//!  PERMISSIVE  inbound|P|mtls     transport tls + ALPN istio*    [rbac] HCM (XFCC) | tcp_proxy
//!              inbound|P|tls      transport tls, other ALPN      [rbac] tcp_proxy (the app's own TLS)
//!              inbound|P          any other transport            [rbac] HCM | tcp_proxy
//! ```
//!
//! PERMISSIVE needs the TLS inspector to set the transport protocol; it runs
//! only on PERMISSIVE ports ([`tls_inspector_on`]), so
//! server-first protocols on other ports are never held up waiting for a
//! ClientHello. Its plaintext chain matches any transport (Envoy falls back
//! from `raw_buffer` to an empty match), so a server-first protocol on a
//! PERMISSIVE port still lands there when the inspector gives up after
//! [`LISTENER_FILTERS_TIMEOUT`] (the listener continues on timeout, as Istio's). A STRICT chain has
//! no transport match: a plaintext client on that port fails the handshake
//! instead of falling through to another chain.
//!
//! Passthrough chains (pod ports no Service declares) get the workload's
//! authorization and, under STRICT, mTLS termination ([`InboundSecurity::passthrough`]).
//!
//! A proxy whose pod is not meshed (no `security.istio.io/tlsMode: istio`)
//! has no certificate to present, so PERMISSIVE means plaintext for it (as
//! auto mTLS never sends it TLS); STRICT is honoured regardless (fail closed).

use std::{collections::BTreeMap, net::IpAddr};

use envoy_types::pb::envoy::{
    config::listener::v3::{
        listener_filter,
        listener_filter_chain_match_predicate::{MatchSet, Rule},
        FilterChain, FilterChainMatch, ListenerFilter, ListenerFilterChainMatchPredicate,
    },
    extensions::filters::{
        listener::tls_inspector::v3::TlsInspector,
        network::http_connection_manager::v3::http_connection_manager::RouteSpecifier,
    },
    r#type::v3::Int32Range,
};
use rudder_model::{names::ClusterName, node::CertMode, AuthzPolicy, MtlsMode, Proxy, Snapshot};

use crate::{
    common::{any, host_cidr, tcp_proxy, u32v},
    hcm::{http_connection_manager, HcmOptions},
    jwt::{self, ResolvedRule},
    proxy::InboundPort,
    rbac,
    rds::inbound_route_config,
    tls::{downstream_mtls, is_meshed_labels, MESH_ALPNS},
};

/// How long the TLS inspector waits for a client's first bytes before the
/// connection continues as plaintext (Istio's inbound protocol detection
/// timeout).
pub(crate) const LISTENER_FILTERS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Envoy's name of the TLS inspector listener filter.
const TLS_INSPECTOR_FILTER: &str = "envoy.filters.listener.tls_inspector";

/// What the inbound side of a proxy enforces: the mode per served port and
/// the authorization policies of its workload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct InboundSecurity<'a> {
    /// Effective mode per served (target) port.
    pub(crate) modes: BTreeMap<u16, MtlsMode>,
    /// Workload-level mode: what ports no Service declares get.
    pub(crate) passthrough_mode: MtlsMode,
    /// Policies that apply to the workload, in order.
    pub(crate) policies: Vec<&'a AuthzPolicy>,
    /// Where the proxy's secrets come from.
    pub(crate) cert_mode: CertMode,
    /// JWT rules of the RequestAuthentications that apply, with the key
    /// set each is served with.
    pub(crate) jwt_rules: Vec<ResolvedRule<'a>>,
}

impl<'a> InboundSecurity<'a> {
    /// The security of `proxy`'s served ports.
    pub(crate) fn of(snapshot: &'a Snapshot, proxy: &'a Proxy, inbound: &[InboundPort]) -> Self {
        let meshed = is_meshed_labels(&proxy.labels);
        let modes = inbound
            .iter()
            .map(|p| {
                let mode = match snapshot.mtls_mode(&proxy.namespace, &proxy.labels, p.port) {
                    MtlsMode::Permissive if !meshed => MtlsMode::Disable,
                    m => m,
                };
                (p.port, mode)
            })
            .collect();
        let policies = snapshot
            .authz_for(&proxy.namespace, &proxy.labels)
            .collect();
        // Port 0 is in no portLevelMtls: this is the workload-level mode.
        let passthrough_mode = snapshot.mtls_mode(&proxy.namespace, &proxy.labels, 0);
        let jwt_rules = snapshot
            .security
            .request_authn_for(
                &snapshot.mesh.root_namespace,
                &proxy.namespace,
                &proxy.labels,
            )
            .flat_map(|p| &p.rules)
            .map(|r| (r, jwt::resolve(r, &snapshot.security.jwks)))
            .collect();
        Self {
            modes,
            passthrough_mode,
            policies,
            cert_mode: proxy.cert_mode,
            jwt_rules,
        }
    }

    /// An inbound passthrough chain (ports no Service declares) under the
    /// workload's policy, as Istio: authorization applies (network RBAC) and
    /// STRICT terminates mTLS before passing the bytes on; PERMISSIVE and
    /// DISABLE leave it plaintext (meshed clients only send mTLS to
    /// declared ports).
    pub(crate) fn passthrough(&self, mut chain: FilterChain) -> FilterChain {
        let mut filters = rbac::network_filters(&self.policies);
        filters.append(&mut chain.filters);
        chain.filters = filters;
        if self.passthrough_mode == MtlsMode::Strict {
            chain.transport_socket = Some(downstream_mtls(false, self.cert_mode));
        }
        chain
    }

    fn mode(&self, port: u16) -> MtlsMode {
        self.modes.get(&port).copied().unwrap_or(MtlsMode::Disable)
    }

    /// The PERMISSIVE ports: those whose chains need the TLS inspector.
    pub(crate) fn permissive_ports(&self) -> Vec<u16> {
        self.modes
            .iter()
            .filter(|(_, m)| **m == MtlsMode::Permissive)
            .map(|(p, _)| *p)
            .collect()
    }
}

/// The TLS inspector, enabled only for `ports` (PERMISSIVE inbound ports,
/// outbound ports routed by SNI); `None` when no port needs it.
pub(crate) fn tls_inspector_on(mut ports: Vec<u16>) -> Option<ListenerFilter> {
    ports.sort_unstable();
    ports.dedup();
    if ports.is_empty() {
        return None;
    }
    let mut ranges: Vec<ListenerFilterChainMatchPredicate> = ports
        .iter()
        .map(|&p| ListenerFilterChainMatchPredicate {
            rule: Some(Rule::DestinationPortRange(Int32Range {
                start: i32::from(p),
                end: i32::from(p) + 1,
            })),
        })
        .collect();
    // Envoy wants at least two predicates in an or_match.
    let on_ports = if ranges.len() == 1 {
        ranges.remove(0)
    } else {
        ListenerFilterChainMatchPredicate {
            rule: Some(Rule::OrMatch(MatchSet { rules: ranges })),
        }
    };
    Some(ListenerFilter {
        name: TLS_INSPECTOR_FILTER.into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(any(
            &TlsInspector::default(),
        ))),
        filter_disabled: Some(ListenerFilterChainMatchPredicate {
            rule: Some(Rule::NotMatch(Box::new(on_ports))),
        }),
    })
}

/// How a chain's connections arrive.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// Any (no transport match), plaintext.
    Plain,
    /// Mesh mTLS terminated here; `true` = match TLS with istio ALPN only.
    Mtls { alpn_match: bool },
    /// TLS the app terminates itself (passed through as TCP).
    AppTls,
}

/// The chains of one served port.
pub(crate) fn inbound_chains(
    p: &InboundPort,
    ips: &[IpAddr],
    sec: &InboundSecurity<'_>,
) -> Vec<FilterChain> {
    let transports: &[Transport] = match sec.mode(p.port) {
        MtlsMode::Strict => &[Transport::Mtls { alpn_match: false }],
        MtlsMode::Permissive => &[
            Transport::Mtls { alpn_match: true },
            Transport::AppTls,
            Transport::Plain,
        ],
        MtlsMode::Disable | MtlsMode::Unset => &[Transport::Plain],
    };
    transports.iter().map(|t| chain(p, ips, *t, sec)).collect()
}

fn chain(p: &InboundPort, ips: &[IpAddr], t: Transport, sec: &InboundSecurity<'_>) -> FilterChain {
    let cluster = ClusterName::inbound(p.port).to_string();
    let mtls = matches!(t, Transport::Mtls { .. });
    let (name, transport_protocol, alpns) = match t {
        Transport::Plain => (format!("inbound|{}", p.port), "", vec![]),
        Transport::Mtls { alpn_match } => (
            format!("inbound|{}|mtls", p.port),
            if alpn_match { "tls" } else { "" },
            if alpn_match {
                MESH_ALPNS.iter().map(|s| s.to_string()).collect()
            } else {
                vec![]
            },
        ),
        Transport::AppTls => (format!("inbound|{}|tls", p.port), "tls", vec![]),
    };
    let http = p.protocol.is_http() && t != Transport::AppTls;
    let filters = if http {
        let opts = HcmOptions {
            http_filters: jwt::http_filter(&sec.jwt_rules)
                .into_iter()
                .chain(rbac::http_filters(&sec.policies))
                .collect(),
            forward_client_cert: mtls,
        };
        vec![http_connection_manager(
            &format!("inbound_0.0.0.0_{}", p.port),
            RouteSpecifier::RouteConfig(inbound_route_config(p.port)),
            opts,
        )]
    } else {
        let mut f = rbac::network_filters(&sec.policies);
        f.push(tcp_proxy(&cluster, &[(cluster.clone(), 1)]));
        f
    };
    FilterChain {
        name,
        filter_chain_match: Some(FilterChainMatch {
            destination_port: u32v(u32::from(p.port)),
            prefix_ranges: ips.iter().map(host_cidr).collect(),
            transport_protocol: transport_protocol.into(),
            application_protocols: alpns,
            ..Default::default()
        }),
        filters,
        transport_socket: mtls.then(|| downstream_mtls(http, sec.cert_mode)),
        ..Default::default()
    }
}
