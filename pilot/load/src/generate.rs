//! `pilot-load generate`: a mesh of Istio's load-test shape as files the
//! directory source reads.
//!
//! ```text
//!  DIR/namespaces.yaml              Namespace ns0..nsK-1
//!  DIR/services/<ns>/<svc>.yaml     Service (http 9080; every 10th also tcp 6379) + DestinationRule v1..vV
//!  DIR/routes/<ns>/<svc>.yaml       VirtualService: 90/10 v1/v2 (every third: end-user jason → v3)
//!  DIR/pods/<ns>/<svc>.yaml         V versions × R replicas of ready Pods
//!  DIR/.pilot-load.json             the shape (hidden: pilot skips it), read by `run`
//!  DIR/sidecars.yaml                with `--scoped`: a Sidecar per namespace importing
//!                                   its own namespace and ns0 (the shared one)
//! ```
//!
//! Service `i` is `svc<i>` in namespace `ns<i % K>`. Replicas R are the
//! fewest that give every emulated sidecar its own pod. Each kind of change the
//! scenarios make rewrites exactly one small file.

use std::{
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

use anyhow::Context;
use serde_json::json;

/// The HTTP port every service has.
pub const HTTP_PORT: u16 = 9080;
/// The TCP port every tenth service has.
pub const TCP_PORT: u16 = 6379;
/// The shape file `run` reads (hidden, so the directory source skips it).
pub const SHAPE_FILE: &str = ".pilot-load.json";

/// The mesh's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Services.
    pub services: usize,
    /// Versions per service (DestinationRule subsets v1..vV).
    pub versions: usize,
    /// Namespaces.
    pub namespaces: usize,
    /// Pods per service version.
    pub replicas: usize,
}

/// One pod of the mesh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// Pod name: `<svc>-v<version>-<replica>`.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Its service.
    pub service: String,
    /// Version number (1-based).
    pub version: usize,
    /// Pod IP.
    pub ip: IpAddr,
}

impl Shape {
    /// The shape for `services × versions` with enough replicas for `sidecars`
    /// distinct pods.
    pub fn new(services: usize, versions: usize, namespaces: usize, sidecars: usize) -> Shape {
        let per_replica = (services * versions).max(1);
        Shape {
            services: services.max(1),
            versions: versions.max(1),
            namespaces: namespaces.max(1),
            replicas: sidecars.div_ceil(per_replica).max(1),
        }
    }

    /// Total pods.
    pub fn pods(&self) -> usize {
        self.services * self.versions * self.replicas
    }

    /// Name of service `i`.
    pub fn service_name(i: usize) -> String {
        format!("svc{i}")
    }

    /// Namespace of service `i`.
    pub fn namespace_of(&self, i: usize) -> String {
        format!("ns{}", i % self.namespaces)
    }

    /// FQDN of service `i`.
    pub fn host(&self, i: usize) -> String {
        format!(
            "{}.{}.svc.cluster.local",
            Self::service_name(i),
            self.namespace_of(i)
        )
    }

    /// Pod `n` (0-based, ordered by service, version, replica).
    pub fn pod(&self, n: usize) -> PodInfo {
        let per_service = self.versions * self.replicas;
        let i = n / per_service;
        let version = (n % per_service) / self.replicas + 1;
        let replica = n % self.replicas;
        let service = Self::service_name(i);
        PodInfo {
            name: format!("{service}-v{version}-{replica}"),
            namespace: self.namespace_of(i),
            service,
            version,
            ip: pod_ip(n),
        }
    }

    /// The pod emulated sidecar `s` of `sidecars` uses: spread evenly over
    /// the pods, so sidecars cover every namespace.
    pub fn sidecar_pod(&self, s: usize, sidecars: usize) -> PodInfo {
        let stride = (self.pods() / sidecars.max(1)).max(1);
        self.pod((s * stride) % self.pods())
    }

