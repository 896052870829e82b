//! Cluster access for `defender serve`: a kube client from `--kubeconfig` or
//! the Pod's service account. Without either, Defender judges requests alone
//! (the harness and the CLI always do).

use kube::config::{KubeConfigOptions, Kubeconfig};
use std::path::Path;

/// A client for the cluster Defender runs in, or the one a kubeconfig names.
pub async fn client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| anyhow::anyhow!("cannot read kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => kube::Config::incluster()
            .map_err(|e| anyhow::anyhow!("cannot use the in-cluster service account: {e}"))?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// A client as kubectl would make one: `kubeconfig` if given, else
/// `KUBECONFIG` or `~/.kube/config`, else the Pod's service account.
pub async fn client_as_kubectl(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    if kubeconfig.is_some() {
        return client(kubeconfig).await;
    }
    let config = kube::Config::infer().await.map_err(|e| {
        anyhow::anyhow!("no cluster to reach: no --kubeconfig, no usable KUBECONFIG or ~/.kube/config, and not in a Pod ({e})")
    })?;
    Ok(kube::Client::try_from(config)?)
}
