//! The sidecar template: the values an operator may change without a rebuild.
//!
//! There is a built-in default ([`Values::default`]), so `--template` is
//! optional. An operator replaces it with a ConfigMap-shaped file: either the
//! whole ConfigMap (`kind: ConfigMap`, `data.values` holding YAML), or the
//! `values` key alone, which is what a ConfigMap mounted as a volume looks like
//! inside the injector's pod. Fields left out keep their default, so a
//! ConfigMap may override just one value.
//!
//! Each field is read on its own so that every error names the field it is
//! about (`values.proxyPort: ...`), and unknown fields are errors: a typo must
//! not silently fall back to a default.

use std::{fmt, net::IpAddr, str::FromStr};

use rudder_model::well_known::{
    DEFAULT_EXCLUDED_INBOUND_PORTS, PROXY_GID, PROXY_PORT, PROXY_UID, SYSTEM_NAMESPACE,
    XDS_TLS_PORT,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// Problems with a template file.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("template {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file (or `data.values`) is not YAML.
    #[error("template {origin}: not valid YAML: {message}")]
    Yaml {
        /// Where the YAML came from.
        origin: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// One field is missing, of the wrong type, or has a bad value.
    #[error("template {origin}: {field}: {message}")]
    Field {
        /// Where the YAML came from.
        origin: String,
        /// The field, e.g. `values.proxyPort`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Whether the sidecar runs as a Kubernetes native sidecar (an init container
/// with `restartPolicy: Always`, Kubernetes ≥ 1.29).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NativeSidecars {
    /// Native only when the API server is known to be ≥ 1.29.
    Auto,
    /// Always native.
    On,
    /// Always classic (a regular container placed first).
    Off,
}

impl NativeSidecars {
    /// Resolve against the API server version, if known. Unknown means classic:
    /// a classic sidecar works on every cluster, a native one only on new ones.
    pub fn resolve(self, server_version: Option<(u32, u32)>) -> bool {
        match self {
            NativeSidecars::On => true,
            NativeSidecars::Off => false,
            NativeSidecars::Auto => matches!(server_version, Some(v) if v >= (1, 29)),
        }
    }

    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Bool(true) => Ok(NativeSidecars::On),
            Value::Bool(false) => Ok(NativeSidecars::Off),
            Value::String(s) => match s.as_str() {
                "auto" => Ok(NativeSidecars::Auto),
                "true" => Ok(NativeSidecars::On),
                "false" => Ok(NativeSidecars::Off),
                other => Err(format!("{other:?} is not one of auto, true, false")),
            },
            other => Err(format!("{other} is not one of auto, true, false")),
        }
    }
}

impl fmt::Display for NativeSidecars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NativeSidecars::Auto => "auto",
            NativeSidecars::On => "true",
            NativeSidecars::Off => "false",
        })
    }
}

/// Which inbound ports proxy-init captures (`--inbound-ports`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboundPorts {
    /// Every port (`*`), as modern Istio does.
    All,
    /// The ports the pod's containers declare, as Istio 0.x/1.0 did.
    ContainerPorts,
    /// Exactly these ports (empty: no inbound capture).
    List(Vec<u16>),
}

impl FromStr for InboundPorts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "*" => Ok(InboundPorts::All),
            "containerPorts" => Ok(InboundPorts::ContainerPorts),
            list => parse_port_list(list).map(InboundPorts::List),
        }
    }
}

/// How the agent hands the workload certificate to Envoy (the model's:
/// the injector writes the agent's `--cert-mode` from it).
pub use rudder_model::node::CertMode;

/// The template's values. See `manifests/injector/` for the ConfigMap form.
#[derive(Clone, Debug, PartialEq)]
pub struct Values {
    /// proxy-init image, without tag (`rudder/proxy-init`).
    pub proxy_init_image: String,
    /// agent image, without tag (`rudder/agent`).
    pub agent_image: String,
    /// Tag for both images.
    pub tag: String,
    /// `imagePullPolicy` of both containers.
    pub image_pull_policy: String,
    /// pilot's xDS address, `host:port`.
    pub discovery_address: String,
    /// pilot's certificate service (and TLS xDS), `host:port` (`--ca-address`).
    pub ca_address: String,
    /// How the agent hands certificates to Envoy (`--cert-mode`).
    pub cert_mode: CertMode,
    /// Where proxy-init redirects captured traffic.
    pub proxy_port: u16,
    /// Where inbound traffic goes; `None` = the proxy port.
    pub inbound_capture_port: Option<u16>,
    /// UID Envoy and the agent run as.
    pub proxy_uid: u32,
    /// GID Envoy and the agent run as.
    pub proxy_gid: u32,
    /// Inbound ports captured unless a pod annotation says otherwise.
    pub include_inbound_ports: InboundPorts,
    /// Inbound ports never captured (the agent's and Envoy's own are always added).
    pub exclude_inbound_ports: Vec<u16>,
    /// Outbound ports never captured.
    pub exclude_outbound_ports: Vec<u16>,
    /// Outbound CIDRs captured (`*` = all).
    pub include_outbound_cidrs: Vec<String>,
    /// Outbound CIDRs never captured.
    pub exclude_outbound_cidrs: Vec<String>,
    /// `resources` of the sidecar (a Kubernetes ResourceRequirements).
    pub resources: Value,
    /// `resources` of proxy-init.
    pub proxy_init_resources: Value,
    /// Native or classic sidecar.
    pub native_sidecars: NativeSidecars,
    /// Point the app's HTTP and TCP probes at the agent (Istio's
    /// `rewriteAppHTTPProbers`); a pod's `sidecar.istio.io/rewriteAppHTTPProbers`
    /// annotation overrides it.
    pub rewrite_app_probers: bool,
}

