//! deploy/base/validatingwebhookconfiguration.yaml is what the policies need:
//! the generator's output for the default policies, with comments.

use defender::budget::Exhausted;
use defender::policy::{Action, Context, Policy, Verdict, Violation};
use defender::request::Request;
use defender::routing::{self, Hook, Need, Options, Resource, Scope};
use serde_yaml_ng::Value;

fn deployed() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/base/validatingwebhookconfiguration.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Routes to the delete-protection webhook the way a DeleteProtection policy
/// protecting by Defender's and OpenKruise's labels does, for a policy set
/// that holds none: deploy/ ships that webhook for such a policy.
struct DeleteProtectionRoutes;

impl Policy for DeleteProtectionRoutes {
    fn name(&self) -> &str {
        "delete-protection"
    }
    fn action(&self) -> Action {
        Action::Deny
    }
    fn applies(&self, _: &Request) -> bool {
        false
    }
    fn evaluate(&self, _: &Request, _: &Context) -> Verdict {
        Verdict::Pass
    }
    fn over_budget(&self, _: &Request, _: &Exhausted, _: &Context) -> Violation {
        Violation::new("no budget", "none")
    }
    fn routes(&self) -> Vec<Need> {
        let label_keys =
            vec!["defender.io/delete-protection".to_owned(), "policy.kruise.io/delete-protection".to_owned()];
        let everything = Resource {
            group: "*".to_owned(),
            plural: "*".to_owned(),
            scope: Scope::Any,
            versions: vec!["*".to_owned()],
            subresources: Vec::new(),
        };
        Need::deletions(Hook::DeleteProtection { label_keys }, &everything)
    }
}

#[test]
fn deploy_holds_the_generated_configuration_for_the_embedded_policies() {
    let mut set = defender::config::load_embedded().unwrap();
    let protects = set
        .policies
        .iter()
        .flat_map(|p| p.routes())
        .any(|need| matches!(need.hook, Hook::DeleteProtection { .. }));
    if !protects {
        set.policies.push(Box::new(DeleteProtectionRoutes));
    }
    let generated = routing::configuration(&set.policies, &set.settings, &Options::default());
    let generated = serde_yaml_ng::to_value(&generated).unwrap();
    let deployed = deployed();
    if generated != deployed {
        panic!(
            "deploy/base/validatingwebhookconfiguration.yaml is not what the policies need; \
             `defender webhook-config` prints it (then restore the comments).\ngenerated:\n{}",
            serde_yaml_ng::to_string(&generated).unwrap()
        );
    }
}

#[test]
fn deploy_routes_everything_the_embedded_policies_need() {
    let set = defender::config::load_embedded().unwrap();
    let deployed = serde_yaml_ng::from_value(deployed()).unwrap();
    assert_eq!(routing::unrouted(&set.policies, &deployed), Vec::<String>::new());
}
