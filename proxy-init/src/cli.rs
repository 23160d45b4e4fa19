//! Command-line flags. Every flag `--foo-bar` is also read from `PROXY_INIT_FOO_BAR`,
//! so an injected init container can be configured by args or by env.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rudder_proxy_init::config::{parse_cidr_list, parse_port, parse_port_list};
use rudder_proxy_init::{BackendChoice, CaptureConfig, CidrSet, ConfigError, PortSet};

#[derive(Debug, Parser)]
#[command(
    name = "proxy-init",
    about = "Write the nat rules that send a pod's TCP traffic to Envoy (run as root with NET_ADMIN/NET_RAW in the pod's network namespace).",
    long_about = "Write the nat-table rules that send a pod's TCP traffic to Envoy: inbound traffic to the \
pod's ports goes to --inbound-capture-port, outbound traffic to --proxy-port, except traffic of \
--proxy-uid/--proxy-gid and what the exclusions name. Rules are applied atomically with one \
iptables-restore per family (IPv4 and IPv6); re-running converges to the same rules. \
Every flag --foo-bar can also be set as the environment variable PROXY_INIT_FOO_BAR."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub capture: CaptureArgs,
    /// Print the exact iptables-restore input for each family and change nothing.
    #[arg(long, env = "PROXY_INIT_DRY_RUN", global = true)]
    pub dry_run: bool,
    /// Remove every chain and jump proxy-init created (both families).
    #[arg(long, env = "PROXY_INIT_CLEANUP", conflicts_with = "dry_run")]
    pub cleanup: bool,
    /// iptables backend: nft, legacy, or auto (the one already holding rules; nft on a tie).
    #[arg(
        long,
        env = "PROXY_INIT_IPTABLES_BACKEND",
        default_value = "auto",
        value_name = "nft|legacy|auto",
        global = true
    )]
    pub iptables_backend: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prove the rules work: connect (as this user) to an arbitrary address and check it
    /// arrives on --proxy-port with SO_ORIGINAL_DST intact, and that the proxy UID's
    /// connection does not. Run as root inside the namespace, before Envoy binds the port.
    Verify {
        /// Where to connect; needs a route in the namespace, never needs to exist.
        #[arg(long, env = "PROXY_INIT_VERIFY_TO", default_value = rudder_proxy_init::verify::DEFAULT_TARGET)]
        to: SocketAddr,
        /// Safety bound per connection attempt, in milliseconds.
        #[arg(long, env = "PROXY_INIT_TIMEOUT_MS", default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Diagnostic: connect to an address, send a payload, report the outcome
    /// (exit 0 = connected). `verify` runs it as the proxy UID.
    Probe {
        /// Where to connect.
        #[arg(long)]
        to: SocketAddr,
        /// Bytes to send once connected.
        #[arg(long, default_value = "rudder-probe")]
        payload: String,
        /// Connect timeout in milliseconds.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
}

/// The capture flags (docs/architecture.md, "Command lines"), kept as text so errors name the flag.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// Port captured traffic is redirected to (Envoy's capture listener): outbound, and inbound unless --inbound-capture-port says otherwise.
    #[arg(
        long,
        env = "PROXY_INIT_PROXY_PORT",
        value_name = "PORT",
        default_value = "15000",
        global = true
    )]
    pub proxy_port: String,
    /// Port inbound traffic is redirected to [default: the proxy port].
    #[arg(long, env = "PROXY_INIT_INBOUND_CAPTURE_PORT", value_name = "PORT")]
    pub inbound_capture_port: Option<String>,
    /// UID whose outbound traffic is never captured (Envoy's).
    #[arg(
        long,
        env = "PROXY_INIT_PROXY_UID",
        value_name = "UID",
        default_value_t = 1337,
        global = true
    )]
    pub proxy_uid: u32,
    /// GID whose outbound traffic is never captured.
    #[arg(
        long,
        env = "PROXY_INIT_PROXY_GID",
        value_name = "GID",
        default_value_t = 1337,
        global = true
    )]
    pub proxy_gid: u32,
    /// Inbound destination ports to capture: '*' for all, or a comma-separated list ('' = none).
    #[arg(
        long,
        env = "PROXY_INIT_INBOUND_PORTS",
        value_name = "'*'|PORTS",
        default_value = "*"
    )]
    pub inbound_ports: String,
    /// Inbound ports never captured, whatever --inbound-ports says (agent and Envoy stats by default).
    #[arg(
        long,
        env = "PROXY_INIT_EXCLUDE_INBOUND_PORTS",
        value_name = "PORTS",
        default_value = "15020,15021,15090"
    )]
    pub exclude_inbound_ports: String,
    /// Outbound destination ports never captured (comma-separated).
    #[arg(
        long,
        env = "PROXY_INIT_EXCLUDE_OUTBOUND_PORTS",
        value_name = "PORTS",
        default_value = ""
    )]
    pub exclude_outbound_ports: String,
    /// Outbound destinations to capture: '*' for all, or comma-separated CIDRs ('' = none).
    #[arg(
        long,
        env = "PROXY_INIT_INCLUDE_OUTBOUND_CIDRS",
        value_name = "'*'|CIDRS",
        default_value = "*"
    )]
    pub include_outbound_cidrs: String,
    /// Outbound destinations never captured (comma-separated CIDRs; checked before the includes).
    #[arg(
        long,
        env = "PROXY_INIT_EXCLUDE_OUTBOUND_CIDRS",
        value_name = "CIDRS",
        default_value = ""
    )]
    pub exclude_outbound_cidrs: String,
    /// Leave IPv6 alone (no ip6tables rules), for hosts without IPv6 nat support.
    #[arg(long, env = "PROXY_INIT_NO_IPV6")]
    pub no_ipv6: bool,
}

impl CaptureArgs {
    /// The validated configuration; the error names the flag and the value.
    pub fn to_config(&self) -> Result<CaptureConfig, ConfigError> {
        Ok(CaptureConfig {
            proxy_port: parse_port("proxy-port", &self.proxy_port)?,
            inbound_capture_port: self
                .inbound_capture_port
                .as_deref()
                .map(|p| parse_port("inbound-capture-port", p))
                .transpose()?,
            proxy_uid: self.proxy_uid,
            proxy_gid: self.proxy_gid,
            inbound_ports: PortSet::parse("inbound-ports", &self.inbound_ports)?,
            exclude_inbound_ports: parse_port_list(
                "exclude-inbound-ports",
                &self.exclude_inbound_ports,
            )?,
            exclude_outbound_ports: parse_port_list(
                "exclude-outbound-ports",
                &self.exclude_outbound_ports,
            )?,
            include_outbound_cidrs: CidrSet::parse(
                "include-outbound-cidrs",
                &self.include_outbound_cidrs,
            )?,
            exclude_outbound_cidrs: parse_cidr_list(
                "exclude-outbound-cidrs",
                &self.exclude_outbound_cidrs,
            )?,
            ipv6: !self.no_ipv6,
        })
    }
}

impl Cli {
    /// The backend choice, validated.
    pub fn backend(&self) -> Result<BackendChoice, rudder_proxy_init::BackendError> {
        self.iptables_backend.parse()
    }
}

/// Milliseconds → a timeout, at least 1 ms (a zero connect timeout is an error in std).
pub fn timeout(ms: u64) -> Duration {
    Duration::from_millis(ms.max(1))
}
