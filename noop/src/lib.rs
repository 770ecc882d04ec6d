//! The `noop` CNI plugin: a chain element that changes nothing, and a test
//! double for runtime authors.
//!
//! Production mode (no debug file): ADD prints prevResult converted to the
//! requested cniVersion, or an empty result of that version when there is
//! none. For 0.1.0/0.2.0 that empty result is `{"cniVersion":…,"dns":{}}`
//! (a legacy result with neither `ip4` nor `ip6`: nothing to lose); a
//! prevResult that has interfaces but no address cannot be written in the
//! legacy layout and is the spec's `cannot convert: no valid IP addresses`
//! (code 1). CHECK verifies the same conversion works but prints nothing
//! (the spec: CHECK has no output on success). DEL and GC do nothing.
//! Unlike the upstream double, production mode prints a real result instead
//! of `{}` and a stderr note.
//!
//! Optional `"bridgeNfCallIptables": true` (kubelet's no-op network plugin
//! job): ADD sets `net.bridge.bridge-nf-call-iptables` and `-ip6tables` to 1
//! in the plugin's netns, CHECK verifies them, STATUS answers code 50 when
//! br_netfilter is not loaded. noop never loads modules.
//!
//! Test-double mode: a debug file named by CNI_ARGS `DEBUG=<path>` or config
//! `debugFile`, with the upstream cni `plugins/test/noop` fields (see
//! `debug.rs`). Every command records itself into the debug file and the
//! optional `commandLog`, writes `ReportStderr`, then reports `ReportError`
//! (code `ReportErrorCode` or 999), or `ReportResult` (`PASSTHROUGH`,
//! `INJECT-DNS`, or verbatim), and exits with `ExitWithCode` if > 0. Where
//! upstream panics (debug file missing), this plugin returns an error naming
//! the file. `ReportVersionSupport` drives VERSION when the file is named
//! by CNI_ARGS, and limits the accepted versions of every other command.

pub mod bridge_nf;
pub mod config;
pub mod debug;

use std::path::{Path, PathBuf};

use cni::sysctl::Sysctl;
use cni::{CmdArgs, CniError, CniResult, CniVersion, GcRequest, Reply, Request, StatusRequest};

use crate::config::NoopConfig;
use crate::debug::{append_command_log, CommandLogEntry, DebugFile, RecordedCmdArgs};

/// The plugin, for `cni::skel::run`. The sysctl root is injectable so tests
/// of `bridgeNfCallIptables` need no privileges.
#[derive(Debug, Clone, Default)]
pub struct Plugin {
    sysctl: Sysctl,
}

impl Plugin {
    pub fn with_sysctl(sysctl: Sysctl) -> Plugin {
        Plugin { sysctl }
    }
}

/// One invocation, whatever the command.
struct Call<'a> {
    command: &'static str,
    version: CniVersion,
    stdin: &'a [u8],
    args: &'a str,
    recorded: RecordedCmdArgs,
    prev_result: Option<&'a CniResult>,
}

