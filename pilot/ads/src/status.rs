//! What each stream has been sent, has ACKed and has rejected: the data behind
//! `/debug/syncz`.
//!
//! Each stream owns one entry in a shared table, updated at the points where
//! its protocol state changes (send, ACK, NACK, subscription change) and
//! removed by a guard when the stream ends, however it ends. Keyed by stream id,
//! never by node id: during a hot restart two streams share a node id.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

use rudder_xds::{Content, TypeUrl};
use serde::Serialize;

use crate::metrics::Metrics;

/// Milliseconds since the Unix epoch (wall clock, for humans reading syncz).
pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One stream, as `/debug/syncz` shows it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ConnectionStatus {
    /// The proxy's node id (as sent; several streams may share it).
    pub node_id: String,
    /// This server's id for the stream (unique while the server runs).
    pub stream_id: u64,
    /// `sotw` or `delta`.
    pub mode: &'static str,
    /// The node's user agent, e.g. `envoy/1.40.0`.
    pub user_agent: String,
    /// When the stream's first request arrived.
    pub connected_at_unix_ms: u64,
    /// Per type short name (`cds`, `eds`, ...), for the types the proxy asked
    /// for. Boxed: a map node holds 11 values, about 2.4 KB per stream
    /// unboxed for its four types.
    pub types: BTreeMap<&'static str, Box<TypeStatus>>,
}

/// One xDS type on one stream.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct TypeStatus {
    /// The last response sent.
    pub last_sent: Option<Sent>,
    /// The version the proxy last ACKed (SotW `version_info`; Delta: the
    /// `system_version_info` of the ACKed response).
    pub last_acked_version: Option<String>,
    /// The last NACK (kept after later ACKs, for the record).
    pub last_nack: Option<Nack>,
    /// Wildcard subscription (all resources of the type).
    pub wildcard: bool,
    /// Names the proxy subscribed to explicitly.
    pub subscribed: Names,
    /// Names the proxy holds according to what was sent (SotW CDS/LDS: the
    /// last response; SotW EDS/RDS/SDS: every name sent and still wanted;
    /// Delta: the running sum of sent and removed names).
    pub resources_sent: Names,
}

/// A list of names that shares the stream's own set or map (an `Arc`)
/// instead of copying thousands of names into the table on every push;
/// serialized as a JSON array of strings.
#[derive(Clone, Debug, Default)]
pub struct Names(NamesOf);

#[derive(Clone, Debug, Default)]
enum NamesOf {
    #[default]
    None,
    Set(Arc<BTreeSet<String>>),
    Keys(Arc<Content>),
}

impl Names {
    pub(crate) fn set(s: Arc<BTreeSet<String>>) -> Self {
        Names(NamesOf::Set(s))
    }

    pub(crate) fn keys(c: Arc<Content>) -> Self {
        Names(NamesOf::Keys(c))
    }

    /// The names, in order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        match &self.0 {
            NamesOf::None => Box::new(std::iter::empty()),
            NamesOf::Set(s) => Box::new(s.iter().map(String::as_str)),
            NamesOf::Keys(c) => Box::new(c.keys().map(String::as_str)),
        }
    }

    /// How many names.
    pub fn len(&self) -> usize {
        match &self.0 {
            NamesOf::None => 0,
            NamesOf::Set(s) => s.len(),
            NamesOf::Keys(c) => c.len(),
        }
    }

    /// No names.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for Names {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Serialize for Names {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// A response as sent.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Sent {
    /// `version_info` (SotW) or `system_version_info` (Delta).
    pub version: String,
    /// The response's nonce.
    pub nonce: String,
    /// When it was sent.
    pub at_unix_ms: u64,
}

/// A rejected response.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Nack {
    /// The version the proxy reported (it keeps its previous good one).
    pub version: String,
    /// The nonce of the rejected response.
    pub nonce: String,
    /// Envoy's error message, verbatim.
    pub error: String,
    /// When the NACK arrived.
    pub at_unix_ms: u64,
}

/// All live streams.
#[derive(Clone, Debug, Default)]
pub(crate) struct StatusTable {
    streams: Arc<Mutex<BTreeMap<u64, ConnectionStatus>>>,
}

impl StatusTable {
    pub(crate) fn snapshot(&self) -> Vec<ConnectionStatus> {
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Adds a stream and counts it in `pilot_xds`; both are undone when the
    /// returned guard drops.
    pub(crate) fn register(&self, status: ConnectionStatus, metrics: Metrics) -> StreamStatus {
        let id = status.stream_id;
        self.streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, status);
        metrics.stream_opened();
        StreamStatus {
            table: self.clone(),
            id,
            metrics,
        }
    }
}

/// A stream's handle on its own entry; dropping it removes the entry.
#[derive(Debug)]
pub(crate) struct StreamStatus {
    table: StatusTable,
    id: u64,
    metrics: Metrics,
}

impl StreamStatus {
    /// Edits one type's entry (created on first use).
    pub(crate) fn update(&self, t: TypeUrl, f: impl FnOnce(&mut TypeStatus)) {
        let mut streams = self.table.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = streams.get_mut(&self.id) {
            f(c.types.entry(t.short()).or_default());
        }
    }

    pub(crate) fn sent(&self, t: TypeUrl, version: &str, nonce: &str, names: Names) {
        self.update(t, |s| {
            s.last_sent = Some(Sent {
                version: version.into(),
                nonce: nonce.into(),
                at_unix_ms: now_unix_ms(),
            });
            s.resources_sent = names;
        });
    }

    pub(crate) fn acked(&self, t: TypeUrl, version: &str) {
        self.update(t, |s| s.last_acked_version = Some(version.into()));
    }

    pub(crate) fn nacked(&self, t: TypeUrl, version: &str, nonce: &str, error: &str) {
        self.update(t, |s| {
            s.last_nack = Some(Nack {
                version: version.into(),
                nonce: nonce.into(),
                error: error.into(),
                at_unix_ms: now_unix_ms(),
            })
        });
    }
}

impl Drop for StreamStatus {
    fn drop(&mut self) {
        self.table
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        self.metrics.stream_closed();
    }
}
