//! One emulated sidecar: a real ADS stream on its own TCP/HTTP2 connection
//! that behaves like Envoy.
//!
//! ```text
//!  CDS (wildcard) ─► clusters ─► EDS for newly named EDS clusters, then ACK CDS
//!  EDS answer ─► (first time: the clusters warmed) LDS (wildcard), then ACK EDS
//!  LDS ─► listeners ─► RDS for newly named routes, then ACK LDS
//!  RDS answer ─► ACK RDS
//! ```
//!
//! As Envoy 1.40 does (`tests/envoy_sequence.rs` checks the two send the
//! same requests): a response is ACKed once it is handled, after the
//! subscriptions it causes, and never waits for warming; LDS starts when the
//! first clusters have warmed, from within the handling of their EDS
//! answer, so its request goes before that answer's ACK. Every response is
//! ACKed with its nonce (and in SotW its version). The sidecar records
//! counts per type and, for the names the scenarios watch, when each
//! different version of the resource arrived.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    hash::{Hash, Hasher},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use envoy_types::pb::envoy::{
    config::core::v3::Node,
    service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest},
};
use prost::Message;
use tonic::codegen::http::uri::PathAndQuery;

use crate::wire::{self, RawCodec};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

/// The four xDS types a sidecar uses, in push order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Type {
    /// Clusters.
    Cds = 0,
    /// ClusterLoadAssignments.
    Eds = 1,
    /// Listeners.
    Lds = 2,
    /// RouteConfigurations.
    Rds = 3,
}

impl Type {
    /// All, in order.
    pub const ALL: [Type; 4] = [Type::Cds, Type::Eds, Type::Lds, Type::Rds];

    /// The type URL.
    pub fn url(self) -> &'static str {
        match self {
            Type::Cds => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            Type::Eds => "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            Type::Lds => "type.googleapis.com/envoy.config.listener.v3.Listener",
            Type::Rds => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    /// Short name.
    pub fn short(self) -> &'static str {
        ["CDS", "EDS", "LDS", "RDS"][self as usize]
    }

    fn parse(url: &str) -> Option<Type> {
        Type::ALL.into_iter().find(|t| t.url() == url)
    }
}

/// SotW or Delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// State of the world.
    Sotw,
    /// Incremental.
    Delta,
}

impl Mode {
    /// `sotw` or `delta`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sotw => "sotw",
            Mode::Delta => "delta",
        }
    }
}

/// Counts for one type on one stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    /// Responses received.
    pub responses: u64,
    /// Resources in them.
    pub resources: u64,
    /// Names removed (Delta).
    pub removed: u64,
    /// Encoded bytes of the responses.
    pub bytes: u64,
    /// Requests sent (subscriptions and ACKs).
    pub requests: u64,
    /// Encoded bytes of the requests.
    pub request_bytes: u64,
}

impl Counters {
    /// Adds `o` to `self`.
    pub fn add(&mut self, o: &Counters) {
        self.responses += o.responses;
        self.resources += o.resources;
        self.removed += o.removed;
        self.bytes += o.bytes;
        self.requests += o.requests;
        self.request_bytes += o.request_bytes;
    }
}

/// What one stream saw; shared with the scenario driver.
#[derive(Debug, Default)]
pub struct State {
    /// When it had ACKed CDS, EDS, LDS and RDS (each at least once).
    pub configured_at: Option<Instant>,
    /// Per type.
    pub counters: [Counters; 4],
    /// Connection attempts that failed before a stream was open.
    pub refused: u64,
    /// Why the stream ended, if it did before the run stopped it.
    pub broken: Option<String>,
    /// Watched keys (`eds:<name>`, `rds:<name>`): when each different
    /// version arrived, as (time, hash of its bytes); unchanged resends are
    /// not recorded.
    pub receipts: HashMap<String, Vec<(Instant, u64)>>,
}

impl State {
    /// The first arrival of `key` after `t` that differs from what the
    /// sidecar held at `t`.
    pub fn change_after(&self, key: &str, t: Instant) -> Option<Instant> {
        let list = self.receipts.get(key)?;
        let before = list.iter().rev().find(|(at, _)| *at <= t).map(|(_, h)| *h);
        list.iter()
            .find(|(at, h)| *at > t && Some(*h) != before)
            .map(|(at, _)| *at)
    }
}

