//! Telemetry → [`TelemetryPolicy`], and the mesh config's telemetry
//! defaults → [`Telemetries`].
//!
//! Served: `selector`, `targetRef(s)` to a `Service` (the workloads it
//! selects) or a Gateway API `Gateway` (its gateway pods);
//! `accessLogging[].{match.mode, providers, disabled}` with `envoy` (built
//! in: stdout, Istio's format) and `envoyFileAccessLog` providers;
//! `tracing[].{match.mode, providers, randomSamplingPercentage,
//! disableSpanReporting}` with `zipkin` and `opentelemetry` providers;
//! `metrics[].providers` naming a `prometheus` provider (Envoy's stats,
//! scraped). Everything else is refused with its path and the reason, so a
//! Telemetry never half-applies.

use std::collections::BTreeMap;

use rudder_config::{
    mesh::{AccessLogFormat, MeshExtensionProvider, TracerProvider},
    telemetry as t, MeshConfigSpec,
};
use rudder_model::{
    telemetry::{
        istio_json_labels, AccessLogRule, AccessLogSink, LogFormat, Telemetries, TelemetryPolicy,
        Tracer, TracerKind, TracingRule, TrafficMode, ISTIO_TEXT_FORMAT,
    },
    Hostname, Labels, RuleRef, Service,
};

use crate::{check::Checker, object::ObjectKey};

/// The built-in access log provider Istio always has.
const ENVOY_PROVIDER: &str = "envoy";
/// The built-in metrics provider Istio always has.
const PROMETHEUS_PROVIDER: &str = "prometheus";
/// Pods of a Gateway API Gateway carry this label (its name).
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// What compiling a Telemetry may know: the mesh config (providers) and the
/// Services (`targetRefs`); `None` when validating the object alone.
pub struct TelemetryCtx<'a> {
    /// Mesh config.
    pub mesh: Option<&'a MeshConfigSpec>,
    /// Services by FQDN.
    pub services: Option<&'a BTreeMap<Hostname, Service>>,
    /// DNS suffix.
    pub domain: &'a str,
}

fn not_served(what: &str) -> String {
    format!("Rudder does not serve {what}; remove the field (the Telemetry is not applied while it is set)")
}

