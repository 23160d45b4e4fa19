//! Incremental ADS (`DeltaAggregatedResources`).
//!
//! Per type the server keeps what it believes the client holds (name →
//! version) and sends the difference to what it should hold: changed or new
//! resources in `resources` (each with its own version), vanished ones in
//! `removed_resources`, nothing at all when there is no difference. Rules (as
//! istio's `shouldRespondDelta` and go-control-plane's delta server):
//!
//! - the first request of a type is always answered, even with nothing to
//!   send (an empty wildcard LDS/CDS included), and its
//!   `initial_resource_versions` seed what the client holds, so a reconnect
//!   is not resent what it already has at the same version;
//! - subscribe/unsubscribe are applied from every request, stale or not (they
//!   are diffs: dropping one would lose it); a subscribed name is always
//!   (re)sent, an unsubscribed one forgotten without a removal (the client
//!   dropped it already);
//! - a nonce-less request after the first is a spontaneous (un)subscribe:
//!   answered with just the newly wanted names, if any exist;
//! - NACK: log, count, record, and forget the versions the client holds for
//!   that type (Envoy may have applied part of the response), without
//!   resending now; the next change of that type resends all of it;
//! - a non-empty nonce that is not the last sent is stale: counted.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, OnceLock},
};

use envoy_types::pb::envoy::{
    config::core::v3::Node, service::discovery::v3::DeltaDiscoveryRequest,
};
use rudder_xds::{ProxyResources, Resource, TypeUrl};
use tracing::{debug, info, warn};

use crate::{
    order::{may_linger, waits_for_cds, REFERRERS},
    status::Names,
    stream::{Protocol, StreamCtx},
    subscription::{changed, missing, same_content, Content, Subscription},
    transport::{Outgoing, Payload},
};

/// A resource the client holds at a version the server does not have as a
/// resource: one it reported on reconnect, or any after a NACK (then the
/// version is unknown, `""`). Only its version is ever read.
fn held_at(version: String) -> Arc<Resource> {
    Arc::new(Resource {
        version,
        body: Default::default(),
    })
}

/// The shared "version unknown" entry.
fn unknown() -> Arc<Resource> {
    static UNKNOWN: OnceLock<Arc<Resource>> = OnceLock::new();
    UNKNOWN.get_or_init(|| held_at(String::new())).clone()
}

/// One type on one Delta stream.
struct TypeState {
    sub: Subscription,
    /// What the client holds, by name (only versions matter; [`unknown`]
    /// after a NACK). After a response this is the map it should hold,
    /// shared with pilot's own.
    client: Arc<Content>,
    /// Nonce of the unanswered response, if any.
    awaiting: Option<String>,
    last_nonce: Option<String>,
    last_version: String,
    force: bool,
    /// After a NACK: what the client should have had; nothing is resent
    /// until what it should have differs from this.
    nacked: Option<Arc<Content>>,
}

/// Delta protocol state of one stream.
#[derive(Default)]
pub(crate) struct Delta {
    /// Boxed: a map node holds 11 values, and a stream has four types.
    types: BTreeMap<TypeUrl, Box<TypeState>>,
    /// Make-before-break: vanished cluster names whose removal is held back.
    linger: BTreeSet<String>,
}

struct Diff<'a> {
    send: Vec<(&'a String, &'a Arc<Resource>)>,
    remove: Vec<String>,
    /// Vanished names whose removal make-before-break holds back.
    held_back: Vec<String>,
}

impl Diff<'_> {
    fn is_empty(&self) -> bool {
        self.send.is_empty() && self.remove.is_empty()
    }
}

impl Protocol for Delta {
    type Req = DeltaDiscoveryRequest;
    const MODE: &'static str = "delta";

    fn node(req: &DeltaDiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }

