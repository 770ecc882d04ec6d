//! The unit tests' scratch directory: a path that does not exist yet, inside
//! a fresh `tempfile` directory that is removed (with whatever the test put
//! there) on drop.

use std::path::PathBuf;

/// `.0` is the scratch path; the temp dir holding it goes on drop.
/// (The second field is held only for its drop.)
pub(crate) struct Dir(pub PathBuf, #[allow(dead_code)] tempfile::TempDir);

impl Dir {
    pub(crate) fn new(tag: &str) -> Dir {
        let t = tempfile::Builder::new()
            .prefix(&format!("cni-runtime-{tag}-"))
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        Dir(t.path().join(tag), t)
    }

    /// Writes `text` to `<path>/<name>`, creating directories.
    pub(crate) fn write(&self, name: &str, text: &str) {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(p, text).unwrap_or_else(|e| panic!("{e}"));
    }
}
