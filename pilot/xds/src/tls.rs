//! TLS transport sockets: the outbound side of mTLS (ISTIO_MUTUAL, auto mTLS,
//! DestinationRule SIMPLE/MUTUAL/DISABLE) and the inbound side (the
//! DownstreamTlsContext of STRICT and PERMISSIVE chains).
//!
//! ```text
//!  cert mode   secret reference in every TLS context
//!  file        sds_secret_config { name: default | ROOTCA }            (static secrets in the bootstrap)
//!  sds         sds_secret_config { name, sds_config → cluster sds-grpc } (the agent's Unix socket)
//! ```
//!
//! Auto mTLS, as Istio: with no DestinationRule TLS, a cluster whose endpoints
//! all carry `security.istio.io/tlsMode: istio` gets ISTIO_MUTUAL; when only
//! some do, the cluster carries `transport_socket_matches` keyed on the
//! endpoint metadata EDS attaches (`envoy.transport_socket_match: {tlsMode:
//! istio}`), so meshed endpoints get mTLS and the others plaintext.

use std::collections::BTreeSet;

use envoy_types::pb::{
    envoy::{
        config::{
            cluster::v3::cluster::TransportSocketMatch,
            core::v3::{
                api_config_source::ApiType, config_source, data_source, grpc_service,
                transport_socket, ApiConfigSource, ApiVersion, ConfigSource, DataSource,
                GrpcService, TransportSocket,
            },
        },
        extensions::transport_sockets::tls::v3::{
            common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
            subject_alt_name_matcher::SanType,
            CertificateValidationContext, CommonTlsContext, DownstreamTlsContext, SdsSecretConfig,
            SubjectAltNameMatcher, TlsCertificate, UpstreamTlsContext,
        },
        r#type::matcher::v3::{string_matcher::MatchPattern, StringMatcher},
    },
    google::protobuf::{value::Kind, BoolValue, Struct, Value},
};
use rudder_model::{
    identity::SpiffeId,
    names::{ClusterName, SDS_CLUSTER, SECRET_DEFAULT, SECRET_ROOTCA},
    node::CertMode,
    well_known::TLS_MODE_LABEL,
    ClientTls, Endpoint,
};

use crate::common::any;

/// Transport socket extension name for TLS.
const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";
/// Endpoint metadata namespace `transport_socket_matches` look in.
pub(crate) const TRANSPORT_SOCKET_MATCH_KEY: &str = "envoy.transport_socket_match";
/// The `tlsMode` value of meshed endpoints.
pub(crate) const TLS_MODE_ISTIO: &str = "istio";
/// ALPN values a meshed client offers; the inbound PERMISSIVE chain matches them.
pub(crate) const MESH_ALPNS: [&str; 5] = [
    "istio",
    "istio-peer-exchange",
    "istio-http/1.0",
    "istio-http/1.1",
    "istio-h2",
];

/// Whether an endpoint is meshed (its pod carries the tlsMode label).
pub(crate) fn is_meshed(e: &Endpoint) -> bool {
    is_meshed_labels(&e.labels)
}

/// Whether pod labels mark a meshed workload (one with a mesh certificate).
pub(crate) fn is_meshed_labels(labels: &rudder_model::Labels) -> bool {
    labels
        .get(TLS_MODE_LABEL)
        .is_some_and(|v| v == TLS_MODE_ISTIO)
}

/// How a cluster reaches its endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum UpstreamTls {
    /// Plaintext.
    None,
    /// One TLS context for every endpoint.
    All(ClientTls),
    /// Auto mTLS over a mix: meshed endpoints ISTIO_MUTUAL, others plaintext.
    MeshedOnly,
}

/// What a cluster with DestinationRule TLS `explicit` (if any) uses towards
/// `endpoints` (already narrowed to the subset).
pub(crate) fn upstream_tls(explicit: Option<&ClientTls>, endpoints: &[&Endpoint]) -> UpstreamTls {
    match explicit {
        Some(ClientTls::Disable) => UpstreamTls::None,
        Some(t) => UpstreamTls::All(t.clone()),
        None => {
            let meshed = endpoints.iter().filter(|e| is_meshed(e)).count();
            if meshed == 0 {
                UpstreamTls::None
            } else if meshed == endpoints.len() {
                UpstreamTls::All(ClientTls::IstioMutual)
            } else {
                UpstreamTls::MeshedOnly
            }
        }
    }
}