fn join_paths(path: &[PathBuf]) -> String {
    path.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn recorded_request(req: &Request) -> RecordedCmdArgs {
    RecordedCmdArgs {
        container_id: req.cmd.container_id.clone(),
        netns: req
            .cmd
            .netns
            .as_deref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        if_name: req.cmd.ifname.clone(),
        args: req.cmd.args.clone(),
        path: join_paths(&req.cmd.path),
        netns_override: if req.cmd.netns_override {
            "1".into()
        } else {
            String::new()
        },
        stdin_data: RecordedCmdArgs::encode_stdin(&req.stdin),
    }
}

fn recorded_global(args: &str, path: &[PathBuf], stdin: &[u8]) -> RecordedCmdArgs {
    RecordedCmdArgs {
        args: args.to_string(),
        path: join_paths(path),
        stdin_data: RecordedCmdArgs::encode_stdin(stdin),
        ..RecordedCmdArgs::default()
    }
}

/// The result a pass-through prints: prevResult, or an empty result.
fn passthrough(prev: Option<&CniResult>) -> CniResult {
    prev.cloned().unwrap_or_default()
}

impl Plugin {
    fn call(&self, call: Call<'_>) -> Result<Reply, CniError> {
        let config = NoopConfig::parse(call.stdin)?;
        match config.debug_path(call.args)? {
            Some(path) => test_double(&config, &path, call),
            None => self.production(&config, call),
        }
    }

    fn production(&self, config: &NoopConfig, call: Call<'_>) -> Result<Reply, CniError> {
        let result = passthrough(call.prev_result);
        match call.command {
            "ADD" => {
                if config.bridge_nf_call_iptables {
                    bridge_nf::ensure(&self.sysctl)?;
                }
                Ok(Reply::Result(result))
            }
            "CHECK" => {
                if config.bridge_nf_call_iptables {
                    bridge_nf::verify(&self.sysctl)?;
                }
                result.to_value(call.version)?;
                Ok(Reply::Empty)
            }
            "STATUS" => {
                if config.bridge_nf_call_iptables {
                    bridge_nf::status(&self.sysctl)?;
                }
                Ok(Reply::Empty)
            }
            _ => Ok(Reply::Empty),
        }
    }
}

/// Versions named by `ReportVersionSupport` in the debug file CNI_ARGS
/// names; `None` when there is no such file or field.
fn reported_by_debug_file(cmd: &CmdArgs) -> Option<Vec<String>> {
    let args = cni::args::CniArgs::parse(&cmd.args).ok()?;
    let path = args.get("DEBUG").filter(|p| !p.is_empty())?;
    DebugFile::read(Path::new(path))
        .ok()?
        .report_version_support
}

fn test_double(config: &NoopConfig, path: &Path, call: Call<'_>) -> Result<Reply, CniError> {
    let mut debug = DebugFile::read(path)?;
    if let Some(supported) = &debug.report_version_support {
        if !supported.iter().any(|v| v == call.version.as_str()) {
            return Err(CniError::new(
                cni::ErrorCode::IncompatibleVersion,
                "incompatible CNI versions",
            )
            .with_details(format!(
                "config is {:?}, plugin supports {supported:?} (ReportVersionSupport in {})",
                call.version.as_str(),
                path.display()
            )));
        }
    }
    debug.command = call.command.to_string();
    debug.cmd_args = call.recorded.clone();
    debug.write(path)?;
    if let Some(log) = &config.command_log {
        append_command_log(
            log,
            CommandLogEntry {
                command: call.command.to_string(),
                cmd_args: call.recorded,
            },
        )?;
    }
    let exit_code = debug.exit_with_code.max(0);
    if !debug.report_error.is_empty() {
        let code = match debug.report_error_code {
            0 => cni::ErrorCode::Internal,
            n => cni::ErrorCode::from_u32(n),
        };
        let error = CniError::new(code, debug.report_error.clone());
        return Ok(Reply::Raw {
            stdout: format!("{}\n", error.to_json(call.version)),
            stderr: debug.report_stderr,
            exit_code: 1,
        });
    }
    let stdout = match debug.report_result.as_str() {
        "PASSTHROUGH" | "INJECT-DNS" => {
            let mut result = passthrough(call.prev_result);
            if debug.report_result == "INJECT-DNS" {
                result.dns.nameservers = vec!["1.2.3.4".into()];
            }
            let value = result.to_value(call.version).map_err(|e| {
                e.context(format!("noop: converting prevResult to {}", call.version))
            })?;
            value.to_string()
        }
        other => other.to_string(),
    };
    Ok(Reply::Raw {
        stdout,
        stderr: debug.report_stderr,
        exit_code,
    })
}

impl cni::Plugin for Plugin {
    fn about(&self) -> String {
        format!("CNI noop plugin (rust) v{}", env!("CARGO_PKG_VERSION"))
    }

    fn supported_versions(&self, cmd: &CmdArgs) -> Vec<CniVersion> {
        match reported_by_debug_file(cmd) {
            Some(list) => list.iter().filter_map(|v| v.parse().ok()).collect(),
            None => CniVersion::ALL.to_vec(),
        }
    }

    fn reported_versions(&self, cmd: &CmdArgs) -> Vec<String> {
        reported_by_debug_file(cmd).unwrap_or_else(|| {
            CniVersion::ALL
                .iter()
                .map(|v| v.as_str().to_string())
                .collect()
        })
    }

    fn add(&self, req: &Request) -> Result<Reply, CniError> {
        self.call(self.request_call("ADD", req))
    }

    fn check(&self, req: &Request) -> Result<Reply, CniError> {
        self.call(self.request_call("CHECK", req))
    }

    /// A configuration that does not validate cannot block teardown: noop
    /// owns nothing, so DEL reports it on stderr and succeeds. (A valid one
    /// naming a debug file still drives the test double.)
    fn del(&self, req: &Request) -> Result<Reply, CniError> {
        if let Err(e) = NoopConfig::parse(&req.stdin) {
            req.log
                .warn(format!("{} (ignored by DEL: noop owns nothing)", e.msg));
            return Ok(Reply::Empty);
        }
        self.call(self.request_call("DEL", req))
    }

    fn gc(&self, req: &GcRequest) -> Result<Reply, CniError> {
        self.call(Call {
            command: "GC",
            version: req.version,
            stdin: &req.stdin,
            args: &req.args,
            recorded: recorded_global(&req.args, &req.path, &req.stdin),
            prev_result: None,
        })
    }

    fn status(&self, req: &StatusRequest) -> Result<Reply, CniError> {
        self.call(Call {
            command: "STATUS",
            version: req.version,
            stdin: &req.stdin,
            args: &req.args,
            recorded: recorded_global(&req.args, &req.path, &req.stdin),
            prev_result: None,
        })
    }
}

impl Plugin {
    fn request_call<'a>(&self, command: &'static str, req: &'a Request) -> Call<'a> {
        Call {
            command,
            version: req.version,
            stdin: &req.stdin,
            args: &req.cmd.args,
            recorded: recorded_request(req),
            prev_result: req.prev_result.as_ref(),
        }
    }
}