/// Compiles a Telemetry; `None` when it has errors.
pub fn compile(
    spec: &t::TelemetrySpec,
    key: &ObjectKey,
    cx: &TelemetryCtx<'_>,
    ck: &mut Checker,
) -> Option<TelemetryPolicy> {
    let before = ck.error_count();
    let workloads = workloads(spec, key, cx, ck);
    let access_logging = spec
        .access_logging
        .iter()
        .enumerate()
        .filter_map(|(i, a)| access_logging(a, &format!("spec.accessLogging[{i}]"), cx, ck))
        .collect();
    let tracing = spec
        .tracing
        .iter()
        .enumerate()
        .filter_map(|(i, tr)| tracing(tr, &format!("spec.tracing[{i}]"), cx, ck))
        .collect();
    for (i, m) in spec.metrics.iter().enumerate() {
        metrics(m, &format!("spec.metrics[{i}]"), cx, ck);
    }
    (ck.error_count() == before).then(|| TelemetryPolicy {
        source: RuleRef {
            kind: "Telemetry".into(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        },
        workloads,
        access_logging,
        tracing,
    })
}

/// `selector` / `targetRefs` → the selectors of the workloads it applies to.
fn workloads(
    spec: &t::TelemetrySpec,
    key: &ObjectKey,
    cx: &TelemetryCtx<'_>,
    ck: &mut Checker,
) -> Option<Vec<Labels>> {
    let refs: Vec<(String, &rudder_config::security::PolicyTargetReference)> =
        match (&spec.target_ref, spec.target_refs.as_slice()) {
            (Some(_), [_, ..]) => {
                ck.error("spec.targetRef", "set targetRef or targetRefs, not both");
                return None;
            }
            (Some(r), []) => vec![("spec.targetRef".into(), r)],
            (None, refs) => refs
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("spec.targetRefs[{i}]"), r))
                .collect(),
        };
    if let Some(sel) = &spec.selector {
        if !refs.is_empty() {
            ck.error("spec.selector", "set selector or targetRefs, not both");
        }
        if sel.match_labels.is_empty() {
            ck.error(
                "spec.selector.matchLabels",
                "a selector needs at least one label (omit it for the whole namespace)",
            );
        }
        return Some(vec![sel.match_labels.clone()]);
    }
    if refs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for (at, r) in refs {
        if r.namespace.as_deref().is_some_and(|ns| ns != key.namespace) {
            ck.error(
                format!("{at}.namespace"),
                "a Telemetry applies only to objects of its own namespace",
            );
            continue;
        }
        match (r.group.as_str(), r.kind.as_str()) {
            ("" | "core", "Service") => {
                let host = format!("{}.{}.svc.{}", r.name, key.namespace, cx.domain);
                match cx.services.map(|s| s.get(&host)) {
                    Some(Some(svc)) if !svc.selector.is_empty() => out.push(svc.selector.clone()),
                    Some(_) => ck.warn(
                        format!("{at}.name"),
                        format!("no Service {host} with a selector: the Telemetry selects no workload through it"),
                    ),
                    None => {}
                }
            }
            ("gateway.networking.k8s.io", "Gateway") => out.push(
                [(GATEWAY_NAME_LABEL.to_string(), r.name.clone())]
                    .into_iter()
                    .collect(),
            ),
            (group, kind) => ck.error(
                format!("{at}.kind"),
                format!("Rudder attaches a Telemetry to a Service or a gateway.networking.k8s.io Gateway, not {kind} of group {group:?}"),
            ),
        }
    }
    Some(out)
}

fn mode(m: &Option<t::ModeSelector>, at: &str, ck: &mut Checker) -> TrafficMode {
    let Some(s) = m.as_ref().and_then(|m| m.mode.as_deref()) else {
        return TrafficMode::ClientAndServer;
    };
    TrafficMode::parse(s).unwrap_or_else(|| {
        ck.error(
            format!("{at}.match.mode"),
            format!("unknown mode {s:?} (CLIENT_AND_SERVER, CLIENT or SERVER)"),
        );
        TrafficMode::ClientAndServer
    })
}

/// The mesh config's provider named `name` (`None` alone: not checked;
/// `Some(None)`: the built-in provider `builtin`, not redefined).
fn provider<'a>(
    name: &str,
    builtin: &str,
    at: &str,
    cx: &TelemetryCtx<'a>,
    ck: &mut Checker,
) -> Option<Option<&'a MeshExtensionProvider>> {
    let mesh = cx.mesh?;
    let found = mesh.extension_providers.iter().find(|p| p.name == name);
    if found.is_none() && name != builtin {
        ck.error(
            at,
            format!("no provider {name:?} in the mesh config's extensionProviders"),
        );
    }
    Some(found)
}

/// The kind a provider is (its field name), for messages.
fn provider_kind(p: &MeshExtensionProvider) -> String {
    if p.envoy_file_access_log.is_some() {
        "envoyFileAccessLog".into()
    } else if p.zipkin.is_some() {
        "zipkin".into()
    } else if p.opentelemetry.is_some() {
        "opentelemetry".into()
    } else if p.prometheus.is_some() {
        "prometheus".into()
    } else {
        p.other
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| "empty".into())
    }
}

