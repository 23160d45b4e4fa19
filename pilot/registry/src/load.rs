//! Loading Kubernetes YAML (or JSON) files into typed objects.
//!
//! A file holds any number of documents (`---`), each an object or a
//! `kind: List`. Every object remembers its origin (file, document, line), and
//! every problem becomes a [`Diagnostic`] naming file and line, object and
//! field: a YAML syntax error makes the whole file unparseable (the caller keeps
//! the file's last good objects); a field of the wrong type rejects only that
//! object.

use std::path::{Path, PathBuf};

use rudder_config::{
    contour, emissary, gateway_api, groups, kube,
    mesh::{MESH_CONFIGMAP_KEY, MESH_CONFIGMAP_NAME},
    meta::{ObjectMeta, Resource},
    MeshConfigSpec,
};
use rudder_model::Diagnostic;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{
    object::{Body, Kind, Object, ObjectKey, Origin, Rejected},
    store::Batch,
    unsupported::{unsupported, unsupported_object},
};

/// Errors reading files (parse problems are diagnostics, not errors).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Everything one file (or stdin) yielded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadedFile {
    /// Objects of served kinds that parsed.
    pub objects: Vec<Object>,
    /// Objects of served kinds that did not parse into their type.
    pub rejected: Vec<Rejected>,
    /// Problems not tied to an object identity (a YAML syntax error, a document
    /// without `kind` or `metadata.name`).
    pub problems: Vec<Diagnostic>,
    /// Objects of routing and policy APIs Rudder does not serve (see
    /// [`unsupported`](crate::unsupported)), one [`Severity::Unsupported`](rudder_model::Severity)
    /// diagnostic each: `unsupported: FILE:LINE: HTTPRoute default/web: ...`.
    pub unsupported: Vec<Diagnostic>,
    /// The file had a YAML syntax error: nothing in it can be trusted, so its
    /// scope's last good objects must stay.
    pub unparseable: bool,
}

impl LoadedFile {
    /// What a source hands the store for this file's scope: the objects, the
    /// rejections, and the problems with the unsupported objects among them,
    /// so the snapshot's diagnostics (pilot's log, `/debug/configz`,
    /// `pilot validate`) name them.
    pub fn into_batch(self) -> Batch {
        let mut problems = self.problems;
        problems.extend(self.unsupported);
        Batch {
            objects: self.objects,
            rejected: self.rejected,
            problems,
        }
    }
}

/// Whether a path is a config file: `.yaml`, `.yml` or `.json`, not hidden
/// (editor swap and temp files are usually hidden).
pub fn is_config_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_none_or(|n| n.starts_with('.'));
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    !hidden && matches!(ext, "yaml" | "yml" | "json")
}

/// Config files under `dir`, recursively, sorted; hidden files and
/// directories are skipped.
pub fn collect_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| LoadError::Read {
            path: d.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| LoadError::Read {
                path: d.clone(),
                source,
            })?;
            let path = entry.path();
            let hidden = entry
                .file_name()
                .to_str()
                .is_none_or(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if is_config_file(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads and parses one file; its scope is its path.
pub fn load_file(path: &Path) -> Result<LoadedFile, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.into(),
        source,
    })?;
    let name = path.display().to_string();
    Ok(load_str(&text, &name, &name))
}

/// Parses the text of one file named `file`, owned by source scope `scope`.
pub fn load_str(text: &str, file: &str, scope: &str) -> LoadedFile {
    let mut out = LoadedFile::default();
    for (index, (start_line, doc)) in split_documents(text).into_iter().enumerate() {
        let value: Value = match serde_saphyr::from_str(&doc) {
            Ok(v) => v,
            Err(e) => {
                let (line, message) = saphyr_message(&e, start_line);
                let at = line.map_or(file.to_string(), |l| format!("{file}:{l}"));
                out.problems
                    .push(Diagnostic::error(format!("document {index}"), "", message).in_file(at));
                out.unparseable = true;
                continue;
            }
        };
        if value.is_null() {
            continue;
        }
        let origin = Origin {
            scope: scope.into(),
            file: Some(file.into()),
            document: index,
            line: Some(first_content_line(&doc, start_line)),
        };
        let mut cx = DocContext {
            out: &mut out,
            origin,
            text: Some(&doc),
            start_line,
        };
        cx.object(&value, "");
    }
    out
}

