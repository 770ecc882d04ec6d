//! The `tuning` CNI meta-plugin: sets network sysctls and link attributes
//! (MAC, promisc, MTU, allmulticast, txqueuelen) of `CNI_IFNAME` inside
//! `CNI_NETNS`, and puts every original back on DEL — sysctls included.
//!
//! The handlers read top to bottom: validate (`config`, `allowlist`), read
//! the current state and plan (`kernel::observe`, `plan`), back the originals
//! up (`backup`), apply step by step and roll back on the first failure.
//! DEL restores from the backup alone (no prevResult or config needed beyond
//! `dataDir`), CHECK names the first difference, GC drops backups of
//! attachments that no longer exist and temp files abandoned by a crash. Handlers never print or read the
//! environment; `main` builds the [`Plugin`] from the environment once.

pub mod allowlist;
pub mod backup;
pub mod config;
pub mod kernel;
pub mod mac;
pub mod plan;

use cni::args::Owner;
use cni::{CniError, CniResult, GcRequest, Reply, Request};

use allowlist::{Allowlist, AllowlistSource};
use backup::Backup;
use config::Config;
use kernel::{in_netns, Kernel, KernelError};
use plan::Step;

/// The plugin, for `cni::skel::run`.
#[derive(Debug, Clone, Default)]
pub struct Plugin {
    pub allowlist: AllowlistSource,
}

impl Plugin {
    /// Reads the host-side allowlist settings from the process environment
    /// (`TUNING_ALLOWLIST_FILE`, `TUNING_ALLOWLIST_REQUIRED`).
    pub fn from_process_env() -> Plugin {
        Plugin {
            allowlist: AllowlistSource::from_env(|k| std::env::var(k).ok()),
        }
    }
}

impl cni::Plugin for Plugin {
    fn about(&self) -> String {
        "tuning CNI plugin: netns sysctls and link attributes, restored on DEL".into()
    }

    fn add(&self, req: &Request) -> Result<Reply, CniError> {
        let ifname = req.cmd.ifname.as_str();
        let config = Config::parse(&req.stdin, &req.cmd.args, ifname)?;
        Allowlist::load(&self.allowlist.path)?.check(
            &config.sysctls,
            config.allowlist_required || self.allowlist.required,
        )?;
        let mut result = required_prev_result(req)?;
        let netns = required_netns(req)?;
        let owner = req.owner();
        let earlier = backup::load(&config.data_dir, &owner)?;

        in_netns(netns, |k| apply(k, &config, &owner, earlier.as_ref(), req))??;

        if let Some(mac) = config.link.mac {
            for iface in result.interfaces.iter_mut().filter(|i| i.name == ifname) {
                iface.mac = Some(mac.to_string());
            }
        }
        Ok(Reply::Result(result))
    }

    fn check(&self, req: &Request) -> Result<Reply, CniError> {
        let ifname = req.cmd.ifname.as_str();
        let config = Config::parse(&req.stdin, &req.cmd.args, ifname)?;
        required_prev_result(req)?;
        let netns = required_netns(req)?;
        let observed = in_netns(netns, |k| k.observe(&config, ifname))??;
        match plan::first_difference(&config, ifname, &observed) {
            None => Ok(Reply::Empty),
            Some(diff) => Err(CniError::internal(diff.to_string())),
        }
    }

