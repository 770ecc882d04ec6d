//! One node's installation: copies the plugins, chains them into the conflist
//! runtimes load, remembers what it changed in which file, and takes exactly
//! that back on cleanup. Decisions come from `conflist` (pure), effects from
//! `files`; this module only sequences them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cli::Settings;
use crate::conflist::{chain, primary_file, unchain, ChainSpec, Change};
use crate::error::InstallError;
use crate::files::{self, CopyOutcome};
use crate::json::{GoObject, JsonExt};

/// Where the node's network stands after a reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// This file of the conf dir now has our chain.
    Chained { file: String },
    /// The conf dir has no network yet (the primary CNI has not written it).
    NoNetwork,
}

/// What we did to one file, for cleanup.
#[derive(Debug, Default)]
struct FileRecord {
    changes: Vec<Change>,
    /// The single-plugin file we turned into this conflist, with its content.
    converted: Option<(String, Vec<u8>)>,
    /// What we last wrote.
    written: Vec<u8>,
}

pub struct Node {
    source_dir: PathBuf,
    bin_dir: PathBuf,
    conf_dir: PathBuf,
    conf_file: Option<String>,
    plugins: Vec<String>,
    spec: ChainSpec,
    record: BTreeMap<String, FileRecord>,
}

impl Node {
    pub fn new(settings: &Settings) -> Result<Node, InstallError> {
        let source_dir = match &settings.source_dir {
            Some(d) => d.clone(),
            None => std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .ok_or_else(|| {
                    InstallError::Settings(
                        "cannot find the directory of cni-install; give --source-dir".into(),
                    )
                })?,
        };
        Ok(Node {
            source_dir,
            bin_dir: settings.bin_dir.clone(),
            conf_dir: settings.conf_dir.clone(),
            conf_file: settings.conf_file.clone(),
            plugins: settings
                .plugins
                .iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
            spec: settings.chain_spec()?,
            record: BTreeMap::new(),
        })
    }

    pub fn conf_dir(&self) -> &Path {
        &self.conf_dir
    }

    /// Copies every plugin into the bin dir (see `files::copy_plugin`).
    pub fn install_plugins(&self) -> Result<Vec<(String, CopyOutcome)>, InstallError> {
        let mut done = Vec::new();
        for name in &self.plugins {
            let outcome = files::copy_plugin(&self.source_dir.join(name), &self.bin_dir, name)?;
            done.push((name.clone(), outcome));
        }
        Ok(done)
    }

    /// Makes sure the network runtimes load has our chain; idempotent (an
    /// already chained file is not rewritten).
    pub fn reconcile(&mut self) -> Result<Status, InstallError> {
        let names = files::list_dir(&self.conf_dir)?;
        let file = match &self.conf_file {
            Some(f) => names.iter().find(|n| *n == f).map(String::as_str),
            None => primary_file(&names),
        };
        let Some(file) = file.map(str::to_string) else {
            return Ok(Status::NoNetwork);
        };
        let Some(bytes) = files::read_if_present(&self.conf_dir, &file)? else {
            return Ok(Status::NoNetwork);
        };
        let chained = chain(&file, &bytes, &self.spec)?;
        if chained.is_unchanged() {
            return Ok(Status::Chained { file });
        }
        if chained.converted_from.is_some()
            && names.contains(&chained.file)
            && !self.record.contains_key(&chained.file)
        {
            return Err(InstallError::Occupied {
                file,
                target: chained.file,
            });
        }
        let original = self.conf_dir.join(&file);
        files::write_atomic(
            &self.conf_dir,
            &chained.file,
            &chained.bytes,
            Some(&original),
            0o644,
        )?;
        if chained.converted_from.is_some() {
            files::remove_if_present(&original)?;
            files::sync_dir(&self.conf_dir)?;
        }
        let added: Vec<String> = chained.changes.iter().map(describe).collect();
        eprintln!(
            "cni-install: chained into {}: {}",
            self.conf_dir.join(&chained.file).display(),
            if added.is_empty() {
                "converted to a conflist".to_string()
            } else {
                added.join(", ")
            }
        );
        let record = self.record.entry(chained.file.clone()).or_default();
        for change in chained.changes {
            if !record.changes.contains(&change) {
                record.changes.push(change);
            }
        }
        if let Some(from) = chained.converted_from {
            record.converted = Some((from, bytes));
        }
        record.written = chained.bytes;
        Ok(Status::Chained { file: chained.file })
    }

    /// Takes back what this process added: our entries and keys where they
    /// still are as we wrote them, and a converted `.conf` restored when its
    /// conflist is still ours alone. Binaries stay.
    pub fn cleanup(&mut self) -> Result<(), InstallError> {
        for (file, record) in std::mem::take(&mut self.record) {
            let Some(current) = files::read_if_present(&self.conf_dir, &file)? else {
                continue;
            };
            let path = self.conf_dir.join(&file);
            if let Some((from, original)) = &record.converted {
                if current == record.written {
                    files::write_atomic(&self.conf_dir, from, original, Some(&path), 0o644)?;
                    files::remove_if_present(&path)?;
                    files::sync_dir(&self.conf_dir)?;
                    eprintln!(
                        "cni-install: restored {} (removed {})",
                        from,
                        path.display()
                    );
                    continue;
                }
            }
            if let Some(bytes) = unchain(&file, &current, &record.changes)? {
                files::write_atomic(&self.conf_dir, &file, &bytes, Some(&path), 0o644)?;
                eprintln!("cni-install: removed our chain from {}", path.display());
            }
        }
        Ok(())
    }
}

fn describe(change: &Change) -> String {
    match change {
        Change::Appended { plugin } => format!(
            "appended {}",
            plugin
                .as_object()
                .and_then(|o| o.get_struct_field("type"))
                .and_then(|t| t.as_str())
                .unwrap_or("?")
        ),
        Change::KeyAdded {
            plugin_type,
            parent,
            key,
            ..
        } => match parent {
            Some(p) => format!("{plugin_type}: added {p}.{key}"),
            None => format!("{plugin_type}: added {key}"),
        },
    }
}
