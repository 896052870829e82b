//! The files behind the paths operators give on the command line.

use std::path::{Path, PathBuf};

/// `path` itself when it is not a directory; otherwise the files in its tree,
/// in name order, whose extension is one of `extensions`. Symlinked
/// directories inside the tree are not followed: a link loop would never end.
pub fn files_under(path: &Path, extensions: &[&str]) -> Vec<Result<PathBuf, String>> {
    let mut files = Vec::new();
    if path.is_dir() {
        walk(path, extensions, &mut files);
    } else {
        files.push(Ok(path.to_owned()));
    }
    files
}

fn walk(dir: &Path, extensions: &[&str], files: &mut Vec<Result<PathBuf, String>>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => return files.push(Err(format!("{}: {error}", dir.display()))),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            walk(&path, extensions, files);
        } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.contains(&e)) {
            files.push(Ok(path));
        }
    }
}
