//! kube-proxy's job for unmeshed pods: nat OUTPUT DNAT rules, written in the
//! pod's own network namespace, that turn `VIP:port` into a ready endpoint.
//!
//! ```text
//! OUTPUT ─► RUDDER-SERVICES ─► -d VIP/32 --dport 9080 ─► RUDDER-SVC-0
//!                                   RUDDER-SVC-0: statistic 1/3 ─► DNAT ep1
//!                                                 statistic 1/2 ─► DNAT ep2
//!                                                 (rest)        ─► DNAT ep3
//! filter OUTPUT ─► RUDDER-SERVICES: VIP:port with no endpoint ─► REJECT (reset)
//! ```
//!
//! Endpoint i of n matches with probability 1/(n-i), so each gets 1/n, as
//! kube-proxy does. The rules are applied with `iptables-restore --noflush`:
//! declaring a chain flushes it, so a rewrite is atomic; the jumps from
//! OUTPUT are added only on the first write. Meshed pods get none of this:
//! their Envoy resolves VIPs itself.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

/// Writing rules into a pod failed.
#[derive(Debug, thiserror::Error)]
pub enum DnatError {
    /// `iptables-restore` could not run or refused the rules.
    #[error("pod {pod}: iptables-restore: {message}")]
    Restore {
        /// The pod.
        pod: String,
        /// What went wrong (stderr).
        message: String,
    },
}

/// One Service port and its ready endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipPort {
    /// `namespace/name:port`, for the rule comment.
    pub service: String,
    /// ClusterIP.
    pub vip: Ipv4Addr,
    /// Service port.
    pub port: u16,
    /// Ready endpoints (pod IP, target port).
    pub endpoints: Vec<(Ipv4Addr, u16)>,
}

/// Chain that OUTPUT jumps to, in nat and filter.
pub const SERVICES_CHAIN: &str = "RUDDER-SERVICES";

/// Renders the `iptables-restore --noflush` input for `ports` (index i gets
/// chain `RUDDER-SVC-<i>`; keep the order stable between writes).
/// `first` adds the OUTPUT jumps.
pub fn render(ports: &[VipPort], first: bool) -> String {
    let mut nat = format!("*nat\n:{SERVICES_CHAIN} - [0:0]\n");
    let mut rules = String::new();
    let mut filter = format!("*filter\n:{SERVICES_CHAIN} - [0:0]\n");
    for (i, p) in ports.iter().enumerate() {
        let chain = format!("RUDDER-SVC-{i}");
        nat.push_str(&format!(":{chain} - [0:0]\n"));
        let matcher = format!(
            "-d {}/32 -p tcp -m tcp --dport {} -m comment --comment \"{}\"",
            p.vip, p.port, p.service
        );
        if p.endpoints.is_empty() {
            filter.push_str(&format!(
                "-A {SERVICES_CHAIN} {matcher} -j REJECT --reject-with tcp-reset\n"
            ));
            continue;
        }
        rules.push_str(&format!("-A {SERVICES_CHAIN} {matcher} -j {chain}\n"));
        let n = p.endpoints.len();
        for (j, (ip, port)) in p.endpoints.iter().enumerate() {
            let statistic = if j + 1 < n {
                format!(
                    "-m statistic --mode random --probability {:.10} ",
                    1.0 / (n - j) as f64
                )
            } else {
                String::new()
            };
            rules.push_str(&format!(
                "-A {chain} -p tcp {statistic}-j DNAT --to-destination {ip}:{port}\n"
            ));
        }
    }
    if first {
        rules.push_str(&format!(
            "-A OUTPUT -m comment --comment \"rudder/services\" -j {SERVICES_CHAIN}\n"
        ));
        filter.push_str(&format!(
            "-A OUTPUT -m comment --comment \"rudder/services\" -j {SERVICES_CHAIN}\n"
        ));
    }
    format!("{nat}{rules}COMMIT\n{filter}COMMIT\n")
}

/// Applies `rules` (from [`render`]) in the network namespace at `netns`.
pub fn apply(pod: &str, netns: &Path, rules: &str) -> Result<(), DnatError> {
    let err = |message: String| DnatError::Restore {
        pod: pod.to_string(),
        message,
    };
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["iptables-restore", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run nsenter: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(rules.as_bytes())
            .map_err(|e| err(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn splits_evenly_and_rejects_services_without_endpoints() {
        let ip = |n| Ipv4Addr::new(198, 18, 0, n);
        let ports = vec![
            VipPort {
                service: "bookinfo/reviews:9080".into(),
                vip: Ipv4Addr::new(198, 19, 0, 12),
                port: 9080,
                endpoints: vec![(ip(4), 9080), (ip(5), 9080), (ip(6), 9080)],
            },
            VipPort {
                service: "bookinfo/ratings:9080".into(),
                vip: Ipv4Addr::new(198, 19, 0, 13),
                port: 9080,
                endpoints: vec![],
            },
        ];
        let expected = "*nat\n:RUDDER-SERVICES - [0:0]\n:RUDDER-SVC-0 - [0:0]\n:RUDDER-SVC-1 - [0:0]\n\
-A RUDDER-SERVICES -d 198.19.0.12/32 -p tcp -m tcp --dport 9080 -m comment --comment \"bookinfo/reviews:9080\" -j RUDDER-SVC-0\n\
-A RUDDER-SVC-0 -p tcp -m statistic --mode random --probability 0.3333333333 -j DNAT --to-destination 198.18.0.4:9080\n\
-A RUDDER-SVC-0 -p tcp -m statistic --mode random --probability 0.5000000000 -j DNAT --to-destination 198.18.0.5:9080\n\
-A RUDDER-SVC-0 -p tcp -j DNAT --to-destination 198.18.0.6:9080\n\
-A OUTPUT -m comment --comment \"rudder/services\" -j RUDDER-SERVICES\n\
COMMIT\n*filter\n:RUDDER-SERVICES - [0:0]\n\
-A RUDDER-SERVICES -d 198.19.0.13/32 -p tcp -m tcp --dport 9080 -m comment --comment \"bookinfo/ratings:9080\" -j REJECT --reject-with tcp-reset\n\
-A OUTPUT -m comment --comment \"rudder/services\" -j RUDDER-SERVICES\n\
COMMIT\n";
        assert_eq!(render(&ports, true), expected);
        let again = render(&ports, false);
        assert!(!again.contains("-A OUTPUT"), "{again}");
        assert!(
            again.contains(":RUDDER-SVC-0 - [0:0]"),
            "a rewrite flushes the chains it declares"
        );
    }
}