    fn to_json(self) -> serde_json::Value {
        json!({
            "services": self.services,
            "versions": self.versions,
            "namespaces": self.namespaces,
            "replicas": self.replicas,
        })
    }

    /// Reads the shape `generate` wrote into `dir`.
    pub fn read(dir: &Path) -> anyhow::Result<Shape> {
        let path = dir.join(SHAPE_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{} (run `pilot-load generate` first)", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)?;
        let field = |k: &str| -> anyhow::Result<usize> {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .map(|n| n as usize)
                .with_context(|| format!("{}: no number {k:?}", path.display()))
        };
        Ok(Shape {
            services: field("services")?,
            versions: field("versions")?,
            namespaces: field("namespaces")?,
            replicas: field("replicas")?,
        })
    }
}

/// The IP of pod `n`: 10.0.0.0/8, never a .0 host.
pub fn pod_ip(n: usize) -> IpAddr {
    let c = (n % 250 + 1) as u8;
    let b = ((n / 250) % 250) as u8;
    let a = ((n / 62_500) % 250) as u8;
    IpAddr::V4(Ipv4Addr::new(10, a, b, c))
}

fn service_vip(i: usize) -> Ipv4Addr {
    let c = (i % 250 + 1) as u8;
    let b = ((i / 250) % 250) as u8;
    let a = ((i / 62_500) % 250) as u8;
    Ipv4Addr::new(172, 16u8.wrapping_add(a), b, c)
}

/// Service `i`'s Service and DestinationRule.
pub fn service_yaml(shape: &Shape, i: usize) -> String {
    let ns = shape.namespace_of(i);
    let name = Shape::service_name(i);
    let vip = service_vip(i);
    let tcp = if i.is_multiple_of(10) {
        format!(", {{name: tcp-redis, port: {TCP_PORT}, targetPort: {TCP_PORT}}}")
    } else {
        String::new()
    };
    let mut y = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  clusterIP: {vip}\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: {HTTP_PORT}, targetPort: {HTTP_PORT}}}{tcp}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: {name}\n  subsets:\n"
    );
    for v in 1..=shape.versions {
        let _ = writeln!(y, "  - {{name: v{v}, labels: {{version: v{v}}}}}");
    }
    y
}

/// Service `i`'s VirtualService: `weight_v1`/rest to v1/v2 (v1 only with
/// one version); every third service also routes `end-user: jason` to v3.
pub fn virtual_service_yaml(shape: &Shape, i: usize, weight_v1: u32) -> String {
    let ns = shape.namespace_of(i);
    let name = Shape::service_name(i);
    let mut y = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: [{name}]\n  http:\n"
    );
    if i.is_multiple_of(3) && shape.versions >= 3 {
        let _ = writeln!(
            y,
            "  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]\n    route: [{{destination: {{host: {name}, subset: v3}}}}]"
        );
    }
    if shape.versions >= 2 {
        let _ = writeln!(
            y,
            "  - route:\n    - {{destination: {{host: {name}, subset: v1}}, weight: {weight_v1}}}\n    - {{destination: {{host: {name}, subset: v2}}, weight: {}}}",
            100 - weight_v1
        );
    } else {
        let _ = writeln!(
            y,
            "  - route:\n    - {{destination: {{host: {name}, subset: v1}}}}"
        );
    }
    y
}

