//! State-of-the-world ADS (`StreamAggregatedResources`).
//!
//! Request classification, as istio's `ShouldRespond` (`pkg/xds/server.go`):
//!
//! 1. first request of a type on this stream → respond, whatever its version
//!    and nonce (a proxy reconnecting after a pilot restart sends the old
//!    server's version and an empty nonce);
//! 2. `error_detail` set → NACK: log, count, record; do not resend (the proxy
//!    keeps its last good config; the next *change* is pushed normally);
//! 3. nonce ≠ the last one sent → stale: ignore, count;
//! 4. matching nonce → ACK; respond only if names were added, or for EDS
//!    after a CDS response changed clusters (warming, see [`crate::order`]).
//!
//! What a response carries ([`crate::order::full_state`]): CDS and LDS
//! responses carry the whole selection (Envoy removes what a CDS/LDS response
//! omits). EDS, RDS and SDS responses carry only the resources the proxy does
//! not hold at their current version: changed ones, newly subscribed ones, and
//! for EDS the assignments of clusters the last CDS responses added or
//! changed. Envoy keeps an EDS/RDS/SDS resource a SotW response does not name
//! (each is its own watch), and drops it itself when it unsubscribes, so a
//! removal never needs a response; as istio does, a request that only
//! unsubscribes is not answered. `version_info` is
//! [`ProxyResources::type_version`] (with a `+keepN` suffix while N
//! make-before-break resources linger).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use envoy_types::pb::envoy::{config::core::v3::Node, service::discovery::v3::DiscoveryRequest};
use rudder_xds::{ProxyResources, Resource, TypeUrl};
use tracing::{debug, info, warn};

use crate::{
    order::{full_state, may_linger, waits_for_cds, REFERRERS},
    status::Names,
    stream::{Protocol, StreamCtx},
    subscription::{changed, missing, same_content, Content, Subscription},
    transport::{Outgoing, Payload},
};

/// One type on one SotW stream.
struct TypeState {
    sub: Subscription,
    /// What the proxy holds as far as the server knows: the last response
    /// for CDS/LDS; for EDS/RDS/SDS every resource sent and still wanted.
    /// After each response this is the map the proxy should hold, shared
    /// with pilot's own (no per-stream copy).
    held: Arc<Content>,
    /// Nonce of the last response (`None` before the first).
    nonce: Option<String>,
    /// The last response is not ACKed/NACKed yet.
    awaiting: bool,
    /// The last response was ACKed (not NACKed, not unanswered).
    acked: bool,
    /// Respond on the next pass even if there is nothing new (first request,
    /// a type started over).
    force: bool,
    /// EDS only: clusters that CDS responses added or changed since the last
    /// EDS response; their assignments go in the next EDS response.
    warm: BTreeSet<String>,
    /// EDS only: Envoy asked for EDS after re-creating clusters (a request
    /// that looks like an ACK); answer with the `warm` assignments.
    warm_requested: bool,
}

/// SotW protocol state of one stream.
#[derive(Default)]
pub(crate) struct Sotw {
    /// Boxed: a map node holds 11 values, and a stream has four types.
    types: BTreeMap<TypeUrl, Box<TypeState>>,
    /// Make-before-break: vanished clusters/endpoints the proxy still gets.
    linger: BTreeMap<TypeUrl, Content>,
}

