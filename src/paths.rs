//! The files behind the paths operators give on the command line.

use std::path::{Path, PathBuf};

/// How far [`files_under`] looks into a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The directory's own files, links followed, as a ConfigMap volume
    /// mounts them: its `..data` link and timestamped folder are skipped, and
    /// so is a link an update leaves dangling for a moment.
    Flat,
    /// The whole tree, what a user points at: every entry with a wanted
    /// extension is listed, so one that cannot be read is reported, not
    /// skipped. Symlinked directories are not followed: a link loop would
    /// never end.
    Tree,
}

/// `path` itself when it is not a directory; otherwise the files under it,
/// in name order, whose extension is one of `extensions` (any, when it is
/// empty). A directory that cannot be listed is an error.
pub fn files_under(path: &Path, extensions: &[&str], depth: Depth) -> Vec<Result<PathBuf, ListError>> {
    let mut files = Vec::new();
    if path.is_dir() {
        walk(path, extensions, depth, &mut files);
    } else {
        files.push(Ok(path.to_owned()));
    }
    files
}

/// A directory that could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", dir.display())]
pub struct ListError {
    pub dir: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn walk(dir: &Path, extensions: &[&str], depth: Depth, files: &mut Vec<Result<PathBuf, ListError>>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => return files.push(Err(ListError { dir: dir.to_owned(), source })),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let wanted = extensions.is_empty()
            || path.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.contains(&e));
        match depth {
            Depth::Flat if wanted && path.is_file() => files.push(Ok(path)),
            Depth::Flat => {}
            Depth::Tree if path.symlink_metadata().is_ok_and(|m| m.is_dir()) => {
                walk(&path, extensions, depth, files);
            }
            Depth::Tree if wanted => files.push(Ok(path)),
            Depth::Tree => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(files: Vec<Result<PathBuf, ListError>>, root: &Path) -> Vec<String> {
        let relative = |file: PathBuf| file.strip_prefix(root).unwrap().display().to_string();
        files.into_iter().map(|file| relative(file.unwrap())).collect()
    }

    #[test]
    fn flat_lists_the_directory_own_files_and_tree_the_whole_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        for file in ["b.yaml", "a.json", "notes.txt", "sub/c.yml"] {
            std::fs::write(root.join(file), "").unwrap();
        }
        std::os::unix::fs::symlink("missing.yaml", root.join("dangling.yaml")).unwrap();
        std::os::unix::fs::symlink(root, root.join("loop")).unwrap();
        let wanted = ["yaml", "yml", "json"];
        assert_eq!(names(files_under(root, &wanted, Depth::Flat), root), ["a.json", "b.yaml"]);
        assert_eq!(
            names(files_under(root, &wanted, Depth::Tree), root),
            ["a.json", "b.yaml", "dangling.yaml", "sub/c.yml"]
        );
        assert_eq!(names(files_under(root, &[], Depth::Flat), root), ["a.json", "b.yaml", "notes.txt"]);
    }

    #[test]
    fn a_file_is_itself_and_an_unlistable_directory_an_error() {
        let file = Path::new("no/such/file.yaml");
        assert_eq!(files_under(file, &["json"], Depth::Tree).pop().unwrap().unwrap(), file);
        let mut files = Vec::new();
        walk(Path::new("/no/such/dir"), &[], Depth::Flat, &mut files);
        assert!(files[0].as_ref().unwrap_err().to_string().starts_with("/no/such/dir: "));
    }
}