/// Service `i`'s pods; `ready(n)` says whether pod `n` is Ready.
pub fn pods_yaml(shape: &Shape, i: usize, ready: impl Fn(usize) -> bool) -> String {
    let per_service = shape.versions * shape.replicas;
    let mut y = String::new();
    for n in i * per_service..(i + 1) * per_service {
        let p = shape.pod(n);
        let status = if ready(n) { "True" } else { "False" };
        let _ = write!(
            y,
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {}, namespace: {}, labels: {{app: {}, version: v{}}}}}\nspec: {{serviceAccountName: {}}}\nstatus:\n  phase: Running\n  podIP: {}\n  conditions: [{{type: Ready, status: \"{status}\"}}]\n---\n",
            p.name, p.namespace, p.service, p.version, p.service, p.ip
        );
    }
    y
}

/// Where each kind of file of service `i` lives.
pub fn service_path(dir: &Path, shape: &Shape, i: usize) -> PathBuf {
    file(dir, "services", shape, i)
}

/// The VirtualService file of service `i`.
pub fn route_path(dir: &Path, shape: &Shape, i: usize) -> PathBuf {
    file(dir, "routes", shape, i)
}

/// The pods file of service `i`.
pub fn pods_path(dir: &Path, shape: &Shape, i: usize) -> PathBuf {
    file(dir, "pods", shape, i)
}

fn file(dir: &Path, kind: &str, shape: &Shape, i: usize) -> PathBuf {
    dir.join(kind)
        .join(shape.namespace_of(i))
        .join(format!("{}.yaml", Shape::service_name(i)))
}

/// Writes `text` to `path` as an editor does: a temp file, then a rename over
/// the original (one watch event on the final path, never a half file).
pub fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().context("no parent")?;
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().context("no file name")?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).with_context(|| tmp.display().to_string())?;
    std::fs::rename(&tmp, path).with_context(|| path.display().to_string())?;
    Ok(())
}

/// Writes the whole mesh into `dir` (created if missing; our files replaced).
pub fn generate(dir: &Path, shape: &Shape) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut ns = String::new();
    for k in 0..shape.namespaces {
        let _ = write!(
            ns,
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{k}, labels: {{istio-injection: enabled}}}}\n---\n"
        );
    }
    write_atomic(&dir.join("namespaces.yaml"), &ns)?;
    for i in 0..shape.services {
        write_atomic(&service_path(dir, shape, i), &service_yaml(shape, i))?;
        write_atomic(
            &route_path(dir, shape, i),
            &virtual_service_yaml(shape, i, 90),
        )?;
        write_atomic(&pods_path(dir, shape, i), &pods_yaml(shape, i, |_| true))?;
    }
    write_atomic(
        &dir.join(SHAPE_FILE),
        &serde_json::to_string_pretty(&shape.to_json())?,
    )?;
    Ok(())
}

/// The namespace every scoped namespace also imports.
pub const SHARED_NAMESPACE: &str = "ns0";

/// The file `--scoped` writes (and `run` looks for to know the mesh is scoped).
pub const SIDECARS_FILE: &str = "sidecars.yaml";

/// Writes `DIR/sidecars.yaml`: one default Sidecar per namespace, importing
/// its own namespace and [`SHARED_NAMESPACE`] (the issue's scoped shape).
pub fn write_sidecars(dir: &Path, shape: &Shape) -> anyhow::Result<()> {
    let mut out = String::new();
    for k in 0..shape.namespaces {
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: ns{k}}}\nspec:\n  egress:\n  - hosts: [./*, {SHARED_NAMESPACE}/*]\n---\n"
        );
    }
    write_atomic(&dir.join(SIDECARS_FILE), &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sidecar_gets_its_own_pod() {
        let shape = Shape::new(5, 1, 2, 12);
        assert_eq!(shape.replicas, 3);
        let pods: std::collections::BTreeSet<String> = (0..12)
            .map(|s| {
                let p = shape.sidecar_pod(s, 12);
                format!("{}.{}", p.name, p.namespace)
            })
            .collect();
        assert_eq!(pods.len(), 12);
        let ips: std::collections::BTreeSet<IpAddr> = (0..shape.pods()).map(pod_ip).collect();
        assert_eq!(ips.len(), shape.pods());
    }

    #[test]
    fn pods_file_holds_the_service_pods() {
        let shape = Shape::new(3, 2, 2, 1);
        let y = pods_yaml(&shape, 1, |n| n != 2);
        assert_eq!(y.matches("kind: Pod").count(), 2);
        assert!(y.contains("name: svc1-v1-0, namespace: ns1"));
        assert_eq!(y.matches("status: \"False\"").count(), 1);
    }
}