impl Default for Values {
    fn default() -> Self {
        Values {
            proxy_init_image: "rudder/proxy-init".into(),
            agent_image: "rudder/agent".into(),
            tag: env!("CARGO_PKG_VERSION").into(),
            image_pull_policy: "IfNotPresent".into(),
            discovery_address: format!("rudder-pilot.{SYSTEM_NAMESPACE}.svc:{XDS_TLS_PORT}"),
            ca_address: format!("rudder-pilot.{SYSTEM_NAMESPACE}.svc:{XDS_TLS_PORT}"),
            cert_mode: CertMode::File,
            proxy_port: PROXY_PORT,
            inbound_capture_port: None,
            proxy_uid: PROXY_UID,
            proxy_gid: PROXY_GID,
            include_inbound_ports: InboundPorts::All,
            exclude_inbound_ports: DEFAULT_EXCLUDED_INBOUND_PORTS.to_vec(),
            exclude_outbound_ports: Vec::new(),
            include_outbound_cidrs: vec!["*".into()],
            exclude_outbound_cidrs: Vec::new(),
            resources: json!({
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "2", "memory": "1Gi"},
            }),
            proxy_init_resources: json!({
                "requests": {"cpu": "10m", "memory": "10Mi"},
                "limits": {"cpu": "100m", "memory": "50Mi"},
            }),
            native_sidecars: NativeSidecars::Auto,
            rewrite_app_probers: true,
        }
    }
}

const FIELDS: &[&str] = &[
    "images",
    "tag",
    "imagePullPolicy",
    "discoveryAddress",
    "caAddress",
    "certMode",
    "proxyPort",
    "inboundCapturePort",
    "proxyUid",
    "proxyGid",
    "includeInboundPorts",
    "excludeInboundPorts",
    "excludeOutboundPorts",
    "includeOutboundCidrs",
    "excludeOutboundCidrs",
    "resources",
    "proxyInitResources",
    "nativeSidecars",
    "rewriteAppProbers",
];