/// Everything a sidecar needs to run.
#[derive(Clone)]
pub struct Config {
    /// pilot's ADS address.
    pub addr: SocketAddr,
    /// SotW or Delta.
    pub mode: Mode,
    /// The Envoy node: id and metadata of the pod.
    pub node: Node,
    /// EDS names whose arrivals are recorded (every RDS name always is).
    pub watch: Arc<HashSet<String>>,
    /// Changed to `true` when the run ends.
    pub stop: watch::Receiver<bool>,
    /// Give up connecting after this.
    pub connect_deadline: Instant,
}

/// Runs one sidecar until `stop`; the state is updated as it goes.
pub async fn run(cfg: Config, state: Arc<Mutex<State>>) {
    let mut stop = cfg.stop.clone();
    let client = loop {
        match connect(cfg.addr).await {
            Ok(c) => break c,
            Err(e) => {
                let mut s = state.lock().unwrap();
                s.refused += 1;
                if Instant::now() > cfg.connect_deadline || *stop.borrow() {
                    s.broken = Some(format!("connect: {e}"));
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let result = tokio::select! {
        r = async {
            match cfg.mode {
                Mode::Sotw => Sotw::new(&cfg, state.clone()).run(client).await,
                Mode::Delta => Delta::new(&cfg, state.clone()).run(client).await,
            }
        } => r,
        _ = stop.wait_for(|s| *s) => Ok(()),
    };
    if let Err(e) = result {
        if !*cfg.stop.borrow() {
            state.lock().unwrap().broken = Some(e);
        }
    }
}

type Client = tonic::client::Grpc<tonic::transport::Channel>;

const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// One TCP connection (one HTTP/2 connection) per sidecar, as Envoy has.
async fn connect(addr: SocketAddr) -> Result<Client, tonic::transport::Error> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        // Envoy's defaults: large windows, so a big response is not throttled.
        .initial_stream_window_size(Some(16 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .tcp_nodelay(true)
        .connect()
        .await?;
    Ok(tonic::client::Grpc::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX))
}

/// Opens the ADS stream at `path`: requests from `rx`, each response as
/// its bytes (see [`wire`]).
async fn open<Req: Message + Send + 'static>(
    client: &mut Client,
    path: &'static str,
    rx: mpsc::Receiver<Req>,
) -> Result<tonic::Streaming<Bytes>, String> {
    client
        .ready()
        .await
        .map_err(|e| format!("stream: not ready: {e}"))?;
    let request = tonic::Request::new(ReceiverStream::new(rx));
    let path = PathAndQuery::from_static(path);
    Ok(client
        .streaming(request, path, RawCodec::<Req>::default())
        .await
        .map_err(stream_error)?
        .into_inner())
}

/// The name in field 1 of an encoded resource (every xDS resource type
/// here has its name there, and prost writes fields in order).
fn name_of(bytes: &[u8]) -> Option<&str> {
    let (&tag, rest) = bytes.split_first()?;
    if tag != 0x0a {
        return None;
    }
    let mut len = 0usize;
    let mut shift = 0;
    let mut i = 0;
    loop {
        let b = *rest.get(i)?;
        len |= ((b & 0x7f) as usize) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 35 {
            return None;
        }
    }
    std::str::from_utf8(rest.get(i..i + len)?).ok()
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The EDS name of each EDS cluster.
fn eds_names<'a>(
    clusters: impl Iterator<Item = &'a Bytes>,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for body in clusters {
        let c = wire::Cluster::decode(body.clone()).map_err(|e| format!("cluster: {e}"))?;
        let eds = c.r#type == Some(wire::EDS);
        let service = match c.eds_cluster_config {
            Some(cfg) if !cfg.service_name.is_empty() => cfg.service_name,
            _ => c.name.clone(),
        };
        out.push((c.name, if eds { service } else { String::new() }));
    }
    Ok(out)
}

/// Route names the listener's HTTP connection managers fetch over RDS.
fn route_names(l: &wire::Listener, out: &mut BTreeSet<String>) {
    for chain in l
        .filter_chains
        .iter()
        .chain(l.default_filter_chain.as_ref())
    {
        for f in &chain.filters {
            let Some(any) = &f.typed_config else {
                continue;
            };
            if !any.type_url.ends_with("HttpConnectionManager") {
                continue;
            }
            if let Ok(hcm) = wire::HttpConnectionManager::decode(any.value.clone()) {
                if let Some(rds) = hcm.rds {
                    out.insert(rds.route_config_name);
                }
            }
        }
    }
}

/// Shared bookkeeping of both modes.
struct Recorder {
    state: Arc<Mutex<State>>,
    watch: Arc<HashSet<String>>,
    /// Last hash recorded per watched key.
    last: HashMap<String, u64>,
    acked: [bool; 4],
    need_eds: bool,
    need_rds: bool,
}

impl Recorder {
    fn response(&mut self, t: Type, resources: u64, removed: u64, bytes: u64) {
        let mut s = self.state.lock().unwrap();
        let c = &mut s.counters[t as usize];
        c.responses += 1;
        c.resources += resources;
        c.removed += removed;
        c.bytes += bytes;
    }

    fn request(&mut self, t: Type, bytes: usize) {
        let mut s = self.state.lock().unwrap();
        let c = &mut s.counters[t as usize];
        c.requests += 1;
        c.request_bytes += bytes as u64;
    }

    /// Records the arrival of a resource if a scenario watches it.
    fn resource(&mut self, t: Type, now: Instant, name: &str, bytes: &[u8]) {
        let key = match t {
            Type::Eds if self.watch.contains(name) => format!("eds:{name}"),
            Type::Rds => format!("rds:{name}"),
            _ => return,
        };
        let h = hash(bytes);
        if self.last.get(&key) == Some(&h) {
            return;
        }
        self.last.insert(key.clone(), h);
        self.state
            .lock()
            .unwrap()
            .receipts
            .entry(key)
            .or_default()
            .push((now, h));
    }

    fn acked(&mut self, t: Type) {
        self.acked[t as usize] = true;
        let done = self.acked[Type::Cds as usize]
            && self.acked[Type::Lds as usize]
            && (self.acked[Type::Eds as usize] || !self.need_eds)
            && (self.acked[Type::Rds as usize] || !self.need_rds);
        if done {
            let mut s = self.state.lock().unwrap();
            if s.configured_at.is_none() {
                s.configured_at = Some(Instant::now());
            }
        }
    }
}

fn stream_error(e: tonic::Status) -> String {
    format!("stream: {} {}", e.code(), e.message())
}

/// The SotW emulation.
struct Sotw {
    node: Option<Node>,
    rec: Recorder,
    tx: Option<mpsc::Sender<DiscoveryRequest>>,
    /// Per type: subscribed names, last version and nonce received.
    names: [Vec<String>; 4],
    version: [String; 4],
    nonce: [String; 4],
    lds_requested: bool,
}

impl Sotw {
    fn new(cfg: &Config, state: Arc<Mutex<State>>) -> Sotw {
        Sotw {
            node: Some(cfg.node.clone()),
            rec: Recorder {
                state,
                watch: cfg.watch.clone(),
                last: HashMap::new(),
                acked: [false; 4],
                need_eds: false,
                need_rds: false,
            },
            tx: None,
            names: Default::default(),
            version: Default::default(),
            nonce: Default::default(),
            lds_requested: false,
        }
    }

    async fn send(&mut self, t: Type, version: String, nonce: String) -> Result<(), String> {
        let req = DiscoveryRequest {
            version_info: version,
            node: self.node.take(),
            resource_names: self.names[t as usize].clone(),
            type_url: t.url().into(),
            response_nonce: nonce,
            ..Default::default()
        };
        self.rec.request(t, req.encoded_len());
        let tx = self.tx.as_ref().ok_or("no stream")?;
        tx.send(req)
            .await
            .map_err(|_| "request stream closed".to_string())
    }

    /// ACKs the last response of `t`.
    async fn ack(&mut self, t: Type) -> Result<(), String> {
        let (v, n) = (
            self.version[t as usize].clone(),
            self.nonce[t as usize].clone(),
        );
        self.send(t, v, n).await?;
        self.rec.acked(t);
        Ok(())
    }

    /// Changes the subscription of `t` (EDS or RDS); true when names were
    /// added (they warm until the answer).
    async fn subscribe(&mut self, t: Type, names: Vec<String>) -> Result<bool, String> {
        let old = &self.names[t as usize];
        if *old == names {
            return Ok(false);
        }
        let old: BTreeSet<&String> = old.iter().collect();
        let added = names.iter().any(|n| !old.contains(n));
        self.names[t as usize] = names;
        let (v, n) = (
            self.version[t as usize].clone(),
            self.nonce[t as usize].clone(),
        );
        self.send(t, v, n).await?;
        Ok(added)
    }

    async fn run(mut self, mut client: Client) -> Result<(), String> {
        let (tx, rx) = mpsc::channel(64);
        self.tx = Some(tx);
        self.send(Type::Cds, String::new(), String::new()).await?;
        let mut stream = open(&mut client, SOTW_PATH, rx).await?;
        loop {
            let bytes = match stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) => return Err("stream ended by pilot".into()),
                Err(e) => return Err(stream_error(e)),
            };
            let size = bytes.len() as u64;
            let r = wire::Response::decode(bytes).map_err(|e| format!("response: {e}"))?;
            self.handle(r, size).await?;
        }
    }

    async fn handle(&mut self, r: wire::Response, size: u64) -> Result<(), String> {
        let Some(t) = Type::parse(&r.type_url) else {
            return Err(format!("unexpected type {}", r.type_url));
        };
        let now = Instant::now();
        self.rec.response(t, r.resources.len() as u64, 0, size);
        for a in &r.resources {
            if let Some(name) = name_of(&a.value) {
                self.rec.resource(t, now, name, &a.value);
            }
        }
        self.version[t as usize] = r.version_info.clone();
        self.nonce[t as usize] = r.nonce.clone();
        match t {
            Type::Cds => {
                let mut eds: Vec<String> = eds_names(r.resources.iter().map(|b| &b.value))?
                    .into_iter()
                    .filter_map(|(_, s)| (!s.is_empty()).then_some(s))
                    .collect();
                eds.sort();
                eds.dedup();
                self.rec.need_eds = !eds.is_empty();
                if !self.subscribe(Type::Eds, eds).await? {
                    // Nothing to warm: LDS starts within this update.
                    self.after_cds().await?;
                }
                self.ack(Type::Cds).await?;
            }
            Type::Eds => {
                self.after_cds().await?;
                self.ack(Type::Eds).await?;
            }
            Type::Lds => {
                let mut routes = BTreeSet::new();
                for a in &r.resources {
                    let l = wire::Listener::decode(a.value.clone())
                        .map_err(|e| format!("listener: {e}"))?;
                    route_names(&l, &mut routes);
                }
                self.rec.need_rds = !routes.is_empty();
                self.subscribe(Type::Rds, routes.into_iter().collect())
                    .await?;
                self.ack(Type::Lds).await?;
            }
            Type::Rds => self.ack(Type::Rds).await?,
        }
        Ok(())
    }

    /// Once the first clusters are warm, Envoy asks for listeners.
    async fn after_cds(&mut self) -> Result<(), String> {
        if !self.lds_requested {
            self.lds_requested = true;
            self.send(Type::Lds, String::new(), String::new()).await?;
        }
        Ok(())
    }
}