/// An access log sink from a file provider's fields.
fn file_sink(
    path: &str,
    format: Option<&AccessLogFormat>,
    at: &str,
    ck: &mut Checker,
) -> AccessLogSink {
    let format = match format {
        Some(AccessLogFormat {
            text: Some(_),
            labels: Some(_),
        }) => {
            ck.error(format!("{at}.logFormat"), "set text or labels, not both");
            LogFormat::Text(ISTIO_TEXT_FORMAT.into())
        }
        Some(AccessLogFormat {
            text: Some(text), ..
        }) => LogFormat::Text(with_newline(text)),
        Some(AccessLogFormat {
            labels: Some(labels),
            ..
        }) if labels.is_empty() => LogFormat::Json(istio_json_labels()),
        Some(AccessLogFormat {
            labels: Some(labels),
            ..
        }) => LogFormat::Json(labels.clone()),
        _ => LogFormat::Text(ISTIO_TEXT_FORMAT.into()),
    };
    if path.is_empty() {
        ck.error(
            format!("{at}.path"),
            "an access log needs a path (/dev/stdout for the proxy's log)",
        );
    }
    AccessLogSink {
        path: path.into(),
        format,
    }
}

/// Envoy writes a text line exactly as formatted: Istio appends the newline.
fn with_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.into()
    } else {
        format!("{text}\n")
    }
}

/// An access log provider by name: the built-in `envoy` or an
/// `envoyFileAccessLog` of the mesh config.
fn access_log_provider(
    name: &str,
    at: &str,
    cx: &TelemetryCtx<'_>,
    ck: &mut Checker,
) -> Option<AccessLogSink> {
    match provider(name, ENVOY_PROVIDER, at, cx, ck) {
        Some(Some(p)) => match &p.envoy_file_access_log {
            Some(f) => Some(file_sink(&f.path, f.log_format.as_ref(), at, ck)),
            None => {
                ck.error(
                    at,
                    format!("provider {name:?} is a {} provider; access logs are served with envoyFileAccessLog providers", provider_kind(p)),
                );
                None
            }
        },
        // The built-in provider, unless the mesh config redefines it.
        Some(None) | None if name == ENVOY_PROVIDER => Some(AccessLogSink::stdout()),
        _ => None,
    }
}

fn access_logging(
    a: &t::AccessLogging,
    at: &str,
    cx: &TelemetryCtx<'_>,
    ck: &mut Checker,
) -> Option<AccessLogRule> {
    if a.filter.is_some() {
        ck.error(format!("{at}.filter"), not_served("CEL access log filters"));
    }
    let mode = mode(&a.match_, at, ck);
    if a.disabled == Some(true) {
        return Some(AccessLogRule {
            mode,
            sinks: Vec::new(),
            disabled: true,
        });
    }
    let names: Vec<(String, String)> = if a.providers.is_empty() {
        default_names(cx, |d| &d.access_logging, ENVOY_PROVIDER)
            .into_iter()
            .map(|n| (format!("{at}.providers"), n))
            .collect()
    } else {
        a.providers
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("{at}.providers[{i}].name"), p.name.clone()))
            .collect()
    };
    let sinks = names
        .iter()
        .filter_map(|(at, n)| access_log_provider(n, at, cx, ck))
        .collect();
    Some(AccessLogRule {
        mode,
        sinks,
        disabled: false,
    })
}

/// The mesh config's default providers of one kind, or `builtin`.
fn default_names(
    cx: &TelemetryCtx<'_>,
    of: impl Fn(&rudder_config::mesh::MeshDefaultProviders) -> &Vec<String>,
    builtin: &str,
) -> Vec<String> {
    cx.mesh
        .and_then(|m| m.default_providers.as_ref())
        .map(|d| of(d).clone())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec![builtin.to_string()])
}