impl Values {
    /// Read a template file (a ConfigMap, or its `values` key alone).
    pub fn from_file(path: &std::path::Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parse a template; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, TemplateError> {
        let yaml_err = |e: serde_saphyr::Error| TemplateError::Yaml {
            origin: origin.into(),
            message: e.to_string(),
        };
        let field_err = |field: &str, message: String| TemplateError::Field {
            origin: origin.into(),
            field: field.into(),
            message,
        };
        let doc: Value = serde_saphyr::from_str(text).map_err(yaml_err)?;
        let is_configmap = doc.get("kind").is_some() || doc.get("data").is_some();
        if !is_configmap {
            return Self::from_values(&doc, "values").map_err(|(f, m)| field_err(&f, m));
        }
        if doc.get("kind").and_then(Value::as_str) != Some("ConfigMap") {
            return Err(field_err(
                "kind",
                "a template file must be a ConfigMap".into(),
            ));
        }
        let values = doc
            .get("data")
            .and_then(|d| d.get("values"))
            .ok_or_else(|| field_err("data.values", "missing".into()))?;
        let values = values
            .as_str()
            .ok_or_else(|| field_err("data.values", "must be a string holding YAML".into()))?;
        let parsed: Value = serde_saphyr::from_str(values).map_err(|e| TemplateError::Yaml {
            origin: format!("{origin} data.values"),
            message: e.to_string(),
        })?;
        Self::from_values(&parsed, "data.values").map_err(|(f, m)| field_err(&f, m))
    }

    /// Read the values mapping; errors are (field path, message).
    fn from_values(doc: &Value, prefix: &str) -> Result<Self, (String, String)> {
        let mut v = Values::default();
        let map = match doc {
            Value::Null => return Ok(v),
            Value::Object(m) => m,
            _ => return Err((prefix.into(), "must be a mapping".into())),
        };
        let path = |k: &str| format!("{prefix}.{k}");
        if let Some(k) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err((
                path(k),
                format!("unknown field; known: {}", FIELDS.join(", ")),
            ));
        }
        v.set_images(map, prefix)?;
        set(map, "tag", prefix, &mut v.tag)?;
        set(map, "imagePullPolicy", prefix, &mut v.image_pull_policy)?;
        set(map, "discoveryAddress", prefix, &mut v.discovery_address)?;
        set(map, "caAddress", prefix, &mut v.ca_address)?;
        if let Some(m) = map.get("certMode") {
            v.cert_mode = m
                .as_str()
                .ok_or_else(|| "must be a string".to_string())
                .and_then(str::parse)
                .map_err(|m| (path("certMode"), m))?;
        }
        v.set_capture(map, prefix)?;
        set(map, "resources", prefix, &mut v.resources)?;
        set(
            map,
            "proxyInitResources",
            prefix,
            &mut v.proxy_init_resources,
        )?;
        if let Some(n) = map.get("nativeSidecars") {
            v.native_sidecars =
                NativeSidecars::from_value(n).map_err(|m| (path("nativeSidecars"), m))?;
        }
        set(map, "rewriteAppProbers", prefix, &mut v.rewrite_app_probers)?;
        v.validate(prefix)?;
        Ok(v)
    }

    /// `images`: `proxyInit` and `agent`.
    fn set_images(
        &mut self,
        map: &Map<String, Value>,
        prefix: &str,
    ) -> Result<(), (String, String)> {
        let path = |k: &str| format!("{prefix}.{k}");
        if let Some(images) = map.get("images") {
            let images = images
                .as_object()
                .ok_or_else(|| (path("images"), "must be a mapping".into()))?;
            if let Some(k) = images.keys().find(|k| *k != "proxyInit" && *k != "agent") {
                return Err((
                    path(&format!("images.{k}")),
                    "unknown field; known: proxyInit, agent".into(),
                ));
            }
            set(
                images,
                "proxyInit",
                &path("images"),
                &mut self.proxy_init_image,
            )?;
            set(images, "agent", &path("images"), &mut self.agent_image)?;
        }
        Ok(())
    }

    /// What proxy-init captures: ports, UID/GID, port and CIDR lists.
    fn set_capture(
        &mut self,
        map: &Map<String, Value>,
        prefix: &str,
    ) -> Result<(), (String, String)> {
        let path = |k: &str| format!("{prefix}.{k}");
        set(map, "proxyPort", prefix, &mut self.proxy_port)?;
        set(
            map,
            "inboundCapturePort",
            prefix,
            &mut self.inbound_capture_port,
        )?;
        set(map, "proxyUid", prefix, &mut self.proxy_uid)?;
        set(map, "proxyGid", prefix, &mut self.proxy_gid)?;
        if let Some(p) = map.get("includeInboundPorts") {
            let s = scalar_string(p).ok_or_else(|| {
                (
                    path("includeInboundPorts"),
                    "must be \"*\", \"containerPorts\" or a comma-separated port list".into(),
                )
            })?;
            self.include_inbound_ports = s.parse().map_err(|m| (path("includeInboundPorts"), m))?;
        }
        set(
            map,
            "excludeInboundPorts",
            prefix,
            &mut self.exclude_inbound_ports,
        )?;
        set(
            map,
            "excludeOutboundPorts",
            prefix,
            &mut self.exclude_outbound_ports,
        )?;
        set(
            map,
            "includeOutboundCidrs",
            prefix,
            &mut self.include_outbound_cidrs,
        )?;
        set(
            map,
            "excludeOutboundCidrs",
            prefix,
            &mut self.exclude_outbound_cidrs,
        )?;
        Ok(())
    }

