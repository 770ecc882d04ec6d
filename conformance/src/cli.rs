//! The `cni-conformance` command line: cnitool-compatible `add | check | del
//! <network> <netns>` (same environment: CNI_PATH, NETCONFPATH, CNI_IFNAME,
//! CNI_ARGS, CAP_ARGS; same container ID), plus `gc`, `status`, `validate`,
//! `version`, and the suite's `run`, `bench`, `demo` and hidden `tool`.
//! Turns arguments into runtime calls and prints JSON; owns no CNI semantics.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use crate::conflist::{load_file, load_network, NetworkConfigList};
use crate::exec::ProcessExec;
use crate::runtime::{Runtime, RuntimeConf};

#[derive(Debug, Parser)]
#[command(
    name = "cni-conformance",
    version,
    about = "A libcni-compatible CNI runtime (cnitool-style add/check/del/gc/status) and a conformance suite for CNI plugins",
    after_help = "NETWORK is a network name looked up in NETCONFPATH (first file in lexicographic order with that name wins), or a path to a .conflist/.conf/.json file."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Args)]
struct RuntimeOpts {
    /// Plugin directories, ':'-separated.
    #[arg(long, env = "CNI_PATH", default_value = "/opt/cni/bin")]
    cni_path: String,
    /// Directory of network configurations.
    #[arg(long, env = "NETCONFPATH", default_value = "/etc/cni/net.d")]
    netconfpath: PathBuf,
    /// Result cache directory (libcni's layout under <dir>/results).
    #[arg(long, env = "CNI_CACHE_DIR", default_value = crate::cache::DEFAULT_CACHE_DIR)]
    cache_dir: PathBuf,
    /// Kill a plugin that runs longer than this many seconds (0: never).
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Run every plugin process inside this network namespace (a stand-in
    /// for the host).
    #[arg(long)]
    exec_netns: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct AttachArgs {
    /// Network name (or conflist file).
    network: String,
    /// Path of the container's network namespace.
    netns: PathBuf,
    /// Interface name inside the container.
    #[arg(long, env = "CNI_IFNAME", default_value = "eth0")]
    ifname: String,
    /// CNI_ARGS: K=V;K=V.
    #[arg(long = "args", env = "CNI_ARGS")]
    cni_args: Option<String>,
    /// Capability args as a JSON object, e.g. '{"portMappings":[...]}'.
    #[arg(long = "cap-args", env = "CAP_ARGS")]
    cap_args: Option<String>,
    /// Container ID (default: cnitool's, derived from the netns path).
    #[arg(long, env = "CNI_CONTAINERID")]
    container_id: Option<String>,
    #[command(flatten)]
    runtime: RuntimeOpts,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// ADD the network's plugins in order; prints the result.
    Add(AttachArgs),
    /// CHECK the attachment with the cached result.
    Check(AttachArgs),
    /// DEL the network's plugins in reverse order.
    Del(AttachArgs),
    /// DEL cached attachments of the network not listed with --valid, then
    /// send GC to every plugin (1.1.0).
    Gc {
        /// Network name (or conflist file).
        network: String,
        /// Ignored (cnitool compatibility).
        netns: Option<PathBuf>,
        /// An attachment to keep: CONTAINERID:IFNAME (repeatable).
        #[arg(long = "valid", value_name = "CONTAINERID:IFNAME")]
        valid: Vec<String>,
        #[command(flatten)]
        runtime: RuntimeOpts,
    },
    /// Send STATUS to every plugin (1.1.0).
    Status {
        /// Network name (or conflist file).
        network: String,
        /// Ignored (cnitool compatibility).
        netns: Option<PathBuf>,
        #[command(flatten)]
        runtime: RuntimeOpts,
    },
    /// Check every plugin exists and supports the network's cniVersion.
    Validate {
        /// Network name (or conflist file).
        network: String,
        #[command(flatten)]
        runtime: RuntimeOpts,
    },
    /// Print the versions a plugin supports.
    Version {
        /// Plugin binary name, looked up in CNI_PATH.
        plugin: String,
        #[command(flatten)]
        runtime: RuntimeOpts,
    },
    /// Run the conformance suite against a plugin directory.
    Run(RunArgs),
    /// Measure per-operation latency (optionally against a second directory).
    Bench(BenchArgs),
    /// Show the plugins at work in a throwaway world.
    Demo(DemoArgs),
    /// Traffic helpers the suite runs inside namespaces.
    #[command(hide = true)]
    Tool {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Directory of the plugins under test.
    #[arg(long, default_value = "/opt/cni/bin")]
    plugins: PathBuf,
    /// Directory of the main plugins (bridge, ptp, host-local).
    #[arg(long, default_value = "/usr/lib/cni")]
    main_plugins: PathBuf,
    /// Run only scenarios whose name contains this.
    #[arg(long)]
    only: Option<String>,
    /// text, json or junit.
    #[arg(long, default_value = "text")]
    format: crate::report::Format,
    /// Print each result as it completes (stderr).
    #[arg(long)]
    progress: bool,
}

#[derive(Debug, Args)]
struct BenchArgs {
    #[arg(long, default_value = "/opt/cni/bin")]
    plugins: PathBuf,
    /// The reference plugin directory to compare with.
    #[arg(long)]
    vs: Option<PathBuf>,
    /// Where bridge and host-local come from (both sides).
    #[arg(long, default_value = "/usr/lib/cni")]
    main_plugins: PathBuf,
    /// Numbers of pods mapped to measure portmap at, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pods: Vec<usize>,
    /// Numbers of shaped pods to measure bandwidth at (1000 IFBs take minutes).
    #[arg(long, value_delimiter = ',', default_value = "1,200")]
    shaped_pods: Vec<usize>,
    /// Pods ADDed and DELed in parallel through the whole chain.
    #[arg(long, default_value_t = 50)]
    node_pods: usize,
    /// Rates (Mbit/s) the shaping phase configures, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,50,200")]
    rates: Vec<u64>,
    /// Seconds per throughput run (the first is excluded).
    #[arg(long, default_value_t = 3.0)]
    shaping_seconds: f64,
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    /// Write the Markdown report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the JSON document here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Directory for the SVG plots.
    #[arg(long, default_value = "bench-plots")]
    plots_dir: PathBuf,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[arg(long, default_value = "/opt/cni/bin")]
    plugins: PathBuf,
}

/// Runs the command line `args` (including the program name); returns the
/// exit code. Results go to stdout, errors to stderr.
pub fn main_with(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match run(cli.command) {
        Ok(Some(out)) => {
            println!("{out}");
            0
        }
        Ok(None) => 0,
        Err(Failure { msg, code }) => {
            if !msg.is_empty() {
                eprintln!("cni-conformance: {msg}");
            }
            code
        }
    }
}

/// The process entry point.
pub fn main() -> i32 {
    main_with(std::env::args_os())
}

#[derive(Debug)]
struct Failure {
    msg: String,
    code: i32,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure {
            msg: e.to_string(),
            code: 1,
        }
    }
}

fn run(cmd: Cmd) -> Result<Option<String>, Failure> {
    match cmd {
        Cmd::Add(a) => {
            let (rt, list, conf) = attach(&a)?;
            let out = rt.add_network_list(&list, &conf)?;
            Ok(Some(cni::error::to_indented(&out.raw)))
        }
        Cmd::Check(a) => {
            let (rt, list, conf) = attach(&a)?;
            rt.check_network_list(&list, &conf)?;
            Ok(None)
        }
        Cmd::Del(a) => {
            let (rt, list, conf) = attach(&a)?;
            rt.del_network_list(&list, &conf)?;
            Ok(None)
        }
        Cmd::Gc {
            network,
            netns: _,
            valid,
            runtime,
        } => {
            let valid = valid
                .iter()
                .map(|v| parse_attachment(v))
                .collect::<Result<Vec<_>, _>>()?;
            let list = network_list(&network, &runtime)?;
            runtime_of(&runtime).gc_network_list(&list, &valid)?;
            Ok(None)
        }
        Cmd::Status {
            network,
            netns: _,
            runtime,
        } => {
            let list = network_list(&network, &runtime)?;
            runtime_of(&runtime).status_network_list(&list)?;
            Ok(None)
        }
        Cmd::Validate { network, runtime } => {
            let list = network_list(&network, &runtime)?;
            let caps = runtime_of(&runtime).validate_network_list(&list)?;
            let out = json!({
                "name": list.name,
                "cniVersion": list.cni_version.as_str(),
                "plugins": list.plugin_types(),
                "capabilities": caps,
                "source": list.source.as_ref().map(|p| p.display().to_string()),
            });
            Ok(Some(cni::error::to_indented(&out)))
        }
        Cmd::Version { plugin, runtime } => {
            let versions = runtime_of(&runtime).version_info(&plugin)?;
            Ok(Some(cni::error::to_indented(
                &json!({"plugin": plugin, "supportedVersions": versions}),
            )))
        }
        Cmd::Run(args) => run_suite(args),
        Cmd::Bench(args) => run_bench(args),
        Cmd::Demo(args) => run_demo(args),
        Cmd::Tool { args } => match crate::tools::main(args) {
            0 => Ok(None),
            code => Err(Failure {
                msg: String::new(),
                code,
            }),
        },
    }
}

/// `run`: the scenario suite; the report goes to stdout, exit 1 if any
/// case failed.
fn run_suite(args: RunArgs) -> Result<Option<String>, Failure> {
    let mut opts = crate::scenarios::SuiteOptions::new(args.plugins);
    opts.main_plugins = args.main_plugins;
    opts.only = args.only;
    opts.format = args.format;
    opts.progress = args.progress;
    let report = crate::scenarios::run_suite(&opts);
    let out = report.render(opts.format);
    if out.ends_with('\n') {
        print!("{out}");
    } else {
        println!("{out}");
    }
    match report.exit_code() {
        0 => Ok(None),
        code => Err(Failure {
            msg: String::new(),
            code,
        }),
    }
}

/// `bench`: the benchmark; the Markdown report goes to stdout (and to
/// `--report`), the JSON to `--json`, the plots to `--plots-dir`.
fn run_bench(args: BenchArgs) -> Result<Option<String>, Failure> {
    let mut opts = crate::bench::BenchOptions::new(args.plugins);
    opts.vs = args.vs;
    opts.main_plugins = args.main_plugins;
    opts.pods = args.pods;
    opts.shaped_pods = args.shaped_pods;
    opts.node_pods = args.node_pods;
    opts.rates_mbit = args.rates;
    opts.shaping_seconds = args.shaping_seconds;
    opts.iterations = args.iterations;
    opts.progress = !args.quiet;
    opts.command = std::env::args().collect::<Vec<_>>().join(" ");
    let doc = crate::bench::run(&opts)?;
    let md = crate::bench::write_outputs(
        &doc,
        args.json.as_deref(),
        args.report.as_deref(),
        &args.plots_dir,
    )?;
    Ok(Some(md.trim_end().to_string()))
}

/// `demo`: the plugins at work in a throwaway world (narrated on stdout).
fn run_demo(args: DemoArgs) -> Result<Option<String>, Failure> {
    crate::demo::run(&args.plugins)?;
    Ok(None)
}

fn runtime_of(opts: &RuntimeOpts) -> Runtime {
    let dirs: Vec<PathBuf> = std::env::split_paths(&opts.cni_path)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    let mut rt = Runtime::new(dirs)
        .with_cache_dir(opts.cache_dir.clone())
        .with_exec(Arc::new(ProcessExec {
            forward_stderr: true,
        }));
    rt = if opts.timeout > 0.0 && opts.timeout.is_finite() {
        rt.with_timeout(Duration::from_secs_f64(opts.timeout))
    } else {
        rt.without_timeout()
    };
    if let Some(ns) = &opts.exec_netns {
        rt = rt.with_exec_netns(ns.clone());
    }
    rt
}

/// A network by name from NETCONFPATH, or a conflist file given by path.
fn network_list(network: &str, opts: &RuntimeOpts) -> Result<NetworkConfigList, Failure> {
    let as_path = Path::new(network);
    let looks_like_file = network.contains('/')
        || crate::conflist::EXTENSIONS
            .iter()
            .any(|e| network.ends_with(&format!(".{e}")));
    if looks_like_file && as_path.is_file() {
        return Ok(load_file(as_path)?);
    }
    Ok(load_network(&opts.netconfpath, network)?)
}

fn attach(a: &AttachArgs) -> Result<(Runtime, NetworkConfigList, RuntimeConf), Failure> {
    let list = network_list(&a.network, &a.runtime)?;
    let netns = absolute(&a.netns)?;
    let container_id = match a.container_id.as_deref() {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => cnitool_container_id(&netns),
    };
    let args = match a.cni_args.as_deref() {
        None | Some("") => Vec::new(),
        Some(s) => parse_cni_args(s)?,
    };
    let capability_args = match a.cap_args.as_deref() {
        None | Some("") => Map::new(),
        Some(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err("CAP_ARGS: must be a JSON object".into()),
            Err(e) => return Err(format!("CAP_ARGS: not valid JSON: {e}").into()),
        },
    };
    let conf = RuntimeConf {
        container_id,
        netns,
        ifname: a.ifname.clone(),
        args,
        capability_args,
    };
    Ok((runtime_of(&a.runtime), list, conf))
}

/// cnitool's container ID: `cnitool-` + hex of the first 10 bytes of the
/// SHA-512 of the absolute netns path.
pub fn cnitool_container_id(netns: &Path) -> String {
    let digest = Sha512::digest(netns.as_os_str().as_encoded_bytes());
    let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("cnitool-{hex}")
}

/// Go's filepath.Abs: joined with the working directory and cleaned
/// lexically (symlinks are not resolved).
pub fn absolute(path: &Path) -> Result<PathBuf, String> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| format!("working directory: {e}"))?
            .join(path)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

/// cnitool's CNI_ARGS parsing: `K=V` pairs separated by `;`, both non-empty.
pub fn parse_cni_args(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(';')
        .map(|pair| {
            let mut kv = pair.split('=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(v), None) if !k.is_empty() && !v.is_empty() => {
                    Ok((k.to_string(), v.to_string()))
                }
                _ => Err(format!(
                    "invalid CNI_ARGS pair {pair:?} (want KEY=VALUE;KEY=VALUE)"
                )),
            }
        })
        .collect()
}

