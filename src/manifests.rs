//! Kubernetes manifests on disk, read the way kubectl reads them: .yaml,
//! .yml and .json files (a directory's whole tree, in name order), several
//! documents to a file, `kind: List` unpacked.

use std::path::Path;

use serde_json::Value;

use crate::paths::{self, Depth};
use crate::yaml;

/// The files a manifest directory is read from.
const EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// One object and where it came from.
pub struct Manifest {
    /// The file that holds it.
    pub file: String,
    /// The file, the document and the List item: `a.yaml document 2 item 1`.
    pub origin: String,
    pub object: Value,
}

/// A file, document or object that cannot be read, and why.
pub struct Unusable {
    pub file: String,
    /// Names the file and document.
    pub message: String,
}

/// Every object under `path` (a file or a directory tree), and in its place
/// each file, document or object that cannot be read.
pub fn read(path: &Path) -> Vec<Result<Manifest, Unusable>> {
    paths::files_under(path, EXTENSIONS, Depth::Tree)
        .into_iter()
        .flat_map(|file| match file {
            Ok(file) => read_file(&file),
            Err(error) => {
                vec![Err(Unusable { file: path.display().to_string(), message: error.to_string() })]
            }
        })
        .collect()
}

/// Every object in the file at `path`, as [`read`] gives them.
pub fn read_file(path: &Path) -> Vec<Result<Manifest, Unusable>> {
    let file = path.display().to_string();
    let unusable = |message: String| Unusable { file: file.clone(), message };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) => return vec![Err(unusable(format!("{file}: {error}")))],
    };
    let mut manifests = Vec::new();
    for (index, document) in yaml::documents(&text) {
        let origin = format!("{file} document {index}");
        let objects = match document {
            Ok(value) => yaml::objects(value),
            Err(error) => vec![(String::new(), Err(error))],
        };
        for (at, object) in objects {
            let origin = format!("{origin}{at}");
            manifests.push(match object {
                Ok(object) => Ok(Manifest { file: file.clone(), origin, object }),
                Err(error) => Err(unusable(format!("{origin}: {error}"))),
            });
        }
    }
    manifests
}

/// The one document the file at `path` holds, a `kind: List` left whole.
pub fn read_single(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match yaml::documents(&text).as_slice() {
        [(_, Ok(object))] => Ok(object.clone()),
        [(_, Err(error))] => Err(format!("{}: {error}", path.display())),
        _ => Err(format!("{}: expected exactly one object", path.display())),
    }
}