fn tracing(
    tr: &t::Tracing,
    at: &str,
    cx: &TelemetryCtx<'_>,
    ck: &mut Checker,
) -> Option<TracingRule> {
    let refused = [
        ("customTags", !tr.custom_tags.is_empty(), "custom span tags"),
        (
            "useRequestIdForTraceSampling",
            tr.use_request_id_for_trace_sampling.is_some(),
            "useRequestIdForTraceSampling",
        ),
        (
            "enableIstioTags",
            tr.enable_istio_tags.is_some(),
            "Istio's span tags",
        ),
    ];
    for (field, set, what) in refused {
        if set {
            ck.error(format!("{at}.{field}"), not_served(what));
        }
    }
    let mode = mode(&tr.match_, at, ck);
    if tr.providers.len() > 1 {
        ck.error(
            format!("{at}.providers"),
            "only one tracing provider is supported (as in Istio)",
        );
    }
    let tracer = tr.providers.first().and_then(|p| {
        let at = format!("{at}.providers[0].name");
        tracer(&p.name, &at, cx, ck)
    });
    let sampling = tr
        .random_sampling_percentage
        .and_then(|p| ck.percent(format!("{at}.randomSamplingPercentage"), p));
    Some(TracingRule {
        mode,
        tracer,
        sampling,
        disable_span_reporting: tr.disable_span_reporting,
    })
}

/// A tracing provider by name (a `zipkin` or `opentelemetry` provider of
/// the mesh config).
pub fn tracer(name: &str, at: &str, cx: &TelemetryCtx<'_>, ck: &mut Checker) -> Option<Tracer> {
    let p = provider(name, "", at, cx, ck)??;
    let (kind, spec) = match (&p.zipkin, &p.opentelemetry) {
        (Some(z), _) => (TracerKind::Zipkin, z),
        (None, Some(o)) => (TracerKind::OpenTelemetry, o),
        (None, None) => {
            ck.error(
                at,
                format!("provider {name:?} is a {} provider; tracing is served with zipkin and opentelemetry providers", provider_kind(p)),
            );
            return None;
        }
    };
    // The provider's own fields are checked with the mesh config.
    let mut scratch = Checker::new(
        &ObjectKey::new(crate::object::Kind::MeshConfig, "", name),
        &Default::default(),
    );
    let found = tracer_of(name, kind, spec, "", &mut scratch);
    if scratch.has_errors() {
        ck.error(
            at,
            format!("provider {name:?} is invalid (see the mesh config's diagnostics)"),
        );
        return None;
    }
    found
}

fn tracer_of(
    name: &str,
    kind: TracerKind,
    spec: &TracerProvider,
    at: &str,
    ck: &mut Checker,
) -> Option<Tracer> {
    let refused = [
        ("enable64bitTraceId", spec.enable_64bit_trace_id.is_some()),
        ("http", spec.http.is_some()),
        ("resourceDetectors", spec.resource_detectors.is_some()),
        ("dynatraceSampler", spec.dynatrace_sampler.is_some()),
    ];
    for (field, set) in refused {
        if set {
            ck.error(
                format!("{at}.{field}"),
                format!("Rudder does not serve {field} of a tracing provider"),
            );
        }
    }
    if spec.path.is_some() && kind == TracerKind::OpenTelemetry {
        ck.error(format!("{at}.path"), "path is a zipkin field");
    }
    if spec.service.is_empty() {
        ck.error(
            format!("{at}.service"),
            "the collector's service host is required",
        );
    }
    let port = ck.port(format!("{at}.port"), i64::from(spec.port))?;
    Some(Tracer {
        name: name.into(),
        kind,
        service: spec.service.clone(),
        port,
        max_tag_length: spec.max_tag_length.unwrap_or(256),
        path: spec.path.clone().unwrap_or_else(|| "/api/v2/spans".into()),
    })
}

