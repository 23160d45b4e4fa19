//! ADS framed by hand: gRPC's length-prefixed messages over the HTTP/2
//! stream, without tonic's codec, so that memory stays proportional to what
//! is in flight rather than to the largest message a stream ever carried.
//!
//! ```text
//!  Envoy ─DATA frames─► Requests: one message's bytes at a time ─prost─► DiscoveryRequest
//!  Envoy ◄─DATA frames─ ResponseBody ◄─ 32 KiB chunks, encoded on demand ◄─ Outgoing (Arc<Resource>s)
//! ```
//!
//! Why not tonic's `Streaming` and `ProstCodec`: a stream's decode buffer
//! keeps the capacity of the largest request it saw (~200 KB for Envoy's
//! first EDS request, so ~400 MB for 2000 sidecars), and an encoded response
//! is one buffer holding a copy of every resource in it. Here a request's
//! buffer is dropped once it is decoded if it grew large, and a response
//! holds only pointers to the shared resources: its bytes are produced chunk
//! by chunk as HTTP/2 flow control asks for them.
//!
//! The wire format is gRPC's (a 1-byte compressed flag, a 4-byte big-endian
//! length, the protobuf message); compressed requests are refused, as Envoy
//! never sends them unless configured to.

use std::{
    convert::Infallible,
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use prost::{encoding, Message};
use rudder_xds::{Content, ProxyResources, Resource, TypeUrl};
use tokio::sync::mpsc;
use tonic::{
    body::Body,
    codegen::{http, Service},
    server::NamedService,
    Status,
};

/// Largest request accepted (Envoy's biggest are SotW EDS ACKs naming every
/// cluster: ~50 bytes a name).
pub(crate) const MAX_REQUEST: usize = 16 << 20;

/// After a request larger than this, the buffer is reallocated to what is
/// left in it, so the allocation does not outlive the request.
const KEEP_BUFFER: usize = 16 << 10;

/// Responses are produced in chunks of about this size.
const CHUNK: usize = 32 << 10;

/// The gRPC service name both ADS methods live under.
pub(crate) const SERVICE: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";

/// The requests of one stream, decoded one message at a time.
pub(crate) struct Requests<M> {
    body: Body,
    buf: BytesMut,
    _message: PhantomData<M>,
}

impl<M: Message + Default> Requests<M> {
    pub(crate) fn new(body: Body) -> Self {
        Requests {
            body,
            buf: BytesMut::new(),
            _message: PhantomData,
        }
    }

    /// The next request; `Ok(None)` when the client half-closed the stream.
    pub(crate) async fn message(&mut self) -> Result<Option<M>, Status> {
        loop {
            if let Some(m) = self.decode_one()? {
                return Ok(Some(m));
            }
            match self.body.frame().await {
                None if self.buf.is_empty() => return Ok(None),
                None => {
                    return Err(Status::internal(format!(
                        "the stream ended inside a message ({} bytes buffered)",
                        self.buf.len()
                    )))
                }
                Some(Err(e)) => return Err(e),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    fn decode_one(&mut self) -> Result<Option<M>, Status> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        if self.buf[0] != 0 {
            return Err(Status::unimplemented(
                "compressed gRPC messages are not supported on ADS",
            ));
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_REQUEST {
            return Err(Status::resource_exhausted(format!(
                "request of {len} bytes exceeds the limit of {MAX_REQUEST}"
            )));
        }
        if self.buf.len() < 5 + len {
            self.buf.reserve(5 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(5);
        let message = self.buf.split_to(len);
        if len > KEEP_BUFFER {
            // The rest still shares the big allocation: move it to its own.
            self.buf = BytesMut::from(&self.buf[..]);
        }
        M::decode(message)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("decoding the request: {e}")))
    }
}

/// One response, as pointers to the resources it carries; encoded only when
/// the connection is ready for its bytes. `DiscoveryResponse` and
/// `DeltaDiscoveryResponse` number their common fields alike (version 1,
/// resources 2, type URL 4, nonce 5), so one header serves both.
#[derive(Debug)]
pub(crate) struct Outgoing {
    /// `version_info` (SotW) or `system_version_info` (Delta).
    pub(crate) version: String,
    pub(crate) type_url: &'static str,
    pub(crate) nonce: String,
    pub(crate) payload: Payload,
}

/// What a response carries beyond its header.
#[derive(Debug)]
pub(crate) enum Payload {
    /// `DiscoveryResponse.resources`: the packed resources.
    Sotw(Vec<Arc<Resource>>),
    /// `DeltaDiscoveryResponse.resources` (named, versioned) and
    /// `removed_resources`.
    Delta {
        resources: Vec<(String, Arc<Resource>)>,
        removed: Vec<String>,
    },
    /// Every resource of a map that many streams share (a first response,
    /// a SotW CDS), and `rest` written resource by resource: the map's
    /// bytes are encoded once and each stream's response points at them,
    /// instead of every stream copying thousands of resources into chunks
    /// of its own (see [`whole_bytes`]).
    Whole {
        map: Arc<Content>,
        /// Resources beyond `map` (a proxy's own listeners beside the
        /// service listeners its scope shares).
        rest: Vec<(String, Arc<Resource>)>,
        /// `DeltaDiscoveryResponse` resources (named, versioned) rather
        /// than `DiscoveryResponse`'s packed ones.
        delta: bool,
        /// Delta's `removed_resources`.
        removed: Vec<String>,
    },
}

impl Payload {
    /// The payload of a response sending `send` (entries of `desired`, in
    /// name order) of type `t` to a proxy whose published resources are
    /// `res`, and removing `removed` (Delta).
    ///
    /// A response that sends all of `desired` shares encoded bytes with
    /// every other stream sending the same map when `desired` is the map
    /// pilot published (many proxies share it); of a type whose maps are
    /// each proxy's own (listeners: the capture listener holds the pod's
    /// addresses), the base the map is layered on (the part the proxy's
    /// scope shares, see [`Content::layered`]) is shared and only the
    /// proxy's own entries are written for this stream. Anything else goes
    /// resource by resource.
    pub(crate) fn of(
        t: TypeUrl,
        send: &[(&String, &Arc<Resource>)],
        desired: &Arc<Content>,
        res: &ProxyResources,
        delta: bool,
        removed: Vec<String>,
    ) -> Payload {
        let whole = !send.is_empty() && send.len() == desired.len();
        if whole {
            // A map layered on a shared part (a proxy's listeners on its
            // scope's service listeners): the part's bytes, then its own.
            if let Some(common) = desired.base().filter(|b| !b.is_empty()) {
                return Payload::Whole {
                    map: common.clone(),
                    rest: desired
                        .own()
                        .iter()
                        .map(|(n, r)| (n.clone(), r.clone()))
                        .collect(),
                    delta,
                    removed,
                };
            } else if t != TypeUrl::Listener
                && res.shared(t).is_some_and(|m| Arc::ptr_eq(m, desired))
            {
                return Payload::Whole {
                    map: desired.clone(),
                    rest: Vec::new(),
                    delta,
                    removed,
                };
            }
        }
        if delta {
            Payload::Delta {
                resources: send
                    .iter()
                    .map(|(n, r)| ((*n).clone(), (*r).clone()))
                    .collect(),
                removed,
            }
        } else {
            Payload::Sotw(send.iter().map(|(_, r)| (*r).clone()).collect())
        }
    }
}

/// The encoded `resources` fields of every entry of `map`, as a response of
/// that kind carries them, built once per map and kept while the map lives:
/// after a push thousands of streams send the same few maps (one per type
/// and scope), so each map's bytes are produced once and every stream's
/// response holds a reference to them (HTTP/2 writes them from the shared
/// buffer). Entries are found by the map's address; the `Weak` keeps the
/// address from being reused while the entry lives, and entries of maps that
/// are gone are dropped at the next lookup.
pub(crate) fn whole_bytes(map: &Arc<Content>, delta: bool) -> Bytes {
    use std::sync::{Mutex, Weak};
    type Entry = (Weak<Content>, bool, Bytes);
    static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
    /// Live maps at once: a few types times the scopes and cert modes.
    const KEEP: usize = 64;
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|(w, _, _)| w.strong_count() > 0);
    if let Some((_, _, b)) = cache
        .iter()
        .find(|(w, d, _)| *d == delta && std::ptr::eq(w.as_ptr(), Arc::as_ptr(map)))
    {
        return b.clone();
    }
    // Encoded under the lock: the streams of a storm all want the same
    // map at once, and one of them encoding it is cheaper than all.
    let len = map
        .iter()
        .map(|(n, r)| resource_field_len(delta, n, r))
        .sum();
    let mut buf = BytesMut::with_capacity(len);
    for (n, r) in map.iter() {
        put_resource_field(delta, n, r, &mut buf);
    }
    let bytes = buf.freeze();
    if cache.len() >= KEEP {
        cache.remove(0);
    }
    cache.push((Arc::downgrade(map), delta, bytes.clone()));
    bytes
}

// Field numbers (envoy/service/discovery/v3/discovery.proto).
const VERSION: u32 = 1;
const RESOURCES: u32 = 2;
const TYPE_URL: u32 = 4;
const NONCE: u32 = 5;
const DELTA_REMOVED: u32 = 6;
const RESOURCE_VERSION: u32 = 1;
const RESOURCE_BODY: u32 = 2;
const RESOURCE_NAME: u32 = 3;

fn string_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        encoding::key_len(tag) + encoding::encoded_len_varint(s.len() as u64) + s.len()
    }
}

fn put_string(tag: u32, s: &str, buf: &mut BytesMut) {
    if !s.is_empty() {
        encoding::encode_key(tag, encoding::WireType::LengthDelimited, buf);
        encoding::encode_varint(s.len() as u64, buf);
        buf.put_slice(s.as_bytes());
    }
}

/// Length of a `Resource` (Delta) message's body.
fn delta_resource_len(name: &str, r: &Resource) -> usize {
    string_len(RESOURCE_NAME, name)
        + string_len(RESOURCE_VERSION, &r.version)
        + encoding::message::encoded_len(RESOURCE_BODY, &r.body)
}

impl Outgoing {
    /// The protobuf length of the whole message.
    fn encoded_len(&self) -> usize {
        let head = string_len(VERSION, &self.version)
            + string_len(TYPE_URL, self.type_url)
            + string_len(NONCE, &self.nonce);
        let removed_len = |removed: &[String]| {
            removed
                .iter()
                .map(|n| string_len(DELTA_REMOVED, n))
                .sum::<usize>()
        };
        head + match &self.payload {
            Payload::Sotw(resources) => resources
                .iter()
                .map(|r| encoding::message::encoded_len(RESOURCES, &r.body))
                .sum::<usize>(),
            Payload::Delta { resources, removed } => {
                resources
                    .iter()
                    .map(|(n, r)| resource_field_len(true, n, r))
                    .sum::<usize>()
                    + removed_len(removed)
            }
            Payload::Whole {
                map,
                rest,
                delta,
                removed,
            } => {
                whole_bytes(map, *delta).len()
                    + rest
                        .iter()
                        .map(|(n, r)| resource_field_len(*delta, n, r))
                        .sum::<usize>()
                    + removed_len(removed)
            }
        }
    }

    /// Number of resources written one by one.
    fn items(&self) -> usize {
        match &self.payload {
            Payload::Sotw(resources) => resources.len(),
            Payload::Delta { resources, .. } => resources.len(),
            Payload::Whole { rest, .. } => rest.len(),
        }
    }

    /// Writes the gRPC prefix and the fields before the resources.
    fn head(&self, buf: &mut BytesMut) {
        buf.put_u8(0);
        buf.put_u32(self.encoded_len() as u32);
        put_string(VERSION, &self.version, buf);
        put_string(TYPE_URL, self.type_url, buf);
        put_string(NONCE, &self.nonce, buf);
        if let Payload::Delta { removed, .. } | Payload::Whole { removed, .. } = &self.payload {
            for n in removed {
                put_string(DELTA_REMOVED, n, buf);
            }
        }
    }

    /// Writes resource `i` of those written one by one.
    fn resource(&self, i: usize, buf: &mut BytesMut) {
        match &self.payload {
            Payload::Sotw(resources) => {
                encoding::message::encode(RESOURCES, &resources[i].body, buf)
            }
            Payload::Delta { resources, .. } => {
                let (name, r) = &resources[i];
                put_resource_field(true, name, r, buf);
            }
            Payload::Whole { rest, delta, .. } => {
                let (name, r) = &rest[i];
                put_resource_field(*delta, name, r, buf);
            }
        }
    }
}

/// Length of one `resources` field (key and length prefix included).
fn resource_field_len(delta: bool, name: &str, r: &Resource) -> usize {
    if !delta {
        return encoding::message::encoded_len(RESOURCES, &r.body);
    }
    let len = delta_resource_len(name, r);
    encoding::key_len(RESOURCES) + encoding::encoded_len_varint(len as u64) + len
}

/// Writes one `resources` field: the packed resource (SotW) or a named,
/// versioned `Resource` (Delta).
fn put_resource_field(delta: bool, name: &str, r: &Resource, buf: &mut BytesMut) {
    if !delta {
        return encoding::message::encode(RESOURCES, &r.body, buf);
    }
    encoding::encode_key(RESOURCES, encoding::WireType::LengthDelimited, buf);
    encoding::encode_varint(delta_resource_len(name, r) as u64, buf);
    put_string(RESOURCE_NAME, name, buf);
    put_string(RESOURCE_VERSION, &r.version, buf);
    encoding::message::encode(RESOURCE_BODY, &r.body, buf);
}

/// A response being written: the message and how far it got.
struct Writing {
    message: Outgoing,
    /// Bytes of the whole gRPC message (prefix included) not yet produced.
    left: usize,
    head_done: bool,
    /// A [`Payload::Whole`]'s shared bytes went out.
    shared_done: bool,
    next: usize,
}

impl Writing {
    fn new(message: Outgoing) -> Self {
        let left = 5 + message.encoded_len();
        Writing {
            message,
            left,
            head_done: false,
            shared_done: false,
            next: 0,
        }
    }

    /// The next chunk of bytes, `None` once the message is complete.
    fn chunk(&mut self) -> Option<Bytes> {
        let total = self.message.items();
        if let Payload::Whole { map, delta, .. } = &self.message.payload {
            // The header, then the map's shared bytes as they are.
            if !self.head_done {
                let mut buf = BytesMut::new();
                self.message.head(&mut buf);
                self.head_done = true;
                self.left = self.left.saturating_sub(buf.len());
                return Some(buf.freeze());
            }
            if !self.shared_done {
                self.shared_done = true;
                let shared = whole_bytes(map, *delta);
                self.left = self.left.saturating_sub(shared.len());
                return Some(shared);
            }
        }
        if self.head_done && self.next >= total {
            return None;
        }
        let mut buf = BytesMut::with_capacity(CHUNK.min(self.left));
        if !self.head_done {
            self.message.head(&mut buf);
            self.head_done = true;
        }
        while self.next < total && buf.len() < CHUNK {
            self.message.resource(self.next, &mut buf);
            self.next += 1;
        }
        self.left = self.left.saturating_sub(buf.len());
        Some(buf.freeze())
    }
}

/// What a stream's task hands its response body: a message or the final
/// status. Boxed because the channel allocates its slots 32 at a time for
/// every stream: pointer-sized slots keep that at 256 bytes a stream rather
/// than about 4 KB (8 MB at 2000 sidecars).
pub(crate) type StreamMessage<R = Outgoing> = Box<Result<R, Status>>;

/// The response body of one stream: its messages, chunk by chunk, then the
/// gRPC status in trailers.
pub(crate) struct ResponseBody {
    rx: mpsc::Receiver<StreamMessage>,
    writing: Option<Writing>,
    end: Option<Status>,
    done: bool,
}

impl ResponseBody {
    pub(crate) fn new(rx: mpsc::Receiver<StreamMessage>) -> Self {
        ResponseBody {
            rx,
            writing: None,
            end: None,
            done: false,
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if let Some(w) = &mut this.writing {
                match w.chunk() {
                    Some(bytes) => return Poll::Ready(Some(Ok(http_body::Frame::data(bytes)))),
                    None => this.writing = None,
                }
            }
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(status) = this.end.take() {
                this.done = true;
                let mut trailers = http::HeaderMap::new();
                // A status whose message cannot be a header value still
                // sends its code.
                if status.add_header(&mut trailers).is_err() {
                    let _ = Status::new(status.code(), "").add_header(&mut trailers);
                }
                return Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
            }
            match this.rx.poll_recv(cx).map(|m| m.map(|m| *m)) {
                Poll::Ready(Some(Ok(message))) => this.writing = Some(Writing::new(message)),
                Poll::Ready(Some(Err(status))) => this.end = Some(status),
                Poll::Ready(None) => this.end = Some(Status::ok("")),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// The gRPC response that carries a stream's messages.
pub(crate) fn streaming_response(rx: mpsc::Receiver<StreamMessage>) -> http::Response<Body> {
    http::Response::builder()
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(Body::new(ResponseBody::new(rx)))
        .expect("static headers are valid")
}

/// Both ADS methods as one tower service for tonic's router.
#[derive(Clone)]
pub struct AdsService {
    pub(crate) server: crate::AdsServer,
    /// Asked once per stream before its node is served (the TLS port);
    /// `None` serves every client (the plaintext port).
    pub(crate) authorizer: Option<std::sync::Arc<dyn crate::auth::StreamAuthorizer>>,
}

impl NamedService for AdsService {
    const NAME: &'static str = SERVICE;
}

impl Service<http::Request<Body>> for AdsService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let path = req.uri().path();
        let method = path
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(SERVICE))
            .and_then(|p| p.strip_prefix('/'))
            .unwrap_or("");
        let guard = self.authorizer.as_ref().map(|a| crate::auth::Guard {
            authorizer: a.clone(),
            peer: crate::auth::PeerCredentials::of(&req),
        });
        let response = match method {
            "StreamAggregatedResources" => self.server.open_sotw(req.into_body(), guard),
            "DeltaAggregatedResources" => self.server.open_delta(req.into_body(), guard),
            _ => Status::unimplemented(format!("{path} is not an ADS method")).into_http(),
        };
        std::future::ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::{
        envoy::service::discovery::v3::{
            DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource as DeltaResource,
        },
        google::protobuf::Any,
    };

    fn resource(i: usize) -> Arc<Resource> {
        Arc::new(Resource {
            version: format!("v{i}"),
            body: Any {
                type_url: "type.googleapis.com/x".into(),
                value: vec![i as u8; 1000 + i],
            },
        })
    }

    /// Every chunk of a message, concatenated.
    fn written(message: Outgoing) -> (Vec<u8>, usize) {
        // A whole map goes out as its one shared buffer.
        let chunked = !matches!(message.payload, Payload::Whole { .. });
        let mut w = Writing::new(message);
        let (mut out, mut chunks) = (Vec::new(), 0);
        while let Some(c) = w.chunk() {
            assert!(
                !chunked || c.len() <= CHUNK + 4096,
                "a chunk stays near {CHUNK} bytes"
            );
            out.extend_from_slice(&c);
            chunks += 1;
        }
        (out, chunks)
    }

    /// Checks the gRPC prefix and decodes the message (field order differs
    /// from prost's, which protobuf allows, so bytes are not compared).
    fn unframe<M: Message + Default>(bytes: &[u8]) -> M {
        assert_eq!(bytes[0], 0, "not compressed");
        let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        assert_eq!(len, bytes.len() - 5, "the prefix gives the exact length");
        M::decode(&bytes[5..]).expect("decodes")
    }

    fn framed(m: &impl Message) -> Vec<u8> {
        let body = m.encode_to_vec();
        let mut out = vec![0];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn sotw_chunks_are_the_prost_encoding() {
        let resources: Vec<_> = (0..100).map(resource).collect();
        let expected = DiscoveryResponse {
            version_info: "abc".into(),
            resources: resources.iter().map(|r| r.body.clone()).collect(),
            type_url: "t".into(),
            nonce: "n-1".into(),
            ..Default::default()
        };
        let (bytes, chunks) = written(Outgoing {
            version: "abc".into(),
            type_url: "t",
            nonce: "n-1".into(),
            payload: Payload::Sotw(resources),
        });
        assert!(unframe::<DiscoveryResponse>(&bytes) == expected);
        assert!(
            chunks > 2,
            "100 KB goes out in several chunks, not one buffer"
        );
    }

    #[test]
    fn delta_chunks_are_the_prost_encoding() {
        let resources: Vec<_> = (0..50).map(|i| (format!("r{i}"), resource(i))).collect();
        let expected = DeltaDiscoveryResponse {
            system_version_info: "abc".into(),
            resources: resources
                .iter()
                .map(|(n, r)| DeltaResource {
                    name: n.clone(),
                    version: r.version.clone(),
                    resource: Some(r.body.clone()),
                    ..Default::default()
                })
                .collect(),
            type_url: "t".into(),
            removed_resources: vec!["gone".into(), "also-gone".into()],
            nonce: "n-2".into(),
            ..Default::default()
        };
        let (bytes, _) = written(Outgoing {
            version: "abc".into(),
            type_url: "t",
            nonce: "n-2".into(),
            payload: Payload::Delta {
                resources,
                removed: vec!["gone".into(), "also-gone".into()],
            },
        });
        assert!(unframe::<DeltaDiscoveryResponse>(&bytes) == expected);
        // An empty response (the first answer to an empty wildcard) too.
        let (bytes, _) = written(Outgoing {
            version: String::new(),
            type_url: "t",
            nonce: "n-3".into(),
            payload: Payload::Delta {
                resources: Vec::new(),
                removed: Vec::new(),
            },
        });
        assert!(
            unframe::<DeltaDiscoveryResponse>(&bytes)
                == DeltaDiscoveryResponse {
                    type_url: "t".into(),
                    nonce: "n-3".into(),
                    ..Default::default()
                }
        );
    }

    #[test]
    fn a_whole_map_is_encoded_once_and_its_bytes_shared_by_every_response() {
        let map: Arc<Content> = Arc::new((0..50).map(|i| (format!("r{i}"), resource(i))).collect());
        let as_delta = |map: &Arc<Content>| Outgoing {
            version: "abc".into(),
            type_url: "t",
            nonce: "n-1".into(),
            payload: Payload::Delta {
                resources: map.iter().map(|(n, r)| (n.clone(), r.clone())).collect(),
                removed: vec!["gone".into()],
            },
        };
        let whole = |delta: bool| Outgoing {
            version: "abc".into(),
            type_url: "t",
            nonce: "n-1".into(),
            payload: Payload::Whole {
                map: map.clone(),
                rest: Vec::new(),
                delta,
                removed: if delta {
                    vec!["gone".into()]
                } else {
                    Vec::new()
                },
            },
        };
        // The same message as resource by resource, in both protocols.
        assert!(
            unframe::<DeltaDiscoveryResponse>(&written(whole(true)).0)
                == unframe::<DeltaDiscoveryResponse>(&written(as_delta(&map)).0)
        );
        let sotw = Outgoing {
            version: "abc".into(),
            type_url: "t",
            nonce: "n-1".into(),
            payload: Payload::Sotw(map.values().cloned().collect()),
        };
        assert!(
            unframe::<DiscoveryResponse>(&written(whole(false)).0)
                == unframe::<DiscoveryResponse>(&written(sotw).0)
        );
        // Two streams' responses carry the very same buffer (identity, not
        // equality): the map's resources are not copied per stream.
        let body_of = |m: Outgoing| {
            let mut w = Writing::new(m);
            let _head = w.chunk().expect("the header");
            let body = w.chunk().expect("the resources");
            assert!(w.chunk().is_none(), "then nothing");
            body
        };
        let (a, b) = (body_of(whole(true)), body_of(whole(true)));
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(a.len(), b.len());
        // A proxy's own resources beside the shared part: written for this
        // stream only, after the shared bytes, in one message.
        let own = vec![
            ("own-1".to_string(), resource(70)),
            ("zz".to_string(), resource(71)),
        ];
        let mut all = (*map).clone();
        all.extend(own.iter().cloned());
        let split = Outgoing {
            version: "abc".into(),
            type_url: "t",
            nonce: "n-1".into(),
            payload: Payload::Whole {
                map: map.clone(),
                rest: own,
                delta: true,
                removed: vec!["gone".into()],
            },
        };
        let mut expected = unframe::<DeltaDiscoveryResponse>(&written(as_delta(&Arc::new(all))).0);
        let mut got = unframe::<DeltaDiscoveryResponse>(&written(split).0);
        expected.resources.sort_by(|a, b| a.name.cmp(&b.name));
        got.resources.sort_by(|a, b| a.name.cmp(&b.name));
        assert!(got == expected);
        // A new map (a push) gets its own bytes; the old map's go with it.
        let other: Arc<Content> = Arc::new((*map).clone());
        let c = whole_bytes(&other, true);
        assert_ne!(c.as_ptr(), a.as_ptr());
        assert_eq!(c, a);
    }

    fn body(chunks: Vec<Vec<u8>>) -> Body {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, Status>(http_body::Frame::data(Bytes::from(c))));
        Body::new(http_body_util::StreamBody::new(tokio_stream::iter(frames)))
    }

    #[tokio::test]
    async fn requests_split_across_frames_decode_and_big_buffers_are_dropped() {
        let big = DiscoveryRequest {
            type_url: "eds".into(),
            resource_names: (0..4000)
                .map(|i| format!("outbound|9080||svc-{i}.ns.svc.cluster.local"))
                .collect(),
            ..Default::default()
        };
        let small = DiscoveryRequest {
            type_url: "eds".into(),
            response_nonce: "n".into(),
            ..Default::default()
        };
        let mut wire = framed(&big);
        wire.extend(framed(&small));
        // Frames of 7000 bytes: the prefix and messages straddle them.
        let chunks: Vec<Vec<u8>> = wire.chunks(7000).map(<[u8]>::to_vec).collect();
        let mut r = Requests::<DiscoveryRequest>::new(body(chunks));
        assert!(r.message().await.unwrap() == Some(big));
        assert!(
            r.buf.capacity() <= KEEP_BUFFER,
            "the ~200 KB buffer of the big request is not kept: {}",
            r.buf.capacity()
        );
        assert!(r.message().await.unwrap() == Some(small));
        assert_eq!(r.message().await.unwrap(), None);
    }

    #[tokio::test]
    async fn compressed_truncated_and_oversized_requests_are_refused() {
        let mut r = Requests::<DiscoveryRequest>::new(body(vec![vec![1, 0, 0, 0, 0]]));
        assert_eq!(
            r.message().await.unwrap_err().code(),
            tonic::Code::Unimplemented
        );
        let mut r = Requests::<DiscoveryRequest>::new(body(vec![vec![0, 0, 0, 0, 9, 1, 2]]));
        assert_eq!(r.message().await.unwrap_err().code(), tonic::Code::Internal);
        let len = (MAX_REQUEST as u32 + 1).to_be_bytes();
        let mut r =
            Requests::<DiscoveryRequest>::new(body(vec![vec![0, len[0], len[1], len[2], len[3]]]));
        assert_eq!(
            r.message().await.unwrap_err().code(),
            tonic::Code::ResourceExhausted
        );
    }
}