    fn on_request(
        &mut self,
        cx: &mut StreamCtx,
        req: DeltaDiscoveryRequest,
        res: &ProxyResources,
        out: &mut Vec<Outgoing>,
    ) {
        let Some(t) = TypeUrl::parse(&req.type_url) else {
            warn!(type_url = %req.type_url, "request for a type Rudder does not serve; ignored");
            return;
        };
        let ty = t.short();
        let Some(st) = self.types.get_mut(&t) else {
            self.first_request(cx, t, req, res, out);
            return;
        };
        let added = st.sub.apply_delta(
            &req.resource_names_subscribe,
            &req.resource_names_unsubscribe,
            res.shared(t),
        );
        let forget: Vec<&String> = added
            .iter()
            .copied()
            .chain(
                req.resource_names_unsubscribe
                    .iter()
                    .filter(|n| !st.sub.wants(n)),
            )
            .filter(|n| st.client.contains_key(n))
            .collect();
        if !forget.is_empty() {
            let client = Arc::make_mut(&mut st.client);
            for n in forget {
                client.remove(n);
            }
        }
        if !added.is_empty() || !req.resource_names_unsubscribe.is_empty() {
            cx.subscribed(t, &st.sub);
        }
        let nonce = req.response_nonce.as_str();
        let matches = !nonce.is_empty() && st.awaiting.as_deref() == Some(nonce);
        if let Some(err) = &req.error_detail {
            if matches {
                st.awaiting = None;
            }
            warn!(proxy = %cx.proxy, r#type = ty, nonce = %nonce, error = %err.message, "NACK");
            cx.metrics.rejected(t);
            cx.status.nacked(t, &st.last_version, nonce, &err.message);
            st.client = Arc::new(st.client.keys().map(|n| (n.clone(), unknown())).collect());
            let desired = self.desired(t, res);
            if let Some(st) = self.types.get_mut(&t) {
                st.nacked = Some(desired);
            }
        } else if matches {
            st.awaiting = None;
            debug!(r#type = ty, version = %st.last_version, "ACK");
            cx.status.acked(t, &st.last_version);
        } else if !nonce.is_empty() && st.last_nonce.as_deref() != Some(nonce) {
            debug!(r#type = ty, %nonce, "stale nonce");
            cx.metrics.expired_nonce(t);
        }
        self.pump(cx, res, out);
    }

    fn on_resources(&mut self, cx: &mut StreamCtx, res: &ProxyResources, out: &mut Vec<Outgoing>) {
        self.pump(cx, res, out);
    }

    fn is_converged(&self, res: &ProxyResources) -> bool {
        self.types.iter().all(|(t, st)| {
            st.awaiting.is_none()
                && !st.force
                && (st.nacked.is_some() || self.diff(*t, &self.desired(*t, res)).is_empty())
        })
    }
}

impl Delta {
    /// A type's first request: its subscription, and the versions the proxy
    /// says it holds (a reconnect), then a push.
    fn first_request(
        &mut self,
        cx: &mut StreamCtx,
        t: TypeUrl,
        req: DeltaDiscoveryRequest,
        res: &ProxyResources,
        out: &mut Vec<Outgoing>,
    ) {
        info!(
            r#type = t.short(),
            subscribe = req.resource_names_subscribe.len(),
            known = req.initial_resource_versions.len(),
            "first request"
        );
        let sub = Subscription::first(t, &req.resource_names_subscribe, res.shared(t));
        cx.subscribed(t, &sub);
        let client = Arc::new(
            req.initial_resource_versions
                .into_iter()
                .map(|(n, v)| (n, held_at(v)))
                .collect(),
        );
        let state = TypeState {
            sub,
            client,
            awaiting: None,
            last_nonce: None,
            last_version: String::new(),
            force: true,
            nacked: None,
        };
        self.types.insert(t, Box::new(state));
        self.pump(cx, res, out);
    }

    fn desired(&self, t: TypeUrl, res: &ProxyResources) -> Arc<Content> {
        self.types
            .get(&t)
            .map(|st| st.sub.select(res.shared(t)))
            .unwrap_or_default()
    }

    /// What to send and remove to bring the client to `desired`.
    fn diff<'a>(&self, t: TypeUrl, desired: &'a Arc<Content>) -> Diff<'a> {
        let Some(st) = self.types.get(&t) else {
            return Diff {
                send: Vec::new(),
                remove: Vec::new(),
                held_back: Vec::new(),
            };
        };
        let (held_back, remove) = missing(desired, &st.client)
            .into_iter()
            .cloned()
            .partition(|n| self.lingers(t, n));
        let send = changed(desired, &st.client);
        Diff {
            send,
            remove,
            held_back,
        }
    }

    /// A vanished resource whose removal make-before-break holds back.
    fn lingers(&self, t: TypeUrl, name: &str) -> bool {
        may_linger(t) && self.linger.contains(name)
    }

    /// LDS and RDS hold exactly their current content (or were never asked for).
    fn settled(&self, res: &ProxyResources) -> bool {
        REFERRERS.iter().all(|t| match self.types.get(t) {
            None => true,
            Some(st) => {
                st.awaiting.is_none()
                    && st.nacked.is_none()
                    && self.diff(*t, &self.desired(*t, res)).is_empty()
            }
        })
    }

    fn update_linger(&mut self, res: &ProxyResources) {
        if self.settled(res) {
            self.linger.clear();
            return;
        }
        let empty = Arc::default();
        let clusters = res.shared(TypeUrl::Cluster).unwrap_or(&empty);
        if let Some(cds) = self.types.get(&TypeUrl::Cluster) {
            // One merge walk (by pointer where the maps share resources),
            // not a lookup per cluster the client holds.
            for n in missing(clusters, &cds.client) {
                if self.linger.insert(n.clone()) {
                    info!(cluster = %n, "make-before-break: holding back removal until LDS/RDS are ACKed");
                }
            }
        }
        if !self.linger.is_empty() {
            self.linger.retain(|n| !clusters.contains_key(n));
        }
    }

    fn pump(&mut self, cx: &mut StreamCtx, res: &ProxyResources, out: &mut Vec<Outgoing>) {
        self.update_linger(res);
        let mut cds_awaiting = self
            .types
            .get(&TypeUrl::Cluster)
            .is_some_and(|s| s.awaiting.is_some());
        for t in TypeUrl::ALL {
            let desired = self.desired(t, res);
            let diff = self.diff(t, &desired);
            let Some(st) = self.types.get_mut(&t) else {
                continue;
            };
            if st.awaiting.is_some() || (waits_for_cds(t) && cds_awaiting) {
                continue;
            }
            if let Some(nacked) = &st.nacked {
                if same_content(nacked, &desired) && !st.force {
                    continue;
                }
                st.nacked = None;
            }
            if diff.is_empty() && !st.force {
                continue;
            }
            let nonce = cx.nonce();
            let version = res.type_version(t);
            info!(r#type = t.short(), %nonce, send = diff.send.len(), remove = diff.remove.len(), "push");
            out.push(Outgoing {
                version: version.clone(),
                type_url: t.as_str(),
                nonce: nonce.clone(),
                payload: Payload::of(t, &diff.send, &desired, res, true, diff.remove.clone()),
            });
            // The client now holds `desired`, plus the removals
            // make-before-break holds back.
            let kept: Vec<(String, Arc<Resource>)> = diff
                .held_back
                .iter()
                .filter_map(|n| st.client.get_key_value(n))
                .map(|(n, r)| (n.clone(), r.clone()))
                .collect();
            // Re-created clusters are re-warmed only where the proxy holds
            // their assignments: before any EDS (a first CDS) there are none,
            // and the names of thousands of clusters need not be copied.
            let rewarms = self
                .types
                .get(&TypeUrl::Endpoint)
                .is_some_and(|eds| !eds.client.is_empty());
            let Some(st) = self.types.get_mut(&t) else {
                continue;
            };
            let sent: Vec<String> = if t == TypeUrl::Cluster && rewarms {
                diff.send.iter().map(|(n, _)| (*n).clone()).collect()
            } else {
                Vec::new()
            };
            cx.pushed(t, diff.send.len());
            drop(diff);
            st.client = if kept.is_empty() {
                desired
            } else {
                let mut c = (*desired).clone();
                c.extend(kept);
                Arc::new(c)
            };
            cx.status
                .sent(t, &version, &nonce, Names::keys(st.client.clone()));
            st.awaiting = Some(nonce.clone());
            st.last_nonce = Some(nonce);
            st.last_version = version;
            st.force = false;
            if t == TypeUrl::Cluster {
                cds_awaiting = true;
                // Warming: re-created clusters wait for EDS that Envoy will
                // not ask for; forget those versions so EDS is resent below.
                if let Some(eds) = self.types.get_mut(&TypeUrl::Endpoint) {
                    rewarm(eds, sent);
                }
            }
        }
    }
}

/// Marks the assignments of re-created clusters (`sent`) unknown to the
/// proxy, so EDS sends them again.
fn rewarm(eds: &mut TypeState, sent: Vec<String>) {
    let rewarm: Vec<String> = sent
        .into_iter()
        .filter(|n| eds.client.contains_key(n))
        .collect();
    if !rewarm.is_empty() {
        let client = Arc::make_mut(&mut eds.client);
        for n in rewarm {
            client.insert(n, unknown());
        }
        eds.nacked = None;
    }
}
