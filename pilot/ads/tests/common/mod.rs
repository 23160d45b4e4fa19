//! Test support: fixture resources built from small real Envoy protos, a
//! directory whose resources the test publishes, the real tonic server on a
//! loopback port, and scripted SotW/Delta clients.
//!
//! "Nothing was sent" is never checked with a sleep: [`SotwClient::barrier`]
//! and [`DeltaClient::barrier`] make a request that is certain to be answered
//! (an SDS subscription change) and assert that its answer is the very next
//! message. The server handles a stream's requests in order, so anything it
//! had to send before would arrive first.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use envoy_types::pb::envoy::{
    config::{
        cluster::v3::{
            cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig},
            Cluster,
        },
        core::v3::{
            address, config_source::ConfigSourceSpecifier, socket_address::PortSpecifier, Address,
            AggregatedConfigSource, ApiVersion, ConfigSource, Node, SocketAddress,
        },
        endpoint::v3::{
            lb_endpoint::HostIdentifier, ClusterLoadAssignment, Endpoint, LbEndpoint,
            LocalityLbEndpoints,
        },
        listener::v3::Listener,
        route::v3::{RouteConfiguration, VirtualHost},
    },
    extensions::transport_sockets::tls::v3::Secret,
    service::discovery::v3::{
        aggregated_discovery_service_client::AggregatedDiscoveryServiceClient,
        DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
    },
};
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use rudder_ads::{AdsOptions, AdsServer, NodeInfo, ProxyDirectory};
use rudder_xds::{ProxyResources, Resource, TypeUrl};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

pub const CDS: TypeUrl = TypeUrl::Cluster;
pub const EDS: TypeUrl = TypeUrl::Endpoint;
pub const LDS: TypeUrl = TypeUrl::Listener;
pub const RDS: TypeUrl = TypeUrl::Route;
pub const SDS: TypeUrl = TypeUrl::Secret;

/// Bound on waiting for an expected response (a safety net, not an assertion).
const RECV_TIMEOUT: Duration = Duration::from_secs(10);
/// Barrier secrets available in every fixture.
const BARRIERS: usize = 64;

pub fn ads_source() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        resource_api_version: ApiVersion::V3 as i32,
        ..Default::default()
    }
}

pub fn socket(ip: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.into(),
            port_specifier: Some(PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

/// An EDS cluster fetched over ADS.
pub fn cluster(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        connect_timeout: Some(PbDuration {
            seconds: 1,
            nanos: 0,
        }),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads_source()),
            service_name: String::new(),
        }),
        ..Default::default()
    }
}