fn parse_attachment(s: &str) -> Result<cni::types::Attachment, String> {
    match s.split_once(':') {
        Some((id, ifname)) if !id.is_empty() && !ifname.is_empty() => Ok(cni::types::Attachment {
            container_id: id.to_string(),
            ifname: ifname.to_string(),
        }),
        _ => Err(format!("--valid {s:?}: want CONTAINERID:IFNAME")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_is_cnitools() {
        // sha512("/var/run/netns/test")[..10], as cnitool computes it
        let id = cnitool_container_id(Path::new("/var/run/netns/test"));
        assert!(id.starts_with("cnitool-"));
        assert_eq!(id.len(), "cnitool-".len() + 20);
        let digest = Sha512::digest(b"/var/run/netns/test");
        assert_eq!(&id[8..10], format!("{:02x}", digest[0]));
        assert_ne!(id, cnitool_container_id(Path::new("/var/run/netns/other")));
        assert!(crate::conflist::is_valid_identifier(&id));
    }

    #[test]
    fn absolute_cleans_like_go() {
        assert_eq!(
            absolute(Path::new("/run/netns/../netns/./x")).unwrap(),
            PathBuf::from("/run/netns/x")
        );
        assert_eq!(
            absolute(Path::new("/a//b/")).unwrap(),
            PathBuf::from("/a/b")
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute(Path::new("x")).unwrap(), cwd.join("x"));
    }

    #[test]
    fn cni_args_parse_like_cnitool() {
        assert_eq!(
            parse_cni_args("IgnoreUnknown=1;K8S_POD_NAME=web").unwrap(),
            vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAME".into(), "web".into())
            ]
        );
        for bad in ["a", "a=", "=b", "a=b=c", "a=b;"] {
            assert!(parse_cni_args(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn valid_attachments_parse() {
        let a = parse_attachment("ctr1:eth0").unwrap();
        assert_eq!(
            (a.container_id.as_str(), a.ifname.as_str()),
            ("ctr1", "eth0")
        );
        assert!(parse_attachment("ctr1").is_err());
        assert!(parse_attachment(":eth0").is_err());
    }

    #[test]
    fn the_command_line_parses() {
        let cli = Cli::try_parse_from([
            "cni-conformance",
            "add",
            "net",
            "/run/netns/x",
            "--ifname",
            "net1",
        ])
        .unwrap();
        match cli.command {
            Cmd::Add(a) => {
                assert_eq!(a.network, "net");
                assert_eq!(a.ifname, "net1");
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from([
            "cni-conformance",
            "gc",
            "net",
            "--valid",
            "a:eth0",
            "--valid",
            "b:eth0",
        ])
        .unwrap();
        assert!(matches!(cli.command, Cmd::Gc { ref valid, .. } if valid.len() == 2));
        let cli = Cli::try_parse_from(["cni-conformance", "tool", "serve", "--tcp", "80"]).unwrap();
        assert!(matches!(cli.command, Cmd::Tool { ref args } if args == &["serve", "--tcp", "80"]));
        assert!(Cli::try_parse_from(["cni-conformance", "add", "net"]).is_err());
    }
}
