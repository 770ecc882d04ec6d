//! The plugin skeleton: reads the CNI environment and stdin, validates them as
//! the spec says, dispatches to a [`Plugin`], and turns the outcome into stdout
//! JSON and an exit code. `run_with` takes everything injected so dispatch is
//! testable in-process and in parallel; `run` wires it to the real process.

use std::collections::HashMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

// `run_with` turns a panic into a spec error (code 999) with `catch_unwind`;
// with `panic = "abort"` the process would die without printing one.
// cargo-fuzz builds with `-C panic=abort` and `--cfg fuzzing` (there a
// panic is the finding, and libFuzzer reports it); nothing else sets
// `fuzzing`, so a release build cannot pass this by accident.
#[cfg(all(panic = "abort", not(fuzzing)))]
compile_error!("cni::skel needs panic = \"unwind\" (a panic must still print a spec error)");

use crate::args::CniArgs;
use crate::error::{to_indented, CniError, ErrorCode};
use crate::gojson::{self, Document};
use crate::types::{Attachment, CniResult, NetConf};
use crate::version::{format_list, CniVersion};

/// The verbs of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `ADD`: attach the container.
    Add,
    /// `CHECK`: verify an attachment.
    Check,
    /// `DEL`: detach (idempotent).
    Del,
    /// `GC`: remove what no valid attachment owns.
    Gc,
    /// `STATUS`: is the plugin ready for ADD.
    Status,
    /// `VERSION`: the supported versions.
    Version,
}

impl Command {
    /// The verb named by `CNI_COMMAND`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "CHECK" => Command::Check,
            "DEL" => Command::Del,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    /// The verb as `CNI_COMMAND` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Check => "CHECK",
            Command::Del => "DEL",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }
}

/// The environment of one invocation, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CmdArgs {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `None` when `CNI_NETNS` is empty or unset (allowed for DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// Raw `CNI_ARGS`.
    pub args: String,
    /// `CNI_PATH`, split at `:`.
    pub path: Vec<PathBuf>,
    /// `CNI_NETNS_OVERRIDE` is set (`1` or `true`).
    pub netns_override: bool,
}

/// Everything a handler of ADD, CHECK or DEL gets.
#[derive(Debug, Clone)]
pub struct Request {
    /// The verb.
    pub command: Command,
    /// The invocation's environment.
    pub cmd: CmdArgs,
    /// The negotiated cniVersion.
    pub version: CniVersion,
    /// The common fields of the configuration.
    pub conf: NetConf,
    /// The whole stdin, for the plugin's own fields.
    pub stdin: Vec<u8>,
    /// `prevResult` in canonical form (ignored by DEL when it does not
    /// parse, with a warning in [`Request::log`]).
    pub prev_result: Option<CniResult>,
    /// What the handler ignored, for stderr (handlers never print).
    pub log: Log,
}

/// Lines for stderr. A handler that ignores bad input (DEL must not fail
/// on a malformed `runtimeConfig`, say) says so here; skel writes every
/// line to stderr once the handler returns, whatever it returned. Shared
/// by clones, usable from the netns worker threads handlers start.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    /// Records one line (no trailing newline needed).
    pub fn warn(&self, line: impl Into<String>) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line.into());
        }
    }

    /// The lines recorded so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn write_to(&self, out: &mut dyn Write) {
        for line in self.lines() {
            let _ = writeln!(out, "{line}");
        }
    }
}

impl Request {
    /// `CNI_ARGS` parsed; a malformed string is an error (code 4).
    pub fn cni_args(&self) -> Result<CniArgs, CniError> {
        CniArgs::parse(&self.cmd.args)
    }

    /// Owner tag for everything this attachment creates.
    pub fn owner(&self) -> crate::args::Owner {
        crate::args::Owner::new(&self.conf.name, &self.cmd.container_id, &self.cmd.ifname)
    }
}

/// What a GC handler gets.
#[derive(Debug, Clone)]
pub struct GcRequest {
    /// The negotiated cniVersion.
    pub version: CniVersion,
    /// The common fields of the configuration.
    pub conf: NetConf,
    /// The whole stdin, for the plugin's own fields.
    pub stdin: Vec<u8>,
    /// `cni.dev/valid-attachments`: what GC must keep.
    pub valid_attachments: Vec<Attachment>,
    /// `CNI_PATH`, split at `:`.
    pub path: Vec<PathBuf>,
    /// Raw `CNI_ARGS` (runtimes do not usually send it with GC).
    pub args: String,
}

