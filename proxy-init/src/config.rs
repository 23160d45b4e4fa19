//! What to capture: [`CaptureConfig`] and the small value types its flags parse into.
//!
//! Parsing lives here (not in the binary) so the injector, the pod harness and the
//! CLI agree on what `--inbound-ports '*'` or `--exclude-outbound-cidrs 10.0.0.0/8`
//! mean, and every bad value is reported with the flag that carried it.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use rudder_model::well_known::{DEFAULT_EXCLUDED_INBOUND_PORTS, PROXY_GID, PROXY_PORT, PROXY_UID};

/// A value given to one flag could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A port outside 1..=65535 or not a number.
    #[error("--{flag}: invalid port {value:?}: expected a number from 1 to 65535")]
    BadPort { flag: &'static str, value: String },
    /// A CIDR that does not parse.
    #[error("--{flag}: invalid CIDR {value:?}: {why}")]
    BadCidr {
        flag: &'static str,
        value: String,
        why: String,
    },
    /// `*` where only an explicit list makes sense.
    #[error("--{flag}: '*' is not allowed here; give a comma-separated list")]
    WildcardNotAllowed { flag: &'static str },
}

/// A set of TCP ports: every port (`*`) or an explicit list (possibly empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSet {
    /// `*`: every port.
    All,
    /// An explicit list, sorted and without duplicates; empty means "none".
    List(Vec<u16>),
}

impl PortSet {
    /// Parses `*` or a comma-separated list (`""` = none) given to `--{flag}`.
    pub fn parse(flag: &'static str, value: &str) -> Result<Self, ConfigError> {
        if value.trim() == "*" {
            return Ok(PortSet::All);
        }
        parse_port_list(flag, value).map(PortSet::List)
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        match self {
            PortSet::All => true,
            PortSet::List(ports) => ports.contains(&port),
        }
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSet::All => f.write_str("*"),
            PortSet::List(ports) => f.write_str(&join(ports)),
        }
    }
}

/// Parses a comma-separated list of ports given to `--{flag}` (sorted, deduplicated).
pub fn parse_port_list(flag: &'static str, value: &str) -> Result<Vec<u16>, ConfigError> {
    let mut ports = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "*" {
            return Err(ConfigError::WildcardNotAllowed { flag });
        }
        ports.push(parse_port(flag, item)?);
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// Parses one port (1..=65535) given to `--{flag}`.
pub fn parse_port(flag: &'static str, value: &str) -> Result<u16, ConfigError> {
    match value.trim().parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(ConfigError::BadPort {
            flag,
            value: value.to_string(),
        }),
    }
}

/// An IPv4 or IPv6 network, `addr/prefix`, with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether this is an IPv4 network.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl FromStr for Cidr {
    type Err = String;

    /// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128 host).
    /// Host bits must be zero: `10.0.0.1/8` is almost always a typo, so it is
    /// refused rather than silently widened.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("{addr_text:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("prefix {p:?} is not a number from 0 to {max}")),
            },
        };
        let masked = mask(addr, prefix);
        if masked != addr {
            return Err(format!("host bits set; did you mean {masked}/{prefix}?"));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((bits & m).into())
        }
    }
}

/// A set of destination networks: every destination (`*`) or an explicit list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CidrSet {
    /// `*`: every destination.
    All,
    /// An explicit list, sorted and without duplicates; empty means "none".
    List(Vec<Cidr>),
}

impl CidrSet {
    /// Parses `*` or a comma-separated list of CIDRs (`""` = none) given to `--{flag}`.
    pub fn parse(flag: &'static str, value: &str) -> Result<Self, ConfigError> {
        if value.trim() == "*" {
            return Ok(CidrSet::All);
        }
        parse_cidr_list(flag, value).map(CidrSet::List)
    }
}

impl fmt::Display for CidrSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CidrSet::All => f.write_str("*"),
            CidrSet::List(cidrs) => f.write_str(&join(cidrs)),
        }
    }
}

