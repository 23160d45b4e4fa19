//! The pure rule builder: [`CaptureConfig`] → [`Rules`], per address family.
//!
//! The shape follows modern `istio-iptables` (see research/mission-anchors.md §2):
//!
//! ```text
//! nat PREROUTING  -p tcp ─► RUDDER_INBOUND ─► (port selection) ─► RUDDER_IN_REDIRECT ─► REDIRECT inbound capture port
//! nat OUTPUT      -p tcp ─► RUDDER_OUTPUT  ─► (exemptions)     ─► RUDDER_REDIRECT    ─► REDIRECT proxy port
//!                                  └─ proxy UID/GID on lo to a non-loopback address ─► RUDDER_INBOUND
//! ```
//!
//! One deliberate difference from Istio: the proxy's own connections to the pod's
//! own IP (a pod calling its own Service) jump to `RUDDER_INBOUND`, not straight to
//! the inbound redirect, so they get exactly the inbound port selection traffic
//! from the network gets (an excluded or unlisted port is not captured either way).

use std::fmt;

use crate::config::{CaptureConfig, Cidr, CidrSet, PortSet};
use crate::plan;
/// Inbound port selection (jumped to from PREROUTING).
pub const INBOUND_CHAIN: &str = "RUDDER_INBOUND";
/// REDIRECT to the inbound capture port.
pub const IN_REDIRECT_CHAIN: &str = "RUDDER_IN_REDIRECT";
/// Outbound exemptions and selection (jumped to from OUTPUT).
pub const OUTPUT_CHAIN: &str = "RUDDER_OUTPUT";
/// REDIRECT to the proxy port.
pub const REDIRECT_CHAIN: &str = "RUDDER_REDIRECT";
/// Our chains, in the order they are declared.
pub const CHAINS: [&str; 4] = [
    INBOUND_CHAIN,
    IN_REDIRECT_CHAIN,
    OUTPUT_CHAIN,
    REDIRECT_CHAIN,
];
/// Every rule's comment starts with this.
pub const COMMENT_PREFIX: &str = "rudder/";

/// An IP family: `iptables` or `ip6tables`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4, `iptables`.
    V4,
    /// IPv6, `ip6tables`.
    V6,
}

impl Family {
    /// Both families, IPv4 first.
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The loopback address the app's own local calls use; never redirected.
    pub fn loopback(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.1/32",
            Family::V6 => "::1/128",
        }
    }

    /// The source Envoy uses to deliver inbound traffic to the app (Istio ≥ 1.10):
    /// 127.0.0.6, and `::6` as Istio uses for IPv6.
    pub fn inbound_passthrough_source(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.6/32",
            Family::V6 => "::6/128",
        }
    }

    /// The command prefix: `iptables` or `ip6tables`.
    pub fn command(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        })
    }
}

/// One nat-table rule as data: `-A <chain> <matches> -m comment --comment "rudder/<purpose>" -j <target>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The chain it is appended to.
    pub chain: &'static str,
    /// Match arguments, e.g. `["-o", "lo", "!", "-d", "127.0.0.1/32"]`.
    pub matches: Vec<String>,
    /// Why the rule exists; rendered as the comment `rudder/<purpose>`.
    pub purpose: &'static str,
    /// Target arguments, e.g. `["RETURN"]` or `["REDIRECT", "--to-ports", "15000"]`.
    pub target: Vec<String>,
}

impl fmt::Display for Rule {
    /// The rule as an `iptables-restore` line (same spelling `iptables-save` prints).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-A {}", self.chain)?;
        for m in &self.matches {
            write!(f, " {m}")?;
        }
        write!(
            f,
            " -m comment --comment \"{COMMENT_PREFIX}{}\" -j",
            self.purpose
        )?;
        for t in &self.target {
            write!(f, " {t}")?;
        }
        Ok(())
    }
}

/// The complete nat-table rule set for both families, built by [`rules`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    v4: Vec<Rule>,
    v6: Option<Vec<Rule>>,
}

impl Rules {
    /// The families these rules are applied to (IPv6 unless the config disabled it).
    pub fn families(&self) -> Vec<Family> {
        match self.v6 {
            Some(_) => Family::ALL.to_vec(),
            None => vec![Family::V4],
        }
    }

