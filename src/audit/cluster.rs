//! The audit's I/O: listing the audited objects from the API server (paged,
//! each page judged and dropped before the next is read) and writing the
//! policy reports.

use std::collections::BTreeSet;

use jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersion};
use kube::error::DiscoveryError;
use kube::{Api, Client, discovery};
use serde_json::Value;

use super::{Audit, Auditor, Target, plan, policy_report};
use crate::engine::Engine;
use crate::view::ClusterView;

/// Objects read per list call.
const PAGE: u32 = 500;
/// The field manager of the reports Defender writes.
const FIELD_MANAGER: &str = "defender-audit";

/// Audits every object of the kinds `engine`'s policies judge on CREATE,
/// judged against `view`. A kind the cluster does not serve is noted, not
/// an error; a list that fails is.
pub async fn audit(
    client: &Client,
    engine: &Engine,
    view: &dyn ClusterView,
    own_namespace: Option<&str>,
    now: Timestamp,
) -> Result<Audit, String> {
    let mut auditor = Auditor::new(engine, view, now, own_namespace);
    for target in plan(engine.policies()).targets {
        match discover(client, &target).await? {
            Some(resource) => list_into(client, &target, &resource, &mut auditor).await?,
            None => auditor.not_served(&target),
        }
    }
    Ok(auditor.finish())
}

/// The resource `target` names, at its most stable served version; `None`
/// when the cluster does not serve it.
async fn discover(client: &Client, target: &Target) -> Result<Option<ApiResource>, String> {
    let group = match discovery::group(client, &target.group).await {
        Ok(group) => group,
        Err(kube::Error::Discovery(DiscoveryError::MissingApiGroup(_))) => return Ok(None),
        Err(error) => {
            return Err(format!(
                "cannot ask the API server whether it serves {}: {error}",
                target.describe()
            ));
        }
    };
    let found =
        group.resources_by_stability().into_iter().find(|(resource, _)| resource.plural == target.resource);
    Ok(found.map(|(resource, _)| resource))
}

async fn list_into(
    client: &Client,
    target: &Target,
    resource: &ApiResource,
    auditor: &mut Auditor<'_>,
) -> Result<(), String> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api.list(&params).await.map_err(|error| listing_failed(&target.describe(), &error))?;
        let next = page.metadata.continue_.clone().filter(|token| !token.is_empty());
        for object in page.items {
            match serde_json::to_value(&object) {
                Ok(value) => auditor.judge(target, &resource.api_version, &resource.kind, value),
                Err(error) => return Err(format!("cannot read a listed {}: {error}", target.describe())),
            }
        }
        match next {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(()),
        }
    }
}

fn listing_failed(what: &str, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 403 => {
            format!(
                "not allowed to list {what}: the audit needs `list` on every kind it judges ({})",
                status.message
            )
        }
        other => format!("listing {what} failed: {other}"),
    }
}

/// What writing the reports did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub written: usize,
    /// Reports from an earlier audit for namespaces with nothing judged now.
    pub deleted: usize,
}

/// Creates or replaces `reports` (server-side apply) and deletes Defender's
/// reports that this audit did not write, so a namespace whose audited
/// objects are all gone does not keep a stale report.
pub async fn apply(client: &Client, reports: &[Value]) -> Result<Applied, String> {
    let gv = GroupVersion::gv(policy_report::GROUP, policy_report::VERSION);
    let group = discovery::pinned_group(client, &gv).await.map_err(|error| {
        format!(
            "the cluster does not serve {} policy reports ({error}): install the PolicyReport and \
             ClusterPolicyReport CRDs (kubernetes-sigs/wg-policy-prototypes), or leave out --apply",
            policy_report::API_VERSION
        )
    })?;
    let resource = |kind: &str| {
        group.recommended_kind(kind).map(|(resource, _)| resource).ok_or_else(|| {
            format!("the cluster serves {} but not its kind {kind}", policy_report::API_VERSION)
        })
    };
    let (namespaced, cluster) = (resource("PolicyReport")?, resource("ClusterPolicyReport")?);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Applied::default();
    let mut written: BTreeSet<Option<String>> = BTreeSet::new();
    for report in reports {
        let namespace = report.pointer("/metadata/namespace").and_then(Value::as_str).map(str::to_owned);
        let api: Api<DynamicObject> = match &namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &namespaced),
            None => Api::all_with(client.clone(), &cluster),
        };
        api.patch(policy_report::NAME, &params, &Patch::Apply(report)).await.map_err(|error| {
            let at = namespace.as_deref().map(|ns| format!(" in namespace {ns}")).unwrap_or_default();
            format!("cannot write policy report {}{at}: {error}", policy_report::NAME)
        })?;
        applied.written += 1;
        written.insert(namespace);
    }
    for resource in [&namespaced, &cluster] {
        applied.deleted += delete_stale(client, resource, &written).await?;
    }
    Ok(applied)
}

async fn delete_stale(
    client: &Client,
    resource: &ApiResource,
    written: &BTreeSet<Option<String>>,
) -> Result<usize, String> {
    let all: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let (key, value) = policy_report::MANAGED_BY;
    let params = ListParams::default().labels(&format!("{key}={value}"));
    let existing = all.list(&params).await.map_err(|error| listing_failed(&resource.plural, &error))?;
    let mut deleted = 0;
    for report in existing.items {
        let namespace = report.metadata.namespace.clone();
        if report.metadata.name.as_deref() != Some(policy_report::NAME) || written.contains(&namespace) {
            continue;
        }
        let api: Api<DynamicObject> = match &namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, resource),
            None => Api::all_with(client.clone(), resource),
        };
        match api.delete(policy_report::NAME, &DeleteParams::default()).await {
            Ok(_) => deleted += 1,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(format!("cannot delete a stale policy report: {error}")),
        }
    }
    Ok(deleted)
}
