//! The end-to-end mesh: one meshed client, three unmeshed reviews versions,
//! pilot on the bridge's host address serving a directory the test writes.
//!
//! ```text
//!  host: pilot serve --config-dir TMP --xds-addr <bridge addr>:P --monitoring-addr 127.0.0.1:M
//!            ▲ ADS (Envoy as 1337: not captured)
//!  pod client ── test's HTTP client ─► <reviews VIP>:9080 ─(proxy-init REDIRECT)─► Envoy :15000
//!                                                                                   │ routes from pilot
//!  pods reviews-v1 / -v2 / -v3: echo on 9080 answering "reviews-vN" ◄───────────────┘
//! ```

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use rudder_agent::{bootstrap, BootstrapConfig, DiscoveryAddress, XdsMode};
use rudder_harness::{
    workspace_bin, EchoConfig, EchoServer, Envoy, EnvoySpec, HttpRequest, LoadReport, LoadSpec,
    Net, Pod,
};
use rudder_model::{NodeId, NodeMetadata};
use rudder_test_support::{check_envoy, check_netns, prerequisite};

use super::pilot::{free_port, settled_rds_version, Pilot, PilotError};

/// A test sidecar: workload `name` (its service account, `app` label and
/// pod name) in `namespace`, with more `labels`, the pod's addresses `ips`
/// (the first is the node id's) and the xDS variant.
pub struct Sidecar<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub labels: &'a [(&'a str, &'a str)],
    pub ips: Vec<IpAddr>,
    pub mode: XdsMode,
}

impl Sidecar<'_> {
    /// Starts this sidecar's Envoy in `pod` (already captured by
    /// proxy-init) against pilot's plaintext ADS at `xds`; returns its node
    /// id and the Envoy, not yet waited for.
    pub fn spawn(&self, pod: &Pod, xds: SocketAddr) -> (NodeId, Envoy) {
        let node = NodeId::sidecar(self.ips[0], self.name, self.namespace);
        let metadata = NodeMetadata {
            namespace: self.namespace.into(),
            service_account: self.name.into(),
            workload_name: self.name.into(),
            labels: std::iter::once(("app", self.name))
                .chain(self.labels.iter().copied())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            instance_ips: self.ips.clone(),
            ..NodeMetadata::default()
        };
        let discovery = DiscoveryAddress {
            host: xds.ip().to_string(),
            port: xds.port(),
        };
        let cfg = BootstrapConfig {
            xds: self.mode,
            ..BootstrapConfig::new(node.clone(), metadata, discovery)
        };
        let envoy = pod
            .spawn_envoy(EnvoySpec::new(bootstrap(&cfg).to_string()))
            .expect("spawn the sidecar's Envoy");
        (node, envoy)
    }
}

/// The reviews versions, each an unmeshed echo pod.
pub const VERSIONS: [&str; 3] = ["v1", "v2", "v3"];

/// Everything one scenario runs against. Field order is drop order: pilot
/// and Envoy stop before the network they live in goes.
pub struct Mesh {
    pub pilot: Pilot,
    pub envoy: Envoy,
    pub echoes: Vec<EchoServer>,
    pub client: Pod,
    pub vip: Ipv4Addr,
    pub node_id: String,
    pub config_dir: tempfile::TempDir,
    pub net: Net,
}

/// The prerequisites (root + tools, Envoy, the proxy-init and pilot binaries):
/// `None` = skip (printed), panics under CI=true.
pub fn prerequisites(test: &str) -> Option<(PathBuf, PathBuf)> {
    prerequisite(test, check_netns())?;
    prerequisite(test, check_envoy())?;
    let proxy_init = prerequisite(test, workspace_bin("proxy-init").map_err(|e| e.to_string()))?;
    let pilot = prerequisite(test, workspace_bin("pilot").map_err(|e| e.to_string()))?;
    Some((proxy_init, pilot))
}

fn pod_yaml(name: &str, ip: Ipv4Addr, labels: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default, labels: {{{labels}}}}}
spec: {{serviceAccountName: {name}}}
status:
  phase: Running
  podIP: {ip}
  conditions: [{{type: Ready, status: \"True\"}}]
"
    )
}

/// Namespace, Service reviews, the four Pods and reviews' DestinationRule.
fn platform_yaml(vip: Ipv4Addr, client: Ipv4Addr, reviews: &[(&str, Ipv4Addr)]) -> String {
    let mut docs = vec![
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: default, labels: {istio-injection: enabled}}\n".to_string(),
        format!(
            "apiVersion: v1
kind: Service
metadata: {{name: reviews, namespace: default}}
spec:
  clusterIP: {vip}
  selector: {{app: reviews}}
  ports: [{{name: http, port: 9080, targetPort: 9080}}]
"
        ),
        pod_yaml("client", client, "app: client, version: v1"),
    ];
    for (v, ip) in reviews {
        docs.push(pod_yaml(
            &format!("reviews-{v}"),
            *ip,
            &format!("app: reviews, version: {v}"),
        ));
    }
    docs.push(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
"
        .to_string(),
    );
    docs.join("---\n")
}

