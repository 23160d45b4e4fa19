//! Template files: partial overrides keep the defaults; every bad value is
//! an error naming its field.

use rudder_injector::{template::InboundPorts, CertMode, NativeSidecars, Values};

#[test]
fn partial_values_keep_defaults() {
    let v = Values::from_yaml("proxyPort: 15001\nnativeSidecars: true\n", "t").unwrap();
    assert_eq!(v.proxy_port, 15001);
    assert_eq!(v.native_sidecars, NativeSidecars::On);
    assert_eq!(
        v.effective_inbound_capture_port(),
        15001,
        "inbound follows the proxy port by default"
    );
    assert_eq!(v.discovery_address, "rudder-pilot.rudder-system.svc:15012");
    assert_eq!(v.ca_address, "rudder-pilot.rudder-system.svc:15012");
    assert_eq!(v.cert_mode, CertMode::File);
    let v = Values::from_yaml("certMode: sds\ncaAddress: 10.0.0.1:15012\n", "t").unwrap();
    assert_eq!(
        (v.cert_mode, v.ca_address.as_str()),
        (CertMode::Sds, "10.0.0.1:15012")
    );
    assert_eq!(Values::from_yaml("", "empty").unwrap(), Values::default());
    let v = Values::from_yaml("includeInboundPorts: containerPorts\n", "t").unwrap();
    assert_eq!(v.include_inbound_ports, InboundPorts::ContainerPorts);
    assert!(
        Values::default().rewrite_app_probers,
        "probes are rewritten by default, as in Istio"
    );
    let v = Values::from_yaml("rewriteAppProbers: false\n", "t").unwrap();
    assert!(!v.rewrite_app_probers);
}

#[test]
fn native_sidecars_auto_needs_a_known_new_server() {
    assert!(!NativeSidecars::Auto.resolve(None));
    assert!(!NativeSidecars::Auto.resolve(Some((1, 28))));
    assert!(NativeSidecars::Auto.resolve(Some((1, 29))));
    assert!(NativeSidecars::On.resolve(None));
    assert!(!NativeSidecars::Off.resolve(Some((1, 33))));
}

#[test]
fn image_refs_keep_explicit_tags_and_digests() {
    let v = Values::default();
    assert_eq!(v.image_ref("rudder/agent"), "rudder/agent:0.1.0");
    assert_eq!(
        v.image_ref("localhost:5000/agent"),
        "localhost:5000/agent:0.1.0"
    );
    assert_eq!(
        v.image_ref("localhost:5000/agent:dev"),
        "localhost:5000/agent:dev"
    );
    assert_eq!(
        v.image_ref("rudder/agent@sha256:abc"),
        "rudder/agent@sha256:abc"
    );
}

#[test]
fn bad_templates_name_the_field() {
    let cm = |values: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: t}}\ndata:\n  values: |\n    {}\n",
            values.replace('\n', "\n    ")
        )
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "proxyPorts: 15001".into(),
            "values.proxyPorts",
            "unknown field",
        ),
        (
            "proxyPort: seventy".into(),
            "values.proxyPort",
            "invalid type",
        ),
        (
            "proxyPort: 70000".into(),
            "values.proxyPort",
            "invalid value",
        ),
        ("proxyPort: 0".into(), "values.proxyPort", "must not be 0"),
        ("proxyUid: 0".into(), "values.proxyUid", "bypass capture"),
        (
            "discoveryAddress: pilot".into(),
            "values.discoveryAddress",
            "is not host:port",
        ),
        (
            "caAddress: pilot:0".into(),
            "values.caAddress",
            "is not host:port",
        ),
        (
            "certMode: secret".into(),
            "values.certMode",
            "is not one of file, sds",
        ),
        ("certMode: 1".into(), "values.certMode", "must be a string"),
        (
            "images: {agent: \"\"}".into(),
            "values.images.agent",
            "is not an image name",
        ),
        (
            "images: {sidecar: x}".into(),
            "values.images.sidecar",
            "unknown field",
        ),
        (
            "imagePullPolicy: Sometimes".into(),
            "values.imagePullPolicy",
            "not one of",
        ),
        (
            "excludeOutboundCidrs: [10.0.0.0]".into(),
            "values.excludeOutboundCidrs",
            "not a CIDR",
        ),
        (
            "includeOutboundCidrs: [\"*\", 10.0.0.0/8]".into(),
            "values.includeOutboundCidrs",
            "only entry",
        ),
        (
            "excludeInboundPorts: [80, 0]".into(),
            "values.excludeInboundPorts",
            "port 0",
        ),
        (
            "includeInboundPorts: everything".into(),
            "values.includeInboundPorts",
            "not a port",
        ),
        (
            "resources: {requests: {cpu: [1]}}".into(),
            "values.resources.requests.cpu",
            "not a quantity",
        ),
        (
            "resources: {maximum: {}}".into(),
            "values.resources.maximum",
            "unknown field",
        ),
        (
            "nativeSidecars: sometimes".into(),
            "values.nativeSidecars",
            "auto, true, false",
        ),
        (
            "rewriteAppProbers: sometimes".into(),
            "values.rewriteAppProbers",
            "expected a boolean",
        ),
        ("- a list".into(), "values", "must be a mapping"),
    ];
    for (values, field, message) in cases {
        let err = Values::from_yaml(&values, "bare.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("template bare.yaml: {field}: ")),
            "{values}: {err}"
        );
        assert!(err.contains(message), "{values}: {err}");
        // The same inside a ConfigMap names data.values.<field>.
        let err = Values::from_yaml(&cm(&values), "cm.yaml")
            .unwrap_err()
            .to_string();
        let field = field.replacen("values", "data.values", 1);
        assert!(
            err.starts_with(&format!("template cm.yaml: {field}: ")),
            "{values}: {err}"
        );
    }
    for (text, needle) in [
        (
            "kind: Secret\ndata: {values: x}\n",
            "template t: kind: a template file must be a ConfigMap",
        ),
        (
            "kind: ConfigMap\ndata: {}\n",
            "template t: data.values: missing",
        ),
        (
            "kind: ConfigMap\ndata: {values: [1]}\n",
            "data.values: must be a string",
        ),
        ("proxyPort: [\n", "template t: not valid YAML"),
    ] {
        let err = Values::from_yaml(text, "t").unwrap_err().to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
    }
    let err = Values::from_file(std::path::Path::new("/nonexistent/template.yaml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/template.yaml"), "{err}");
}
