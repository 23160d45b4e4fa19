//! The Envoy bootstrap of tests that point a real Envoy at an ADS server.

/// A bootstrap whose one static cluster is the ADS server on
/// `127.0.0.1:xds_port` (HTTP/2), with CDS and LDS over ADS and the admin
/// interface on a free loopback port. `node` is the node as a YAML flow
/// mapping (`{id: "...", cluster: test}`; JSON is YAML, so metadata goes in as
/// the agent writes it); `api_type` is `GRPC` (SotW) or `DELTA_GRPC`.
pub fn ads_bootstrap(node: &str, api_type: &str, xds_port: u16) -> String {
    format!(
        r#"node: {node}
dynamic_resources:
  ads_config:
    api_type: {api_type}
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [{{envoy_grpc: {{cluster_name: xds}}}}]
  cds_config: {{ads: {{}}, resource_api_version: V3}}
  lds_config: {{ads: {{}}, resource_api_version: V3}}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: xds
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {xds_port}}}}}}}}}]}}]
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
"#
    )
}
