//! The HTTP connection manager every HTTP filter chain uses (outbound on
//! the capture listener and the `<VIP>_<port>` listeners, inbound on pod
//! ports): fault, CORS and router filters always, WebSocket upgrades, access log,
//! and per chain the RBAC filters and client-certificate forwarding.
//!
//! ```text
//!  listener.rs (outbound chains) ─┐
//!                                 ├─► http_connection_manager(stat prefix, RDS or inline routes, HcmOptions)
//!  inbound.rs (inbound chains)  ──┘
//! ```

use envoy_types::pb::{
    envoy::extensions::filters::{
        http::{cors::v3::Cors, fault::v3::HttpFault, router::v3::Router},
        network::http_connection_manager::v3::{
            http_connection_manager::{
                CodecType, ForwardClientCertDetails, RouteSpecifier, SetCurrentClientCertDetails,
                UpgradeConfig,
            },
            http_filter, HttpConnectionManager, HttpFilter,
        },
    },
    google::protobuf::BoolValue,
};

use crate::common::{
    any, network_filter, stdout_access_log, CORS_FILTER, FAULT_FILTER, HTTP_CONNECTION_MANAGER,
    ROUTER_FILTER,
};

/// What an HCM adds beyond routing: filters before fault and router (RBAC),
/// and whether it forwards the client's certificate identity (mTLS chains).
#[derive(Debug, Default)]
pub(crate) struct HcmOptions {
    /// HTTP filters placed first (RBAC: DENY, then ALLOW).
    pub(crate) http_filters: Vec<HttpFilter>,
    /// `x-forwarded-client-cert`: append the peer's URI SAN, as Istio does.
    pub(crate) forward_client_cert: bool,
}

/// The upgrade type every HTTP connection manager allows.
const WEBSOCKET_UPGRADE: &str = "websocket";

pub(crate) fn http_connection_manager(
    stat_prefix: &str,
    routes: RouteSpecifier,
    opts: HcmOptions,
) -> envoy_types::pb::envoy::config::listener::v3::Filter {
    let http_filter = |name: &str, config| HttpFilter {
        name: name.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    };
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.into(),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(routes),
        // The fault and CORS filters are always there so that per-route
        // fault and CORS config works (Istio's order: fault, cors, router).
        http_filters: opts
            .http_filters
            .into_iter()
            .chain([
                http_filter(FAULT_FILTER, any(&HttpFault::default())),
                http_filter(CORS_FILTER, any(&Cors::default())),
                http_filter(ROUTER_FILTER, any(&Router::default())),
            ])
            .collect(),
        use_remote_address: Some(BoolValue { value: false }),
        generate_request_id: Some(BoolValue { value: true }),
        access_log: vec![stdout_access_log()],
        // Istio allows WebSocket upgrades on every HTTP connection manager,
        // outbound and inbound (so a RouteRule's `websocketUpgrade: true`
        // always holds).
        upgrade_configs: vec![UpgradeConfig {
            upgrade_type: WEBSOCKET_UPGRADE.into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let hcm = if opts.forward_client_cert {
        HttpConnectionManager {
            forward_client_cert_details: ForwardClientCertDetails::AppendForward as i32,
            set_current_client_cert_details: Some(SetCurrentClientCertDetails {
                uri: true,
                ..Default::default()
            }),
            ..hcm
        }
    } else {
        hcm
    };
    network_filter(HTTP_CONNECTION_MANAGER, &hcm)
}