/// What a STATUS handler gets.
#[derive(Debug, Clone)]
pub struct StatusRequest {
    /// The negotiated cniVersion.
    pub version: CniVersion,
    /// The common fields of the configuration.
    pub conf: NetConf,
    /// The whole stdin, for the plugin's own fields.
    pub stdin: Vec<u8>,
    /// `CNI_PATH`, split at `:`.
    pub path: Vec<PathBuf>,
    /// Raw `CNI_ARGS` (runtimes do not usually send it with STATUS).
    pub args: String,
}

/// A handler's successful outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A result, printed in the requested version's layout.
    Result(CniResult),
    /// Nothing on stdout (CHECK, DEL, GC, STATUS).
    Empty,
    /// Verbatim stdout and stderr and an exit code (test doubles only).
    Raw {
        /// Printed on stdout as is.
        stdout: String,
        /// Printed on stderr as is.
        stderr: String,
        /// The process's exit code.
        exit_code: i32,
    },
}

impl From<CniResult> for Reply {
    fn from(r: CniResult) -> Reply {
        Reply::Result(r)
    }
}

/// A CNI plugin. Handlers never print, read the environment or exit.
pub trait Plugin {
    /// Shown on stderr when the plugin runs with no `CNI_COMMAND`.
    fn about(&self) -> String;

    /// The versions this plugin accepts for this invocation.
    fn supported_versions(&self, _cmd: &CmdArgs) -> Vec<CniVersion> {
        CniVersion::ALL.to_vec()
    }

    /// What VERSION reports; by default the supported versions.
    fn reported_versions(&self, cmd: &CmdArgs) -> Vec<String> {
        self.supported_versions(cmd)
            .iter()
            .map(|v| v.as_str().to_string())
            .collect()
    }

    /// ADD: attach and return the result.
    fn add(&self, req: &Request) -> Result<Reply, CniError>;
    /// CHECK: verify the attachment described by `prevResult`.
    fn check(&self, req: &Request) -> Result<Reply, CniError>;
    /// DEL: detach; idempotent, never fails on input it does not need.
    fn del(&self, req: &Request) -> Result<Reply, CniError>;
    /// GC (1.1.0): remove what no valid attachment owns; nothing by default.
    fn gc(&self, _req: &GcRequest) -> Result<Reply, CniError> {
        Ok(Reply::Empty)
    }
    /// STATUS (1.1.0): ready for ADD; ready by default.
    fn status(&self, _req: &StatusRequest) -> Result<Reply, CniError> {
        Ok(Reply::Empty)
    }
}

/// A plugin binary's whole `main.rs`, after `#![no_main]`:
/// `cni::plugin_main!(portmap::Plugin);` defines the C `main` that glibc
/// calls, which runs the plugin with [`run`].
///
/// Without `#![no_main]`, Rust's runtime would first set up what a plugin
/// process never uses: the main thread's stack-overflow handler (it reads
/// and parses `/proc/self/maps` to find the guard page, maps an alternate
/// signal stack, installs SIGSEGV and SIGBUS handlers, and unmaps it all
/// again at exit), about 0.1 ms of every invocation here (a static binary
/// that does nothing: 0.55–0.68 ms spawn to reap against 0.62–0.83 ms).
/// What it did that matters, [`run`] does itself: SIGPIPE ignored and the
/// standard descriptors made valid. A stack overflow is then a plain
/// SIGSEGV, without the runtime's message.
#[macro_export]
macro_rules! plugin_main {
    ($plugin:expr) => {
        /// The process's entry point (see `cni::plugin_main!`).
        #[no_mangle]
        pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
            $crate::skel::run(&$plugin)
        }
    };
}

