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
//! **What is sent** ([`full_state`]). CDS and LDS responses carry the whole
//! state in SotW (Envoy removes what they omit); EDS, RDS and SDS responses
//! carry only what the proxy does not hold at its current version (Envoy
//! keeps what they omit). Delta sends only changed and removed names for
//! every type.
//!
//! **Warming** (ARCHITECTURE "Settled details → xDS"): after a CDS response,
//! the clusters it added or changed (and only those: an unchanged cluster is
//! not re-created) get their ClusterLoadAssignments again. SotW: they go in
//! the next EDS response, and the next EDS request whose nonce matches is
//! answered with them even when it looks like a plain ACK (Envoy sends exactly
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

/// Types whose SotW responses carry the whole state (Envoy removes what a
/// response omits). For the others a SotW response carries only changes.
pub(crate) fn full_state(t: TypeUrl) -> bool {
    matches!(t, TypeUrl::Cluster | TypeUrl::Listener)
}

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
