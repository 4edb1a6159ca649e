//! Which paths the watcher looks at: `.lua` files, outside a ConfigMap's hidden folders,
//! compared canonical.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

/// `path` with its links resolved; for a missing file, its folder's canonical path and its
/// name, so that a removed file still compares equal to the file it was.
pub(crate) fn canonical(path: &Path) -> Option<PathBuf> {
    fs::canonicalize(path).ok().or_else(|| {
        let folder = fs::canonicalize(path.parent()?).ok()?;
        Some(folder.join(path.file_name()?))
    })
}

/// True for a path inside (or naming) the `..data` link or a `..<timestamp>` folder of a
/// ConfigMap mount.
pub(super) fn is_configmap_internal(path: &Path) -> bool {
    path.components().any(|part| {
        part.as_os_str()
            .to_str()
            .is_some_and(|name| name.starts_with("..") && name.len() > 2)
    })
}

pub(super) fn is_lua(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "lua")
}

/// The `.lua` files under `dirs`, at any depth.
pub(super) fn lua_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut visited = HashSet::new();
    let mut pending = dirs.to_vec();
    while let Some(dir) = pending.pop() {
        // Symlinked folders are followed, as the watcher follows them, and a link back up the
        // tree must not make this loop forever.
        let Ok(canonical) = fs::canonicalize(&dir) else {
            continue;
        };
        if !visited.insert(canonical) {
            continue;
        }
        // Unreadable folders are skipped, as the watcher skips them.
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for path in entries.flatten().map(|entry| entry.path()) {
            // A ConfigMap's hidden folders hold the same files as its visible links.
            if is_configmap_internal(&path) {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if is_lua(&path) {
                files.push(path);
            }
        }
    }
    files
}
