//! Push ordering, warming and make-before-break: the rules both adapters
//! follow, in one place.
//!
//! **One response in flight per type.** A type is sent again only after the
//! proxy ACKed or NACKed the previous response of that type (as
//! go-control-plane's watches). The server therefore never creates stale
//! nonces itself, and updates arriving meanwhile coalesce: on the ACK the
//! newest resources are diffed against what the proxy holds.
//!
//! **Order.** Each pass walks [`TypeUrl::ALL`]: CDS, EDS, LDS, RDS, SDS. LDS
//! and RDS are additionally held while a CDS response is unanswered, so a
//! listener or route never reaches Envoy before the clusters it names have
//! been accepted (Envoy holds the CDS ACK until those clusters have warmed,
//! i.e. got their EDS). EDS is never held: warming needs it.
//!
//! **Warming** (ARCHITECTURE "Settled details → xDS"): after every CDS
//! response the clusters in it get EDS. SotW: the next EDS request whose nonce
//! matches is answered even when it looks like a plain ACK (Envoy sends exactly
//! that after re-creating clusters). Delta: Envoy sends nothing, so the server
//! forgets what it thinks the client holds for the ClusterLoadAssignments
//! named like the added/changed clusters, and the same pass resends them.
//! (Rudder's generator names each EDS resource after its cluster.)
//!
//! **Make before break.** When clusters vanish while the proxy's listeners or
//! routes are not yet the ACKed current ones, the old clusters (and their
//! ClusterLoadAssignments) *linger*: SotW keeps them in the CDS/EDS
//! responses, Delta holds back their `removed_resources`. The moment LDS and
//! RDS are ACKed at the current content, the lingering set is dropped and the
//! next pass sends the CDS without them. If LDS/RDS were unchanged to begin
//! with, nothing can still reference the removed clusters (the generator
//! publishes consistent sets), so they go at once. This needs no parsing of
//! listeners: "unsettled LDS/RDS" is a safe over-approximation of "still
//! referenced".

use rudder_xds::TypeUrl;

/// Types whose resources name clusters and so wait for the CDS ACK.
pub(crate) fn waits_for_cds(t: TypeUrl) -> bool {
    matches!(t, TypeUrl::Listener | TypeUrl::Route)
}

/// Types whose vanished resources may linger (make-before-break).
pub(crate) fn may_linger(t: TypeUrl) -> bool {
    matches!(t, TypeUrl::Cluster | TypeUrl::Endpoint)
}

/// The types whose ACK releases lingering clusters.
pub(crate) const REFERRERS: [TypeUrl; 2] = [TypeUrl::Listener, TypeUrl::Route];
