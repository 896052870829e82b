//! `defender confirm-delete`: confirms a namespace for deletion the way the
//! namespace-deletion policy asks, so nobody has to compute an RFC 3339 time
//! by hand. Installed as `kubectl-defender`, it is `kubectl defender
//! confirm-delete NAMESPACE`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::PolicyArgs;
use crate::clock;
use crate::config::PolicySet;
use crate::period::Period;
use crate::policy::Confirmation;

#[derive(Debug, clap::Args)]
pub struct ConfirmDeleteArgs {
    /// The namespace to confirm for deletion.
    namespace: String,
    /// How long from now the namespace may be deleted (30s, 5m, 1h); at
    /// least the policy's cooldown [default: the cooldown].
    #[arg(long, value_name = "DURATION")]
    after: Option<Period>,
    /// The policies whose cooldown and annotation apply: use the cluster's
    /// own when they are not the defaults.
    #[command(flatten)]
    policies: PolicyArgs,
    /// The kubeconfig [default: $KUBECONFIG, ~/.kube/config, or the Pod's
    /// service account].
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context [default: the current one].
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Send the change as a server-side dry run: the API server and
    /// Defender judge it, nothing is stored.
    #[arg(long)]
    dry_run: bool,
}

/// Added to the requested time: the API server judges the change a moment
/// after it is sent, possibly by a clock a little ahead of this one, and a
/// time exactly one cooldown away would then be refused as too soon.
const SLACK: Duration = Duration::from_secs(5);

/// The confirmation to set: the annotations to write and when deletion opens.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    annotations: Vec<String>,
    at: Timestamp,
}

impl ConfirmDeleteArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let set = self.policies.load()?;
        let plan = plan(&set, self.after, Timestamp::now())?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(self.apply(&plan))?;
        let at = plan.at;
        let wait = clock::human(clock::until(Timestamp::now(), at));
        let annotations: Vec<String> = plan.annotations.iter().map(|key| format!("{key}={at}")).collect();
        let namespace = &self.namespace;
        if self.dry_run {
            println!("namespace {namespace:?} would be annotated {} (server dry run)", annotations.join(" "));
        } else {
            println!("namespace {namespace:?} annotated {}", annotations.join(" "));
        }
        println!("it can be deleted after {at} (in {wait}): kubectl delete namespace {namespace}");
        Ok(ExitCode::SUCCESS)
    }

    async fn apply(&self, plan: &Plan) -> anyhow::Result<()> {
        let client = self.client().await?;
        let annotations: serde_json::Map<String, serde_json::Value> =
            plan.annotations.iter().map(|key| (key.clone(), plan.at.to_string().into())).collect();
        let patch = serde_json::json!({"metadata": {"annotations": annotations}});
        let mut params = PatchParams { field_manager: Some("defender".to_owned()), ..PatchParams::default() };
        params.dry_run = self.dry_run;
        let namespaces: Api<Namespace> = Api::all(client);
        match namespaces.patch(&self.namespace, &params, &Patch::Merge(&patch)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => {
                anyhow::bail!("namespace {:?} not found", self.namespace)
            }
            Err(kube::Error::Api(status)) => {
                anyhow::bail!(
                    "the API server refused to annotate namespace {:?}: {}",
                    self.namespace,
                    status.message
                )
            }
            Err(error) => {
                Err(error).with_context(|| format!("failed to annotate namespace {:?}", self.namespace))
            }
        }
    }

    /// `--kubeconfig` and `--context` as kubectl reads them; without either,
    /// what kubectl would use.
    async fn client(&self) -> anyhow::Result<kube::Client> {
        let options = KubeConfigOptions { context: self.context.clone(), ..KubeConfigOptions::default() };
        let config = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .map_err(|e| anyhow::anyhow!("cannot read kubeconfig {}: {e}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options).await?
            }
            (None, Some(_)) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| anyhow::anyhow!("cannot use the kubeconfig: {e}"))?,
            (None, None) => kube::Config::infer()
                .await
                .map_err(|e| anyhow::anyhow!("no kubeconfig and not in a cluster (--kubeconfig): {e}"))?,
        };
        Ok(kube::Client::try_from(config)?)
    }
}