impl Protocol for Sotw {
    type Req = DiscoveryRequest;
    const MODE: &'static str = "sotw";

    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }

    fn on_request(
        &mut self,
        cx: &mut StreamCtx,
        req: DiscoveryRequest,
        res: &ProxyResources,
        out: &mut Vec<Outgoing>,
    ) {
        let Some(t) = TypeUrl::parse(&req.type_url) else {
            warn!(type_url = %req.type_url, "request for a type Rudder does not serve; ignored");
            return;
        };
        let ty = t.short();
        match self.types.get_mut(&t) {
            None => {
                info!(r#type = ty, version = %req.version_info, names = req.resource_names.len(), "first request");
                let sub = Subscription::first(t, &req.resource_names, res.shared(t));
                cx.subscribed(t, &sub);
                let state = TypeState {
                    sub,
                    held: Arc::default(),
                    nonce: None,
                    awaiting: false,
                    acked: false,
                    force: true,
                    warm: BTreeSet::new(),
                    warm_requested: false,
                };
                self.types.insert(t, Box::new(state));
            }
            Some(st) => {
                let matches = st.nonce.as_deref() == Some(req.response_nonce.as_str());
                if let Some(err) = &req.error_detail {
                    if matches {
                        st.awaiting = false;
                        st.acked = false;
                    }
                    warn!(proxy = %cx.proxy, r#type = ty, nonce = %req.response_nonce, version = %req.version_info,
                        error = %err.message, "NACK");
                    cx.metrics.rejected(t);
                    cx.status
                        .nacked(t, &req.version_info, &req.response_nonce, &err.message);
                } else if req.response_nonce.is_empty() {
                    // A nonce-less request after the first: the client started
                    // this type over and will not ACK what is in flight. Answer it.
                    st.awaiting = false;
                    st.acked = false;
                    st.sub.replace(&req.resource_names, res.shared(t));
                    cx.subscribed(t, &st.sub);
                    st.held = Arc::default();
                    st.force = true;
                } else if !matches {
                    debug!(r#type = ty, nonce = %req.response_nonce, "stale nonce; ignored");
                    cx.metrics.expired_nonce(t);
                    return;
                } else {
                    st.awaiting = false;
                    st.acked = true;
                    cx.status.acked(t, &req.version_info);
                    debug!(r#type = ty, version = %req.version_info, "ACK");
                    if st.sub.replace(&req.resource_names, res.shared(t)) {
                        cx.subscribed(t, &st.sub);
                        // Full-state types answer any change of names; the
                        // others only added names (see the module doc).
                        st.force |= full_state(t);
                    }
                    if !st.warm.is_empty() {
                        st.warm_requested = true;
                    }
                }
            }
        }
        self.pump(cx, res, out);
    }

    fn on_resources(&mut self, cx: &mut StreamCtx, res: &ProxyResources, out: &mut Vec<Outgoing>) {
        self.pump(cx, res, out);
    }

    fn is_converged(&self, res: &ProxyResources) -> bool {
        self.types.iter().all(|(t, st)| {
            !st.awaiting
                && !st.force
                && st.nonce.is_some()
                && same_content(&st.held, &self.desired(*t, res))
        })
    }
}

impl Sotw {
    /// What the proxy should hold of type `t` now: its selection plus
    /// lingering make-before-break resources it still asks for.
    fn desired(&self, t: TypeUrl, res: &ProxyResources) -> Arc<Content> {
        let Some(st) = self.types.get(&t) else {
            return Arc::default();
        };
        let mut c = st.sub.select(res.shared(t));
        if let Some(lingering) = self.linger.get(&t).filter(|l| !l.is_empty()) {
            let c = Arc::make_mut(&mut c);
            for (n, r) in lingering {
                if st.sub.wants(n) {
                    c.entry(n.clone()).or_insert_with(|| r.clone());
                }
            }
        }
        c
    }

    /// LDS and RDS are ACKed at their current content (or never asked for).
    fn settled(&self, res: &ProxyResources) -> bool {
        REFERRERS.iter().all(|t| match self.types.get(t) {
            None => true,
            Some(st) => !st.awaiting && st.acked && same_content(&st.held, &self.desired(*t, res)),
        })
    }

    fn update_linger(&mut self, res: &ProxyResources) {
        if self.settled(res) {
            self.linger.clear();
            return;
        }
        let current = res.shared(TypeUrl::Cluster);
        // Held clusters that are the current map itself (a wildcard
        // selection), or none: none is gone, and no walk of thousands of
        // names.
        let Some(held) = self
            .types
            .get(&TypeUrl::Cluster)
            .map(|st| &st.held)
            .filter(|h| !h.is_empty() && !current.is_some_and(|m| Arc::ptr_eq(m, h)))
        else {
            self.linger.clear();
            return;
        };
        // The held clusters the current map lacks: one merge walk per pair
        // of maps for every stream holding the same (`missing`, by
        // address), not a lookup per held cluster per stream and pump.
        let gone_clusters: Content = match current {
            Some(current) => missing(current, held)
                .into_iter()
                .filter_map(|n| held.get_key_value(n))
                .map(|(n, r)| (n.clone(), r.clone()))
                .collect(),
            None => (**held).clone(),
        };
        let endpoints = res.of(TypeUrl::Endpoint);
        let gone_endpoints: Content = self
            .types
            .get(&TypeUrl::Endpoint)
            .filter(|_| !gone_clusters.is_empty())
            .map(|st| {
                st.held.iter().filter(|(n, _)| {
                    gone_clusters.contains_key(n) && !endpoints.is_some_and(|m| m.contains_key(n))
                })
            })
            .into_iter()
            .flatten()
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect();
        if !gone_clusters.is_empty() {
            info!(
                clusters = gone_clusters.len(),
                "make-before-break: keeping removed clusters until LDS/RDS are ACKed"
            );
        }
        self.linger.insert(TypeUrl::Cluster, gone_clusters);
        self.linger.insert(TypeUrl::Endpoint, gone_endpoints);
    }

    /// One pass over the types in push order, sending what changed.
    fn pump(&mut self, cx: &mut StreamCtx, res: &ProxyResources, out: &mut Vec<Outgoing>) {
        self.update_linger(res);
        let mut cds_awaiting = self
            .types
            .get(&TypeUrl::Cluster)
            .is_some_and(|s| s.awaiting);
        for t in TypeUrl::ALL {
            let desired = self.desired(t, res);
            // What `desired` holds beyond the current map: its lingering
            // part (the selection is drawn from the map).
            let lingering = if may_linger(t) {
                self.linger.get(&t).map_or(0, |l| {
                    l.keys()
                        .filter(|n| {
                            desired.contains_key(n) && !res.of(t).is_some_and(|m| m.contains_key(n))
                        })
                        .count()
                })
            } else {
                0
            };
            let Some(st) = self.types.get_mut(&t) else {
                continue;
            };
            if st.awaiting || (waits_for_cds(t) && cds_awaiting) {
                continue;
            }
            let send: Vec<(&String, &Arc<Resource>)> = if full_state(t) {
                if same_content(&st.held, &desired) && !st.force {
                    continue;
                }
                desired.iter().collect()
            } else {
                let Some(send) = incremental_send(st, &desired) else {
                    continue;
                };
                send
            };
            let mut version = res.type_version(t);
            if lingering > 0 {
                version = format!("{version}+keep{lingering}");
            }
            let nonce = cx.nonce();
            info!(r#type = t.short(), %version, %nonce, resources = send.len(), "push");
            out.push(Outgoing {
                version: version.clone(),
                type_url: t.as_str(),
                nonce: nonce.clone(),
                payload: Payload::of(t, &send, &desired, res, false, Vec::new()),
            });
            cx.pushed(t, send.len());
            // Clusters this response adds or changes: Envoy re-creates them
            // and they wait for their assignments (warming).
            let warm: Vec<String> = if t == TypeUrl::Cluster {
                changed(&desired, &st.held)
                    .into_iter()
                    .map(|(n, _)| n.clone())
                    .collect()
            } else {
                Vec::new()
            };
            drop(send);
            // Everything that differed was sent: the proxy now holds `desired`.
            st.held = desired;
            cx.status
                .sent(t, &version, &nonce, Names::keys(st.held.clone()));
            st.nonce = Some(nonce);
            st.awaiting = true;
            st.acked = false;
            st.force = false;
            if t == TypeUrl::Cluster {
                cds_awaiting = true;
                if let Some(eds) = self.types.get_mut(&TypeUrl::Endpoint) {
                    eds.warm.extend(warm);
                }
            }
        }
    }
}

/// What a response of an incremental type (EDS, RDS, SDS) carries: what
/// changed, and the assignments warming clusters still wait for; `None` when
/// there is nothing to say (then the proxy holds `desired`).
fn incremental_send<'a>(
    st: &mut TypeState,
    desired: &'a Arc<Content>,
) -> Option<Vec<(&'a String, &'a Arc<Resource>)>> {
    // What the proxy lacks or holds at another version. Names no
    // longer wanted (unsubscribed, or gone while still asked
    // for) simply leave `held` below: Envoy keeps or drops them
    // itself, and if they come back they are sent again.
    let mut send = changed(desired, &st.held);
    let warm_due = st.warm_requested || st.force || !send.is_empty();
    st.warm_requested = false;
    if warm_due && !st.warm.is_empty() {
        let mut names: BTreeSet<&String> = send.iter().map(|(n, _)| *n).collect();
        for n in std::mem::take(&mut st.warm) {
            if let Some((k, r)) = desired.get_key_value(&n) {
                if names.insert(k) {
                    send.push((k, r));
                }
            }
        }
        send.sort_by(|a, b| a.0.cmp(b.0));
    }
    if send.is_empty() && !st.force {
        // The proxy holds everything it should: nothing to say.
        st.held = desired.clone();
        return None;
    }
    Some(send)
}