    /// Restores from the backup alone: nothing else in the configuration,
    /// `runtimeConfig`, `args` or `prevResult` is read, so none of it can
    /// block teardown. A `dataDir` that does not validate is reported on
    /// stderr and ignored: ADD refuses it, so no backup can be there.
    fn del(&self, req: &Request) -> Result<Reply, CniError> {
        let data_dir = match config::parse_data_dir(&req.stdin) {
            Ok(d) => d,
            Err(e) => {
                req.log.warn(format!(
                    "{} (ignored by DEL: ADD refuses it, so nothing was backed up there)",
                    e.msg
                ));
                return Ok(Reply::Empty);
            }
        };
        let owner = req.owner();
        // What a writer killed between create and rename left (issue #15 §3).
        backup::remove_abandoned_temps(&data_dir, &owner)?;
        let saved = match backup::load(&data_dir, &owner) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(Reply::Empty),
            Err(e @ backup::BackupError::Corrupt { .. }) => {
                // It can never be restored; drop it so DEL does not fail forever.
                backup::remove(&data_dir, &owner)?;
                return Err(
                    CniError::from(e).context("originals cannot be restored, backup removed")
                );
            }
            Err(e) => return Err(e.into()),
        };
        let restored = match req.cmd.netns.as_deref() {
            None => Ok(Vec::new()),
            Some(netns) => match in_netns(netns, |k| restore(k, &saved)) {
                Err(KernelError::NetnsGone(_)) => Ok(Vec::new()),
                Err(e) => Err(e),
                Ok(failures) => Ok(failures),
            },
        };
        let failures = restored?;
        if failures.is_empty() {
            backup::remove(&data_dir, &owner)?;
            return Ok(Reply::Empty);
        }
        let failed_steps: Vec<Step> = failures.iter().filter_map(|(s, _)| s.clone()).collect();
        let rest = plan::remaining_backup(&saved, &failed_steps);
        if rest.is_empty() {
            backup::remove(&data_dir, &owner)?;
        } else {
            backup::store(&data_dir, &rest)?;
        }
        let msgs: Vec<String> = failures.into_iter().map(|(_, m)| m).collect();
        Err(CniError::internal(format!(
            "tuning: restoring originals of {}: {}",
            owner.tag(),
            msgs.join("; ")
        ))
        .with_details("the backup keeps the values that could not be restored; DEL retries them"))
    }

    fn gc(&self, req: &GcRequest) -> Result<Reply, CniError> {
        let data_dir = config::parse_data_dir(&req.stdin)?;
        let mut errors = Vec::new();
        for (path, saved) in backup::list(&data_dir)? {
            if saved.network != req.conf.name {
                continue;
            }
            let valid = req
                .valid_attachments
                .iter()
                .any(|a| a.container_id == saved.container_id && a.ifname == saved.ifname);
            if valid {
                continue;
            }
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    errors.push(format!("removing stale backup {}: {e}", path.display()));
                }
            }
        }
        // Temp files of a crash between create and rename (`store`), for
        // any attachment of this network, once their writer is gone.
        for temp in backup::temp_files(&data_dir)? {
            if !temp.belongs_to(&req.conf.name) || !temp.is_abandoned(backup::process_alive) {
                continue;
            }
            if let Err(e) = std::fs::remove_file(&temp.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    errors.push(format!(
                        "removing abandoned temp file {}: {e}",
                        temp.path.display()
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(Reply::Empty)
        } else {
            Err(CniError::io(format!("tuning: gc: {}", errors.join("; "))))
        }
    }
}

fn required_prev_result(req: &Request) -> Result<CniResult, CniError> {
    req.prev_result.clone().ok_or_else(|| {
        CniError::invalid_config("tuning: Required prevResult missing").with_details(
            "tuning is a chained plugin: put it after a plugin that creates the interface",
        )
    })
}

fn required_netns(req: &Request) -> Result<&std::path::Path, CniError> {
    req.cmd
        .netns
        .as_deref()
        .ok_or_else(|| CniError::invalid_env("tuning: CNI_NETNS is required"))
}

/// Inside the netns: observe, plan, back up, apply; on failure undo what was
/// applied and put the backup file back as it was.
fn apply(
    k: &mut Kernel,
    config: &Config,
    owner: &Owner,
    earlier: Option<&Backup>,
    req: &Request,
) -> Result<(), CniError> {
    let ifname = owner.ifname.as_str();
    let observed = k.observe(config, ifname)?;
    let plan = plan::plan(config, owner, req.cmd.netns.as_deref(), &observed)
        .map_err(|e| CniError::internal(format!("tuning: {e}")))?;
    if plan.changes.is_empty() {
        return Ok(());
    }
    let mut record = earlier.cloned().unwrap_or_else(|| plan.backup.clone());
    record.merge_from(&plan.backup);
    backup::store(&config.data_dir, &record)?;

    let index = observed.link.as_ref().map_or(0, |l| l.index);
    for (done, change) in plan.changes.iter().enumerate() {
        let Err(failure) = k.apply(&change.set, ifname, index) else {
            continue;
        };
        let mut undo_errors = Vec::new();
        for step in plan::rollback(&plan, done) {
            if let Err(e) = k.apply(&step, ifname, index) {
                undo_errors.push(e.to_string());
            }
        }
        let mut err = CniError::from(failure);
        if undo_errors.is_empty() {
            let put_back = match earlier {
                Some(b) => backup::store(&config.data_dir, b).map(|_| ()),
                None => backup::remove(&config.data_dir, owner),
            };
            if let Err(e) = put_back {
                err = err.with_details(format!("rolled back, but: {e}"));
            } else {
                err = err.with_details("every change made before the failure was rolled back");
            }
        } else {
            err = err.with_details(format!(
                "rolling back failed too (DEL will retry from the backup): {}",
                undo_errors.join("; ")
            ));
        }
        return Err(err);
    }
    Ok(())
}

/// Inside the netns: puts every saved original back. Returns the failures
/// (with the step, if one was attempted); gone objects are not failures.
fn restore(k: &mut Kernel, saved: &Backup) -> Vec<(Option<Step>, String)> {
    let (steps, bad) = plan::restore_steps(saved);
    let mut failures: Vec<(Option<Step>, String)> = bad.into_iter().map(|m| (None, m)).collect();
    let ifname = saved.ifname.as_str();
    for step in steps {
        // Link steps go by name (index 0): no RTM_GETLINK first; a link that
        // is gone answers ENODEV, which `is_gone` treats as nothing to restore.
        match k.apply(&step, ifname, 0) {
            Ok(()) => {}
            Err(e) if e.is_gone() => {}
            Err(e) => failures.push((Some(step), e.to_string())),
        }
    }
    failures
}