/// Splits on `---` lines, keeping each document's first line number (1-based).
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = vec![(1, String::new())];
    for (i, line) in text.lines().enumerate() {
        let is_sep = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_sep {
            docs.push((i + 1, String::new()));
            let rest = format!("   {}", &line[3..]);
            if !rest.trim().is_empty() {
                push_line(&mut docs, &rest);
            } else {
                push_line(&mut docs, "");
            }
        } else {
            push_line(&mut docs, line);
        }
    }
    docs
}

fn push_line(docs: &mut [(usize, String)], line: &str) {
    if let Some((_, d)) = docs.last_mut() {
        d.push_str(line);
        d.push('\n');
    }
}

fn first_content_line(doc: &str, start_line: usize) -> usize {
    doc.lines()
        .position(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
        .map_or(start_line, |i| start_line + i)
}

/// The error text without the snippet and `line N column M:` prefix, and the
/// absolute line.
fn saphyr_message(e: &serde_saphyr::Error, start_line: usize) -> (Option<usize>, String) {
    let line = e.location().map(|l| start_line + l.line() as usize - 1);
    let col = e.location().map(|l| l.column());
    let text = e.without_snippet().to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ");
    let msg = match first.split_once(": ") {
        Some((pre, rest)) if pre.starts_with("line ") => rest.to_string(),
        _ => first.to_string(),
    };
    let msg = match col {
        Some(c) if !msg.contains("column") => format!("{msg} (column {c})"),
        _ => msg,
    };
    (line, msg)
}

struct DocContext<'a> {
    out: &'a mut LoadedFile,
    origin: Origin,
    /// The document text (None for List items, parsed from the value instead).
    text: Option<&'a str>,
    start_line: usize,
}