/// The Delta emulation.
struct Delta {
    node: Option<Node>,
    rec: Recorder,
    tx: Option<mpsc::Sender<DeltaDiscoveryRequest>>,
    /// Clusters held: name → EDS name ("" for non-EDS clusters).
    clusters: BTreeMap<String, String>,
    /// Listeners held: name → its route names.
    listeners: BTreeMap<String, BTreeSet<String>>,
    /// How many held clusters (listeners) name each EDS (RDS) name: the
    /// subscribed names are those counted. Counted, so a response costs
    /// the emulation what it changed, as it costs an Envoy, not a walk of
    /// everything held (which at 4400 clusters and 2000 sidecars on one
    /// core bounded the latencies it measured).
    refs: [Refs; 4],
    lds_requested: bool,
}

/// Names counted by how many held resources refer to them.
type Refs = HashMap<String, usize, foldhash::fast::RandomState>;

/// What one response did to a [`Refs`]: the names whose count fell to zero
/// and those whose count rose from zero, in the order they moved.
#[derive(Default)]
struct Moved {
    down: Vec<String>,
    up: Vec<String>,
}

impl Moved {
    /// One fewer reference to `name` (call for every old reference first).
    fn drop(&mut self, refs: &mut Refs, name: &str) {
        if let Some(n) = refs.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                refs.remove(name);
                self.down.push(name.to_string());
            }
        }
    }

    /// One more reference to `name`.
    fn take(&mut self, refs: &mut Refs, name: &str) {
        match refs.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                refs.insert(name.to_string(), 1);
                self.up.push(name.to_string());
            }
        }
    }

    /// The names to subscribe and to unsubscribe: a name that fell to zero
    /// and rose again within the response is neither.
    fn into_changes(self) -> (Vec<String>, Vec<String>) {
        let Moved { mut down, mut up } = self;
        if !down.is_empty() && !up.is_empty() {
            let both: HashSet<&String> = down.iter().collect::<HashSet<_>>();
            let both: HashSet<String> = up.iter().filter(|n| both.contains(n)).cloned().collect();
            down.retain(|n| !both.contains(n));
            up.retain(|n| !both.contains(n));
        }
        (up, down)
    }
}

