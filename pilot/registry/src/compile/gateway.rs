//! Istio Gateway → model [`Gateway`], validating as Istio does, and
//! refusing (with the field's path and why) what Rudder does not serve.

use rudder_config::gateway as gw;
use rudder_model::{
    gateway::{
        Gateway, GatewayServer, ServerCredential, ServerHost, ServerProtocol, ServerTls,
        ServerTlsMode, TlsVersion,
    },
    RuleRef,
};

use crate::{check::Checker, object::ObjectKey};

/// Compiles a Gateway; `None` when it has errors.
pub fn compile(spec: &gw::GatewaySpec, key: &ObjectKey, ck: &mut Checker) -> Option<Gateway> {
    let ns = key.namespace.as_str();
    if spec.servers.is_empty() {
        ck.error("spec.servers", "a Gateway needs at least one server");
    }
    let servers: Vec<Option<GatewayServer>> = spec
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| server(s, &format!("spec.servers[{i}]"), ns, ck))
        .collect();
    // Istio: port names are unique among a Gateway's servers (HTTPS route
    // configurations are named by them).
    let mut names = std::collections::BTreeSet::new();
    for (i, s) in spec.servers.iter().enumerate() {
        if let Some(p) = &s.port {
            if !p.name.is_empty() && !names.insert(p.name.as_str()) {
                ck.error(
                    format!("spec.servers[{i}].port.name"),
                    format!(
                        "port names in servers must be unique: duplicate name {:?}",
                        p.name
                    ),
                );
            }
        }
    }
    // One protocol per port across the Gateway's servers (Istio refuses a
    // mix it cannot put on one listener).
    let ok: Vec<&GatewayServer> = servers.iter().flatten().collect();
    for (i, a) in ok.iter().enumerate() {
        if let Some(b) = ok[..i]
            .iter()
            .find(|b| b.port == a.port && conflicting(b.protocol, a.protocol))
        {
            ck.error(
                "spec.servers",
                format!(
                    "port {} is used as {:?} and {:?}: one listener cannot serve both",
                    a.port, b.protocol, a.protocol
                ),
            );
            break;
        }
    }
    if ck.has_errors() {
        return None;
    }
    Some(Gateway {
        source: RuleRef {
            kind: "Gateway".into(),
            namespace: ns.into(),
            name: key.name.clone(),
        },
        selector: spec.selector.clone(),
        servers: servers.into_iter().flatten().collect(),
    })
}

/// Protocols that cannot share a port: HTTP-family servers with TCP or TLS
/// ones (a listener is either an HTTP connection manager or SNI/TCP chains);
/// terminated HTTPS and TLS servers share by SNI.
fn conflicting(a: ServerProtocol, b: ServerProtocol) -> bool {
    use ServerProtocol::*;
    let plain_http = |p| matches!(p, Http | Http2 | Grpc);
    match (a, b) {
        (x, y) if plain_http(x) && plain_http(y) => false,
        (Https | Tls, Https | Tls) => false,
        (x, y) => x != y,
    }
}

