//! Pure planning: from the validated config and what is currently in the
//! netns, the ordered changes an ADD makes (each with its undo), the backup
//! that records the originals, the steps DEL takes to restore a backup, and
//! the first difference CHECK reports. No I/O here.
//!
//! Apply order (upstream's): sysctls in config order, then MAC → promisc →
//! MTU → allmulti → txqlen, one kernel request per step. Restores run in the
//! exact reverse order. Values already as configured are not touched and not
//! backed up, so a repeated ADD keeps the first ADD's originals.

use std::fmt;

use cni::args::Owner;
use cni::sysctl::SysctlKey;
use serde::Serialize;

use crate::backup::{Backup, SavedSysctl};
use crate::config::Config;
use crate::mac::Mac;

/// The link attributes tuning can change, as read from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkState {
    pub index: u32,
    /// `None` when the link's address is not a 6-byte Ethernet address.
    pub mac: Option<Mac>,
    pub promisc: bool,
    pub mtu: u32,
    pub allmulti: bool,
    pub tx_qlen: u32,
}

/// The current values of everything the config names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Current value of each `config.sysctls[i]`.
    pub sysctls: Vec<String>,
    /// `None` when the config sets no link attribute (the link is not read).
    pub link: Option<LinkState>,
}

/// One kernel write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Step {
    Sysctl {
        key: String,
        #[serde(serialize_with = "serialize_key")]
        path: SysctlKey,
        value: String,
    },
    Mac(Mac),
    Promisc(bool),
    Mtu(u32),
    Allmulti(bool),
    TxQLen(u32),
}

/// `SysctlKey` has no serde impl; plans show it by its path.
fn serialize_key<S: serde::Serializer>(k: &SysctlKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.as_str())
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Sysctl { key, path, value } => {
                write!(f, "sysctl {key} (/proc/sys/{path}) = {value:?}")
            }
            Step::Mac(m) => write!(f, "MAC {m}"),
            Step::Promisc(on) => write!(f, "promisc {}", on_off(*on)),
            Step::Mtu(m) => write!(f, "MTU {m}"),
            Step::Allmulti(on) => write!(f, "allmulticast {}", on_off(*on)),
            Step::TxQLen(q) => write!(f, "txqueuelen {q}"),
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// A change and the step that undoes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub set: Step,
    pub undo: Step,
}

/// What an ADD does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// The originals of `changes` (empty when nothing changes).
    pub backup: Backup,
}

/// Why an ADD cannot be planned (a bug or a race, not bad input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The config sets link attributes but the link was not observed.
    #[error("link {ifname} was not read")]
    LinkNotRead { ifname: String },
    /// The link has no 6-byte address to restore on DEL.
    #[error("link {ifname} has no Ethernet address to back up before setting MAC {mac}")]
    NoMacToBackUp { ifname: String, mac: Mac },
}

/// Sysctl values compare with whitespace runs collapsed, so
/// `"1024 65000"` matches the kernel's `"1024\t65000"`.
pub fn same_value(a: &str, b: &str) -> bool {
    a.split_whitespace().eq(b.split_whitespace())
}

