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
//! 4. matching nonce → ACK; respond only if the name set changed, or for
//!    EDS after a CDS response (warming, see [`crate::order`]).
//!
//! A type's response carries the whole selection: every resource for
//! wildcard CDS/LDS, the subscribed names otherwise. `version_info` is
//! [`ProxyResources::type_version`] (with a `+keepN` suffix while N
//! make-before-break resources linger).

use std::collections::BTreeMap;

use envoy_types::pb::envoy::{
    config::core::v3::Node,
    service::discovery::v3::{DiscoveryRequest, DiscoveryResponse},
};
use rudder_xds::{ProxyResources, TypeUrl};
use tracing::{debug, info, warn};

use crate::{
    order::{may_linger, waits_for_cds, REFERRERS},
    stream::{Protocol, StreamCtx},
    subscription::{same_content, Content, Subscription},
};

/// The last response of one type.
struct Sent {
    content: Content,
    nonce: String,
}

/// One type on one SotW stream.
struct TypeState {
    sub: Subscription,
    sent: Option<Sent>,
    /// The last response is not ACKed/NACKed yet.
    awaiting: bool,
    /// What the proxy last ACKed.
    acked: Option<Content>,
    /// Respond on the next pass even if the content is unchanged.
    force: bool,
    /// EDS only: a CDS response went out; answer the next ACK-like request.
    warm: bool,
}

/// SotW protocol state of one stream.
#[derive(Default)]
pub(crate) struct Sotw {
    types: BTreeMap<TypeUrl, TypeState>,
    /// Make-before-break: vanished clusters/endpoints the proxy still gets.
    linger: BTreeMap<TypeUrl, Content>,
}

impl Protocol for Sotw {
    type Req = DiscoveryRequest;
    type Resp = DiscoveryResponse;
    const MODE: &'static str = "sotw";

    fn node(req: &DiscoveryRequest) -> Option<&Node> {
        req.node.as_ref()
    }