/// Writes `file` in `dir` atomically (a hidden temp file, which the directory
/// source ignores, renamed into place), so pilot never reads half a rule.
pub fn write_config(dir: &Path, file: &str, text: &str) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(&tmp, dir.join(file)).expect("rename config into place");
}

impl Mesh {
    /// Builds the mesh with `rule` as `rules.yaml` and waits until traffic
    /// from the client flows through Envoy to some reviews version.
    pub fn start(
        label: &str,
        mode: XdsMode,
        proxy_init: &Path,
        pilot_bin: &Path,
        rule: &str,
    ) -> Mesh {
        let net = Net::for_test(label).expect("harness net");
        let client = net.add_pod("client").expect("client pod");
        let mut echoes = Vec::new();
        let mut reviews = Vec::new();
        for v in VERSIONS {
            let pod = net.add_pod(&format!("reviews-{v}")).expect("reviews pod");
            echoes.push(
                pod.start_echo(
                    EchoConfig::new(9080, format!("reviews-{v}")).echo_header("end-user"),
                )
                .expect("echo"),
            );
            reviews.push((v, pod.ip()));
        }
        let vip = net
            .service_cidr()
            .nth(10)
            .expect("a VIP in the service CIDR");

        let config_dir = tempfile::tempdir().expect("config dir");
        write_config(
            config_dir.path(),
            "platform.yaml",
            &platform_yaml(vip, client.ip(), &reviews),
        );
        write_config(config_dir.path(), "rules.yaml", rule);

        let xds = SocketAddr::from((net.host_addr(), free_port(net.host_addr())));
        let monitoring = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port(Ipv4Addr::LOCALHOST)));
        let log = net.state_dir().join("pilot.log");
        let mut pilot =
            Pilot::start(pilot_bin, config_dir.path(), xds, monitoring, &log).expect("start pilot");
        pilot
            .wait_ready(Duration::from_secs(30))
            .expect("pilot ready");

        client
            .capture(proxy_init, &[])
            .expect("proxy-init capture in the client pod");
        let (node, envoy) = Sidecar {
            name: "client",
            namespace: "default",
            labels: &[("version", "v1")],
            ips: vec![client.ip().into()],
            mode,
        }
        .spawn(&client, xds);
        let mut mesh = Mesh {
            pilot,
            envoy,
            echoes,
            client,
            vip,
            node_id: node.to_string(),
            config_dir,
            net,
        };
        if let Err(e) = mesh.envoy.wait_live(Duration::from_secs(30)) {
            panic!(
                "Envoy not live: {e}\npilot log:\n{}",
                mesh.pilot.log_tail(20)
            );
        }
        mesh.wait_rds_settled(None);
        mesh.wait_traffic();
        mesh
    }

    /// The request the client sends: `http://<VIP>:9080/`, Host `reviews`.
    pub fn request(&self) -> HttpRequest {
        HttpRequest::get((self.vip, 9080).into(), "/").host("reviews")
    }

    /// Polls single requests until one comes back from a reviews pod.
    fn wait_traffic(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let o = self
                .client
                .http_get(&self.request(), Duration::from_secs(2))
                .expect("client request");
            if o.is_success() && o.body.starts_with("reviews-") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no traffic through Envoy: last outcome {o:?}\nEnvoy log:\n{}",
                self.envoy_log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `count` keep-alive requests from the client pod (bounded at 60 s).
    pub fn load(&self, request: HttpRequest, count: usize) -> LoadReport {
        let spec = LoadSpec {
            timeout: Duration::from_secs(60),
            ..LoadSpec::new(request, count)
        };
        self.client.http_load(&spec).expect("load loop")
    }

    /// The RDS version the client's Envoy has ACKed once nothing is in flight
    /// and it differs from `old`; panics after 20 s.
    pub fn wait_rds_settled(&mut self, old: Option<&str>) -> String {
        let node = self.node_id.clone();
        let what = format!("an ACKed RDS version other than {old:?} for {node}");
        self.pilot
            .wait_for(&what, Duration::from_secs(20), |p| {
                settled_rds_version(&p.syncz(), &node).filter(|v| Some(v.as_str()) != old)
            })
            .unwrap_or_else(|e: PilotError| panic!("{e}"))
    }

    /// Replaces the rule under test and waits until Envoy ACKed the new routes.
    pub fn set_rule(&mut self, rule: &str) -> String {
        let old = settled_rds_version(&self.pilot.syncz(), &self.node_id);
        write_config(self.config_dir.path(), "rules.yaml", rule);
        self.wait_rds_settled(old.as_deref())
    }

    /// The last lines of Envoy's log.
    pub fn envoy_log_tail(&self) -> String {
        let log = self.envoy.process().read_log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Requests the echo servers have answered so far, per version.
    pub fn echo_counts(&self) -> Vec<u64> {
        self.echoes.iter().map(EchoServer::count).collect()
    }
}