/// What to write for a deletion `after` from `now` under the policies'
/// confirmations; refuses an `after` shorter than a cooldown, which the
/// policy would refuse too.
fn plan(set: &PolicySet, after: Option<Period>, now: Timestamp) -> anyhow::Result<Plan> {
    let confirmations: Vec<(&str, Confirmation)> = set
        .policies
        .iter()
        .filter_map(|policy| Some((policy.name(), policy.deletion_confirmation()?)))
        .collect();
    let Some((policy, longest)) = confirmations.iter().max_by_key(|(_, c)| c.cooldown) else {
        anyhow::bail!(
            "no policy asks for a confirmation before a namespace is deleted: there is nothing to confirm"
        );
    };
    let after = after.unwrap_or(longest.cooldown);
    if after < longest.cooldown {
        anyhow::bail!(
            "--after {after} is shorter than the {} cooldown of policy {}: the deletion cannot be confirmed for \
             sooner (use --after {} or more)",
            longest.cooldown,
            policy,
            longest.cooldown
        );
    }
    let mut annotations: Vec<String> = confirmations.into_iter().map(|(_, c)| c.annotation).collect();
    annotations.sort();
    annotations.dedup();
    Ok(Plan { annotations, at: whole_second_after(clock::add(now, after.0.saturating_add(SLACK))) })
}

/// `at`, rounded up to a whole second: easier to read, and never sooner.
fn whole_second_after(at: Timestamp) -> Timestamp {
    let whole = Timestamp::from_second(at.as_second()).unwrap_or(at);
    if whole < at { clock::add(whole, Duration::from_secs(1)) } else { whole }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00.250Z".parse().unwrap()
    }

    fn policies(cooldowns: &[(&str, &str, &str)]) -> PolicySet {
        let documents: Vec<String> = cooldowns
            .iter()
            .map(|(name, annotation, cooldown)| {
                format!(
                    "apiVersion: defender.io/v1alpha1\nkind: NamespaceDeletion\nmetadata: {{name: {name}}}\n\
                     spec: {{confirmation: {{annotation: {annotation}, cooldown: {cooldown}}}}}\n"
                )
            })
            .collect();
        config::from_files(&[("p.yaml".to_owned(), documents.join("---\n"))], "p.yaml").unwrap()
    }

    #[test]
    fn defaults_to_the_cooldown_of_the_embedded_policies_plus_slack_on_a_whole_second() {
        let plan = plan(&config::load_embedded().unwrap(), None, now()).unwrap();
        assert_eq!(plan.annotations, ["defender.io/delete-after"]);
        // 5m cooldown + 5s slack after 00:00:00.250, rounded up.
        assert_eq!(plan.at, "2026-01-01T00:05:06Z".parse::<Timestamp>().unwrap());
    }

    #[test]
    fn accepts_a_longer_after() {
        let plan = plan(&config::load_embedded().unwrap(), Some(Period::minutes(60)), now()).unwrap();
        assert_eq!(plan.at, "2026-01-01T01:00:06Z".parse::<Timestamp>().unwrap());
    }

    #[test]
    fn refuses_an_after_shorter_than_the_cooldown_naming_both() {
        let error = plan(&config::load_embedded().unwrap(), Some("4m".parse().unwrap()), now()).unwrap_err();
        let error = error.to_string();
        assert!(
            error.contains("--after 4m is shorter than the 5m cooldown of policy namespace-deletion"),
            "{error}"
        );
        assert!(error.contains("use --after 5m or more"), "{error}");
    }

    #[test]
    fn follows_the_policies_it_is_given_taking_the_longest_cooldown() {
        let set = policies(&[("a", "example.com/after", "10s"), ("b", "defender.io/delete-after", "1m")]);
        let plan = plan(&set, None, now()).unwrap();
        assert_eq!(plan.annotations, ["defender.io/delete-after", "example.com/after"]);
        assert_eq!(plan.at, "2026-01-01T00:01:06Z".parse::<Timestamp>().unwrap());
        assert!(super::plan(&set, Some("30s".parse().unwrap()), now()).is_err());
    }

    #[test]
    fn refuses_when_no_policy_asks_for_a_confirmation() {
        let set = config::from_files(
            &[("p.yaml".to_owned(), "apiVersion: defender.io/v1alpha1\nkind: NamespaceDeletion\nmetadata: {name: n}\nspec: {confirmation: {enabled: false}}\n".to_owned())],
            "p.yaml",
        )
        .unwrap();
        assert!(plan(&set, None, now()).unwrap_err().to_string().contains("nothing to confirm"));
    }

    #[test]
    fn the_time_parses_as_the_policy_reads_it() {
        let plan = plan(&config::load_embedded().unwrap(), None, now()).unwrap();
        assert_eq!(plan.at.to_string().parse::<Timestamp>().unwrap(), plan.at);
        assert!(plan.at.to_string().ends_with('Z'));
    }
}