/// The changes an ADD makes, in order, and their backup.
pub fn plan(
    config: &Config,
    owner: &Owner,
    netns: Option<&std::path::Path>,
    observed: &Observed,
) -> Result<Plan, PlanError> {
    let mut changes = Vec::new();
    let mut backup = Backup::new(owner, netns);
    for (s, current) in config.sysctls.iter().zip(&observed.sysctls) {
        if same_value(&s.value, current) {
            continue;
        }
        let step = |value: &str| Step::Sysctl {
            key: s.key.clone(),
            path: s.path.clone(),
            value: value.to_string(),
        };
        changes.push(Change {
            set: step(&s.value),
            undo: step(current),
        });
        backup.sysctls.push(SavedSysctl {
            key: s.key.clone(),
            path: s.path.as_str().to_string(),
            value: current.clone(),
        });
    }
    let want = &config.link;
    if want.is_empty() {
        return Ok(Plan { changes, backup });
    }
    let Some(link) = &observed.link else {
        return Err(PlanError::LinkNotRead {
            ifname: owner.ifname.clone(),
        });
    };
    if let Some(mac) = want.mac {
        match link.mac {
            Some(cur) if cur == mac => {}
            Some(cur) => {
                changes.push(Change {
                    set: Step::Mac(mac),
                    undo: Step::Mac(cur),
                });
                backup.link.mac = Some(cur.to_string());
            }
            None => {
                return Err(PlanError::NoMacToBackUp {
                    ifname: owner.ifname.clone(),
                    mac,
                })
            }
        }
    }
    let c = &mut changes;
    let saved = &mut backup.link;
    saved.promisc = change(c, want.promisc, link.promisc, Step::Promisc).or(saved.promisc);
    saved.mtu = change(c, want.mtu, link.mtu, Step::Mtu).or(saved.mtu);
    saved.allmulti = change(c, want.allmulti, link.allmulti, Step::Allmulti).or(saved.allmulti);
    saved.tx_qlen = change(c, want.tx_qlen, link.tx_qlen, Step::TxQLen).or(saved.tx_qlen);
    Ok(Plan { changes, backup })
}

/// Adds the change from `have` to `want` (when it differs) and returns the
/// value to back up: `have`, or `None` when nothing changes.
fn change<T: Copy + PartialEq>(
    changes: &mut Vec<Change>,
    want: Option<T>,
    have: T,
    step: fn(T) -> Step,
) -> Option<T> {
    let want = want.filter(|w| *w != have)?;
    changes.push(Change {
        set: step(want),
        undo: step(have),
    });
    Some(have)
}

/// The undo steps of the first `applied` changes, newest first.
pub fn rollback(plan: &Plan, applied: usize) -> Vec<Step> {
    plan.changes[..applied.min(plan.changes.len())]
        .iter()
        .rev()
        .map(|c| c.undo.clone())
        .collect()
}

/// The steps that put a backup's originals back: link attributes in reverse
/// apply order (txqlen, allmulti, MTU, promisc, MAC), then sysctls newest
/// first. A corrupt entry is reported and skipped.
pub fn restore_steps(backup: &Backup) -> (Vec<Step>, Vec<String>) {
    let mut steps = Vec::new();
    let mut bad = Vec::new();
    let l = &backup.link;
    if let Some(q) = l.tx_qlen {
        steps.push(Step::TxQLen(q));
    }
    if let Some(a) = l.allmulti {
        steps.push(Step::Allmulti(a));
    }
    if let Some(m) = l.mtu {
        steps.push(Step::Mtu(m));
    }
    if let Some(p) = l.promisc {
        steps.push(Step::Promisc(p));
    }
    if let Some(m) = &l.mac {
        match Mac::parse(m) {
            Ok(mac) => steps.push(Step::Mac(mac)),
            Err(e) => bad.push(format!("saved MAC: {e}")),
        }
    }
    for s in backup.sysctls.iter().rev() {
        match SysctlKey::parse(&s.key, &backup.ifname) {
            Ok(path) if path.as_str() == s.path => steps.push(Step::Sysctl {
                key: s.key.clone(),
                path,
                value: s.value.clone(),
            }),
            Ok(path) => bad.push(format!(
                "saved sysctl {:?} normalises to {path}, not {}",
                s.key, s.path
            )),
            Err(e) => bad.push(format!("saved sysctl {:?}: {e}", s.key)),
        }
    }
    (steps, bad)
}

/// The backup that remains after restoring: only the entries whose steps
/// failed (by index into `restore_steps`' output).
pub fn remaining_backup(backup: &Backup, failed: &[Step]) -> Backup {
    let mut rest = backup.clone();
    rest.sysctls.retain(|s| {
        failed
            .iter()
            .any(|f| matches!(f, Step::Sysctl { path, .. } if path.as_str() == s.path))
    });
    let has = |pred: fn(&Step) -> bool| failed.iter().any(pred);
    if !has(|s| matches!(s, Step::Mac(_))) {
        rest.link.mac = None;
    }
    if !has(|s| matches!(s, Step::Promisc(_))) {
        rest.link.promisc = None;
    }
    if !has(|s| matches!(s, Step::Mtu(_))) {
        rest.link.mtu = None;
    }
    if !has(|s| matches!(s, Step::Allmulti(_))) {
        rest.link.allmulti = None;
    }
    if !has(|s| matches!(s, Step::TxQLen(_))) {
        rest.link.tx_qlen = None;
    }
    rest
}

