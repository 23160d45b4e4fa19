//! Localities (region, zone, subzone) of pods, endpoints and proxies, and
//! Istio's locality patterns (`region/zone/subzone`, `*` wildcards).
//!
//! Rudder does not watch Nodes, so a pod's locality is what the pod itself
//! says, as Istio reads it from the pod first: the `topology.istio.io/locality`
//! label, else the older `istio-locality` (`region.zone.subzone`: labels
//! cannot hold `/`, so `.` separates unless the value has a `/`), else the pod's own `topology.kubernetes.io/region`,
//! `topology.kubernetes.io/zone` and `topology.istio.io/subzone` labels. The
//! node's topology labels (Istio's fallback) are not read. An endpoint of an
//! EndpointSlice without such a pod takes the slice's `zone`.

use crate::service::Labels;

/// Istio's explicit locality label on a pod: `region.zone.subzone`.
pub const LOCALITY_LABEL: &str = "istio-locality";
/// Istio's newer locality label, read before [`LOCALITY_LABEL`].
pub const TOPOLOGY_LOCALITY_LABEL: &str = "topology.istio.io/locality";
/// Kubernetes' region label.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
/// Kubernetes' zone label.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Istio's subzone label.
pub const SUBZONE_LABEL: &str = "topology.istio.io/subzone";

/// Where a workload runs; empty strings are unknown levels (Envoy's
/// `core.Locality`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locality {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Subzone.
    pub subzone: String,
}

impl Locality {
    /// A locality from its parts.
    pub fn new(region: &str, zone: &str, subzone: &str) -> Self {
        Locality {
            region: region.into(),
            zone: zone.into(),
            subzone: subzone.into(),
        }
    }

    /// The locality a pod's labels give: `topology.istio.io/locality`, else
    /// `istio-locality` (`.`-separated unless it holds a `/`), else the
    /// topology labels on the pod.
    pub fn from_labels(labels: &Labels) -> Self {
        let explicit = [TOPOLOGY_LOCALITY_LABEL, LOCALITY_LABEL]
            .iter()
            .find_map(|k| labels.get(*k).filter(|l| !l.is_empty()));
        if let Some(l) = explicit {
            let sep = if l.contains('/') { '/' } else { '.' };
            let mut parts = l.splitn(3, sep);
            let mut next = || parts.next().unwrap_or("").to_string();
            return Locality {
                region: next(),
                zone: next(),
                subzone: next(),
            };
        }
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        Locality {
            region: get(REGION_LABEL),
            zone: get(ZONE_LABEL),
            subzone: get(SUBZONE_LABEL),
        }
    }

    /// No level known.
    pub fn is_empty(&self) -> bool {
        self.region.is_empty() && self.zone.is_empty() && self.subzone.is_empty()
    }

    /// Whether Istio's pattern `rule` (`region/zone/subzone`, `*` or an
    /// absent level matching any; Istio's `LocalityMatch`) covers this
    /// locality. The region must be given or `*`.
    pub fn matches(&self, rule: &str) -> bool {
        let (region, zone, subzone) = split_pattern(rule);
        let level =
            |r: &str, v: &str, optional: bool| r == "*" || (optional && r.is_empty()) || r == v;
        level(region, &self.region, false)
            && level(zone, &self.zone, true)
            && level(subzone, &self.subzone, true)
    }

    /// Istio's failover priority of endpoints in `other` for a proxy here
    /// (`LbPriority`): 0 same subzone, 1 same zone, 2 same region, 3 else.
    pub fn priority_of(&self, other: &Locality) -> u32 {
        if self.region != other.region {
            3
        } else if self.zone != other.zone {
            2
        } else if self.subzone != other.subzone {
            1
        } else {
            0
        }
    }

    /// `labels` with the locality's topology labels added where known
    /// (Istio's `AugmentLabels`), for `failoverPriority` matching.
    pub fn augment(&self, labels: &Labels) -> Labels {
        let mut out = labels.clone();
        for (k, v) in [
            (REGION_LABEL, &self.region),
            (ZONE_LABEL, &self.zone),
            (SUBZONE_LABEL, &self.subzone),
        ] {
            if !v.is_empty() {
                out.insert(k.into(), v.clone());
            }
        }
        out
    }
}

/// A pattern's levels (`region/zone/subzone`; missing levels are empty).
pub fn split_pattern(rule: &str) -> (&str, &str, &str) {
    let mut parts = rule.splitn(3, '/');
    let region = parts.next().unwrap_or("");
    let zone = parts.next().unwrap_or("");
    let subzone = parts.next().unwrap_or("");
    (region, zone, subzone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> Labels {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn istio_locality_label_wins_over_topology_labels() {
        let l = Locality::from_labels(&labels(&[
            (LOCALITY_LABEL, "us-east.us-east-1a.rack1"),
            (REGION_LABEL, "eu"),
        ]));
        assert_eq!(l, Locality::new("us-east", "us-east-1a", "rack1"));
        let l = Locality::from_labels(&labels(&[(REGION_LABEL, "eu"), (ZONE_LABEL, "eu-1")]));
        assert_eq!(l, Locality::new("eu", "eu-1", ""));
        assert!(Locality::from_labels(&Labels::new()).is_empty());
        let l = Locality::from_labels(&labels(&[
            (TOPOLOGY_LOCALITY_LABEL, "eu.eu-1"),
            (LOCALITY_LABEL, "us-east/us-east-1a"),
        ]));
        assert_eq!(l, Locality::new("eu", "eu-1", ""));
        let l = Locality::from_labels(&labels(&[(LOCALITY_LABEL, "us-east/us-east-1a/r.1")]));
        assert_eq!(l, Locality::new("us-east", "us-east-1a", "r.1"));
    }

    #[test]
    fn patterns_match_as_istio() {
        let l = Locality::new("us-east", "a", "r1");
        assert!(l.matches("us-east"));
        assert!(l.matches("us-east/*"));
        assert!(l.matches("us-east/a/*"));
        assert!(l.matches("us-east/a/r1"));
        assert!(l.matches("*"));
        assert!(!l.matches("us-east/b"));
        assert!(!l.matches("us-west/*"));
    }

    #[test]
    fn priorities_follow_istio() {
        let me = Locality::new("r", "z", "s");
        assert_eq!(me.priority_of(&Locality::new("r", "z", "s")), 0);
        assert_eq!(me.priority_of(&Locality::new("r", "z", "t")), 1);
        assert_eq!(me.priority_of(&Locality::new("r", "y", "s")), 2);
        assert_eq!(me.priority_of(&Locality::new("q", "z", "s")), 3);
    }
}
