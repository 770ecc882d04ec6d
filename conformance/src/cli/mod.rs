//! The `cni-conformance` command line: cnitool-compatible `add | check | del
//! <network> <netns>` (same environment: CNI_PATH, NETCONFPATH, CNI_IFNAME,
//! CNI_ARGS, CAP_ARGS; same container ID), plus `gc`, `status`, `validate`,
//! `version`, and the suite's `run`, `bench`, `demo` and hidden `tool`.
//! Parses arguments and dispatches; each cnitool verb is one call into
//! `cni-runtime` ([`cnitool`]). Owns no CNI semantics.

mod cnitool;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use cni_runtime::{ConfError, RuntimeError};

pub use cnitool::{absolute, cnitool_container_id, parse_cni_args, ArgsError};

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
    #[arg(long, env = "CNI_CACHE_DIR", default_value = cni_runtime::DEFAULT_CACHE_DIR)]
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
    /// Our portmap's backend, forced into every scenario's portmap conf
    /// that does not name one.
    #[arg(long, value_parser = ["nftables", "iptables"])]
    portmap_backend: Option<String>,
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
    /// Numbers of shaped pods to measure bandwidth at, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,1000")]
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
    /// Phases to run, comma-separated (verbs, node, scaling, shaping).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "verbs,node,scaling,shaping"
    )]
    phases: Vec<String>,
    /// Plugins the verbs phase measures, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Our portmap's backend (`"backend"` in its conf) in the verbs and
    /// scaling phases; the reference has one (iptables).
    #[arg(long, value_parser = ["nftables", "iptables"])]
    portmap_backend: Option<String>,
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
        Err(e) => {
            let msg = e.to_string();
            if !msg.is_empty() {
                eprintln!("cni-conformance: {msg}");
            }
            e.exit_code()
        }
    }
}

/// The process entry point.
pub fn main() -> i32 {
    main_with(std::env::args_os())
}

/// Why a command failed; `Display` is the message on stderr.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The network configuration could not be loaded.
    #[error(transparent)]
    Conf(#[from] ConfError),
    /// The runtime (a plugin, the cache, validation) failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// An argument or environment variable is invalid.
    #[error(transparent)]
    Args(#[from] ArgsError),
    /// `bench` could not measure.
    #[error(transparent)]
    Bench(#[from] crate::bench::BenchError),
    /// `demo` failed.
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    /// Exit with this code and no message (the output said why).
    #[error("")]
    Exit(i32),
}

impl CliError {
    fn exit_code(&self) -> i32 {
        match self {
            CliError::Exit(code) => *code,
            _ => 1,
        }
    }
}

fn run(cmd: Cmd) -> Result<Option<String>, CliError> {
    match cmd {
        Cmd::Add(a) => cnitool::add(&a),
        Cmd::Check(a) => cnitool::check(&a),
        Cmd::Del(a) => cnitool::del(&a),
        Cmd::Gc {
            network,
            netns: _,
            valid,
            runtime,
        } => cnitool::gc(&network, &valid, &runtime),
        Cmd::Status {
            network,
            netns: _,
            runtime,
        } => cnitool::status(&network, &runtime),
        Cmd::Validate { network, runtime } => cnitool::validate(&network, &runtime),
        Cmd::Version { plugin, runtime } => cnitool::version(&plugin, &runtime),
        Cmd::Run(args) => run_suite(args),
        Cmd::Bench(args) => run_bench(args),
        Cmd::Demo(args) => run_demo(args),
        Cmd::Tool { args } => match crate::tools::main(args) {
            0 => Ok(None),
            code => Err(CliError::Exit(code)),
        },
    }
}

/// `run`: the scenario suite; the report goes to stdout, exit 1 if any
/// case failed.
fn run_suite(args: RunArgs) -> Result<Option<String>, CliError> {
    let mut opts = crate::scenarios::SuiteOptions::new(args.plugins);
    opts.main_plugins = args.main_plugins;
    opts.only = args.only;
    opts.format = args.format;
    opts.progress = args.progress;
    opts.portmap_backend = args.portmap_backend;
    let report = crate::scenarios::run_suite(&opts);
    let out = report.render(opts.format);
    if out.ends_with('\n') {
        print!("{out}");
    } else {
        println!("{out}");
    }
    match report.exit_code() {
        0 => Ok(None),
        code => Err(CliError::Exit(code)),
    }
}

/// `bench`: the benchmark; the Markdown report goes to stdout (and to
/// `--report`), the JSON to `--json`, the plots to `--plots-dir`.
fn run_bench(args: BenchArgs) -> Result<Option<String>, CliError> {
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
    opts.phases = args.phases;
    opts.only = args.only;
    opts.portmap_backend = args.portmap_backend;
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
fn run_demo(args: DemoArgs) -> Result<Option<String>, CliError> {
    crate::demo::run(&args.plugins)?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::cnitool::parse_attachment;
    use super::*;
    use sha2::{Digest, Sha512};
    use std::path::Path;

    #[test]
    fn container_id_is_cnitools() {
        // sha512("/var/run/netns/test")[..10], as cnitool computes it
        let id = cnitool_container_id(Path::new("/var/run/netns/test"));
        assert!(id.starts_with("cnitool-"));
        assert_eq!(id.len(), "cnitool-".len() + 20);
        let digest = Sha512::digest(b"/var/run/netns/test");
        assert_eq!(&id[8..10], format!("{:02x}", digest[0]));
        assert_ne!(id, cnitool_container_id(Path::new("/var/run/netns/other")));
        assert!(cni::skel::valid_identifier(&id));
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
