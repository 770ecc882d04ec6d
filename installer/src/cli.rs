//! The command line (every setting also an environment variable, which is how
//! the DaemonSet passes them) and the chain it asks for. Parsing and
//! validation only; the work is in `node` and `watch`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::conflist::ChainSpec;
use crate::error::InstallError;
use crate::json::{GoObject, Json, Object};

pub const DEFAULT_READINESS_FILE: &str = "/run/cni-install/ready";

/// The plugins `--chain` may name.
pub const CHAINABLE: [&str; 3] = ["portmap", "bandwidth", "tuning"];

#[derive(Debug, Parser)]
#[command(
    name = "cni-install",
    version,
    about = "Installs the CNI plugins on this node and chains them into its network"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Install the plugins, chain them, and keep them chained (inotify on the
    /// conf dir) until SIGTERM or SIGINT.
    Run(Settings),
    /// Install the plugins and chain them once, then exit.
    Once(Settings),
    /// Exit 0 when the readiness file exists (the DaemonSet's readiness probe;
    /// the image has no shell).
    Ready {
        #[arg(long, env = "CNI_INSTALL_READINESS_FILE", default_value = DEFAULT_READINESS_FILE)]
        readiness_file: PathBuf,
    },
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Where the plugin binaries to install are (default: the directory
    /// holding cni-install itself).
    #[arg(long, env = "CNI_INSTALL_SOURCE_DIR")]
    pub source_dir: Option<PathBuf>,
    /// The host's CNI bin dir.
    #[arg(long, env = "CNI_INSTALL_BIN_DIR", default_value = "/opt/cni/bin")]
    pub bin_dir: PathBuf,
    /// The host's CNI conf dir.
    #[arg(long, env = "CNI_INSTALL_CONF_DIR", default_value = "/etc/cni/net.d")]
    pub conf_dir: PathBuf,
    /// Chain into this file of the conf dir instead of the one runtimes load
    /// first.
    #[arg(long, env = "CNI_INSTALL_CONF_FILE")]
    pub conf_file: Option<String>,
    /// The plugins to copy into the bin dir.
    #[arg(
        long,
        env = "CNI_INSTALL_PLUGINS",
        value_delimiter = ',',
        default_value = "portmap,bandwidth,tuning,loopback,noop"
    )]
    pub plugins: Vec<String>,
    /// The plugins to chain, in order (portmap, bandwidth, tuning); empty
    /// installs binaries only.
    #[arg(
        long,
        env = "CNI_INSTALL_CHAIN",
        value_delimiter = ',',
        default_value = "portmap,bandwidth"
    )]
    pub chain: Vec<String>,
    /// bandwidth's `maxBurst` in bits (0: leave it out). Kubernetes cannot
    /// set a burst and the runtimes send ~4 Gbit, which lets the first
    /// second run unshaped.
    #[arg(long, env = "CNI_INSTALL_MAX_BURST", default_value_t = 1_000_000)]
    pub max_burst: u64,
    /// A JSON object of options for the chained tuning entry (e.g.
    /// `{"sysctl":{"net.ipv4.conf.IFNAME.arp_filter":"1"}}`).
    #[arg(long, env = "CNI_INSTALL_TUNING_CONFIG", default_value = "{}")]
    pub tuning_config: String,
    /// Written once the node is chained, removed when it is not or on exit.
    #[arg(long, env = "CNI_INSTALL_READINESS_FILE", default_value = DEFAULT_READINESS_FILE)]
    pub readiness_file: PathBuf,
    /// On SIGTERM/SIGINT, take back exactly what this process added to the
    /// conflists (the binaries stay: runtimes may be executing them).
    #[arg(long, env = "CNI_INSTALL_CLEANUP_ON_EXIT")]
    pub cleanup_on_exit: bool,
}