/// What CHECK reports: the first configured value that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub what: String,
    pub configured: String,
    pub current: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tuning: configured {} is {}, current value is {}",
            self.what, self.configured, self.current
        )
    }
}

/// Compares exactly what the config sets with what is there.
pub fn first_difference(config: &Config, ifname: &str, observed: &Observed) -> Option<Difference> {
    for (s, current) in config.sysctls.iter().zip(&observed.sysctls) {
        if !same_value(&s.value, current) {
            return Some(Difference {
                what: format!("sysctl {} (/proc/sys/{})", s.key, s.path),
                configured: s.value.clone(),
                current: current.clone(),
            });
        }
    }
    let link = observed.link.as_ref()?;
    let want = &config.link;
    let diff = |what: &str, configured: String, current: String| {
        (configured != current).then(|| Difference {
            what: format!("{what} of {ifname}"),
            configured,
            current,
        })
    };
    let mac_text = |m: Option<Mac>| m.map_or_else(|| "(none)".to_string(), |m| m.to_string());
    want.mac
        .and_then(|m| diff("MAC", m.to_string(), mac_text(link.mac)))
        .or_else(|| {
            want.promisc.and_then(|p| {
                diff(
                    "promisc",
                    on_off(p).to_string(),
                    on_off(link.promisc).to_string(),
                )
            })
        })
        .or_else(|| {
            want.mtu
                .and_then(|m| diff("MTU", m.to_string(), link.mtu.to_string()))
        })
        .or_else(|| {
            want.allmulti.and_then(|a| {
                diff(
                    "allmulticast",
                    on_off(a).to_string(),
                    on_off(link.allmulti).to_string(),
                )
            })
        })
        .or_else(|| {
            want.tx_qlen
                .and_then(|q| diff("txqueuelen", q.to_string(), link.tx_qlen.to_string()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Config {
        Config::parse(json.as_bytes(), "", "eth0").unwrap()
    }

    fn link() -> LinkState {
        LinkState {
            index: 7,
            mac: Some(Mac([0x0a, 0x58, 0, 0, 0, 1])),
            promisc: false,
            mtu: 1500,
            allmulti: false,
            tx_qlen: 1000,
        }
    }

    fn owner() -> Owner {
        Owner::new("net", "ctr", "eth0")
    }

    const FULL: &str = r#"{"sysctl":{"net.ipv4.conf.IFNAME.arp_filter":"1","net.core.somaxconn":"1024"},
        "mac":"02:00:00:00:00:09","promisc":true,"mtu":1400,"allmulti":true,"txQLen":50}"#;

    #[test]
    fn full_plan_orders_sysctls_then_mac_promisc_mtu_allmulti_txqlen() {
        let observed = Observed {
            sysctls: vec!["0".into(), "4096\n".trim().into()],
            link: Some(link()),
        };
        let p = plan(&config(FULL), &owner(), None, &observed).unwrap();
        insta::assert_json_snapshot!("full_plan_changes", p.changes);
        insta::assert_snapshot!("full_plan_backup", crate::backup::encode(&p.backup));
    }

    #[test]
    fn values_already_set_are_neither_changed_nor_backed_up() {
        let observed = Observed {
            sysctls: vec!["1".into(), "1024".into()],
            link: Some(LinkState {
                mac: Some(Mac([2, 0, 0, 0, 0, 9])),
                promisc: true,
                mtu: 1400,
                allmulti: true,
                tx_qlen: 50,
                ..link()
            }),
        };
        let p = plan(&config(FULL), &owner(), None, &observed).unwrap();
        assert!(p.changes.is_empty());
        assert!(p.backup.is_empty());
        assert_eq!(first_difference(&config(FULL), "eth0", &observed), None);
    }

    #[test]
    fn rollback_undoes_applied_changes_newest_first() {
        let observed = Observed {
            sysctls: vec!["0".into(), "4096".into()],
            link: Some(link()),
        };
        let p = plan(&config(FULL), &owner(), None, &observed).unwrap();
        let undo: Vec<String> = rollback(&p, 3).iter().map(|s| s.to_string()).collect();
        assert_eq!(
            undo,
            [
                "MAC 0a:58:00:00:00:01",
                "sysctl net.core.somaxconn (/proc/sys/net/core/somaxconn) = \"4096\"",
                "sysctl net.ipv4.conf.IFNAME.arp_filter (/proc/sys/net/ipv4/conf/eth0/arp_filter) = \"0\"",
            ]
        );
        assert!(rollback(&p, 0).is_empty());
    }

    #[test]
    fn restore_steps_reverse_the_apply_order() {
        let observed = Observed {
            sysctls: vec!["0".into(), "4096".into()],
            link: Some(link()),
        };
        let p = plan(&config(FULL), &owner(), None, &observed).unwrap();
        let (steps, bad) = restore_steps(&p.backup);
        assert!(bad.is_empty());
        let text: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            text,
            [
                "txqueuelen 1000",
                "allmulticast off",
                "MTU 1500",
                "promisc off",
                "MAC 0a:58:00:00:00:01",
                "sysctl net.core.somaxconn (/proc/sys/net/core/somaxconn) = \"4096\"",
                "sysctl net.ipv4.conf.IFNAME.arp_filter (/proc/sys/net/ipv4/conf/eth0/arp_filter) = \"0\"",
            ]
        );
        // Only failed entries remain.
        let rest = remaining_backup(&p.backup, &[steps[2].clone(), steps[5].clone()]);
        assert_eq!(rest.link.mtu, Some(1500));
        assert_eq!(rest.link.mac, None);
        assert_eq!(rest.sysctls.len(), 1);
        assert_eq!(rest.sysctls[0].path, "net/core/somaxconn");
    }

    #[test]
    fn restore_steps_report_tampered_entries() {
        let mut b = Backup::new(&owner(), None);
        b.sysctls.push(SavedSysctl {
            key: "kernel.hostname".into(),
            path: "kernel/hostname".into(),
            value: "x".into(),
        });
        b.sysctls.push(SavedSysctl {
            key: "net.core.somaxconn".into(),
            path: "net/core/other".into(),
            value: "x".into(),
        });
        b.link.mac = Some("bogus".into());
        let (steps, bad) = restore_steps(&b);
        assert!(steps.is_empty());
        assert_eq!(bad.len(), 3, "{bad:?}");
    }

    #[test]
    fn check_names_the_first_difference() {
        let c = config(FULL);
        let mut observed = Observed {
            sysctls: vec!["1".into(), "1024".into()],
            link: Some(LinkState {
                mac: Some(Mac([2, 0, 0, 0, 0, 9])),
                promisc: true,
                mtu: 1400,
                allmulti: true,
                tx_qlen: 50,
                ..link()
            }),
        };
        observed.sysctls[1] = "700".into();
        assert_eq!(
            first_difference(&c, "eth0", &observed).unwrap().to_string(),
            "tuning: configured sysctl net.core.somaxconn (/proc/sys/net/core/somaxconn) is 1024, current value is 700"
        );
        observed.sysctls[1] = "1024".into();
        if let Some(l) = observed.link.as_mut() {
            l.mtu = 1500;
        }
        assert_eq!(
            first_difference(&c, "eth0", &observed).unwrap().to_string(),
            "tuning: configured MTU of eth0 is 1400, current value is 1500"
        );
        if let Some(l) = observed.link.as_mut() {
            l.promisc = false;
        }
        assert_eq!(
            first_difference(&c, "eth0", &observed).unwrap().to_string(),
            "tuning: configured promisc of eth0 is on, current value is off"
        );
    }

    #[test]
    fn whitespace_insensitive_sysctl_values() {
        assert!(same_value("1024 65000", "1024\t65000"));
        assert!(!same_value("1", "0"));
    }
}
