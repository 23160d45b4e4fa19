//! AdmissionReview (admission.k8s.io/v1) in, AdmissionReview out: pure, so the
//! HTTPS server is only transport and every input case is a unit test.
//!
//! A malformed review is a [`ReviewError`] (the server answers HTTP 400 with
//! its message). A well-formed review always gets a response: `allowed: true`
//! with no patch for anything that is not a Pod CREATE or that is skipped; a
//! JSON patch (diff of original vs injected) for injected pods; and
//! `allowed: false` with a message naming the field when the pod asks for
//! something impossible (a bad `traffic.sidecar.istio.io/*` annotation), so
//! the user sees why at `kubectl apply` rather than getting a silently
//! unmeshed pod.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::inject::{inject, Decision, InjectContext};
use crate::pod::kind_of;

/// The one apiVersion accepted (the webhook configuration asks for v1 only).
pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";
/// Largest request body accepted. The API server caps objects at ~1.5 MiB;
/// a review carries the object (and for updates the old one) plus framing.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Why a request is not a usable AdmissionReview (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// Larger than [`MAX_BODY_BYTES`].
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// Not JSON at all.
    #[error("request body is not valid JSON: {0}")]
    Json(String),
    /// JSON, but not an AdmissionReview v1.
    #[error("not an AdmissionReview: {0}")]
    NotReview(String),
    /// A required field is missing or has the wrong type.
    #[error("AdmissionReview field {field}: {message}")]
    Field {
        /// The field, e.g. `request.uid`.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// What the review handler needs besides the request.
#[derive(Clone, Copy, Debug)]
pub struct ReviewContext<'a> {
    /// Template values.
    pub values: &'a crate::template::Values,
    /// Native sidecars, resolved.
    pub native_sidecars: bool,
}

/// What happened, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Patched.
    Injected,
    /// Allowed unchanged, and why.
    Allowed(String),
    /// Denied, and why.
    Denied(String),
}

pub(crate) fn field(field: &'static str, message: impl Into<String>) -> ReviewError {
    ReviewError::Field {
        field,
        message: message.into(),
    }
}

/// Handle one AdmissionReview body; returns the response review and the outcome.
pub fn review(body: &[u8], ctx: &ReviewContext<'_>) -> Result<(Value, Outcome), ReviewError> {
    let doc = parse(body)?;
    let request = request_of(&doc)?;
    let uid = uid_of(request)?;
    let respond = |extra: Value| respond(&uid, extra);

    if let Some(why) = not_for_injection(request) {
        return Ok((respond(json!({"allowed": true})), Outcome::Allowed(why)));
    }
    let pod = match request.get("object") {
        Some(p @ Value::Object(_)) => p,
        None | Some(Value::Null) => return Err(field("request.object", "missing")),
        Some(other) => {
            return Err(field(
                "request.object",
                format!("expected a Pod object, got {}", kind_of(other)),
            ))
        }
    };
    let namespace = request
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty());
    let mut ictx = InjectContext::new(ctx.values, ctx.native_sidecars);
    ictx.namespace = namespace;
    match inject(pod, &ictx) {
        Ok(Decision::Skipped(reason)) => Ok((
            respond(json!({"allowed": true})),
            Outcome::Allowed(reason.to_string()),
        )),
        Ok(Decision::Injected(injected)) => {
            let patch = json_patch::diff(pod, &injected);
            let bytes = serde_json::to_vec(&patch).expect("a JSON patch serializes");
            let patch = base64::engine::general_purpose::STANDARD.encode(bytes);
            Ok((
                respond(json!({"allowed": true, "patchType": "JSONPatch", "patch": patch})),
                Outcome::Injected,
            ))
        }
        Err(e) => {
            let message = format!("rudder sidecar injection: pod {e}");
            let denied =
                respond(json!({"allowed": false, "status": {"code": 400, "message": message}}));
            Ok((denied, Outcome::Denied(message)))
        }
    }
}

/// The body as JSON, within [`MAX_BODY_BYTES`].
pub(crate) fn parse(body: &[u8]) -> Result<Value, ReviewError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ReviewError::TooLarge);
    }
    serde_json::from_slice(body).map_err(|e| ReviewError::Json(e.to_string()))
}

/// `request.uid`, which the response must echo.
pub(crate) fn uid_of(request: &Map<String, Value>) -> Result<String, ReviewError> {
    match request.get("uid") {
        Some(Value::String(u)) if !u.is_empty() => Ok(u.clone()),
        _ => Err(field("request.uid", "missing or not a string")),
    }
}

/// The response review for `uid` with the fields of `extra` (`allowed`, ...).
pub(crate) fn respond(uid: &str, extra: Value) -> Value {
    let mut response = json!({"uid": uid});
    let r = response.as_object_mut().expect("literal object");
    r.extend(extra.as_object().expect("literal object").clone());
    json!({"apiVersion": ADMISSION_API_VERSION, "kind": "AdmissionReview", "response": response})
}

/// The `request` of an `admission.k8s.io/v1` AdmissionReview.
pub(crate) fn request_of(doc: &Value) -> Result<&Map<String, Value>, ReviewError> {
    let obj = doc.as_object().ok_or_else(|| {
        ReviewError::NotReview(format!("expected a JSON object, got {}", kind_of(doc)))
    })?;
    let api_version = obj.get("apiVersion").and_then(Value::as_str);
    let kind = obj.get("kind").and_then(Value::as_str);
    if kind != Some("AdmissionReview") {
        return Err(ReviewError::NotReview(format!(
            "kind is {}, expected AdmissionReview",
            show(obj.get("kind"))
        )));
    }
    if api_version != Some(ADMISSION_API_VERSION) {
        return Err(ReviewError::NotReview(format!(
            "apiVersion is {}, expected {ADMISSION_API_VERSION}",
            show(obj.get("apiVersion"))
        )));
    }
    match obj.get("request") {
        Some(Value::Object(r)) => Ok(r),
        None | Some(Value::Null) => Err(field("request", "missing")),
        Some(other) => Err(field(
            "request",
            format!("expected an object, got {}", kind_of(other)),
        )),
    }
}

/// Why a request is allowed unchanged: it is not a Pod, or not a CREATE.
fn not_for_injection(request: &Map<String, Value>) -> Option<String> {
    let gvk = request.get("kind");
    let group = gvk
        .and_then(|k| k.get("group"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = gvk.and_then(|k| k.get("kind")).and_then(Value::as_str);
    let operation = request
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or("CREATE");
    if !group.is_empty() || kind != Some("Pod") {
        let why = format!(
            "not a Pod (kind {}{})",
            if group.is_empty() { "" } else { group },
            kind.map(|k| format!("/{k}")).unwrap_or_default()
        );
        return Some(why);
    }
    if operation != "CREATE" {
        return Some(format!("operation {operation} (only CREATE is injected)"));
    }
    None
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "missing".into(),
        Some(v) => v.to_string(),
    }
}
