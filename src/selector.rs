//! Label matching: Kubernetes label selectors and single `key=value` labels.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use kube::core::{Expression, Selector, SelectorExt};
use serde::{Deserialize, Deserializer};

pub type Labels = BTreeMap<String, String>;

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`),
/// matched by kube-rs. An empty selector matches nothing here: Defender never
/// protects or exempts "everything" by accident.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "WrittenSelector")]
pub struct LabelSelector {
    /// As the policy wrote it, for messages: kube's rendering sorts the
    /// values of `In` and `NotIn`.
    written: WrittenSelector,
    selector: Selector,
}

/// A selector as policies write it. Parsed here rather than as
/// k8s-openapi's `LabelSelector`, which would let misspelt fields and
/// operators through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WrittenSelector {
    #[serde(default)]
    match_labels: Labels,
    #[serde(default)]
    match_expressions: Vec<LabelExpression>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelExpression {
    key: String,
    operator: LabelOperator,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
enum LabelOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    /// Selects objects that carry every one of `labels`.
    pub fn matching_labels(labels: Labels) -> Self {
        Self::from(WrittenSelector { match_labels: labels, ..WrittenSelector::default() })
    }

    pub fn is_empty(&self) -> bool {
        self.selector.selects_all()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        !self.is_empty() && self.selector.matches(labels)
    }
}

impl From<WrittenSelector> for LabelSelector {
    fn from(written: WrittenSelector) -> Self {
        let equalities = written.match_labels.iter().map(|(key, value)| (key.clone(), value.clone()));
        let mut selector: Selector = equalities.collect();
        selector.extend(written.match_expressions.iter().map(LabelExpression::to_kube));
        Self { written, selector }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let written = &self.written;
        let mut parts: Vec<String> =
            written.match_labels.iter().map(|(key, value)| format!("{key}={value}")).collect();
        parts.extend(written.match_expressions.iter().map(|e| match e.operator {
            LabelOperator::In => format!("{} in ({})", e.key, e.values.join(",")),
            LabelOperator::NotIn => format!("{} notin ({})", e.key, e.values.join(",")),
            LabelOperator::Exists => e.key.clone(),
            LabelOperator::DoesNotExist => format!("!{}", e.key),
        }));
        f.write_str(&parts.join(","))
    }
}

impl LabelExpression {
    /// Built directly rather than through kube's conversion from
    /// k8s-openapi, which refuses `In` and `NotIn` without values: Defender
    /// accepts them (`In` then matches nothing, `NotIn` everything).
    fn to_kube(&self) -> Expression {
        let key = self.key.clone();
        let values = || self.values.iter().cloned().collect();
        match self.operator {
            LabelOperator::In => Expression::In(key, values()),
            LabelOperator::NotIn => Expression::NotIn(key, values()),
            LabelOperator::Exists => Expression::Exists(key),
            LabelOperator::DoesNotExist => Expression::DoesNotExist(key),
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
    fn in_without_values_matches_nothing_and_not_in_without_values_everything() {
        assert!(
            !selector("matchExpressions: [{key: tier, operator: In}]").matches(&labels(&[("tier", "a")]))
        );
        assert!(
            selector("matchExpressions: [{key: tier, operator: NotIn}]").matches(&labels(&[("tier", "a")]))
        );
    }

    #[test]
    fn messages_show_the_selector_as_written() {
        let s = selector(
            "{matchLabels: {team: a}, matchExpressions: [
               {key: tier, operator: In, values: [platform, data]}, {key: temp, operator: DoesNotExist}]}",
        );
        assert_eq!(s.to_string(), "team=a,tier in (platform,data),!temp");
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