impl Delta {
    fn new(cfg: &Config, state: Arc<Mutex<State>>) -> Delta {
        Delta {
            node: Some(cfg.node.clone()),
            rec: Recorder {
                state,
                watch: cfg.watch.clone(),
                last: HashMap::new(),
                acked: [false; 4],
                need_eds: false,
                need_rds: false,
            },
            tx: None,
            clusters: BTreeMap::new(),
            listeners: BTreeMap::new(),
            refs: Default::default(),
            lds_requested: false,
        }
    }

    async fn send(
        &mut self,
        t: Type,
        subscribe: Vec<String>,
        unsubscribe: Vec<String>,
        nonce: String,
    ) -> Result<(), String> {
        let req = DeltaDiscoveryRequest {
            node: self.node.take(),
            type_url: t.url().into(),
            resource_names_subscribe: subscribe,
            resource_names_unsubscribe: unsubscribe,
            response_nonce: nonce,
            ..Default::default()
        };
        self.rec.request(t, req.encoded_len());
        let tx = self.tx.as_ref().ok_or("no stream")?;
        tx.send(req)
            .await
            .map_err(|_| "request stream closed".to_string())
    }

    async fn ack(&mut self, t: Type, nonce: String) -> Result<(), String> {
        self.send(t, vec![], vec![], nonce).await?;
        self.rec.acked(t);
        Ok(())
    }