    /// The rules of one family; empty for IPv6 when it is disabled.
    pub fn rules(&self, family: Family) -> &[Rule] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => self.v6.as_deref().unwrap_or(&[]),
        }
    }

    /// The rules of one family as `iptables-restore` lines.
    pub fn lines(&self, family: Family) -> Vec<String> {
        self.rules(family).iter().map(ToString::to_string).collect()
    }

    /// The `iptables-restore --noflush` input that installs these rules into a nat
    /// table holding none of ours yet. To replace rules already there, see
    /// [`Rules::restore_text_replacing`] (what `proxy-init` itself applies).
    /// A disabled family yields an empty `*nat`/`COMMIT` section.
    pub fn restore_text(&self, family: Family) -> String {
        self.restore_text_replacing(family, "")
    }

    /// The `iptables-restore --noflush` input that turns a nat table whose
    /// `iptables-save -t nat` output is `current_save` into one holding exactly
    /// these rules of ours: it flushes our existing chains, deletes every jump to
    /// them, drops chains of ours no longer used, then adds the rules.
    pub fn restore_text_replacing(&self, family: Family, current_save: &str) -> String {
        if family == Family::V6 && self.v6.is_none() {
            return "*nat\nCOMMIT\n".to_string();
        }
        plan::replace_text(current_save, &CHAINS, &self.lines(family))
    }
}

/// Builds the capture rules for `cfg`. Pure: no I/O, same input → same output.
pub fn rules(cfg: &CaptureConfig) -> Rules {
    Rules {
        v4: family_rules(cfg, Family::V4),
        v6: cfg.ipv6.then(|| family_rules(cfg, Family::V6)),
    }
}

fn s(items: &[&str]) -> Vec<String> {
    items.iter().map(|i| i.to_string()).collect()
}

fn rule(
    chain: &'static str,
    matches: Vec<String>,
    purpose: &'static str,
    target: Vec<String>,
) -> Rule {
    Rule {
        chain,
        matches,
        purpose,
        target,
    }
}

/// One family's rules, in the order the nat table holds them: the two
/// REDIRECT chains, inbound port selection, then outbound exemptions before
/// what outbound traffic is captured.
fn family_rules(cfg: &CaptureConfig, family: Family) -> Vec<Rule> {
    let mut out = redirect_rules(cfg);
    out.extend(inbound_rules(cfg));
    out.extend(outbound_port_exemptions(cfg, family));
    out.extend(proxy_owner_rules(cfg, family));
    out.extend(outbound_destination_exemptions(cfg, family));
    out.extend(outbound_capture_rules(cfg, family));
    out
}

fn tcp_dport(port: u16) -> Vec<String> {
    s(&["-p", "tcp", "-m", "tcp", "--dport", &port.to_string()])
}

fn ret() -> Vec<String> {
    s(&["RETURN"])
}

/// The two REDIRECT chains: inbound to the inbound capture port, outbound to
/// the proxy port.
fn redirect_rules(cfg: &CaptureConfig) -> Vec<Rule> {
    vec![
        rule(
            IN_REDIRECT_CHAIN,
            s(&["-p", "tcp"]),
            "redirect-inbound",
            s(&[
                "REDIRECT",
                "--to-ports",
                &cfg.effective_inbound_capture_port().to_string(),
            ]),
        ),
        rule(
            REDIRECT_CHAIN,
            s(&["-p", "tcp"]),
            "redirect-outbound",
            s(&["REDIRECT", "--to-ports", &cfg.proxy_port.to_string()]),
        ),
    ]
}

/// Inbound: which destination ports are captured, and PREROUTING's jump.
fn inbound_rules(cfg: &CaptureConfig) -> Vec<Rule> {
    let mut out = Vec::new();
    match &cfg.inbound_ports {
        PortSet::All => {
            for &port in &cfg.exclude_inbound_ports {
                out.push(rule(
                    INBOUND_CHAIN,
                    tcp_dport(port),
                    "exclude-inbound-port",
                    ret(),
                ));
            }
            out.push(rule(
                INBOUND_CHAIN,
                s(&["-p", "tcp"]),
                "capture-inbound",
                s(&[IN_REDIRECT_CHAIN]),
            ));
        }
        PortSet::List(ports) => {
            for &port in ports
                .iter()
                .filter(|p| !cfg.exclude_inbound_ports.contains(p))
            {
                out.push(rule(
                    INBOUND_CHAIN,
                    tcp_dport(port),
                    "capture-inbound-port",
                    s(&[IN_REDIRECT_CHAIN]),
                ));
            }
        }
    }
    out.push(rule(
        "PREROUTING",
        s(&["-p", "tcp"]),
        "inbound",
        s(&[INBOUND_CHAIN]),
    ));
    out
}

/// Outbound exemptions by port, and the proxy's inbound passthrough.
fn outbound_port_exemptions(cfg: &CaptureConfig, family: Family) -> Vec<Rule> {
    let mut out: Vec<Rule> = cfg
        .exclude_outbound_ports
        .iter()
        .map(|&port| {
            rule(
                OUTPUT_CHAIN,
                tcp_dport(port),
                "exclude-outbound-port",
                ret(),
            )
        })
        .collect();
    out.push(rule(
        OUTPUT_CHAIN,
        s(&["-o", "lo", "-s", family.inbound_passthrough_source()]),
        "inbound-passthrough",
        ret(),
    ));
    out
}

