//! A proxy's sync state for one xDS type, as `rudder proxy-status` prints it
//! and the mesh page shows it (istioctl's words): one rule, used by both.

use std::fmt;

/// Where one xDS type of one stream stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncState {
    /// Nothing of the type was sent.
    NotSent,
    /// The last response sent was ACKed.
    Synced,
    /// Sent, not ACKed yet.
    Stale,
    /// The proxy rejected the last response (the last NACK's nonce is the
    /// last response's): it keeps its previous version.
    Nacked,
}

impl SyncState {
    /// The state from what was last sent (`(version, nonce)`), the version
    /// last ACKed and the nonce of the last NACK.
    pub fn of(
        last_sent: Option<(&str, &str)>,
        last_acked_version: Option<&str>,
        last_nack_nonce: Option<&str>,
    ) -> SyncState {
        let Some((version, nonce)) = last_sent else {
            return SyncState::NotSent;
        };
        if last_nack_nonce == Some(nonce) {
            SyncState::Nacked
        } else if last_acked_version == Some(version) {
            SyncState::Synced
        } else {
            SyncState::Stale
        }
    }

    /// istioctl's text: `SYNCED`, `NOT SENT`, `STALE`, `STALE (NACK)`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::NotSent => "NOT SENT",
            SyncState::Synced => "SYNCED",
            SyncState::Stale => "STALE",
            SyncState::Nacked => "STALE (NACK)",
        }
    }
}

impl fmt::Display for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        assert_eq!(SyncState::of(None, None, None), SyncState::NotSent);
        assert_eq!(
            SyncState::of(Some(("v2", "n2")), Some("v2"), Some("n1")),
            SyncState::Synced
        );
        assert_eq!(
            SyncState::of(Some(("v2", "n2")), Some("v1"), None),
            SyncState::Stale
        );
        // The NACK of the last response wins even if an older version equals it.
        assert_eq!(
            SyncState::of(Some(("v2", "n2")), Some("v1"), Some("n2")),
            SyncState::Nacked
        );
        assert_eq!(SyncState::Nacked.to_string(), "STALE (NACK)");
    }
}