    /// Subscribes to the names of `t` whose count rose from zero and
    /// unsubscribes those whose count fell to zero; true when names were
    /// added.
    async fn resubscribe(&mut self, t: Type, moved: Moved) -> Result<bool, String> {
        let (add, remove) = moved.into_changes();
        if add.is_empty() && remove.is_empty() {
            return Ok(false);
        }
        let added = !add.is_empty();
        self.send(t, add, remove, String::new()).await?;
        Ok(added)
    }

    async fn run(mut self, mut client: Client) -> Result<(), String> {
        let (tx, rx) = mpsc::channel(64);
        self.tx = Some(tx);
        self.send(Type::Cds, vec![], vec![], String::new()).await?;
        let mut stream = open(&mut client, DELTA_PATH, rx).await?;
        loop {
            let bytes = match stream.message().await {
                Ok(Some(r)) => r,
                Ok(None) => return Err("stream ended by pilot".into()),
                Err(e) => return Err(stream_error(e)),
            };
            let size = bytes.len() as u64;
            let r = wire::DeltaResponse::decode(bytes).map_err(|e| format!("response: {e}"))?;
            self.handle(r, size).await?;
        }
    }

    async fn handle(&mut self, r: wire::DeltaResponse, size: u64) -> Result<(), String> {
        let Some(t) = Type::parse(&r.type_url) else {
            return Err(format!("unexpected type {}", r.type_url));
        };
        let now = Instant::now();
        self.rec.response(
            t,
            r.resources.len() as u64,
            r.removed_resources.len() as u64,
            size,
        );
        for res in &r.resources {
            if let Some(a) = &res.resource {
                self.rec.resource(t, now, &res.name, &a.value);
            }
        }
        match t {
            Type::Cds => {
                let refs = &mut self.refs[Type::Eds as usize];
                let mut moved = Moved::default();
                let held = eds_names(
                    r.resources
                        .iter()
                        .filter_map(|x| x.resource.as_ref().map(|b| &b.value)),
                )?;
                refs.reserve(held.len());
                // Every old reference goes before any new one is counted.
                for name in &r.removed_resources {
                    if let Some(old) = self.clusters.remove(name) {
                        moved.drop(refs, &old);
                    }
                }
                for (name, _) in &held {
                    if let Some(old) = self.clusters.get(name) {
                        moved.drop(refs, old);
                    }
                }
                for (name, eds) in held {
                    if !eds.is_empty() {
                        moved.take(refs, &eds);
                    }
                    self.clusters.insert(name, eds);
                }
                self.rec.need_eds = !refs.is_empty();
                if !self.resubscribe(Type::Eds, moved).await? {
                    // Nothing to warm: LDS starts within this update.
                    self.after_cds().await?;
                }
                self.ack(Type::Cds, r.nonce).await?;
            }
            Type::Eds => {
                self.after_cds().await?;
                self.ack(Type::Eds, r.nonce).await?;
            }
            Type::Lds => {
                let refs = &mut self.refs[Type::Rds as usize];
                let mut moved = Moved::default();
                let mut held = Vec::with_capacity(r.resources.len());
                for res in &r.resources {
                    let Some(a) = &res.resource else { continue };
                    let l = wire::Listener::decode(a.value.clone())
                        .map_err(|e| format!("listener: {e}"))?;
                    let mut routes = BTreeSet::new();
                    route_names(&l, &mut routes);
                    held.push((l.name, routes));
                }
                // Every old reference goes before any new one is counted.
                let removed = r.removed_resources.iter();
                for name in removed.chain(held.iter().map(|(n, _)| n)) {
                    for old in self.listeners.remove(name).unwrap_or_default() {
                        moved.drop(refs, &old);
                    }
                }
                for (name, routes) in held {
                    for route in &routes {
                        moved.take(refs, route);
                    }
                    self.listeners.insert(name, routes);
                }
                self.rec.need_rds = !refs.is_empty();
                self.resubscribe(Type::Rds, moved).await?;
                self.ack(Type::Lds, r.nonce).await?;
            }
            Type::Rds => self.ack(Type::Rds, r.nonce).await?,
        }
        Ok(())
    }

