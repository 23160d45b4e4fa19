//! A small `coordination.k8s.io/v1` Lease loop: one pilot replica at a time
//! holds `rudder-pilot-status` and writes status.
//!
//! Serving needs no leader (every replica watches and serves); only writes to
//! the cluster do, or replicas would fight over the same status. The loop is
//! the client-go `leaderelection` idea reduced to what status needs:
//!
//! ```text
//!  every renew period:  GET lease ─┬─ absent ───────────────────────────► create (holder = me)
//!                                  ├─ mine, or expired (renewTime + duration < now) ─► replace (resourceVersion-guarded)
//!                                  └─ someone else's, fresh ─────────────► follower
//!  any error or conflict ─► follower until the next period (never two writers)
//! ```

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{api::PostParams, Api, Client};
use tokio::sync::watch;

/// Name of the status Lease.
pub const STATUS_LEASE: &str = "rudder-pilot-status";

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseOptions {
    /// Namespace of the Lease (the install namespace).
    pub namespace: String,
    /// Lease name.
    pub name: String,
    /// This replica's identity (the pod name, unique per replica).
    pub identity: String,
    /// How long a holder's claim lasts without renewal.
    pub duration: Duration,
    /// How often to renew (or try to take over); well under `duration`.
    pub renew_every: Duration,
}

impl LeaseOptions {
    /// Defaults: 15 s lease renewed every 5 s, like client-go's.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: STATUS_LEASE.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
        }
    }
}

/// This replica's identity: `POD_NAME` (the downward API), else the host name
/// plus the process id.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME") {
        if !pod.is_empty() {
            return pod;
        }
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let host = if host.is_empty() {
        "pilot".to_string()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}

/// Runs forever, publishing whether this replica holds the lease.
pub async fn run_lease(client: Client, options: LeaseOptions, leader: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &options.namespace);
    let mut tick = tokio::time::interval(options.renew_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let held = match try_acquire(&api, &options).await {
            Ok(held) => held,
            Err(error) => {
                tracing::warn!(lease = %options.name, %error, "lease check failed; not writing status until it works");
                false
            }
        };
        leader.send_if_modified(|was| {
            if *was != held {
                tracing::info!(lease = %options.name, identity = %options.identity, leader = held, "status lease changed hands");
                *was = held;
                true
            } else {
                false
            }
        });
    }
}

/// One round: returns whether we hold the lease afterwards.
async fn try_acquire(api: &Api<Lease>, o: &LeaseOptions) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let duration_s = i32::try_from(o.duration.as_secs()).unwrap_or(i32::MAX);
    let existing = api.get_opt(&o.name).await?;
    let Some(mut lease) = existing else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(o.name.clone()),
                namespace: Some(o.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(o.identity.clone()),
                lease_duration_seconds: Some(duration_s),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let mine = spec.holder_identity.as_deref() == Some(o.identity.as_str());
    let held_for =
        SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(duration_s)));
    let expired = match &spec.renew_time {
        Some(MicroTime(t)) => t.checked_add(held_for).map_or(true, |end| end < now),
        None => true,
    };
    if !mine
        && !expired
        && spec
            .holder_identity
            .as_deref()
            .is_some_and(|h| !h.is_empty())
    {
        return Ok(false);
    }
    if !mine {
        spec.holder_identity = Some(o.identity.clone());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.lease_duration_seconds = Some(duration_s);
    spec.renew_time = Some(MicroTime(now));
    // `replace` carries the resourceVersion we read: a competing writer gets a 409.
    match api.replace(&o.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
