//! The metadata the view reads of an object: who it is, whether it is being
//! deleted, and its owners. Labels, annotations and managedFields (often
//! most of an object's bytes) are skipped.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kept {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    /// What a watch resumes from.
    resource_version: Option<String>,
    deletion_timestamp: Option<Time>,
    owner_references: Option<Vec<OwnerReference>>,
}

/// `metadata`, as [`ObjectMeta`] (what `kube::Resource` hands out) holding
/// only the fields above; `null` is empty metadata, as k8s-openapi reads it.
pub fn kept<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let Some(kept) = Option::<Kept>::deserialize(deserializer)? else {
        return Ok(ObjectMeta::default());
    };
    Ok(ObjectMeta {
        name: kept.name,
        namespace: kept.namespace,
        uid: kept.uid,
        resource_version: kept.resource_version,
        deletion_timestamp: kept.deletion_timestamp,
        owner_references: kept.owner_references,
        ..ObjectMeta::default()
    })
}