impl Settings {
    /// The entries to chain, each with the options it needs.
    pub fn chain_spec(&self) -> Result<ChainSpec, InstallError> {
        let mut plugins = Vec::new();
        for name in self
            .chain
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            if !CHAINABLE.contains(&name) {
                return Err(InstallError::Settings(format!(
                    "--chain: {name:?} is not one of {}",
                    CHAINABLE.join(", ")
                )));
            }
            if !self.plugins.iter().any(|p| p.trim() == name) {
                return Err(InstallError::Settings(format!(
                    "--chain names {name}, which --plugins does not install"
                )));
            }
            plugins.push(self.entry(name)?);
        }
        Ok(ChainSpec { plugins })
    }

    fn entry(&self, name: &str) -> Result<Object, InstallError> {
        let mut obj: Object = vec![("type".into(), Json::String(name.into()))];
        let capability = |cap: &str| Json::Object(vec![(cap.to_string(), Json::Bool(true))]);
        match name {
            "portmap" => obj.set("capabilities", capability("portMappings")),
            "bandwidth" => {
                obj.set("capabilities", capability("bandwidth"));
                if self.max_burst > 0 {
                    obj.set("maxBurst", Json::Number(self.max_burst.into()));
                }
            }
            _ => {
                let extra: Json = serde_json::from_str(&self.tuning_config).map_err(|e| {
                    InstallError::Settings(format!("--tuning-config is not JSON: {e}"))
                })?;
                let Json::Object(extra) = extra else {
                    return Err(InstallError::Settings(
                        "--tuning-config must be a JSON object".into(),
                    ));
                };
                for (k, v) in extra {
                    if k.eq_ignore_ascii_case("type") {
                        return Err(InstallError::Settings(
                            "--tuning-config cannot set \"type\"".into(),
                        ));
                    }
                    obj.push((k, v));
                }
            }
        }
        Ok(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(args: &[&str]) -> Settings {
        let mut argv = vec!["cni-install", "once"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Cmd::Once(s) => s,
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn default_chain_is_portmap_then_bandwidth_with_a_max_burst() {
        let spec = settings(&[]).chain_spec().unwrap();
        let text = serde_json::to_string(
            &spec
                .plugins
                .iter()
                .map(|o| Json::Object(o.clone()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(
            text,
            r#"[{"type":"portmap","capabilities":{"portMappings":true}},{"type":"bandwidth","capabilities":{"bandwidth":true},"maxBurst":1000000}]"#
        );
    }

    #[test]
    fn tuning_takes_its_options_in_order_and_max_burst_zero_leaves_it_out() {
        let s = settings(&[
            "--chain",
            "bandwidth,tuning",
            "--max-burst",
            "0",
            "--tuning-config",
            r#"{"sysctl":{"net.core.somaxconn":"512"},"mtu":1400}"#,
        ]);
        let spec = s.chain_spec().unwrap();
        let text = serde_json::to_string(&Json::Array(
            spec.plugins.into_iter().map(Json::Object).collect(),
        ))
        .unwrap();
        assert_eq!(
            text,
            r#"[{"type":"bandwidth","capabilities":{"bandwidth":true}},{"type":"tuning","sysctl":{"net.core.somaxconn":"512"},"mtu":1400}]"#
        );
    }

    #[test]
    fn bad_chain_settings_are_refused_with_the_reason() {
        let err = |args: &[&str]| settings(args).chain_spec().unwrap_err().to_string();
        assert_eq!(
            err(&["--chain", "flannel"]),
            r#"--chain: "flannel" is not one of portmap, bandwidth, tuning"#
        );
        assert_eq!(
            err(&["--plugins", "portmap", "--chain", "portmap,bandwidth"]),
            "--chain names bandwidth, which --plugins does not install"
        );
        assert_eq!(
            err(&["--chain", "tuning", "--tuning-config", "[1]"]),
            "--tuning-config must be a JSON object"
        );
        assert_eq!(
            err(&["--chain", "tuning", "--tuning-config", r#"{"Type":"x"}"#]),
            "--tuning-config cannot set \"type\""
        );
        assert!(settings(&["--chain", ""])
            .chain_spec()
            .unwrap()
            .plugins
            .is_empty());
    }
}
