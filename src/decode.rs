//! Deserializing so that an error names the field that did not fit:
//! `spec.rules[0].host: invalid type: integer `5`, expected a string`.

use std::fmt::Display;

use serde::{Deserialize, Deserializer};

/// Deserializes a `T`, an error naming the field within `within` (a path
/// such as `spec`, or `""` for the top).
pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
    within: &str,
) -> Result<T, String> {
    serde_path_to_error::deserialize(deserializer).map_err(|error| describe(&error, within))
}

/// `within.path: error`, or `within: error` when the error is about the
/// value itself (or a position serde cannot name); without `within`, the
/// path alone or the error alone.
pub fn describe<E: Display>(error: &serde_path_to_error::Error<E>, within: &str) -> String {
    let path = error.path().to_string();
    let itself = path.is_empty() || path == "." || path == "?";
    match (within, itself) {
        ("", true) => error.inner().to_string(),
        ("", false) => format!("{path}: {}", error.inner()),
        (within, true) => format!("{within}: {}", error.inner()),
        (within, false) => format!("{within}.{path}: {}", error.inner()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Spec {
        rules: Vec<Rule>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Rule {
        host: String,
    }

    fn error(value: serde_json::Value, within: &str) -> String {
        super::deserialize::<Spec, _>(value, within).unwrap_err()
    }

    #[test]
    fn names_the_field_within_the_given_path() {
        let bad = json!({"rules": [{"host": 5}]});
        assert_eq!(
            error(bad.clone(), "spec"),
            "spec.rules[0].host: invalid type: integer `5`, expected a string"
        );
        assert_eq!(error(bad, ""), "rules[0].host: invalid type: integer `5`, expected a string");
    }

    #[test]
    fn an_error_about_the_value_itself_names_no_field() {
        assert_eq!(error(json!("x"), "spec"), "spec: invalid type: string \"x\", expected struct Spec");
        assert_eq!(error(json!("x"), ""), "invalid type: string \"x\", expected struct Spec");
    }
}