/// The identities an ISTIO_MUTUAL client accepts: the service accounts of the
/// destination's endpoints, sorted.
pub(crate) fn destination_identities(trust_domain: &str, endpoints: &[&Endpoint]) -> Vec<String> {
    let ids: BTreeSet<String> = endpoints
        .iter()
        .filter_map(|e| {
            e.service_account
                .as_deref()
                .map(|sa| SpiffeId::new(trust_domain, &e.namespace, sa).to_string())
        })
        .collect();
    ids.into_iter().collect()
}

/// Applies `tls` to a cluster's transport socket fields.
pub(crate) fn apply_upstream(
    tls: &UpstreamTls,
    cluster: &ClusterName,
    identities: &[String],
    http2: bool,
    cert_mode: CertMode,
) -> (Option<TransportSocket>, Vec<TransportSocketMatch>) {
    let istio = || upstream_socket(&istio_mutual(cluster, identities, http2, cert_mode));
    match tls {
        UpstreamTls::None => (None, vec![]),
        UpstreamTls::All(ClientTls::IstioMutual) => (Some(istio()), vec![]),
        UpstreamTls::All(other) => (other_tls(other).map(|c| upstream_socket(&c)), vec![]),
        UpstreamTls::MeshedOnly => {
            let meshed = TransportSocketMatch {
                name: "tlsMode-istio".into(),
                r#match: Some(string_struct(&[("tlsMode", TLS_MODE_ISTIO)])),
                transport_socket: Some(istio()),
            };
            let plaintext = TransportSocketMatch {
                name: "tlsMode-disabled".into(),
                r#match: Some(Struct::default()),
                transport_socket: Some(raw_buffer()),
            };
            (None, vec![meshed, plaintext])
        }
    }
}

fn upstream_socket(ctx: &UpstreamTlsContext) -> TransportSocket {
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(ctx))),
    }
}

pub(crate) fn raw_buffer() -> TransportSocket {
    use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
    TransportSocket {
        name: "envoy.transport_sockets.raw_buffer".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(
            &RawBuffer {},
        ))),
    }
}

/// A Struct of string values (endpoint metadata, socket match criteria).
pub(crate) fn string_struct(pairs: &[(&str, &str)]) -> Struct {
    Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value {
                        kind: Some(Kind::StringValue(v.to_string())),
                    },
                )
            })
            .collect(),
    }
}

/// A secret by name: static from the bootstrap (file mode) or from the
/// agent over SDS (sds mode).
pub(crate) fn secret_ref(name: &str, mode: CertMode) -> SdsSecretConfig {
    let sds_config = match mode {
        CertMode::File => None,
        CertMode::Sds => Some(ConfigSource {
            resource_api_version: ApiVersion::V3 as i32,
            config_source_specifier: Some(config_source::ConfigSourceSpecifier::ApiConfigSource(
                ApiConfigSource {
                    api_type: ApiType::Grpc as i32,
                    transport_api_version: ApiVersion::V3 as i32,
                    set_node_on_first_message_only: true,
                    grpc_services: vec![GrpcService {
                        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                            grpc_service::EnvoyGrpc {
                                cluster_name: SDS_CLUSTER.into(),
                                ..Default::default()
                            },
                        )),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
    };
    SdsSecretConfig {
        name: name.into(),
        sds_config,
    }
}

fn san_matchers(sans: &[String]) -> Vec<SubjectAltNameMatcher> {
    sans.iter()
        .map(|s| SubjectAltNameMatcher {
            san_type: if s.contains("://") {
                SanType::Uri
            } else {
                SanType::Dns
            } as i32,
            matcher: Some(exact(s)),
            ..Default::default()
        })
        .collect()
}

pub(crate) fn exact(s: &str) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(MatchPattern::Exact(s.to_string())),
        ..Default::default()
    }
}

/// The mesh's own certificate and root, with a SAN check on the peer.
fn mesh_common(sans: &[String], alpn: Vec<String>, mode: CertMode) -> CommonTlsContext {
    CommonTlsContext {
        tls_certificate_sds_secret_configs: vec![secret_ref(SECRET_DEFAULT, mode)],
        validation_context_type: Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(CertificateValidationContext {
                    match_typed_subject_alt_names: san_matchers(sans),
                    ..Default::default()
                }),
                validation_context_sds_secret_config: Some(secret_ref(SECRET_ROOTCA, mode)),
                ..Default::default()
            },
        )),
        alpn_protocols: alpn,
        ..Default::default()
    }
}