fn server(s: &gw::Server, at: &str, ns: &str, ck: &mut Checker) -> Option<GatewayServer> {
    let before = ck.error_count();
    let Some(port) = &s.port else {
        ck.error(format!("{at}.port"), "required");
        return None;
    };
    let number = ck.port(format!("{at}.port.number"), port.number);
    let protocol = match ServerProtocol::parse(&port.protocol) {
        Some(p) => Some(p),
        None => {
            ck.error(
                format!("{at}.port.protocol"),
                format!(
                    "{:?} is not served on gateways (HTTP, HTTPS, HTTP2, GRPC, TLS, TCP)",
                    port.protocol
                ),
            );
            None
        }
    };
    if port.name.is_empty() {
        ck.error(
            format!("{at}.port.name"),
            "required (Istio requires a port name)",
        );
    }
    if port.target_port.is_some() {
        ck.error(
            format!("{at}.port.targetPort"),
            "not served: the gateway listens on port.number (targetPort is deprecated in Istio)",
        );
    }
    if s.bind.is_some() {
        ck.error(
            format!("{at}.bind"),
            "not served: gateway listeners bind 0.0.0.0 (or [::]) on the port",
        );
    }
    if s.default_endpoint.is_some() {
        ck.error(
            format!("{at}.defaultEndpoint"),
            "not served: it applies to Sidecar ingress listeners only",
        );
    }
    if s.name.is_some() {
        ck.warn(
            format!("{at}.name"),
            "Istio uses a server's name for stats prefixes only; Rudder's Envoy config does not carry it",
        );
    }
    if s.hosts.is_empty() {
        ck.error(format!("{at}.hosts"), "a server needs at least one host");
    }
    let mut hosts = Vec::new();
    for (i, h) in s.hosts.iter().enumerate() {
        let (nsp, host) = match h.split_once('/') {
            Some((n, h)) => (Some(n), h),
            None => (None, h.as_str()),
        };
        let namespace = match nsp {
            None | Some("*") => None,
            Some(".") => Some(ns.to_string()),
            Some(n) if !n.is_empty() => Some(n.to_string()),
            Some(_) => {
                ck.error(
                    format!("{at}.hosts[{i}]"),
                    format!("{h:?}: empty namespace"),
                );
                continue;
            }
        };
        let valid = !host.is_empty()
            && !host.contains('/')
            && (host == "*" || !host[1..].contains('*'))
            && (!host.starts_with('*') || host == "*" || host.starts_with("*."));
        if !valid {
            ck.error(
                format!("{at}.hosts[{i}]"),
                format!("{h:?} is not a host (NAME, *.SUFFIX or *, optionally NAMESPACE/ first)"),
            );
            continue;
        }
        hosts.push(ServerHost {
            namespace,
            host: host.to_string(),
        });
    }
    let (tls, https_redirect) = match &s.tls {
        Some(t) => tls(t, &format!("{at}.tls"), protocol, ck),
        None => (None, false),
    };
    if let Some(p @ (ServerProtocol::Https | ServerProtocol::Tls)) = protocol {
        if tls.is_none() && s.tls.as_ref().is_none_or(|t| t.mode.is_none()) {
            ck.error(
                format!("{at}.tls"),
                format!("a {p:?} server needs tls with a mode"),
            );
        }
    }
    if matches!(protocol, Some(ServerProtocol::Https))
        && tls
            .as_ref()
            .is_some_and(|t| t.mode == ServerTlsMode::Passthrough)
    {
        // Istio accepts it; the routes are then tls routes by SNI.
    }
    if ck.error_count() > before {
        return None;
    }
    Some(GatewayServer {
        port: number?,
        port_name: port.name.clone(),
        protocol: protocol?,
        hosts,
        tls,
        https_redirect,
        name: s.name.clone(),
    })
}

fn version(v: gw::TlsProtocol) -> TlsVersion {
    match v {
        gw::TlsProtocol::Auto => TlsVersion::Auto,
        gw::TlsProtocol::V1_0 => TlsVersion::V1_0,
        gw::TlsProtocol::V1_1 => TlsVersion::V1_1,
        gw::TlsProtocol::V1_2 => TlsVersion::V1_2,
        gw::TlsProtocol::V1_3 => TlsVersion::V1_3,
    }
}