    fn on_request(
        &mut self,
        cx: &mut StreamCtx,
        req: DiscoveryRequest,
        res: &ProxyResources,
        out: &mut Vec<DiscoveryResponse>,
    ) {
        let Some(t) = TypeUrl::parse(&req.type_url) else {
            warn!(type_url = %req.type_url, "request for a type Rudder does not serve; ignored");
            return;
        };
        let ty = t.short();
        match self.types.get_mut(&t) {
            None => {
                info!(r#type = ty, version = %req.version_info, names = req.resource_names.len(), "first request");
                let sub = Subscription::first(t, &req.resource_names);
                cx.subscribed(t, &sub);
                let state = TypeState {
                    sub,
                    sent: None,
                    awaiting: false,
                    acked: None,
                    force: true,
                    warm: false,
                };
                self.types.insert(t, state);
            }
            Some(st) => {
                let sent_nonce = st.sent.as_ref().map(|s| s.nonce.as_str());
                let matches = sent_nonce == Some(req.response_nonce.as_str());
                if let Some(err) = &req.error_detail {
                    if matches {
                        st.awaiting = false;
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
                    st.sub.replace(&req.resource_names);
                    cx.subscribed(t, &st.sub);
                    st.force = true;
                } else if !matches {
                    debug!(r#type = ty, nonce = %req.response_nonce, "stale nonce; ignored");
                    cx.metrics.expired_nonce(t);
                    return;
                } else {
                    st.awaiting = false;
                    st.acked = st.sent.as_ref().map(|s| s.content.clone());
                    cx.status.acked(t, &req.version_info);
                    debug!(r#type = ty, version = %req.version_info, "ACK");
                    if st.sub.replace(&req.resource_names) {
                        cx.subscribed(t, &st.sub);
                        st.force = true;
                    }
                    if st.warm {
                        st.warm = false;
                        st.force = true;
                    }
                }
            }
        }
        self.pump(cx, res, out);
    }

    fn on_resources(
        &mut self,
        cx: &mut StreamCtx,
        res: &ProxyResources,
        out: &mut Vec<DiscoveryResponse>,
    ) {
        self.pump(cx, res, out);
    }

    fn is_converged(&self, res: &ProxyResources) -> bool {
        self.types.iter().all(|(t, st)| {
            !st.awaiting
                && !st.force
                && st
                    .sent
                    .as_ref()
                    .is_some_and(|s| same_content(&s.content, &self.desired(*t, res)))
        })
    }
}

impl Sotw {
    /// What the proxy should hold of type `t` now: its selection plus
    /// lingering make-before-break resources it still asks for.
    fn desired(&self, t: TypeUrl, res: &ProxyResources) -> Content {
        let Some(st) = self.types.get(&t) else {
            return Content::new();
        };
        let mut c = st.sub.select(res.of(t));
        if let Some(lingering) = self.linger.get(&t) {
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
            Some(st) => {
                !st.awaiting
                    && st
                        .acked
                        .as_ref()
                        .is_some_and(|a| same_content(a, &self.desired(*t, res)))
            }
        })
    }

    fn update_linger(&mut self, res: &ProxyResources) {
        if self.settled(res) {
            self.linger.clear();
            return;
        }
        let clusters = res.of(TypeUrl::Cluster);
        let gone_clusters: Content = self
            .types
            .get(&TypeUrl::Cluster)
            .and_then(|st| st.sent.as_ref())
            .map(|s| {
                s.content
                    .iter()
                    .filter(|(n, _)| !clusters.is_some_and(|m| m.contains_key(*n)))
            })
            .into_iter()
            .flatten()
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect();
        let endpoints = res.of(TypeUrl::Endpoint);
        let gone_endpoints: Content = self
            .types
            .get(&TypeUrl::Endpoint)
            .and_then(|st| st.sent.as_ref())
            .map(|s| {
                s.content.iter().filter(|(n, _)| {
                    gone_clusters.contains_key(*n) && !endpoints.is_some_and(|m| m.contains_key(*n))
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
    fn pump(&mut self, cx: &mut StreamCtx, res: &ProxyResources, out: &mut Vec<DiscoveryResponse>) {
        self.update_linger(res);
        let mut cds_awaiting = self
            .types
            .get(&TypeUrl::Cluster)
            .is_some_and(|s| s.awaiting);
        for t in TypeUrl::ALL {
            let desired = self.desired(t, res);
            let lingering = if may_linger(t) {
                desired
                    .keys()
                    .filter(|n| !res.of(t).is_some_and(|m| m.contains_key(*n)))
                    .count()
            } else {
                0
            };
            let Some(st) = self.types.get_mut(&t) else {
                continue;
            };
            if st.awaiting || (waits_for_cds(t) && cds_awaiting) {
                continue;
            }
            let unchanged = st
                .sent
                .as_ref()
                .is_some_and(|s| same_content(&s.content, &desired));
            if unchanged && !st.force {
                continue;
            }
            let mut version = res.type_version(t);
            if lingering > 0 {
                version = format!("{version}+keep{lingering}");
            }
            let nonce = cx.nonce();
            info!(r#type = t.short(), %version, %nonce, resources = desired.len(), "push");
            out.push(DiscoveryResponse {
                version_info: version.clone(),
                resources: desired.values().map(|r| r.body.clone()).collect(),
                type_url: t.as_str().to_string(),
                nonce: nonce.clone(),
                ..Default::default()
            });
            cx.pushed(t);
            cx.status
                .sent(t, &version, &nonce, desired.keys().cloned().collect());
            st.sent = Some(Sent {
                content: desired,
                nonce,
            });
            st.awaiting = true;
            st.force = false;
            if t == TypeUrl::Cluster {
                cds_awaiting = true;
                if let Some(eds) = self.types.get_mut(&TypeUrl::Endpoint) {
                    eds.warm = true;
                }
            }
        }
    }
}