impl DocContext<'_> {
    fn file(&self) -> String {
        self.origin.location().unwrap_or_default()
    }

    fn object(&mut self, value: &Value, prefix: &str) {
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let kind_name = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let doc = format!("document {}", self.origin.document);
        if kind_name.is_empty() || api_version.is_empty() {
            let field = if kind_name.is_empty() {
                "kind"
            } else {
                "apiVersion"
            };
            self.out.problems.push(
                Diagnostic::error(doc, format!("{prefix}{field}"), "required").in_file(self.file()),
            );
            return;
        }
        if kind_name == "List" {
            self.list_items(value, prefix);
            return;
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let meta: ObjectMeta = value
            .get("metadata")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default();
        if let Some((field, message)) = unsupported(group, version, kind_name) {
            let object = unsupported_object(kind_name, &meta);
            self.out.unsupported.push(
                Diagnostic::unsupported(
                    object,
                    format!("{prefix}{field}").trim_end_matches('.'),
                    message,
                )
                .in_file(self.file()),
            );
            return;
        }
        let Some(kind) = classify(group, kind_name, &meta) else {
            // Plain Kubernetes kinds Rudder has no use for (Deployments,
            // other ConfigMaps, ...) stay silent.
            return;
        };
        let Some(name) = meta.name.clone().filter(|n| !n.is_empty()) else {
            self.out.problems.push(
                Diagnostic::error(
                    format!("{kind_name} ({doc})"),
                    format!("{prefix}metadata.name"),
                    "required",
                )
                .in_file(self.file()),
            );
            return;
        };
        let key = ObjectKey::from_meta(
            kind,
            &ObjectMeta {
                name: Some(name),
                ..meta.clone()
            },
        );
        // Istio kinds in versions Rudder does not read were named unsupported
        // above; an EndpointSlice or Ingress in another version is an error
        // (networking.k8s.io/v1beta1 Ingress left Kubernetes in 1.22).
        if matches!(
            kind,
            Kind::EndpointSlice | Kind::Ingress | Kind::IngressClass
        ) && version != "v1"
        {
            self.reject(
                key,
                format!("{prefix}apiVersion"),
                format!("{api_version} is not a version Rudder reads for {kind_name}"),
            );
            return;
        }
        self.typed_object(kind, key, value, prefix);
    }

    /// The items of a `List`, each an object of its own (fields prefixed
    /// with `items[i].`).
    fn list_items(&mut self, value: &Value, prefix: &str) {
        let items = value
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let text = self.text.take();
        for (i, item) in items.iter().enumerate() {
            self.object(item, &format!("{prefix}items[{i}]."));
        }
        self.text = text;
    }

    /// Reads the object as its kind's type: an object, else a rejection at
    /// the field (and line, when known) that failed.
    fn typed_object(&mut self, kind: Kind, key: ObjectKey, value: &Value, prefix: &str) {
        match self.typed_body(kind, value) {
            Ok((meta, body)) => self
                .out
                .objects
                .push(Object::new(meta, body, self.origin.clone())),
            Err((path, message, line)) => {
                let mut rejected = Rejected {
                    key,
                    origin: self.origin.clone(),
                    diagnostics: vec![],
                };
                let at = match line {
                    Some(l) => format!("{}:{l}", self.origin.file.clone().unwrap_or_default()),
                    None => self.file(),
                };
                rejected.diagnostics.push(
                    Diagnostic::error(rejected.key.to_string(), format!("{prefix}{path}"), message)
                        .in_file(at),
                );
                self.out.rejected.push(rejected);
            }
        }
    }

    fn reject(&mut self, key: ObjectKey, field: String, message: String) {
        let d = Diagnostic::error(key.to_string(), field, message).in_file(self.file());
        self.out.rejected.push(Rejected {
            key,
            origin: self.origin.clone(),
            diagnostics: vec![d],
        });
    }

    fn typed_body(
        &self,
        kind: Kind,
        value: &Value,
    ) -> Result<(ObjectMeta, Body), (String, String, Option<usize>)> {
        Ok(match kind {
            Kind::Namespace => {
                let n: kube::Namespace = self.parse(value)?;
                (n.metadata.clone(), Body::Namespace(n))
            }
            Kind::Service => {
                let s: kube::Service = self.parse(value)?;
                (s.metadata.clone(), Body::Service(s))
            }
            Kind::Pod => {
                let p: kube::Pod = self.parse(value)?;
                (p.metadata.clone(), Body::Pod(p))
            }
            Kind::Endpoints => {
                let e: kube::Endpoints = self.parse(value)?;
                (e.metadata.clone(), Body::Endpoints(e))
            }
            Kind::EndpointSlice => {
                let e: kube::EndpointSlice = self.parse(value)?;
                (e.metadata.clone(), Body::EndpointSlice(e))
            }
            Kind::MeshConfig => {
                let cm: kube::ConfigMap = self.parse(value)?;
                let text = cm.data.get(MESH_CONFIGMAP_KEY).cloned().unwrap_or_default();
                let mesh: MeshConfigSpec = if text.trim().is_empty() {
                    MeshConfigSpec::default()
                } else {
                    parse_text(&text, 1).map_err(|(p, m, _)| (format!("data.mesh.{p}"), m, None))?
                };
                (cm.metadata, Body::MeshConfig(mesh))
            }
            Kind::VirtualService => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::VirtualService(r.spec))
            }
            Kind::DestinationRule => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::DestinationRule(r.spec))
            }
            Kind::Sidecar => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::Sidecar(r.spec))
            }
            Kind::ServiceEntry => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::ServiceEntry(r.spec))
            }
            Kind::WorkloadEntry => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::WorkloadEntry(r.spec))
            }
            Kind::RouteRule => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::RouteRule(Box::new(r.spec)))
            }
            Kind::DestinationPolicy => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::DestinationPolicy(r.spec))
            }
            Kind::PeerAuthentication => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::PeerAuthentication(r.spec))
            }
            Kind::AuthorizationPolicy => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::AuthorizationPolicy(r.spec))
            }
            Kind::RequestAuthentication => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::RequestAuthentication(r.spec))
            }
            Kind::Telemetry => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::Telemetry(r.spec))
            }
            Kind::Gateway => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::Gateway(r.spec))
            }
            Kind::Secret => {
                let s: kube::Secret = self.parse(value)?;
                (s.metadata.clone(), Body::Secret(s))
            }
            Kind::Ingress => {
                let i: kube::Ingress = self.parse(value)?;
                (i.metadata.clone(), Body::Ingress(i))
            }
            Kind::IngressClass => {
                let c: kube::IngressClass = self.parse(value)?;
                (c.metadata.clone(), Body::IngressClass(c))
            }
            Kind::GatewayClass => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::GatewayClass(r.spec))
            }
            Kind::KubeGateway => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::KubeGateway(r.spec))
            }
            Kind::HttpRoute => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::HttpRoute(r.spec))
            }
            Kind::GrpcRoute => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::GrpcRoute(r.spec))
            }
            Kind::TcpRoute => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::TcpRoute(r.spec))
            }
            Kind::TlsRoute => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::TlsRoute(r.spec))
            }
            Kind::ReferenceGrant => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::ReferenceGrant(r.spec))
            }
            Kind::HttpProxy => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::HttpProxy(r.spec))
            }
            Kind::Mapping => {
                let r: Resource<_> = self.parse(value)?;
                (r.metadata, Body::Mapping(r.spec))
            }
        })
    }

    /// Parses from the document text when there is one (line numbers), else
    /// from the value (List items).
    fn parse<T: DeserializeOwned>(
        &self,
        value: &Value,
    ) -> Result<T, (String, String, Option<usize>)> {
        match self.text {
            Some(text) => parse_text(text, self.start_line),
            None => serde_path_to_error::deserialize(value.clone())
                .map_err(|e| (e.path().to_string(), e.inner().to_string(), None)),
        }
    }
}