/// What Rust's runtime does before `main` and a plugin needs (see
/// [`plugin_main!`]; harmless when the runtime did it already): a closed
/// standard descriptor is opened on `/dev/null`, so that no socket or file
/// of the plugin takes its number and receives what is printed to it, and
/// SIGPIPE is ignored, so that a runtime that stopped reading gets an exit
/// code and not a signal.
fn standard_process() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: plain system calls on this process's own descriptors and
    // signal disposition; /dev/null opened on the lowest free number is
    // the closed one, and is meant to stay open.
    unsafe {
        if libc::poll(fds.as_mut_ptr(), 3, 0) > 0 {
            for p in &fds {
                if p.revents & libc::POLLNVAL != 0 {
                    libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                }
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Runs `plugin` as this process: real environment, stdin, stdout; exits.
pub fn run(plugin: &dyn Plugin) -> ! {
    standard_process();
    std::panic::set_hook(Box::new(|info| {
        eprintln!("plugin panicked: {info}");
    }));
    let env: HashMap<String, String> = std::env::vars().collect();
    // Sized so a typical config is read in one call (an empty Vec starts
    // with 32-byte probe reads and doubles: six reads for 500 bytes).
    let mut stdin = Vec::with_capacity(64 * 1024);
    let command = env.get("CNI_COMMAND").map(String::as_str).unwrap_or("");
    if command != "VERSION" && !command.is_empty() {
        if let Err(e) = std::io::Read::read_to_end(&mut std::io::stdin(), &mut stdin) {
            let err = CniError::io(format!("reading stdin: {e}"));
            println!("{}", err.to_json(CniVersion::CURRENT));
            std::process::exit(1);
        }
    }
    let mut out = Vec::new();
    let mut err = std::io::stderr();
    let code = run_with(plugin, &env, &stdin, &mut out, &mut err);
    crate::failpoint::crash_point("printing the answer");
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(&out);
    let _ = stdout.flush();
    std::process::exit(code)
}

/// Dispatches one invocation. Writes the result or error JSON to `stdout`,
/// the about text to `stderr`, and returns the exit code. Panics in the
/// plugin become a code 999 error.
pub fn run_with(
    plugin: &dyn Plugin,
    env: &HashMap<String, String>,
    stdin: &[u8],
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let outcome = catch_unwind(AssertUnwindSafe(|| dispatch(plugin, env, stdin, stderr)));
    let (version, outcome) = match outcome {
        Ok(o) => o,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            (
                CniVersion::CURRENT,
                Err(CniError::internal(format!("plugin panicked: {what}"))),
            )
        }
    };
    match outcome {
        Ok(Output::Text(s)) => {
            let _ = stdout.write_all(s.as_bytes());
            0
        }
        Ok(Output::Raw {
            stdout: s,
            stderr: e,
            exit_code,
        }) => {
            let _ = stderr.write_all(e.as_bytes());
            let _ = stdout.write_all(s.as_bytes());
            exit_code
        }
        Ok(Output::Nothing) => 0,
        Err(e) => {
            let _ = stdout.write_all(e.to_json(version).as_bytes());
            let _ = stdout.write_all(b"\n");
            1
        }
    }
}

enum Output {
    Text(String),
    Raw {
        stdout: String,
        stderr: String,
        exit_code: i32,
    },
    Nothing,
}

const REQUIRED_ADD: &[&str] = &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"];
const REQUIRED_DEL: &[&str] = &["CNI_CONTAINERID", "CNI_IFNAME"];

fn dispatch(
    plugin: &dyn Plugin,
    env: &HashMap<String, String>,
    stdin: &[u8],
    stderr: &mut dyn Write,
) -> (CniVersion, Result<Output, CniError>) {
    let get = |k: &str| env.get(k).cloned().unwrap_or_default();
    let command_text = get("CNI_COMMAND");
    let command_text = command_text.as_str();
    if command_text.is_empty() {
        let versions = plugin.reported_versions(&CmdArgs::default());
        let _ = writeln!(stderr, "{}", plugin.about());
        let _ = writeln!(
            stderr,
            "CNI protocol versions supported: {}",
            versions.join(", ")
        );
        return (CniVersion::CURRENT, Ok(Output::Nothing));
    }
    let Some(command) = Command::parse(command_text) else {
        return (
            CniVersion::CURRENT,
            Err(
                CniError::invalid_env(format!("unknown CNI_COMMAND: {command_text}")).with_details(
                    "CNI_COMMAND must be one of ADD, CHECK, DEL, GC, STATUS, VERSION",
                ),
            ),
        );
    };
    let cmd = match cmd_args(command, &get) {
        Ok(c) => c,
        Err(e) => return (CniVersion::CURRENT, Err(e)),
    };
    if command == Command::Version {
        return (
            CniVersion::CURRENT,
            Ok(Output::Text(version_json(plugin, &cmd))),
        );
    }
    let log = Log::default();
    let parsed = parse_conf(plugin, command, &cmd, stdin, &log);
    let outcome = match parsed {
        Ok((conf, version)) => (
            version,
            handle(plugin, command, cmd, conf, version, stdin, &log),
        ),
        Err((v, e)) => (v, Err(e)),
    };
    log.write_to(stderr);
    outcome
}

fn version_json(plugin: &dyn Plugin, cmd: &CmdArgs) -> String {
    let body = serde_json::json!({
        "cniVersion": CniVersion::CURRENT.as_str(),
        "supportedVersions": plugin.reported_versions(cmd),
    });
    format!("{body}\n")
}

fn cmd_args(command: Command, get: &dyn Fn(&str) -> String) -> Result<CmdArgs, CniError> {
    let required: &[&str] = match command {
        Command::Add | Command::Check => REQUIRED_ADD,
        Command::Del => REQUIRED_DEL,
        Command::Gc | Command::Status | Command::Version => &[],
    };
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|k| get(k).is_empty())
        .collect();
    if !missing.is_empty() {
        return Err(CniError::invalid_env(format!(
            "required env variables [{}] missing",
            missing.join(",")
        ))
        .with_details(format!(
            "{} needs {}",
            command.as_str(),
            required.join(", ")
        )));
    }
    let container_id = get("CNI_CONTAINERID").to_string();
    let ifname = get("CNI_IFNAME").to_string();
    if !required.is_empty() {
        validate_container_id(&container_id)?;
        validate_ifname(&ifname)?;
    }
    let netns = match get("CNI_NETNS").as_str() {
        "" => None,
        p => Some(PathBuf::from(p)),
    };
    let override_text = get("CNI_NETNS_OVERRIDE");
    Ok(CmdArgs {
        container_id,
        netns,
        ifname,
        args: get("CNI_ARGS").to_string(),
        path: std::env::split_paths(&get("CNI_PATH"))
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        netns_override: override_text == "1" || override_text.eq_ignore_ascii_case("true"),
    })
}

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`, the spec's rule for container IDs and
/// network names.
pub fn valid_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// A spec error (code 4) unless `id` is a valid container ID (alphanumeric first, then alphanumerics, `_`, `.`, `-`).
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if valid_identifier(id) {
        Ok(())
    } else {
        Err(
            CniError::invalid_env("invalid characters in containerID").with_details(format!(
                "CNI_CONTAINERID {id:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"
            )),
        )
    }
}

/// The kernel's rules for interface names, with the spec's messages.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let bad = |msg: &str, details: &str| {
        Err(CniError::invalid_env(format!("CNI_IFNAME: {msg}")).with_details(details.to_string()))
    };
    if name.is_empty() {
        return bad("interface name is empty", "");
    }
    if name.len() > 15 {
        return bad(
            "interface name is too long",
            "interface name should be less than 16 characters",
        );
    }
    if name == "." || name == ".." {
        return bad("interface name is . or ..", "");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return bad(
            "interface name contains / or : or whitespace characters",
            "",
        );
    }
    Ok(())
}

type ConfError = (CniVersion, CniError);

/// Common fields a DEL can do without: when one has the wrong type, DEL
/// drops it with a warning instead of failing teardown.
const DEL_OPTIONAL_FIELDS: &[&str] = &[
    "capabilities",
    "cni.dev/valid-attachments",
    "cni.dev/attachments",
];

/// The common fields, decoded with Go's rules. DEL retries without the
/// fields it does not need when they are malformed.
fn decode_conf(command: Command, doc: Document, log: &Log) -> Result<NetConf, gojson::Error> {
    if command != Command::Del {
        return doc.decode();
    }
    match doc.clone().decode() {
        Ok(conf) => Ok(conf),
        Err(e) => {
            let Document::Object(mut entries) = doc else {
                return Err(e);
            };
            entries.retain(|(k, _)| gojson::field_for(k, DEL_OPTIONAL_FIELDS).is_none());
            let conf = Document::Object(entries).decode()?;
            log.warn(format!(
                "ignoring malformed configuration fields DEL does not need: {e}"
            ));
            Ok(conf)
        }
    }
}

fn parse_conf(
    plugin: &dyn Plugin,
    command: Command,
    cmd: &CmdArgs,
    stdin: &[u8],
    log: &Log,
) -> Result<(NetConf, CniVersion), ConfError> {
    let current = CniVersion::CURRENT;
    let decode_err = |e: gojson::Error| {
        (
            current,
            CniError::new(
                ErrorCode::Decode,
                format!("error parsing network config from stdin: {e}"),
            ),
        )
    };
    let doc = Document::parse(stdin).map_err(decode_err)?;
    if !doc.is_object() {
        return Err((
            current,
            CniError::new(
                ErrorCode::Decode,
                "error parsing network config from stdin: not a JSON object",
            ),
        ));
    }
    let conf = decode_conf(command, doc, log).map_err(decode_err)?;
    // As Go's skel: the name is checked before the version.
    check_name(&conf.name).map_err(|e| (current, e))?;
    let version = negotiate_version(plugin, cmd, &conf.cni_version).map_err(|e| (current, e))?;
    Ok((conf, version))
}

/// The network name: non-empty, Go's identifier characters.
fn check_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::invalid_config("missing network name")
            .with_details("the configuration needs a non-empty \"name\""));
    }
    if !valid_identifier(name) {
        return Err(
            CniError::invalid_config("invalid characters found in network name").with_details(
                format!("name {name:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"),
            ),
        );
    }
    Ok(())
}

/// The config's `cniVersion` (absent: 0.1.0), when the plugin supports it.
fn negotiate_version(
    plugin: &dyn Plugin,
    cmd: &CmdArgs,
    cni_version: &str,
) -> Result<CniVersion, CniError> {
    let asked = if cni_version.is_empty() {
        "0.1.0"
    } else {
        cni_version
    };
    let supported = plugin.supported_versions(cmd);
    match asked.parse::<CniVersion>() {
        Ok(v) if supported.contains(&v) => Ok(v),
        _ => Err(
            CniError::new(ErrorCode::IncompatibleVersion, "incompatible CNI versions")
                .with_details(format!(
                    "config is {asked:?}, plugin supports {}",
                    format_list(&supported)
                )),
        ),
    }
}

fn handle(
    plugin: &dyn Plugin,
    command: Command,
    cmd: CmdArgs,
    conf: NetConf,
    version: CniVersion,
    stdin: &[u8],
    log: &Log,
) -> Result<Output, CniError> {
    let stdin = stdin.to_vec();
    version_allows(command, version)?;
    let reply = match command {
        Command::Gc => plugin.gc(&GcRequest {
            version,
            valid_attachments: conf.gc_attachments(),
            conf,
            stdin,
            path: cmd.path,
            args: cmd.args,
        })?,
        Command::Status => plugin.status(&StatusRequest {
            version,
            conf,
            stdin,
            path: cmd.path,
            args: cmd.args,
        })?,
        Command::Add | Command::Check | Command::Del => {
            attachment(plugin, command, cmd, conf, version, stdin, log)?
        }
        // VERSION is answered in `dispatch` before any config is parsed.
        Command::Version => Reply::Empty,
    };
    output(reply, version)
}

/// CHECK needs 0.4.0, GC and STATUS 1.1.0.
fn version_allows(command: Command, version: CniVersion) -> Result<(), CniError> {
    match command {
        Command::Check if !version.allows_check() => Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            "config version does not allow CHECK",
        )
        .with_details(format!(
            "CHECK needs cniVersion 0.4.0 or later, config is {version}"
        ))),
        Command::Gc | Command::Status if !version.allows_gc_and_status() => Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!("config version does not allow {}", command.as_str()),
        )
        .with_details(format!(
            "{} needs cniVersion 1.1.0 or later, config is {version}",
            command.as_str()
        ))),
        _ => Ok(()),
    }
}

/// ADD, CHECK or DEL of one attachment: the netns guards, prevResult, the
/// plugin's handler.
fn attachment(
    plugin: &dyn Plugin,
    command: Command,
    cmd: CmdArgs,
    conf: NetConf,
    version: CniVersion,
    stdin: Vec<u8>,
    log: &Log,
) -> Result<Reply, CniError> {
    if command != Command::Del {
        refuse_non_namespace(&cmd)?;
    }
    if command != Command::Del || cmd.netns.as_deref().is_some_and(|p| p.exists()) {
        guard_own_netns(&cmd)?;
    }
    let prev_result = prev_result(command, &conf, version, log)?;
    let req = Request {
        command,
        cmd,
        version,
        conf,
        stdin,
        prev_result,
        log: log.clone(),
    };
    match command {
        Command::Add => plugin.add(&req),
        Command::Check => plugin.check(&req),
        _ => plugin.del(&req),
    }
}

/// `prevResult` in the config's version; DEL drops one it cannot parse.
fn prev_result(
    command: Command,
    conf: &NetConf,
    version: CniVersion,
    log: &Log,
) -> Result<Option<CniResult>, CniError> {
    let Some(v) = &conf.prev_result else {
        return Ok(None);
    };
    match CniResult::from_value(v, version) {
        Ok((r, _)) => Ok(Some(r)),
        Err(e) if command == Command::Del => {
            log.warn(format!("ignoring prevResult (DEL does not need it): {e}"));
            Ok(None)
        }
        Err(e) => Err(e.context("parsing prevResult")),
    }
}

fn output(reply: Reply, version: CniVersion) -> Result<Output, CniError> {
    match reply {
        Reply::Empty => Ok(Output::Nothing),
        Reply::Raw {
            stdout,
            stderr,
            exit_code,
        } => Ok(Output::Raw {
            stdout,
            stderr,
            exit_code,
        }),
        Reply::Result(r) => Ok(Output::Text(to_indented(&r.to_value(version)?))),
    }
}

/// ADD and CHECK refuse a `CNI_NETNS` that exists but is not a network
/// namespace (a regular file, a directory, a FIFO, a device): code 4, before
/// any plugin sees it. Checked with statfs only, so a FIFO cannot block. A
/// path that does not exist is left to the plugin (portmap, like upstream,
/// never enters the netns).
fn refuse_non_namespace(cmd: &CmdArgs) -> Result<(), CniError> {
    let Some(path) = &cmd.netns else {
        return Ok(());
    };
    match crate::netns::check_kind(path) {
        Err(e @ crate::netns::NetnsError::NotANamespace { .. }) => Err(CniError::invalid_env(
            format!("CNI_NETNS: {e}"),
        )
        .with_details(
            "CNI_NETNS must be the path of a network namespace (e.g. /run/netns/<name>)",
        )),
        _ => Ok(()),
    }
}

/// Refuses to operate on the plugin's own netns (it would, say, take the
/// host's `lo` down), unless `CNI_NETNS_OVERRIDE` is set.
fn guard_own_netns(cmd: &CmdArgs) -> Result<(), CniError> {
    let Some(path) = &cmd.netns else {
        return Ok(());
    };
    if cmd.netns_override {
        return Ok(());
    }
    match crate::netns::is_current(path) {
        Ok(true) => Err(CniError::invalid_netns(
            "plugin's netns and netns from CNI_NETNS should not be the same",
        )
        .with_details(format!(
            "CNI_NETNS {} is the plugin's own netns",
            path.display()
        ))),
        Ok(false) => Ok(()),
        // Plugins report a missing or bad netns themselves, with context.
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    /// In a forked child (the test harness is multi-threaded: the child
    /// makes system calls only): fd 1 closed, then `standard_process`;
    /// exits 0 when fd 1 is `/dev/null` again and SIGPIPE is ignored.
    #[test]
    fn closed_standard_descriptors_are_opened_on_dev_null() {
        // SAFETY: the child runs only async-signal-safe system calls and
        // leaves with `_exit`.
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                libc::close(1);
                super::standard_process();
                let mut target = [0u8; 64];
                let n = libc::readlink(
                    c"/proc/self/fd/1".as_ptr(),
                    target.as_mut_ptr().cast(),
                    target.len(),
                );
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old);
                let dev_null = n == 9 && &target[..9] == b"/dev/null";
                let ignored = old.sa_sigaction == libc::SIG_IGN;
                libc::_exit(if dev_null && ignored { 0 } else { 1 });
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert!(libc::WIFEXITED(status), "{status}");
            assert_eq!(libc::WEXITSTATUS(status), 0);
        }
    }
}
