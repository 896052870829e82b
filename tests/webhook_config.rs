//! deploy/base/validatingwebhookconfiguration.yaml is what the policies need:
//! the generator's output for the default policies, with comments.

use defender::webhooks::{self, Options};
use serde_yaml_ng::Value;

fn deployed() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/base/validatingwebhookconfiguration.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn deploy_holds_the_generated_configuration_for_the_embedded_policies() {
    let set = defender::config::load_embedded().unwrap();
    let generated = webhooks::configuration(&set.policies, &set.settings, &Options::default());
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
    assert_eq!(webhooks::unrouted(&set.policies, &deployed), Vec::<String>::new());
}