/// Typed parse of YAML text, tracking the field path of the first error.
fn parse_text<T: DeserializeOwned>(
    text: &str,
    start_line: usize,
) -> Result<T, (String, String, Option<usize>)> {
    let mut path = None;
    serde_saphyr::with_deserializer_from_str(text, |de| {
        let mut track = serde_path_to_error::Track::new();
        let res = T::deserialize(serde_path_to_error::Deserializer::new(de, &mut track));
        if res.is_err() {
            path = Some(track.path().to_string());
        }
        res
    })
    .map_err(|e| {
        let (line, msg) = saphyr_message(&e, start_line);
        (path.unwrap_or_default(), msg, line)
    })
}

fn classify(group: &str, kind: &str, meta: &ObjectMeta) -> Option<Kind> {
    Some(match (group, kind) {
        ("", "Namespace") => Kind::Namespace,
        ("", "Service") => Kind::Service,
        ("", "Pod") => Kind::Pod,
        ("", "Endpoints") => Kind::Endpoints,
        ("", "Secret") => Kind::Secret,
        ("", "ConfigMap") if meta.name.as_deref() == Some(MESH_CONFIGMAP_NAME) => Kind::MeshConfig,
        ("discovery.k8s.io", "EndpointSlice") => Kind::EndpointSlice,
        ("networking.k8s.io", "Ingress") => Kind::Ingress,
        ("networking.k8s.io", "IngressClass") => Kind::IngressClass,
        (groups::NETWORKING, "VirtualService") => Kind::VirtualService,
        (groups::NETWORKING, "DestinationRule") => Kind::DestinationRule,
        (groups::NETWORKING, "Sidecar") => Kind::Sidecar,
        (groups::NETWORKING, "ServiceEntry") => Kind::ServiceEntry,
        (groups::NETWORKING, "WorkloadEntry") => Kind::WorkloadEntry,
        (groups::NETWORKING, "Gateway") => Kind::Gateway,
        (groups::CONFIG, "RouteRule") => Kind::RouteRule,
        (groups::CONFIG, "DestinationPolicy") => Kind::DestinationPolicy,
        (groups::SECURITY, "PeerAuthentication") => Kind::PeerAuthentication,
        (groups::SECURITY, "AuthorizationPolicy") => Kind::AuthorizationPolicy,
        (groups::SECURITY, "RequestAuthentication") => Kind::RequestAuthentication,
        (groups::TELEMETRY, "Telemetry") => Kind::Telemetry,
        (gateway_api::GROUP, "GatewayClass") => Kind::GatewayClass,
        (gateway_api::GROUP, "Gateway") => Kind::KubeGateway,
        (gateway_api::GROUP, "HTTPRoute") => Kind::HttpRoute,
        (gateway_api::GROUP, "GRPCRoute") => Kind::GrpcRoute,
        (gateway_api::GROUP, "TCPRoute") => Kind::TcpRoute,
        (gateway_api::GROUP, "TLSRoute") => Kind::TlsRoute,
        (gateway_api::GROUP, "ReferenceGrant") => Kind::ReferenceGrant,
        (contour::GROUP, "HTTPProxy") => Kind::HttpProxy,
        (emissary::GROUP, "Mapping") => Kind::Mapping,
        _ => return None,
    })
}
