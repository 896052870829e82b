//! Multi-document YAML, read the way kubectl reads manifests: merge keys
//! (`<<: *anchor`) applied, empty documents skipped, every document turned
//! into JSON values the rest of Defender works with (policy files, whose
//! errors quote keys JSON cannot hold, stay YAML values).

use serde::Deserialize;
use serde_json::Value;

/// Each non-empty document of `text`, in order, with its 1-based position.
/// A document that is not valid YAML, or has keys JSON cannot hold, is an error.
/// Reading stops at the first error.
pub fn documents(text: &str) -> Vec<(usize, Result<Value, String>)> {
    let mut documents = Vec::new();
    for (index, document) in yaml_documents(text) {
        let document = document
            .and_then(|yaml| serde_json::to_value(yaml).map_err(|e| format!("cannot be read as JSON: {e}")));
        let failed = document.is_err();
        documents.push((index, document));
        if failed {
            break;
        }
    }
    documents
}

/// Each non-empty document of `text` as YAML, merge keys applied, with its
/// 1-based position. Reading stops at the first syntax error: the parser
/// cannot resynchronise after one, and would otherwise report it forever.
pub fn yaml_documents(text: &str) -> Vec<(usize, Result<serde_yaml_ng::Value, String>)> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let document = merged(document);
        let failed = document.is_err();
        if !matches!(document, Ok(serde_yaml_ng::Value::Null)) {
            documents.push((index + 1, document));
        }
        if failed {
            break;
        }
    }
    documents
}

/// The objects a document holds: itself, or the items of a `kind: List`
/// (any kind ending in `List`), nested lists unpacked, each with where it
/// sits (`""`, `" item 2"`). A document that is not a mapping is an error.
pub fn objects(document: Value) -> Vec<(String, Result<Value, String>)> {
    let mut objects = Vec::new();
    unpack(document, String::new(), &mut objects);
    objects
}

fn unpack(value: Value, at: String, objects: &mut Vec<(String, Result<Value, String>)>) {
    let is_list = value.get("kind").and_then(Value::as_str).is_some_and(|kind| kind.ends_with("List"));
    match value {
        Value::Object(mut fields) if is_list => match fields.remove("items") {
            Some(Value::Array(items)) => {
                for (index, item) in items.into_iter().enumerate() {
                    unpack(item, format!("{at} item {}", index + 1), objects);
                }
            }
            _ => objects.push((at, Err("a List needs items".to_owned()))),
        },
        object @ Value::Object(_) => objects.push((at, Ok(object))),
        _ => objects.push((at, Err("expected a Kubernetes object (a mapping)".to_owned()))),
    }
}

fn merged(document: serde_yaml_ng::Deserializer<'_>) -> Result<serde_yaml_ng::Value, String> {
    let mut value =
        serde_yaml_ng::Value::deserialize(document).map_err(|e| format!("not valid YAML: {e}"))?;
    value.apply_merge().map_err(|e| format!("not valid YAML: {e}"))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_merge_keys_and_skips_empty_documents() {
        let text = "a: &base {x: 1, y: 2}\nb: {<<: *base, y: 3}\n---\n---\nc: 1\n";
        let documents = documents(text);
        assert_eq!(documents.len(), 2);
        let first = documents[0].1.as_ref().unwrap();
        assert_eq!(first["b"], serde_json::json!({"x": 1, "y": 3}));
        assert_eq!(documents[1].0, 3);
    }

    #[test]
    fn reports_invalid_yaml_and_non_string_keys() {
        assert!(documents("a: [").iter().any(|(_, d)| d.as_ref().unwrap_err().contains("not valid YAML")));
        assert!(documents("{[1, 2]: x}").iter().any(|(_, d)| d.is_err()));
        assert_eq!(documents("a: 1\n---\nkind: [unclosed\n---\nb: 2\n").len(), 2, "stops at the error");
    }

    #[test]
    fn unpacks_lists_and_names_where_each_object_sits() {
        let list = serde_json::json!({"kind": "List", "items": [
            {"kind": "Pod"},
            {"kind": "PodList", "items": [{"kind": "Pod"}, 3]},
        ]});
        let objects = objects(list);
        let at: Vec<&str> = objects.iter().map(|(at, _)| at.as_str()).collect();
        assert_eq!(at, [" item 1", " item 2 item 1", " item 2 item 2"]);
        assert!(objects[2].1.as_ref().unwrap_err().contains("expected a Kubernetes object"));
        assert!(super::objects(serde_json::json!({"kind": "List"}))[0].1.is_err());
        assert_eq!(super::objects(serde_json::json!({"kind": "Pod"}))[0].0, "");
    }
}