pub fn load_assignment(name: &str, port: u32) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                    address: Some(socket("127.0.0.1", port)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Builds `ProxyResources` by hand: each resource gets an explicit version.
#[derive(Clone, Default)]
pub struct Res {
    by_type: BTreeMap<TypeUrl, rudder_xds::Content>,
}

impl Res {
    pub fn new() -> Self {
        Res::default()
    }

    pub fn any(mut self, t: TypeUrl, name: &str, version: &str, body: Any) -> Self {
        self.by_type.entry(t).or_default().insert(
            name.into(),
            Arc::new(Resource {
                version: version.into(),
                body,
            }),
        );
        self
    }

    pub fn cluster(self, name: &str, v: &str) -> Self {
        self.any(CDS, name, v, envoy_types::util::pack_any(cluster(name)))
    }

    pub fn endpoints(self, name: &str, v: &str) -> Self {
        self.any(
            EDS,
            name,
            v,
            envoy_types::util::pack_any(load_assignment(name, 10_000)),
        )
    }

    pub fn listener(self, name: &str, v: &str) -> Self {
        let l = Listener {
            name: name.into(),
            address: Some(socket("127.0.0.1", 15_001)),
            ..Default::default()
        };
        self.any(LDS, name, v, envoy_types::util::pack_any(l))
    }

    pub fn route(self, name: &str, v: &str) -> Self {
        let r = RouteConfiguration {
            name: name.into(),
            virtual_hosts: vec![VirtualHost {
                name: format!("{name}-{v}"),
                domains: vec!["*".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        self.any(RDS, name, v, envoy_types::util::pack_any(r))
    }

    pub fn without(mut self, t: TypeUrl, name: &str) -> Self {
        if let Some(m) = self.by_type.get_mut(&t) {
            m.remove(name);
        }
        self
    }

    /// Generated resources (kept as they are), to build with the barriers.
    pub fn from_generated(res: ProxyResources) -> Self {
        Res {
            by_type: res
                .by_type
                .into_iter()
                .map(|(t, m)| (t, Arc::unwrap_or_clone(m)))
                .collect(),
        }
    }

    /// The resources, plus the barrier secrets.
    pub fn build(self) -> ProxyResources {
        let mut r = self;
        for i in 0..BARRIERS {
            let name = barrier_name(i);
            let s = Secret {
                name: name.clone(),
                ..Default::default()
            };
            r = r.any(SDS, &name, "1", envoy_types::util::pack_any(s));
        }
        ProxyResources {
            by_type: r
                .by_type
                .into_iter()
                .map(|(t, m)| (t, Arc::new(m)))
                .collect(),
        }
    }
}

/// Clusters a, b with endpoints, listener l, route r: all at version 1.
pub fn base() -> Res {
    Res::new()
        .cluster("a", "1")
        .cluster("b", "1")
        .endpoints("a", "1")
        .endpoints("b", "1")
        .listener("l", "1")
        .route("r", "1")
}

fn barrier_name(i: usize) -> String {
    format!("barrier-{i}")
}

/// A directory serving one published value to every proxy; it records the
/// nodes that connected.
pub struct TestDirectory {
    pub tx: watch::Sender<Arc<ProxyResources>>,
    pub nodes: Mutex<Vec<NodeInfo>>,
}

#[tonic::async_trait]
impl ProxyDirectory for TestDirectory {
    async fn connect(
        &self,
        node: &NodeInfo,
    ) -> Result<watch::Receiver<Arc<ProxyResources>>, tonic::Status> {
        if node.id.starts_with("refuse~") {
            return Err(tonic::Status::not_found(format!(
                "unknown proxy {}",
                node.id
            )));
        }
        self.nodes.lock().unwrap().push(node.clone());
        Ok(self.tx.subscribe())
    }
}

/// The real server on 127.0.0.1, stopped when dropped.
pub struct Harness {
    pub server: AdsServer,
    pub dir: Arc<TestDirectory>,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Harness {
    pub async fn start(initial: ProxyResources) -> Harness {
        Self::start_with(initial, AdsOptions::default()).await
    }

    pub async fn start_with(initial: ProxyResources, options: AdsOptions) -> Harness {
        let (tx, _) = watch::channel(Arc::new(initial));
        let dir = Arc::new(TestDirectory {
            tx,
            nodes: Mutex::new(Vec::new()),
        });
        let server = AdsServer::with_options(dir.clone(), options);
        let listener = rudder_ads::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let s = server.clone();
        tokio::spawn(async move {
            s.serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap()
        });
        Harness {
            server,
            dir,
            addr,
            stop: Some(stop),
        }
    }

    pub fn publish(&self, res: ProxyResources) {
        self.dir.tx.send_replace(Arc::new(res));
    }

    async fn client(&self) -> AggregatedDiscoveryServiceClient<tonic::transport::Channel> {
        let ep = tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr)).unwrap();
        AggregatedDiscoveryServiceClient::new(ep.connect().await.unwrap())
    }

    pub async fn sotw(&self, node_id: &str) -> SotwClient {
        let (tx, rx) = mpsc::channel(64);
        let rx = self
            .client()
            .await
            .stream_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        SotwClient {
            tx,
            rx,
            node: Some(node(node_id)),
            barriers: Vec::new(),
            sds_nonce: String::new(),
        }
    }

    pub async fn delta(&self, node_id: &str) -> DeltaClient {
        let (tx, rx) = mpsc::channel(64);
        let rx = self
            .client()
            .await
            .delta_aggregated_resources(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        DeltaClient {
            tx,
            rx,
            node: Some(node(node_id)),
            barriers: 0,
            sds_nonce: String::new(),
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        cluster: "test".into(),
        user_agent_name: "scripted".into(),
        ..Default::default()
    }
}

pub const NODE: &str = "sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local";

pub fn nack_detail(msg: &str) -> Option<RpcStatus> {
    Some(RpcStatus {
        code: 13,
        message: msg.into(),
        details: vec![],
    })
}

async fn next<T>(rx: &mut Streaming<T>) -> T {
    match tokio::time::timeout(RECV_TIMEOUT, rx.message()).await {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) => panic!("stream ended while a response was expected"),
        Ok(Err(status)) => panic!("stream failed while a response was expected: {status}"),
        Err(_) => panic!("no response within {RECV_TIMEOUT:?}"),
    }
}

/// A scripted SotW client (one ADS stream).
pub struct SotwClient {
    tx: mpsc::Sender<DiscoveryRequest>,
    pub rx: Streaming<DiscoveryResponse>,
    node: Option<Node>,
    barriers: Vec<String>,
    sds_nonce: String,
}

impl SotwClient {
    /// Sends a request; the node goes on the first one only.
    pub async fn send(&mut self, mut req: DiscoveryRequest) {
        req.node = self.node.take();
        self.tx.send(req).await.expect("stream open");
    }

    pub async fn request(&mut self, t: TypeUrl, version: &str, names: &[&str], nonce: &str) {
        self.send(req(t, version, names, nonce)).await
    }

    /// ACKs `resp`, asking for `names`.
    pub async fn ack(&mut self, resp: &DiscoveryResponse, names: &[&str]) {
        let t = TypeUrl::parse(&resp.type_url).unwrap();
        self.request(t, &resp.version_info, names, &resp.nonce)
            .await
    }

    pub async fn nack(
        &mut self,
        t: TypeUrl,
        kept_version: &str,
        nonce: &str,
        names: &[&str],
        error: &str,
    ) {
        let mut r = req(t, kept_version, names, nonce);
        r.error_detail = nack_detail(error);
        self.send(r).await
    }

    pub async fn recv(&mut self) -> DiscoveryResponse {
        next(&mut self.rx).await
    }

    /// The next response, which must be of type `t`.
    pub async fn expect(&mut self, t: TypeUrl) -> DiscoveryResponse {
        let r = self.recv().await;
        assert_eq!(
            r.type_url,
            t.as_str(),
            "expected a {} response, got {:?} ({} resources)",
            t.short(),
            r.type_url,
            r.resources.len()
        );
        r
    }

    /// Asserts the server sent nothing since the last message received.
    pub async fn barrier(&mut self) {
        self.barriers.push(barrier_name(self.barriers.len()));
        let names: Vec<String> = self.barriers.clone();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let nonce = self.sds_nonce.clone();
        self.request(SDS, "", &names, &nonce).await;
        let r = self.recv().await;
        assert_eq!(
            r.type_url,
            SDS.as_str(),
            "the server sent an unexpected {} response before the barrier",
            r.type_url
        );
        // SDS responses carry only what the proxy does not hold yet: the new
        // barrier secret.
        assert_eq!(self::names(&r), [self.barriers.last().unwrap().as_str()]);
        // ACK it, so no response is left in flight (convergence counts it).
        self.ack(&r, &names).await;
        self.sds_nonce = r.nonce;
    }

    /// The usual Envoy start: CDS, EDS for its clusters, CDS ACK, LDS, RDS,
    /// ACKs. Returns the last response of each type.
    pub async fn start_all(
        &mut self,
        clusters: &[&str],
        routes: &[&str],
    ) -> BTreeMap<TypeUrl, DiscoveryResponse> {
        let mut last = BTreeMap::new();
        self.request(CDS, "", &[], "").await;
        let cds = self.expect(CDS).await;
        self.request(EDS, "", clusters, "").await;
        let eds = self.expect(EDS).await;
        self.ack(&cds, &[]).await;
        self.ack(&eds, clusters).await;
        self.request(LDS, "", &[], "").await;
        let lds = self.expect(LDS).await;
        self.request(RDS, "", routes, "").await;
        let rds = self.expect(RDS).await;
        self.ack(&lds, &[]).await;
        self.ack(&rds, routes).await;
        self.barrier().await;
        last.insert(CDS, cds);
        last.insert(EDS, eds);
        last.insert(LDS, lds);
        last.insert(RDS, rds);
        last
    }
}

pub fn req(t: TypeUrl, version: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.into(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        type_url: t.as_str().into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

/// Names of the resources in a SotW response (decoding just the `name` field).
pub fn names(r: &DiscoveryResponse) -> Vec<String> {
    r.resources.iter().map(resource_name).collect()
}

pub fn resource_name(a: &Any) -> String {
    use prost::Message;
    match TypeUrl::parse(&a.type_url).unwrap() {
        CDS => Cluster::decode(a.value.as_slice()).unwrap().name,
        EDS => {
            ClusterLoadAssignment::decode(a.value.as_slice())
                .unwrap()
                .cluster_name
        }
        LDS => Listener::decode(a.value.as_slice()).unwrap().name,
        RDS => RouteConfiguration::decode(a.value.as_slice()).unwrap().name,
        SDS => Secret::decode(a.value.as_slice()).unwrap().name,
    }
}

/// A scripted Delta client (one ADS stream).
pub struct DeltaClient {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    pub rx: Streaming<DeltaDiscoveryResponse>,
    node: Option<Node>,
    barriers: usize,
    sds_nonce: String,
}

pub fn dreq(
    t: TypeUrl,
    subscribe: &[&str],
    unsubscribe: &[&str],
    nonce: &str,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: t.as_str().into(),
        resource_names_subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        resource_names_unsubscribe: unsubscribe.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

impl DeltaClient {
    pub async fn send(&mut self, mut req: DeltaDiscoveryRequest) {
        req.node = self.node.take();
        self.tx.send(req).await.expect("stream open");
    }

    pub async fn subscribe(&mut self, t: TypeUrl, names: &[&str], nonce: &str) {
        self.send(dreq(t, names, &[], nonce)).await
    }

    pub async fn ack(&mut self, resp: &DeltaDiscoveryResponse) {
        let t = TypeUrl::parse(&resp.type_url).unwrap();
        self.send(dreq(t, &[], &[], &resp.nonce)).await
    }

    pub async fn nack(&mut self, resp: &DeltaDiscoveryResponse, error: &str) {
        let t = TypeUrl::parse(&resp.type_url).unwrap();
        let mut r = dreq(t, &[], &[], &resp.nonce);
        r.error_detail = nack_detail(error);
        self.send(r).await
    }

    pub async fn recv(&mut self) -> DeltaDiscoveryResponse {
        next(&mut self.rx).await
    }

    pub async fn expect(&mut self, t: TypeUrl) -> DeltaDiscoveryResponse {
        let r = self.recv().await;
        assert_eq!(
            r.type_url,
            t.as_str(),
            "expected a {} response, got {:?} ({} resources, removed {:?})",
            t.short(),
            r.type_url,
            r.resources.len(),
            r.removed_resources
        );
        r
    }

    /// Asserts the server sent nothing since the last message received.
    pub async fn barrier(&mut self) {
        let name = barrier_name(self.barriers);
        self.barriers += 1;
        let nonce = self.sds_nonce.clone();
        self.subscribe(SDS, &[&name], &nonce).await;
        let r = self.recv().await;
        assert_eq!(
            r.type_url,
            SDS.as_str(),
            "the server sent an unexpected {} response before the barrier",
            r.type_url
        );
        assert_eq!(dnames(&r), vec![name]);
        self.ack(&r).await;
        self.sds_nonce = r.nonce;
    }

    /// Envoy's delta start: wildcard CDS, EDS for the clusters, wildcard LDS,
    /// RDS for the routes, all ACKed.
    pub async fn start_all(&mut self, clusters: &[&str], routes: &[&str]) {
        self.subscribe(CDS, &[], "").await;
        let cds = self.expect(CDS).await;
        self.subscribe(EDS, clusters, "").await;
        let eds = self.expect(EDS).await;
        self.ack(&cds).await;
        self.ack(&eds).await;
        self.subscribe(LDS, &[], "").await;
        let lds = self.expect(LDS).await;
        self.subscribe(RDS, routes, "").await;
        let rds = self.expect(RDS).await;
        self.ack(&lds).await;
        self.ack(&rds).await;
        self.barrier().await;
    }
}

/// Names of the resources in a Delta response.
pub fn dnames(r: &DeltaDiscoveryResponse) -> Vec<String> {
    r.resources.iter().map(|x| x.name.clone()).collect()
}

/// Versions by name in a Delta response.
pub fn dversions(r: &DeltaDiscoveryResponse) -> BTreeMap<String, String> {
    r.resources
        .iter()
        .map(|x| (x.name.clone(), x.version.clone()))
        .collect()
}

/// Waits (bounded) for a condition that follows asynchronously from an
/// action, such as server-side cleanup after a client disconnects.
pub async fn wait_until(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 5 s");
}