/// Parses a comma-separated list of CIDRs given to `--{flag}` (sorted, deduplicated).
pub fn parse_cidr_list(flag: &'static str, value: &str) -> Result<Vec<Cidr>, ConfigError> {
    let mut cidrs = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "*" {
            return Err(ConfigError::WildcardNotAllowed { flag });
        }
        let cidr = item.parse::<Cidr>().map_err(|why| ConfigError::BadCidr {
            flag,
            value: item.to_string(),
            why,
        })?;
        cidrs.push(cidr);
    }
    cidrs.sort_unstable();
    cidrs.dedup();
    Ok(cidrs)
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Everything that decides the capture rules. `Default` is the contract's defaults
/// (docs/architecture.md, "Contracts"): everything to 15000, UID/GID 1337 exempt, inbound on
/// every port but 15020/15021/15090, all outbound destinations, IPv4 and IPv6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Where outbound (and, unless `inbound_capture_port` says otherwise, inbound)
    /// traffic is REDIRECTed: Envoy's capture listener.
    pub proxy_port: u16,
    /// Where inbound traffic goes; `None` = `proxy_port` (pilot then tells inbound
    /// from outbound by the original destination).
    pub inbound_capture_port: Option<u16>,
    /// The proxy's UID: its own outbound traffic is never captured.
    pub proxy_uid: u32,
    /// The proxy's GID, exempt like the UID.
    pub proxy_gid: u32,
    /// Inbound destination ports to capture.
    pub inbound_ports: PortSet,
    /// Inbound ports never captured (only meaningful with `inbound_ports = *`).
    pub exclude_inbound_ports: Vec<u16>,
    /// Outbound destination ports never captured.
    pub exclude_outbound_ports: Vec<u16>,
    /// Outbound destinations to capture.
    pub include_outbound_cidrs: CidrSet,
    /// Outbound destinations never captured (checked before the includes).
    pub exclude_outbound_cidrs: Vec<Cidr>,
    /// Also write ip6tables rules.
    pub ipv6: bool,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            proxy_port: PROXY_PORT,
            inbound_capture_port: None,
            proxy_uid: PROXY_UID,
            proxy_gid: PROXY_GID,
            inbound_ports: PortSet::All,
            exclude_inbound_ports: DEFAULT_EXCLUDED_INBOUND_PORTS.to_vec(),
            exclude_outbound_ports: Vec::new(),
            include_outbound_cidrs: CidrSet::All,
            exclude_outbound_cidrs: Vec::new(),
            ipv6: true,
        }
    }
}

impl CaptureConfig {
    /// The port inbound traffic is redirected to.
    pub fn effective_inbound_capture_port(&self) -> u16 {
        self.inbound_capture_port.unwrap_or(self.proxy_port)
    }

    /// The `proxy-init` command-line flags that reproduce this configuration, for
    /// callers (the injector's template, the pod harness) that run the binary.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--proxy-port={}", self.proxy_port),
            format!(
                "--inbound-capture-port={}",
                self.effective_inbound_capture_port()
            ),
            format!("--proxy-uid={}", self.proxy_uid),
            format!("--proxy-gid={}", self.proxy_gid),
            format!("--inbound-ports={}", self.inbound_ports),
            format!(
                "--exclude-inbound-ports={}",
                join(&self.exclude_inbound_ports)
            ),
            format!(
                "--exclude-outbound-ports={}",
                join(&self.exclude_outbound_ports)
            ),
            format!("--include-outbound-cidrs={}", self.include_outbound_cidrs),
            format!(
                "--exclude-outbound-cidrs={}",
                join(&self.exclude_outbound_cidrs)
            ),
        ];
        if !self.ipv6 {
            args.push("--no-ipv6".to_string());
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_sorted_and_deduplicated() {
        assert_eq!(
            PortSet::parse("inbound-ports", " 9080, 80,9080 ").unwrap(),
            PortSet::List(vec![80, 9080])
        );
        assert_eq!(PortSet::parse("inbound-ports", "*").unwrap(), PortSet::All);
        assert_eq!(
            PortSet::parse("inbound-ports", "").unwrap(),
            PortSet::List(vec![])
        );
    }

    #[test]
    fn bad_ports_name_flag_and_value() {
        for bad in ["0", "70000", "http", "-1"] {
            let err = parse_port_list("exclude-outbound-ports", bad).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("--exclude-outbound-ports"), "{text}");
            assert!(text.contains(bad), "{text}");
        }
        assert_eq!(
            parse_port_list("exclude-inbound-ports", "15020,*").unwrap_err(),
            ConfigError::WildcardNotAllowed {
                flag: "exclude-inbound-ports"
            }
        );
    }

    #[test]
    fn cidrs_parse_both_families() {
        let list = parse_cidr_list("x", "10.0.0.0/8, 2001:db8::/32,192.168.1.7").unwrap();
        let text: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"]);
        assert!(list[0].is_ipv4() && !list[2].is_ipv4());
    }

    #[test]
    fn bad_cidrs_say_why() {
        let cases = [
            ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
            ("10.0.0.0/33", "prefix \"33\""),
            ("300.1.1.1/8", "not an IP address"),
            ("2001:db8::1/32", "did you mean 2001:db8::/32"),
        ];
        for (bad, why) in cases {
            let text = parse_cidr_list("exclude-outbound-cidrs", bad)
                .unwrap_err()
                .to_string();
            assert!(text.contains("--exclude-outbound-cidrs"), "{text}");
            assert!(text.contains(bad) && text.contains(why), "{text}");
        }
    }

    #[test]
    fn to_args_round_trips_through_the_parsers() {
        let cfg = CaptureConfig {
            inbound_ports: PortSet::List(vec![80, 9080]),
            exclude_outbound_cidrs: parse_cidr_list("x", "10.0.0.0/8").unwrap(),
            ipv6: false,
            ..CaptureConfig::default()
        };
        let args = cfg.to_args();
        assert!(args.contains(&"--inbound-ports=80,9080".to_string()));
        assert!(args.contains(&"--exclude-inbound-ports=15020,15021,15090".to_string()));
        assert!(args.contains(&"--exclude-outbound-cidrs=10.0.0.0/8".to_string()));
        assert!(args.contains(&"--no-ipv6".to_string()));
    }
}
