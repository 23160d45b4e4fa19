//! A proxy's Telemetry applied to its listeners: access logs on every HTTP
//! connection manager and TCP proxy, tracing on every HTTP connection
//! manager, per side (inbound chains are the server side, everything else
//! the client side).
//!
//! ```text
//!  listener.rs / inbound.rs / gateway.rs ─► listeners with the mesh default
//!                                            (stdout, Istio's format)
//!  generator: EffectiveTelemetry ≠ default ─► [ apply ] ─► the proxy's own listeners
//!                                               ▲ you are here
//! ```
//!
//! Most proxies have the mesh default, which the builders write directly,
//! so their listeners stay shared; only proxies a Telemetry (or a mesh
//! config default other than Rudder's) changes get listeners of their own,
//! versioned from the shared one and the telemetry.

use envoy_types::pb::{
    envoy::{
        config::{
            accesslog::v3::{access_log, AccessLog},
            core::v3::{
                data_source, grpc_service, substitution_format_string, DataSource, GrpcService,
                SubstitutionFormatString,
            },
            listener::v3::{filter, Filter, FilterChain, Listener},
            trace::v3::{
                tracing::{http, Http},
                zipkin_config::CollectorEndpointVersion,
                OpenTelemetryConfig, ZipkinConfig,
            },
        },
        extensions::{
            access_loggers::{
                file::v3::{file_access_log, FileAccessLog},
                stream::v3::{stdout_access_log, StdoutAccessLog},
            },
            filters::network::{
                http_connection_manager::v3::{http_connection_manager, HttpConnectionManager},
                tcp_proxy::v3::TcpProxy,
            },
        },
        r#type::v3::Percent as PbPercent,
    },
    google::protobuf::{value, BoolValue, Struct, Value},
};
use prost::Message;
use rudder_model::{
    names::{ClusterName, VIRTUAL_INBOUND_LISTENER},
    telemetry::{AccessLogSink, EffectiveTracing, LogFormat, Side, TracerKind},
    EffectiveTelemetry,
};

use crate::{
    common::{any, resource, u32v, HTTP_CONNECTION_MANAGER, TCP_PROXY},
    version::Version,
};

/// Where Envoy's stdout is: the agent's log.
const STDOUT: &str = "/dev/stdout";

/// The access logs of one side.
pub(crate) fn access_logs(sinks: &[AccessLogSink]) -> Vec<AccessLog> {
    sinks.iter().map(access_log).collect()
}