/// By proxy UID, then GID: the proxy calling its own pod IP goes through
/// inbound selection, the app's loopback calls and the proxy's own outbound
/// traffic are not redirected.
fn proxy_owner_rules(cfg: &CaptureConfig, family: Family) -> Vec<Rule> {
    let mut out = Vec::new();
    for (kind, id) in [
        ("--uid-owner", cfg.proxy_uid),
        ("--gid-owner", cfg.proxy_gid),
    ] {
        let id = id.to_string();
        out.push(rule(
            OUTPUT_CHAIN,
            s(&[
                "-o",
                "lo",
                "!",
                "-d",
                family.loopback(),
                "-m",
                "owner",
                kind,
                &id,
            ]),
            "proxy-to-own-ip",
            s(&[INBOUND_CHAIN]),
        ));
        out.push(rule(
            OUTPUT_CHAIN,
            s(&["-o", "lo", "-m", "owner", "!", kind, &id]),
            "app-on-loopback",
            ret(),
        ));
        out.push(rule(
            OUTPUT_CHAIN,
            s(&["-m", "owner", kind, &id]),
            "proxy-outbound",
            ret(),
        ));
    }
    out
}

fn in_family(family: Family) -> impl Fn(&&Cidr) -> bool {
    move |c| c.is_ipv4() == (family == Family::V4)
}

/// Outbound exemptions by destination: excluded CIDRs of this family, loopback.
fn outbound_destination_exemptions(cfg: &CaptureConfig, family: Family) -> Vec<Rule> {
    let mut out: Vec<Rule> = cfg
        .exclude_outbound_cidrs
        .iter()
        .filter(in_family(family))
        .map(|cidr| {
            rule(
                OUTPUT_CHAIN,
                s(&["-d", &cidr.to_string()]),
                "exclude-outbound-cidr",
                ret(),
            )
        })
        .collect();
    out.push(rule(
        OUTPUT_CHAIN,
        s(&["-d", family.loopback()]),
        "loopback",
        ret(),
    ));
    out
}

/// What outbound traffic is captured (everything, or the included CIDRs of
/// this family), and OUTPUT's jump.
fn outbound_capture_rules(cfg: &CaptureConfig, family: Family) -> Vec<Rule> {
    let mut out = Vec::new();
    match &cfg.include_outbound_cidrs {
        CidrSet::All => out.push(rule(
            OUTPUT_CHAIN,
            Vec::new(),
            "capture-outbound",
            s(&[REDIRECT_CHAIN]),
        )),
        CidrSet::List(cidrs) => {
            for cidr in cidrs.iter().filter(in_family(family)) {
                out.push(rule(
                    OUTPUT_CHAIN,
                    s(&["-d", &cidr.to_string()]),
                    "capture-outbound-cidr",
                    s(&[REDIRECT_CHAIN]),
                ));
            }
        }
    }
    out.push(rule(
        "OUTPUT",
        s(&["-p", "tcp"]),
        "outbound",
        s(&[OUTPUT_CHAIN]),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::CHAIN_PREFIX;

    #[test]
    fn every_rule_has_a_purpose_and_lives_in_or_jumps_to_our_chains() {
        let r = rules(&CaptureConfig::default());
        for family in r.families() {
            for rule in r.rules(family) {
                assert!(!rule.purpose.is_empty());
                let ours = rule.chain.starts_with(CHAIN_PREFIX)
                    || rule.target[0].starts_with(CHAIN_PREFIX);
                assert!(ours, "{rule}");
            }
        }
    }

    #[test]
    fn exactly_one_jump_from_each_builtin_chain() {
        let r = rules(&CaptureConfig::default());
        for family in Family::ALL {
            for builtin in ["PREROUTING", "OUTPUT"] {
                let n = r
                    .rules(family)
                    .iter()
                    .filter(|x| x.chain == builtin)
                    .count();
                assert_eq!(n, 1, "{family} {builtin}");
            }
        }
    }

    #[test]
    fn ipv6_uses_ipv6_loopback_and_passthrough() {
        let text = rules(&CaptureConfig::default()).restore_text(Family::V6);
        assert!(text.contains("-s ::6/128"), "{text}");
        assert!(text.contains("! -d ::1/128"), "{text}");
        assert!(!text.contains("127.0.0."), "{text}");
    }

    #[test]
    fn disabled_ipv6_has_no_rules() {
        let cfg = CaptureConfig {
            ipv6: false,
            ..CaptureConfig::default()
        };
        let r = rules(&cfg);
        assert_eq!(r.families(), vec![Family::V4]);
        assert!(r.rules(Family::V6).is_empty());
        assert_eq!(r.restore_text(Family::V6), "*nat\nCOMMIT\n");
    }
}