fn tls(
    t: &gw::ServerTlsSettings,
    at: &str,
    protocol: Option<ServerProtocol>,
    ck: &mut Checker,
) -> (Option<ServerTls>, bool) {
    let https_redirect = t.https_redirect == Some(true);
    let refuse = |ck: &mut Checker, field: &str, why: &str| {
        ck.error(format!("{at}.{field}"), format!("not served: {why}"));
    };
    if !t.credential_names.is_empty() {
        refuse(
            ck,
            "credentialNames",
            "several certificates per server; use credentialName",
        );
    }
    // Each certificate field given is refused (an empty entry holds none).
    for (i, c) in t.tls_certificates.iter().enumerate() {
        for (field, v) in [
            ("serverCertificate", &c.server_certificate),
            ("privateKey", &c.private_key),
            ("caCertificates", &c.ca_certificates),
        ] {
            if v.is_some() {
                refuse(
                    ck,
                    &format!("tlsCertificates[{i}].{field}"),
                    "several certificates per server; use credentialName",
                );
            }
        }
    }
    if !t.verify_certificate_spki.is_empty() {
        refuse(
            ck,
            "verifyCertificateSpki",
            "client certificate pinning; use subjectAltNames",
        );
    }
    if !t.verify_certificate_hash.is_empty() {
        refuse(
            ck,
            "verifyCertificateHash",
            "client certificate pinning; use subjectAltNames",
        );
    }
    if t.ca_crl.is_some() {
        refuse(ck, "caCrl", "certificate revocation lists");
    }
    let Some(mode) = t.mode else {
        if t.credential_name.is_some() || t.server_certificate.is_some() {
            ck.error(format!("{at}.mode"), "required when a certificate is given");
        }
        return (None, https_redirect);
    };
    let mode = match mode {
        gw::ServerTlsMode::Passthrough => ServerTlsMode::Passthrough,
        gw::ServerTlsMode::Simple => ServerTlsMode::Simple,
        gw::ServerTlsMode::Mutual => ServerTlsMode::Mutual,
        gw::ServerTlsMode::IstioMutual => ServerTlsMode::IstioMutual,
        gw::ServerTlsMode::AutoPassthrough => {
            refuse(
                ck,
                "mode",
                "AUTO_PASSTHROUGH is for multi-network east-west gateways",
            );
            return (None, https_redirect);
        }
        gw::ServerTlsMode::OptionalMutual => {
            refuse(ck, "mode", "OPTIONAL_MUTUAL; use MUTUAL");
            return (None, https_redirect);
        }
    };
    if matches!(
        protocol,
        Some(
            ServerProtocol::Http
                | ServerProtocol::Http2
                | ServerProtocol::Grpc
                | ServerProtocol::Tcp
        )
    ) {
        ck.error(
            format!("{at}.mode"),
            format!(
                "a {:?} server does not terminate TLS: use protocol HTTPS or TLS",
                protocol.unwrap_or(ServerProtocol::Http)
            ),
        );
        return (None, https_redirect);
    }
    if mode == ServerTlsMode::Passthrough && protocol == Some(ServerProtocol::Https) {
        ck.error(
            format!("{at}.mode"),
            "PASSTHROUGH needs protocol TLS (its routes are VirtualService tls routes by SNI)",
        );
    }
    let credential = match mode {
        ServerTlsMode::Passthrough | ServerTlsMode::IstioMutual => {
            let field = if t.credential_name.is_some() {
                Some("credentialName")
            } else if t.server_certificate.is_some() {
                Some("serverCertificate")
            } else {
                None
            };
            if let Some(f) = field {
                ck.error(
                    format!("{at}.{f}"),
                    format!("{mode:?} uses no server certificate of its own"),
                );
            }
            (mode == ServerTlsMode::IstioMutual).then_some(ServerCredential::Mesh)
        }
        ServerTlsMode::Simple | ServerTlsMode::Mutual => {
            if let Some(name) = &t.credential_name {
                if name.is_empty() || name.split('/').count() > 2 {
                    ck.error(
                        format!("{at}.credentialName"),
                        format!("{name:?} is not a Secret name"),
                    );
                }
                Some(ServerCredential::Secret(name.clone()))
            } else {
                match (&t.server_certificate, &t.private_key) {
                    (Some(c), Some(k)) => {
                        if mode == ServerTlsMode::Mutual && t.ca_certificates.is_none() {
                            ck.error(
                                format!("{at}.caCertificates"),
                                "MUTUAL needs caCertificates (or credentialName)",
                            );
                        }
                        Some(ServerCredential::Files {
                            certificate: c.clone(),
                            private_key: k.clone(),
                            ca_certificates: t.ca_certificates.clone(),
                        })
                    }
                    _ => {
                        ck.error(
                            at,
                            format!("{mode:?} needs credentialName, or serverCertificate and privateKey"),
                        );
                        None
                    }
                }
            }
        }
    };
    let (min_version, max_version) = (
        t.min_protocol_version.map(version),
        t.max_protocol_version.map(version),
    );
    if let (Some(a), Some(b)) = (min_version, max_version) {
        if a != TlsVersion::Auto && b != TlsVersion::Auto && a > b {
            ck.error(
                format!("{at}.minProtocolVersion"),
                "greater than maxProtocolVersion",
            );
        }
    }
    (
        Some(ServerTls {
            mode,
            credential,
            subject_alt_names: t.subject_alt_names.clone(),
            min_version,
            max_version,
            cipher_suites: t.cipher_suites.clone(),
        }),
        https_redirect,
    )
}