pub(crate) fn access_log(sink: &AccessLogSink) -> AccessLog {
    let format = SubstitutionFormatString {
        format: Some(match &sink.format {
            LogFormat::Text(text) => {
                substitution_format_string::Format::TextFormatSource(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(text.clone())),
                    ..Default::default()
                })
            }
            LogFormat::Json(labels) => substitution_format_string::Format::JsonFormat(Struct {
                fields: labels
                    .iter()
                    .map(|(k, v)| {
                        let v = Value {
                            kind: Some(value::Kind::StringValue(v.clone())),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            }),
        }),
        ..Default::default()
    };
    let (name, config) = if sink.path == STDOUT {
        (
            "envoy.access_loggers.stdout",
            any(&StdoutAccessLog {
                access_log_format: Some(stdout_access_log::AccessLogFormat::LogFormat(format)),
            }),
        )
    } else {
        (
            "envoy.access_loggers.file",
            any(&FileAccessLog {
                path: sink.path.clone(),
                access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(format)),
            }),
        )
    };
    AccessLog {
        name: name.into(),
        config_type: Some(access_log::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

/// The HCM's tracing: sampling always (so a sampled request's context
/// propagates), the tracer unless span reporting is off or the collector
/// has no cluster in the proxy (Envoy would refuse the listener).
fn hcm_tracing(
    t: &EffectiveTracing,
    has_cluster: &dyn Fn(&str) -> bool,
) -> http_connection_manager::Tracing {
    let cluster = ClusterName::outbound(t.tracer.port, None, &t.tracer.service).to_string();
    let provider = (!t.disable_span_reporting && has_cluster(&cluster)).then(|| {
        let (name, config) = match t.tracer.kind {
            TracerKind::Zipkin => (
                "envoy.tracers.zipkin",
                any(&ZipkinConfig {
                    collector_cluster: cluster.clone(),
                    collector_endpoint: t.tracer.path.clone(),
                    collector_endpoint_version: CollectorEndpointVersion::HttpJson as i32,
                    collector_hostname: t.tracer.service.clone(),
                    trace_id_128bit: true,
                    shared_span_context: Some(BoolValue { value: false }),
                    ..Default::default()
                }),
            ),
            TracerKind::OpenTelemetry => (
                "envoy.tracers.opentelemetry",
                any(&OpenTelemetryConfig {
                    grpc_service: Some(GrpcService {
                        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                            grpc_service::EnvoyGrpc {
                                cluster_name: cluster.clone(),
                                authority: t.tracer.service.clone(),
                                ..Default::default()
                            },
                        )),
                        ..Default::default()
                    }),
                    service_name: "rudder-proxy".into(),
                    ..Default::default()
                }),
            ),
        };
        Http {
            name: name.into(),
            config_type: Some(http::ConfigType::TypedConfig(config)),
        }
    });
    http_connection_manager::Tracing {
        random_sampling: Some(PbPercent {
            value: f64::from(t.sampling.0) / 10_000.0,
        }),
        max_path_tag_length: u32v(t.tracer.max_tag_length),
        provider,
        ..Default::default()
    }
}

/// Sets one network filter's access logs and tracing for `side`.
fn apply_to_filter(
    f: &mut Filter,
    side: Side,
    t: &EffectiveTelemetry,
    has_cluster: &dyn Fn(&str) -> bool,
) {
    let Some(filter::ConfigType::TypedConfig(config)) = f.config_type.as_mut() else {
        return;
    };
    match f.name.as_str() {
        HTTP_CONNECTION_MANAGER => {
            let Ok(mut hcm) = HttpConnectionManager::decode(config.value.as_slice()) else {
                return;
            };
            let side = if hcm.stat_prefix.starts_with("inbound") {
                Side::Server
            } else {
                side
            };
            hcm.access_log = access_logs(t.logs(side));
            hcm.tracing = t.tracing(side).map(|tr| hcm_tracing(tr, has_cluster));
            config.value = hcm.encode_to_vec();
        }
        TCP_PROXY => {
            let Ok(mut tcp) = TcpProxy::decode(config.value.as_slice()) else {
                return;
            };
            tcp.access_log = access_logs(t.logs(side));
            config.value = tcp.encode_to_vec();
        }
        _ => {}
    }
}

fn apply_to_chain(
    c: &mut FilterChain,
    listener_side: Side,
    t: &EffectiveTelemetry,
    has_cluster: &dyn Fn(&str) -> bool,
) {
    let side = if c.name.starts_with("inbound") {
        Side::Server
    } else {
        listener_side
    };
    for f in &mut c.filters {
        apply_to_filter(f, side, t, has_cluster);
    }
}

/// The listeners with `t` applied (each a resource of its own, versioned
/// from the shared one, `t` and `collectors`: per tracing side, whether the
/// proxy has the collector's cluster); `has_cluster` tells whether the
/// proxy has a cluster.
pub(crate) fn apply(
    listeners: &crate::resources::Content,
    t: &EffectiveTelemetry,
    collectors: &[bool],
    has_cluster: &dyn Fn(&str) -> bool,
) -> crate::resources::Content {
    listeners
        .iter()
        .map(|(name, r)| {
            let Ok(mut l) = Listener::decode(r.body.value.as_slice()) else {
                return (name.clone(), r.clone());
            };
            let side = if l.name == VIRTUAL_INBOUND_LISTENER {
                Side::Server
            } else {
                Side::Client
            };
            for c in l
                .filter_chains
                .iter_mut()
                .chain(l.default_filter_chain.as_mut())
            {
                apply_to_chain(c, side, t, has_cluster);
            }
            let version = Version::new("lds-telemetry")
                .with(&r.version)
                .with(t)
                .with(collectors);
            (name.clone(), resource(version, &l))
        })
        .collect()
}
