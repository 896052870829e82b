//! The parts of a Pod's spec the view reads: every name it gives a Secret or
//! ConfigMap, in its containers (init and ephemeral too), volumes and
//! imagePullSecrets. Names left out or `null` are empty, as k8s-openapi
//! reads them.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub containers: Option<Vec<Container>>,
    pub init_containers: Option<Vec<Container>>,
    /// Ephemeral containers name Secrets and ConfigMaps as containers do.
    pub ephemeral_containers: Option<Vec<Container>>,
    pub volumes: Option<Vec<Volume>>,
    pub image_pull_secrets: Option<Vec<Named>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub env: Option<Vec<EnvVar>>,
    pub env_from: Option<Vec<EnvFrom>>,
}

/// `env[]`: only variables taken from a Secret or ConfigMap key matter.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub value_from: Option<EnvSource>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvSource {
    pub secret_key_ref: Option<Named>,
    pub config_map_key_ref: Option<Named>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvFrom {
    pub secret_ref: Option<Named>,
    pub config_map_ref: Option<Named>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub secret: Option<SecretVolume>,
    pub config_map: Option<Named>,
    pub projected: Option<Projected>,
}

/// A secret volume names its Secret `secretName`, unlike every other reference.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretVolume {
    pub secret_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Projected {
    pub sources: Option<Vec<Projection>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Projection {
    pub secret: Option<Named>,
    pub config_map: Option<Named>,
}

/// Any reference by name (`secretRef`, `configMapKeyRef`, `imagePullSecrets[]`, ...).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Named {
    pub name: Option<String>,
}

impl Named {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}
