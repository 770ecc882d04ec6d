//! The iptables processes, the one place that spawns them: `ip[6]tables-<flavour>-save -t nat`
//! and `ip[6]tables-<flavour>-restore -w 5 --noflush` (one transaction, the
//! xtables lock waited for at most 5 s), plus which flavour (nft or legacy)
//! a family's rules go to. Shared with [`crate::upstream`], which removes
//! the reference plugin's rules through the same runner.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::IptablesError;
use crate::upstream::iptables::{parse_save, parse_table, NatTable};

/// Seconds `iptables-restore` waits for the xtables lock.
const XTABLES_WAIT: &str = "5";

/// One iptables implementation of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// iptables-nft: rules in the nf_tables table `ip nat` / `ip6 nat`.
    Nft { v6: bool },
    /// iptables-legacy: the x_tables `nat` table.
    Legacy { v6: bool },
}

impl Flavour {
    /// Whether this is the IPv6 flavour.
    pub fn v6(self) -> bool {
        match self {
            Flavour::Nft { v6 } | Flavour::Legacy { v6 } => v6,
        }
    }

    /// The program name of `what` (`save` or `restore`).
    pub fn tool(self, what: &str) -> String {
        let (v6, kind) = match self {
            Flavour::Nft { v6 } => (v6, "nft"),
            Flavour::Legacy { v6 } => (v6, "legacy"),
        };
        format!("{}tables-{kind}-{what}", if v6 { "ip6" } else { "ip" })
    }

    /// The same implementation for the other family or this one.
    pub fn with_v6(self, v6: bool) -> Flavour {
        match self {
            Flavour::Nft { .. } => Flavour::Nft { v6 },
            Flavour::Legacy { .. } => Flavour::Legacy { v6 },
        }
    }
}

/// Runs `program args`, feeding `input`; its stdout on success.
pub fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<String, IptablesError> {
    let spawn = |source| IptablesError::Spawn {
        program: program.to_string(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn)?;
    if let (Some(mut stdin), Some(text)) = (child.stdin.take(), input) {
        stdin.write_all(text.as_bytes()).map_err(spawn)?;
    }
    let out = child.wait_with_output().map_err(spawn)?;
    if !out.status.success() {
        return Err(IptablesError::Failed {
            program: program.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            input: input.map(str::to_string),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `nat` table of `flavour`, parsed.
pub fn save(flavour: Flavour) -> Result<NatTable, IptablesError> {
    Ok(parse_save(&run(
        &flavour.tool("save"),
        &["-t", "nat"],
        None,
    )?))
}

/// The `raw` table of `flavour`, parsed (a legacy `raw` table not loaded
/// is empty, and is not loaded by looking: `/proc/net/ip_tables_names`).
pub fn save_raw(flavour: Flavour) -> Result<NatTable, IptablesError> {
    if let Flavour::Legacy { v6 } = flavour {
        let names = if v6 {
            "/proc/net/ip6_tables_names"
        } else {
            "/proc/net/ip_tables_names"
        };
        let loaded = std::fs::read_to_string(names)
            .map(|s| s.lines().any(|l| l.trim() == "raw"))
            .unwrap_or(false);
        if !loaded {
            return Ok(NatTable::default());
        }
    }
    Ok(parse_table(
        &run(&flavour.tool("save"), &["-t", "raw"], None)?,
        "raw",
    ))
}

/// Applies `input` as one `--noflush` transaction.
pub fn restore(flavour: Flavour, input: &str) -> Result<(), IptablesError> {
    run(
        &flavour.tool("restore"),
        &["-w", XTABLES_WAIT, "--noflush"],
        Some(input),
    )
    .map(drop)
}

/// The first `name` on `PATH` (where [`run`] finds it), if any.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The implementation the host's `iptables` command is (Debian's
/// alternatives point it at `xtables-nft-multi` or `xtables-legacy-multi`):
/// legacy when its resolved name says so, else nft.
pub fn system_flavour(v6: bool) -> Flavour {
    let legacy = find_program(if v6 { "ip6tables" } else { "iptables" })
        .and_then(|p| std::fs::canonicalize(p).ok())
        .is_some_and(|p| is_legacy_binary(&p));
    if legacy {
        Flavour::Legacy { v6 }
    } else {
        Flavour::Nft { v6 }
    }
}

fn is_legacy_binary(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains("legacy"))
}