    fn validate(&self, prefix: &str) -> Result<(), (String, String)> {
        let path = |k: &str| format!("{prefix}.{k}");
        for (field, value) in [
            ("images.proxyInit", &self.proxy_init_image),
            ("images.agent", &self.agent_image),
            ("tag", &self.tag),
        ] {
            if value.trim().is_empty() || value.contains(char::is_whitespace) {
                return Err((path(field), format!("{value:?} is not an image name")));
            }
        }
        if !["Always", "IfNotPresent", "Never"].contains(&self.image_pull_policy.as_str()) {
            return Err((
                path("imagePullPolicy"),
                format!(
                    "{:?} is not one of Always, IfNotPresent, Never",
                    self.image_pull_policy
                ),
            ));
        }
        for (field, addr) in [
            ("discoveryAddress", &self.discovery_address),
            ("caAddress", &self.ca_address),
        ] {
            match addr.rsplit_once(':') {
                Some((host, port))
                    if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0) => {}
                _ => return Err((path(field), format!("{addr:?} is not host:port"))),
            }
        }
        if self.proxy_port == 0 {
            return Err((path("proxyPort"), "must not be 0".into()));
        }
        if self.inbound_capture_port == Some(0) {
            return Err((path("inboundCapturePort"), "must not be 0".into()));
        }
        if self.proxy_uid == 0 {
            return Err((
                path("proxyUid"),
                "must not be 0: root's traffic would bypass capture".into(),
            ));
        }
        for (field, ports) in [
            ("excludeInboundPorts", &self.exclude_inbound_ports),
            ("excludeOutboundPorts", &self.exclude_outbound_ports),
        ] {
            if ports.contains(&0) {
                return Err((path(field), "port 0 is not a port".into()));
            }
        }
        check_cidrs(&self.include_outbound_cidrs, true)
            .map_err(|m| (path("includeOutboundCidrs"), m))?;
        check_cidrs(&self.exclude_outbound_cidrs, false)
            .map_err(|m| (path("excludeOutboundCidrs"), m))?;
        check_resources(&self.resources).map_err(|(f, m)| (path(&format!("resources{f}")), m))?;
        check_resources(&self.proxy_init_resources)
            .map_err(|(f, m)| (path(&format!("proxyInitResources{f}")), m))?;
        Ok(())
    }

    /// The inbound capture port in effect (defaults to the proxy port).
    pub fn effective_inbound_capture_port(&self) -> u16 {
        self.inbound_capture_port.unwrap_or(self.proxy_port)
    }

    /// `image:tag`, unless the image already names a tag or digest.
    pub fn image_ref(&self, image: &str) -> String {
        let last = image.rsplit('/').next().unwrap_or(image);
        if last.contains(':') || last.contains('@') {
            image.to_string()
        } else {
            format!("{image}:{}", self.tag)
        }
    }
}

/// Deserialize `map[key]` into `out` when present; errors name `prefix.key`.
fn set<T: DeserializeOwned>(
    map: &Map<String, Value>,
    key: &str,
    prefix: &str,
    out: &mut T,
) -> Result<(), (String, String)> {
    if let Some(v) = map.get(key) {
        *out = serde_json::from_value(v.clone())
            .map_err(|e| (format!("{prefix}.{key}"), e.to_string()))?;
    }
    Ok(())
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parse `80,443` (spaces allowed, empty = no ports).
pub(crate) fn parse_port_list(s: &str) -> Result<Vec<u16>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<u16>() {
            Ok(n) if n != 0 => Ok(n),
            _ => Err(format!("{p:?} is not a port (1-65535)")),
        })
        .collect()
}

/// Check one `addr/prefix` CIDR.
pub(crate) fn check_cidr(c: &str) -> Result<(), String> {
    let bad = || format!("{c:?} is not a CIDR like 10.0.0.0/8");
    let (addr, len) = c.split_once('/').ok_or_else(bad)?;
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(format!("{c:?}: prefix length {len} is longer than {max}"));
    }
    Ok(())
}

/// Check a CIDR list; `*` (alone) is allowed where `star_ok`.
pub(crate) fn check_cidrs(cidrs: &[String], star_ok: bool) -> Result<(), String> {
    if star_ok && cidrs.len() == 1 && cidrs[0] == "*" {
        return Ok(());
    }
    cidrs.iter().try_for_each(|c| {
        if c == "*" {
            Err("\"*\" must be the only entry".into())
        } else {
            check_cidr(c)
        }
    })
}

/// A ResourceRequirements: only `requests`/`limits`, each a map of quantities.
fn check_resources(r: &Value) -> Result<(), (String, String)> {
    let map = r.as_object().ok_or_else(|| {
        (
            String::new(),
            "must be a mapping with requests and limits".into(),
        )
    })?;
    for (k, v) in map {
        if k != "requests" && k != "limits" {
            return Err((
                format!(".{k}"),
                "unknown field; known: requests, limits".into(),
            ));
        }
        let q = v
            .as_object()
            .ok_or_else(|| (format!(".{k}"), "must be a mapping of quantities".into()))?;
        for (name, qty) in q {
            if !(qty.is_string() || qty.is_number()) {
                return Err((format!(".{k}.{name}"), format!("{qty} is not a quantity")));
            }
        }
    }
    Ok(())
}