    async fn after_cds(&mut self) -> Result<(), String> {
        if !self.lds_requested {
            self.lds_requested = true;
            self.send(Type::Lds, vec![], vec![], String::new()).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_of_reads_field_one() {
        let c = envoy_types::pb::envoy::config::cluster::v3::Cluster {
            name: "outbound|9080||a.b.svc.cluster.local".into(),
            ..Default::default()
        };
        let bytes = c.encode_to_vec();
        assert_eq!(
            name_of(&bytes),
            Some("outbound|9080||a.b.svc.cluster.local")
        );
        assert_eq!(name_of(&[]), None);
    }

    #[test]
    fn change_after_skips_what_was_held() {
        let t0 = Instant::now();
        let t = |ms| t0 + Duration::from_millis(ms);
        let mut s = State::default();
        s.receipts
            .insert("k".into(), vec![(t(1), 1), (t(5), 2), (t(9), 3)]);
        assert_eq!(s.change_after("k", t(2)), Some(t(5)));
        assert_eq!(s.change_after("k", t(5)), Some(t(9)));
        assert_eq!(s.change_after("k", t(9)), None);
        assert_eq!(s.change_after("other", t(0)), None);
    }

    #[test]
    fn counted_names_move_only_when_their_count_leaves_or_reaches_zero() {
        let mut refs = Refs::default();
        let mut m = Moved::default();
        for n in ["a", "b", "a"] {
            m.take(&mut refs, n);
        }
        assert_eq!(m.into_changes(), (vec!["a".into(), "b".into()], vec![]));
        // One of two references to "a" goes: still subscribed. "b" goes
        // and comes back within one response: neither. "c" is new.
        let mut m = Moved::default();
        m.drop(&mut refs, "a");
        m.drop(&mut refs, "b");
        m.take(&mut refs, "b");
        m.take(&mut refs, "c");
        assert_eq!(m.into_changes(), (vec!["c".into()], vec![]));
        let mut m = Moved::default();
        m.drop(&mut refs, "a");
        m.drop(&mut refs, "unknown");
        assert_eq!(m.into_changes(), (vec![], vec!["a".into()]));
        assert_eq!(refs.len(), 2);
    }
}
