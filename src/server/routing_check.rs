//! At start, whether the cluster's webhook configuration sends Defender what
//! the policies judge: a kind added to a policy without regenerating the
//! configuration is never sent, and would silently pass. Only warns: serving
//! goes on whatever the answer.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::Api;

use crate::config;
use crate::policy::Policy;
use crate::webhooks;

/// How long the API server may take to hand over the configuration.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Logs a warning per need of the policies at `policies` that the
/// ValidatingWebhookConfiguration `name` does not route, or that it could not be read.
pub async fn warn_unrouted(client: kube::Client, name: String, policies: Option<PathBuf>) {
    // Policies that do not load stop the server, which says why.
    let Ok(set) = config::load(policies.as_deref()) else { return };
    let warnings = unrouted_warnings(client, &name, &set.policies).await;
    for warning in &warnings {
        tracing::warn!(webhook_configuration = %name, "{warning}");
    }
    if warnings.is_empty() {
        tracing::info!(webhook_configuration = %name, "the webhook configuration sends everything the policies judge");
    }
}

async fn unrouted_warnings(client: kube::Client, name: &str, policies: &[Policy]) -> Vec<String> {
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client);
    let configuration = match tokio::time::timeout(READ_TIMEOUT, api.get(name)).await {
        Ok(Ok(configuration)) => configuration,
        Ok(Err(error)) => {
            return vec![format!(
                "cannot read ValidatingWebhookConfiguration {name:?} to check that it sends what the policies \
                 judge: {error} (Defender needs get on it; --webhook-config-name names it, \"\" skips the check)"
            )];
        }
        Err(_) => {
            return vec![format!(
                "ValidatingWebhookConfiguration {name:?} could not be read within {}s: not checked",
                READ_TIMEOUT.as_secs()
            )];
        }
    };
    webhooks::unrouted(policies, &configuration)
        .into_iter()
        .map(|need| {
            format!(
                "never sent to Defender, so never judged: {need}; regenerate the webhook configuration with \
                 `defender webhook-config` for these policies"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::routing::Hook;
    use crate::webhooks::Options;

    /// A client whose API server answers the request for Defender's webhook
    /// configuration with `status` and `body`, and any other with 404.
    fn api_server(status: u16, body: String) -> kube::Client {
        let status = StatusCode::from_u16(status).unwrap();
        let service = axum::Router::new().route(
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/defender",
            axum::routing::any(move || async move { (status, body) }),
        );
        kube::Client::new(service, "default")
    }

    #[tokio::test]
    async fn warns_about_each_need_the_cluster_configuration_does_not_route() {
        let set = config::load_embedded().unwrap();
        let mut deployed = webhooks::configuration(&set.policies, &set.settings, &Options::default());
        assert!(
            unrouted_warnings(
                api_server(200, serde_json::to_string(&deployed).unwrap()),
                "defender",
                &set.policies
            )
            .await
            .is_empty()
        );

        deployed.webhooks.as_mut().unwrap().retain(|webhook| webhook.name != Hook::PodDeletions.name());
        let client = api_server(200, serde_json::to_string(&deployed).unwrap());
        let warnings = unrouted_warnings(client, "defender", &set.policies).await;
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0]
                .contains("deletion-guard: UPDATE, DELETE of pods: no webhook pod-deletions.defender.io"),
            "{warnings:?}"
        );
    }

    #[tokio::test]
    async fn a_configuration_it_cannot_read_is_a_warning_too() {
        let set = config::load_embedded().unwrap();
        let forbidden = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,
            "message":"validatingwebhookconfigurations.admissionregistration.k8s.io \"defender\" is forbidden"}"#;
        let warnings =
            unrouted_warnings(api_server(403, forbidden.to_owned()), "defender", &set.policies).await;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("cannot read ValidatingWebhookConfiguration \"defender\""),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("forbidden"), "{warnings:?}");
    }
}
