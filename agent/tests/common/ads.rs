//! A minimal in-test ADS server (SotW and Delta): one static cluster to a
//! loopback upstream, one plaintext HTTP listener, and optionally one TLS
//! listener whose certificate is the bootstrap's static secret `default` (so
//! Envoy's `/certs` shows which workload certificate each epoch loaded).
//! Answers the first request of each type on every stream; ignores ACKs.
//! A gate holds answers back, so tests can observe an unconfigured Envoy.

use std::{pin::Pin, sync::Arc};

use envoy_types::pb::{
    envoy::{
        config::{
            cluster::v3::{cluster::ClusterDiscoveryType, cluster::DiscoveryType, Cluster},
            core::v3::{
                address, api_config_source, config_source, grpc_service,
                socket_address::PortSpecifier, transport_socket, Address, ApiConfigSource,
                ApiVersion, ConfigSource, GrpcService, SocketAddress, TransportSocket,
            },
            endpoint::v3::{
                lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint,
                LocalityLbEndpoints,
            },
            listener::v3::{filter, Filter, FilterChain, Listener},
            route::v3::{
                route, route_action::ClusterSpecifier, route_match::PathSpecifier, Route,
                RouteAction, RouteConfiguration, RouteMatch, VirtualHost,
            },
        },
        extensions::{
            filters::{
                http::router::v3::Router,
                network::http_connection_manager::v3::{
                    http_connection_manager::{CodecType, RouteSpecifier},
                    http_filter, HttpConnectionManager, HttpFilter,
                },
            },
            transport_sockets::tls::v3::{CommonTlsContext, DownstreamTlsContext, SdsSecretConfig},
        },
        service::discovery::v3::{
            aggregated_discovery_service_server::{
                AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
            },
            DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
            Resource,
        },
    },
    google::protobuf::{Any, Duration as PbDuration},
};
use envoy_types::util::pack_any;
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::{wrappers::ReceiverStream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

/// What the server hands out.
#[derive(Clone, Debug)]
pub struct AdsConfig {
    pub upstream_port: u16,
    pub listen_port: u16,
    pub tls_port: Option<u16>,
    /// The TLS listener names `default` with an `sds_config` to the agent's
    /// socket (SDS mode) instead of the bootstrap's static secret.
    pub sds: bool,
}

fn addr(port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(PortSpecifier::PortValue(port.into())),
            ..Default::default()
        })),
    }
}

fn cluster(cfg: &AdsConfig) -> Any {
    pack_any(Cluster {
        name: "upstream".into(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        connect_timeout: Some(PbDuration {
            seconds: 1,
            nanos: 0,
        }),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: "upstream".into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                        address: Some(addr(cfg.upstream_port)),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// SDS from the agent's socket, through the bootstrap's `sds-grpc` cluster.
fn sds_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::ApiConfigSource(
            ApiConfigSource {
                api_type: api_config_source::ApiType::Grpc as i32,
                transport_api_version: ApiVersion::V3 as i32,
                grpc_services: vec![GrpcService {
                    target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                        grpc_service::EnvoyGrpc {
                            cluster_name: rudder_model::names::SDS_CLUSTER.into(),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn listener(name: &str, port: u16, tls: bool, sds: bool) -> Any {
    let hcm = HttpConnectionManager {
        stat_prefix: name.into(),
        codec_type: CodecType::Auto as i32,
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: name.into(),
            virtual_hosts: vec![VirtualHost {
                name: "all".into(),
                domains: vec!["*".into()],
                routes: vec![Route {
                    r#match: Some(RouteMatch {
                        path_specifier: Some(PathSpecifier::Prefix("/".into())),
                        ..Default::default()
                    }),
                    action: Some(route::Action::Route(RouteAction {
                        cluster_specifier: Some(ClusterSpecifier::Cluster("upstream".into())),
                        timeout: Some(PbDuration {
                            seconds: 60,
                            nanos: 0,
                        }),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    let transport_socket = tls.then(|| TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(
            DownstreamTlsContext {
                common_tls_context: Some(CommonTlsContext {
                    tls_certificate_sds_secret_configs: vec![SdsSecretConfig {
                        name: "default".into(),
                        sds_config: sds.then(sds_source),
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ))),
    });
    pack_any(Listener {
        name: name.into(),
        address: Some(addr(port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            transport_socket,
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// Named resources of one type.
fn resources(cfg: &AdsConfig, type_url: &str) -> Vec<(String, Any)> {
    match type_url {
        CLUSTER_TYPE => vec![("upstream".into(), cluster(cfg))],
        LISTENER_TYPE => {
            let mut v = vec![(
                "http".to_string(),
                listener("http", cfg.listen_port, false, false),
            )];
            if let Some(p) = cfg.tls_port {
                v.push(("https".to_string(), listener("https", p, true, cfg.sds)));
            }
            v
        }
        _ => Vec::new(),
    }
}

#[derive(Clone)]
struct Server {
    cfg: Arc<AdsConfig>,
    gate: watch::Receiver<bool>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Server {
    type StreamAggregatedResourcesStream = BoxStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = BoxStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        req: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let (cfg, mut gate) = (self.cfg.clone(), self.gate.clone());
        tokio::spawn(async move {
            let mut nonce = 0u64;
            while let Some(Ok(r)) = input.next().await {
                if !r.response_nonce.is_empty() {
                    continue; // ACK or NACK: nothing changes here.
                }
                if gate.wait_for(|open| *open).await.is_err() {
                    return;
                }
                nonce += 1;
                let resp = DiscoveryResponse {
                    version_info: "1".into(),
                    resources: resources(&cfg, &r.type_url)
                        .into_iter()
                        .map(|(_, a)| a)
                        .collect(),
                    type_url: r.type_url.clone(),
                    nonce: nonce.to_string(),
                    ..Default::default()
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        req: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let mut input = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let (cfg, mut gate) = (self.cfg.clone(), self.gate.clone());
        tokio::spawn(async move {
            let mut nonce = 0u64;
            while let Some(Ok(r)) = input.next().await {
                if !r.response_nonce.is_empty() {
                    continue;
                }
                if gate.wait_for(|open| *open).await.is_err() {
                    return;
                }
                nonce += 1;
                let resp = DeltaDiscoveryResponse {
                    system_version_info: "1".into(),
                    resources: resources(&cfg, &r.type_url)
                        .into_iter()
                        .map(|(name, a)| Resource {
                            name,
                            version: "1".into(),
                            resource: Some(a),
                            ..Default::default()
                        })
                        .collect(),
                    type_url: r.type_url.clone(),
                    nonce: nonce.to_string(),
                    ..Default::default()
                };
                if tx.send(Ok(resp)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A running test ADS server; dropping it stops it.
pub struct AdsServer {
    pub port: u16,
    gate: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl AdsServer {
    /// Starts on a free loopback port; answers only once [`AdsServer::open`] is called
    /// when `gated`.
    pub async fn start(cfg: AdsConfig, gated: bool) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (gate, rx) = watch::channel(!gated);
        let svc = AggregatedDiscoveryServiceServer::new(Server {
            cfg: Arc::new(cfg),
            gate: rx,
        });
        let task = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await;
        });
        Self { port, gate, task }
    }

    /// Lets answers through.
    pub fn open(&self) {
        let _ = self.gate.send(true);
    }
}

impl Drop for AdsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
