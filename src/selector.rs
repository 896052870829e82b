//! Label matching: Kubernetes label selectors and single `key=value` labels.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

pub type Labels = BTreeMap<String, String>;

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`).
/// An empty selector matches nothing here: Defender never protects or exempts
/// "everything" by accident.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: Labels,
    #[serde(default)]
    pub match_expressions: Vec<LabelExpression>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelExpression {
    pub key: String,
    pub operator: LabelOperator,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum LabelOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        !self.is_empty()
            && self.match_labels.iter().all(|(key, value)| labels.get(key) == Some(value))
            && self.match_expressions.iter().all(|expression| expression.matches(labels))
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> =
            self.match_labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
        parts.extend(self.match_expressions.iter().map(|e| match e.operator {
            LabelOperator::In => format!("{} in ({})", e.key, e.values.join(",")),
            LabelOperator::NotIn => format!("{} notin ({})", e.key, e.values.join(",")),
            LabelOperator::Exists => e.key.clone(),
            LabelOperator::DoesNotExist => format!("!{}", e.key),
        }));
        f.write_str(&parts.join(","))
    }
}

impl LabelExpression {
    fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            LabelOperator::In => value.is_some_and(|v| self.values.contains(v)),
            LabelOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            LabelOperator::Exists => value.is_some(),
            LabelOperator::DoesNotExist => value.is_none(),
        }
    }
}

/// One label written as `key=value`, the way `kubectl label` takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub key: String,
    pub value: String,
}

impl Label {
    pub fn is_on(&self, labels: &Labels) -> bool {
        labels.get(&self.key) == Some(&self.value)
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.value)
    }
}

impl FromStr for Label {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('=') {
            Some((key, value)) if !key.is_empty() && !key.contains(char::is_whitespace) => {
                Ok(Self { key: key.to_owned(), value: value.to_owned() })
            }
            _ => Err(format!("expected a label as key=value, got {text:?}")),
        }
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn selector(yaml: &str) -> LabelSelector {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = selector("matchLabels: {defender.io/core: 'true', team: a}");
        assert!(s.matches(&labels(&[("defender.io/core", "true"), ("team", "a"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("defender.io/core", "true")])));
    }

    #[test]
    fn expressions_follow_kubernetes_semantics() {
        let s = selector(
            "matchExpressions:
               - {key: tier, operator: In, values: [core, platform]}
               - {key: temp, operator: DoesNotExist}
               - {key: env, operator: NotIn, values: [dev]}",
        );
        assert!(s.matches(&labels(&[("tier", "core")])));
        assert!(!s.matches(&labels(&[("tier", "core"), ("temp", "1")])));
        assert!(!s.matches(&labels(&[("tier", "core"), ("env", "dev")])));
        assert!(!s.matches(&labels(&[("tier", "apps")])));
        let exists = selector("matchExpressions: [{key: tier, operator: Exists}]");
        assert!(exists.matches(&labels(&[("tier", "")])));
    }

    #[test]
    fn empty_selector_matches_nothing() {
        assert!(!LabelSelector::default().matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn unknown_selector_fields_are_rejected() {
        assert!(serde_yaml_ng::from_str::<LabelSelector>("matchLabel: {a: b}").is_err());
    }

    #[test]
    fn label_parses_key_equals_value() {
        let label: Label = "defender.io/deletion-allowed=true".parse().unwrap();
        assert_eq!(label.key, "defender.io/deletion-allowed");
        assert!(label.is_on(&labels(&[("defender.io/deletion-allowed", "true")])));
        assert!(!label.is_on(&labels(&[("defender.io/deletion-allowed", "yes")])));
        assert!("no-equals-sign".parse::<Label>().is_err());
        assert!("=value".parse::<Label>().is_err());
    }
}
