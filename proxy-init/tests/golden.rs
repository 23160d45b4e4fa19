//! Golden tests of the pure builder: one file per flag combination, holding the
//! exact `iptables-restore` input for IPv4 and IPv6 (iptables-save format).
//! Refresh with `REFRESH_GOLDEN=1 cargo test -p rudder-proxy-init --test golden`.

use std::path::PathBuf;

use rudder_proxy_init::config::{parse_cidr_list, parse_port_list};
use rudder_proxy_init::plan::replace_text;
use rudder_proxy_init::{rules, CaptureConfig, CidrSet, Family, PortSet};

fn render(cfg: &CaptureConfig) -> String {
    let r = rules(cfg);
    let mut out = format!("# proxy-init {}\n", cfg.to_args().join(" "));
    for family in r.families() {
        out.push_str(&format!("# {family}\n{}", r.restore_text(family)));
    }
    out
}

fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(format!("{name}.golden"));
    rudder_test_support::assert_golden(&path, actual);
}

fn cidrs(s: &str) -> Vec<rudder_proxy_init::Cidr> {
    parse_cidr_list("test", s).unwrap()
}

#[test]
fn defaults() {
    check("defaults", &render(&CaptureConfig::default()));
}

#[test]
fn custom_proxy_port_and_inbound_exclusions() {
    let cfg = CaptureConfig {
        proxy_port: 15001,
        exclude_inbound_ports: parse_port_list("test", "22,15021").unwrap(),
        ..CaptureConfig::default()
    };
    check("custom_ports", &render(&cfg));
}

#[test]
fn inbound_ports_list_skips_excluded_ones() {
    let cfg = CaptureConfig {
        inbound_ports: PortSet::List(vec![80, 9080, 15020]),
        ..CaptureConfig::default()
    };
    check("inbound_ports_list", &render(&cfg));
}

#[test]
fn no_inbound_ports() {
    let cfg = CaptureConfig {
        inbound_ports: PortSet::List(vec![]),
        ..CaptureConfig::default()
    };
    check("inbound_ports_none", &render(&cfg));
}

#[test]
fn outbound_exclusions_split_by_family() {
    let cfg = CaptureConfig {
        exclude_outbound_ports: vec![3306, 6379],
        exclude_outbound_cidrs: cidrs("10.0.0.0/8,169.254.169.254,fd00::/8"),
        ..CaptureConfig::default()
    };
    check("exclusions", &render(&cfg));
}

#[test]
fn include_outbound_cidrs_split_by_family() {
    let cfg = CaptureConfig {
        include_outbound_cidrs: CidrSet::List(cidrs("198.19.0.0/16,10.96.0.0/12,fd00:10:96::/112")),
        exclude_outbound_cidrs: cidrs("10.96.0.10"),
        ..CaptureConfig::default()
    };
    check("include_cidrs", &render(&cfg));
}

#[test]
fn separate_inbound_capture_port() {
    let cfg = CaptureConfig {
        inbound_capture_port: Some(15006),
        ..CaptureConfig::default()
    };
    check("inbound_capture_port", &render(&cfg));
}

#[test]
fn custom_uid_and_gid() {
    let cfg = CaptureConfig {
        proxy_uid: 2102,
        proxy_gid: 2103,
        ..CaptureConfig::default()
    };
    check("uid_gid", &render(&cfg));
}

#[test]
fn ipv4_only() {
    let cfg = CaptureConfig {
        ipv6: false,
        ..CaptureConfig::default()
    };
    check("ipv4_only", &render(&cfg));
}

/// A re-run over a table holding the defaults plus a stray duplicate jump (and
/// someone else's rules): every old jump is deleted, nobody else's rule is touched.
#[test]
fn replacing_an_earlier_configuration() {
    let old = rules(&CaptureConfig::default()).restore_text(Family::V4);
    let current = old.replace(
        "COMMIT\n",
        "-A OUTPUT -p tcp -m comment --comment \"rudder/outbound\" -j RUDDER_OUTPUT\n\
         -A OUTPUT -d 198.19.0.1/32 -p tcp -j KUBE-SVC-X\nCOMMIT\n",
    );
    let cfg = CaptureConfig {
        proxy_port: 15001,
        ..CaptureConfig::default()
    };
    let text = rules(&cfg).restore_text_replacing(Family::V4, &current);
    assert!(!text.contains("KUBE-SVC-X"));
    check("replacing", &text);
    check("cleanup", &replace_text(&current, &[], &[]));
}