fn metrics(m: &t::Metrics, at: &str, cx: &TelemetryCtx<'_>, ck: &mut Checker) {
    if !m.overrides.is_empty() {
        ck.error(
            format!("{at}.overrides"),
            not_served("metrics overrides: upstream Envoy has no Istio stats filter, so Istio's standard metrics and their tags cannot be disabled or changed per Telemetry (Envoy's own statistics are always on)"),
        );
    }
    if m.reporting_interval.is_some() {
        ck.error(
            format!("{at}.reportingInterval"),
            not_served("a reporting interval (Prometheus scrapes Envoy's stats when it likes)"),
        );
    }
    for (i, p) in m.providers.iter().enumerate() {
        let at = format!("{at}.providers[{i}].name");
        match provider(&p.name, PROMETHEUS_PROVIDER, &at, cx, ck) {
            Some(Some(found)) if found.prometheus.is_none() => ck.error(
                &at,
                format!("provider {:?} is a {} provider; metrics are served with a prometheus provider", p.name, provider_kind(found)),
            ),
            // Accepted, and said to change nothing: never silently ignored.
            Some(_) => ck.warn(
                &at,
                "Envoy's statistics are always exposed for Prometheus (:15090, merged on :15020): this provider changes nothing",
            ),
            None => {}
        }
    }
}

/// The mesh config's telemetry defaults (no Telemetry): `accessLogFile`
/// (absent: Rudder keeps `/dev/stdout`; `""`: off, as Istio) with
/// `accessLogEncoding` and `accessLogFormat`, plus the
/// `defaultProviders`. Problems are reported on the mesh config.
pub fn defaults(mesh: Option<&MeshConfigSpec>, ck: &mut Checker) -> Telemetries {
    let mut out = Telemetries::default();
    let Some(m) = mesh else {
        return out;
    };
    let encoding = m.access_log_encoding.as_deref().unwrap_or("TEXT");
    let format = match (encoding, &m.access_log_format) {
        ("TEXT", Some(text)) => LogFormat::Text(with_newline(text)),
        ("TEXT", None) => LogFormat::Text(ISTIO_TEXT_FORMAT.into()),
        ("JSON", None) => LogFormat::Json(istio_json_labels()),
        ("JSON", Some(json)) => {
            match serde_json::from_str::<BTreeMap<String, String>>(json) {
                Ok(labels) => LogFormat::Json(labels),
                Err(e) => {
                    ck.error(
                    "data.mesh.accessLogFormat",
                    format!("with accessLogEncoding JSON the format is a JSON object of strings: {e}"),
                );
                    LogFormat::Json(istio_json_labels())
                }
            }
        }
        (other, _) => {
            ck.error(
                "data.mesh.accessLogEncoding",
                format!("unknown encoding {other:?} (TEXT or JSON)"),
            );
            LogFormat::Text(ISTIO_TEXT_FORMAT.into())
        }
    };
    out.default_logs = match m.access_log_file.as_deref() {
        Some("") => Vec::new(),
        path => vec![AccessLogSink {
            path: path.unwrap_or("/dev/stdout").into(),
            format,
        }],
    };
    let cx = TelemetryCtx {
        mesh: Some(m),
        services: None,
        domain: "",
    };
    if let Some(d) = &m.default_providers {
        for (i, name) in d.access_logging.iter().enumerate() {
            let at = format!("data.mesh.defaultProviders.accessLogging[{i}]");
            if let Some(s) = access_log_provider(name, &at, &cx, ck) {
                if m.access_log_file.is_none() && i == 0 {
                    out.default_logs.clear();
                }
                out.default_logs.push(s);
            }
        }
        if let Some(name) = d.tracing.first() {
            out.default_tracer = tracer(name, "data.mesh.defaultProviders.tracing[0]", &cx, ck);
        }
    }
    for (i, p) in m.extension_providers.iter().enumerate() {
        let at = format!("data.mesh.extensionProviders[{i}]");
        if let Some(z) = p.zipkin.as_ref() {
            tracer_of(&p.name, TracerKind::Zipkin, z, &format!("{at}.zipkin"), ck);
        }
        if let Some(o) = p.opentelemetry.as_ref() {
            tracer_of(
                &p.name,
                TracerKind::OpenTelemetry,
                o,
                &format!("{at}.opentelemetry"),
                ck,
            );
        }
    }
    out
}