/// ISTIO_MUTUAL towards `cluster`: the workload certificate, the mesh root,
/// the destination's identities, ALPN `istio` (+ `h2`), Istio's SNI.
fn istio_mutual(
    cluster: &ClusterName,
    identities: &[String],
    http2: bool,
    mode: CertMode,
) -> UpstreamTlsContext {
    let mut alpn = vec!["istio".to_string()];
    if http2 {
        alpn.push("h2".into());
    }
    UpstreamTlsContext {
        common_tls_context: Some(mesh_common(identities, alpn, mode)),
        sni: cluster.sni(),
        ..Default::default()
    }
}

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}

/// A secret pilot serves on the proxy's ADS stream (`kubernetes://...`).
pub(crate) fn ads_secret_ref(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.into(),
        sds_config: Some(crate::common::ads()),
    }
}

/// SIMPLE and MUTUAL with `credentialName` (Istio's
/// `buildUpstreamClusterTLSContext`): the client certificate (MUTUAL) is
/// `kubernetes://NAME`, the CA `kubernetes://NAME-cacert`, both over SDS
/// from pilot; the SANs check beside the CA.
fn credential_tls(
    credential_name: &str,
    mutual: bool,
    sni: &Option<String>,
    sans: &[String],
    insecure: bool,
) -> UpstreamTlsContext {
    let validation = (!insecure).then(|| {
        ValidationContextType::CombinedValidationContext(CombinedCertificateValidationContext {
            default_validation_context: Some(CertificateValidationContext {
                match_typed_subject_alt_names: san_matchers(sans),
                ..Default::default()
            }),
            validation_context_sds_secret_config: Some(ads_secret_ref(
                &rudder_model::secret::credential_ca_resource(credential_name),
            )),
            ..Default::default()
        })
    });
    let certs = if mutual {
        vec![ads_secret_ref(&rudder_model::secret::credential_resource(
            credential_name,
        ))]
    } else {
        vec![]
    };
    UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: certs,
            validation_context_type: validation,
            ..Default::default()
        }),
        sni: sni.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// SIMPLE and MUTUAL with the DestinationRule's files, or its credential.
fn other_tls(tls: &ClientTls) -> Option<UpstreamTlsContext> {
    let (cert, sni, ca, sans, insecure) = match tls {
        ClientTls::Credential {
            credential_name,
            mutual,
            sni,
            subject_alt_names,
            insecure_skip_verify,
        } => {
            return Some(credential_tls(
                credential_name,
                *mutual,
                sni,
                subject_alt_names,
                *insecure_skip_verify,
            ))
        }
        ClientTls::Simple {
            sni,
            ca_certificates,
            subject_alt_names,
            insecure_skip_verify,
        } => (
            None,
            sni,
            ca_certificates,
            subject_alt_names,
            insecure_skip_verify,
        ),
        ClientTls::Mutual {
            client_certificate,
            private_key,
            ca_certificates,
            sni,
            subject_alt_names,
            insecure_skip_verify,
        } => (
            Some((client_certificate, private_key)),
            sni,
            ca_certificates,
            subject_alt_names,
            insecure_skip_verify,
        ),
        ClientTls::Disable | ClientTls::IstioMutual => return None,
    };
    // insecureSkipVerify: no validation context at all (neither CA nor SANs).
    let validation = ca.as_ref().filter(|_| !insecure).map(|ca| {
        ValidationContextType::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(file(ca)),
            match_typed_subject_alt_names: san_matchers(sans),
            ..Default::default()
        })
    });
    Some(UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificates: cert
                .map(|(c, k)| TlsCertificate {
                    certificate_chain: Some(file(c)),
                    private_key: Some(file(k)),
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            validation_context_type: validation,
            ..Default::default()
        }),
        sni: sni.clone().unwrap_or_default(),
        ..Default::default()
    })
}

/// The inbound side of mTLS: the workload certificate, client certificates
/// required and verified against the mesh root. HTTP chains offer h2 and
/// http/1.1 (as Istio's inbound).
pub(crate) fn downstream_mtls(http: bool, mode: CertMode) -> TransportSocket {
    let alpn = if http {
        vec!["h2".to_string(), "http/1.1".to_string()]
    } else {
        vec![]
    };
    let ctx = DownstreamTlsContext {
        common_tls_context: Some(mesh_common(&[], alpn, mode)),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(any(&ctx))),
    }
}
