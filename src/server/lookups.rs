//! What the lookups made before judging share (a definition's objects
//! counted, a namespace's protected objects found): they run on the async
//! runtime within a bound of their own, before the review is judged, and a
//! list that fails says what to do when the cause is Defender's permissions.

use std::future::Future;
use std::time::Duration;

/// Runs `lookup` to completion, or gives up after `timeout`: a slower API
/// server means a refusal, not a late answer.
pub async fn within<T>(
    timeout: Duration,
    lookup: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, lookup).await {
        Ok(found) => found,
        Err(_) => Err(format!("the API server did not list them within {timeout:?}")),
    }
}

/// Why listing `what` (`certificates.cert-manager.io`) failed.
pub fn listing_failed(what: &str, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.code == 403 => format!(
            "Defender's service account may not list {what}: grant it `list` (deploy/base/rbac.yaml does, for \
             every resource)"
        ),
        other => format!("listing {what} failed: {other}"),
    }
}
