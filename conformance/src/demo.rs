//! `cni-conformance demo --plugins DIR`: two pods on a bridge (Debian's
//! bridge + host-local as main plugins, then tuning → portmap → bandwidth,
//! plus loopback) inside a throwaway host netns; shows the hostPort answering
//! from the host and from the other pod, the measured shaped throughput next
//! to the configured rate, the tuned MTU and sysctls, then tears everything
//! down and shows nothing is left (in the throwaway host and on the real
//! one). Prints progress as it goes; never touches the real host.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::scenarios::bandwidth::{shaped_rate, SECONDS};
use crate::topology::{
    HostSnapshot, HostWorld, Pod, Reach, Tools, TopologyError, BRIDGE, BRIDGE_MAC, NODE_V4,
};
use cni_runtime::{
    parse_conflist, ConfError, NetworkConfigList, Runtime, RuntimeConf, RuntimeError,
};

const RATE: u64 = 20_000_000;
const BURST: u64 = 320_000;
const HOST_PORT: u16 = 8080;
const MAIN_PLUGINS: &str = "/usr/lib/cni";

fn say(line: &str) {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn step<T, E: std::fmt::Display>(what: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    use std::io::IsTerminal;
    let start = Instant::now();
    let mut out = std::io::stdout();
    let tty = out.is_terminal();
    if tty {
        let _ = write!(out, "  … {what}");
        let _ = out.flush();
    }
    let r = f();
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let back = if tty { "\r\x1b[2K" } else { "" };
    match &r {
        Ok(_) => say(&format!("{back}  ✓ {what} ({ms:.0} ms)")),
        Err(e) => say(&format!("{back}  ✗ {what}: {e}")),
    }
    r
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Not root, or no usable `ip`.
    #[error("demo {0}")]
    Privileges(TopologyError),
    /// Plugins it needs are not installed.
    #[error("demo needs {}", .0.join(", "))]
    Missing(Vec<String>),
    /// Building the world or probing it failed.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// The conflist is invalid.
    #[error(transparent)]
    Conf(#[from] ConfError),
    /// A runtime verb failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The conflist could not be encoded.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Something the demo relies on is missing from the world it built.
    #[error("{0}")]
    Broken(&'static str),
    /// The real host is not as it was before (the names of what changed).
    #[error("the real host changed")]
    HostChanged(Vec<String>),
}

struct DemoPod {
    pod: Pod,
    rt: RuntimeConf,
    lo: RuntimeConf,
}

/// Runs the demo with the plugins in `plugins` (traffic tools from this binary).
pub fn run(plugins: &Path) -> Result<(), DemoError> {
    let tools = Tools::current()?;
    run_with(plugins, &tools)
}

/// Runs the demo with the traffic tools of `tools`.
pub fn run_with(plugins: &Path, tools: &Tools) -> Result<(), DemoError> {
    crate::topology::privileges().map_err(DemoError::Privileges)?;
    let main_dir = PathBuf::from(MAIN_PLUGINS);
    let mut missing = Vec::new();
    for p in ["portmap", "bandwidth", "tuning", "loopback"] {
        if !plugins.join(p).is_file() {
            missing.push(plugins.join(p).display().to_string());
        }
    }
    for p in ["bridge", "host-local"] {
        if !main_dir.join(p).is_file() {
            missing.push(format!(
                "{} (install Debian's containernetworking-plugins)",
                main_dir.join(p).display()
            ));
        }
    }
    if !missing.is_empty() {
        return Err(DemoError::Missing(missing));
    }
    let before = HostSnapshot::take();
    say("cni-conformance demo: two pods on a bridge, chained tuning → portmap → bandwidth, plus loopback");
    say(&format!("  plugins under test: {}", plugins.display()));
    say(&format!(
        "  main plugins:       {MAIN_PLUGINS}/bridge + host-local"
    ));
    let outcome = demo_world(plugins, &main_dir, tools);
    say("\nAfter the throwaway namespaces are gone, the real host:");
    let diff = HostSnapshot::take().diff(&before);
    if diff.is_empty() {
        say("  ✓ unchanged (links, our netns, nft tables, qdiscs, CNI state files)");
    } else {
        say(&format!("  ✗ changed: {}", diff.join("; ")));
    }
    outcome?;
    if !diff.is_empty() {
        return Err(DemoError::HostChanged(diff));
    }
    say("\ndemo finished: everything shown was created and removed inside throwaway namespaces.");
    Ok(())
}

fn conflist(world: &HostWorld) -> Result<NetworkConfigList, DemoError> {
    let body = json!({
        "cniVersion": "1.0.0",
        "name": "demo",
        "plugins": [
            {
                "type": "bridge", "bridge": BRIDGE, "isGateway": true, "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": "10.88.0.0/24"}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": world.dir.path().join("ipam").to_string_lossy(),
                }
            },
            {
                "type": "tuning", "mtu": 1400,
                "sysctl": {"net.core.somaxconn": "1024", "net.ipv4.conf.IFNAME.arp_ignore": "1"},
                "dataDir": world.dir.path().join("tuning").to_string_lossy(),
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "bandwidth", "capabilities": {"bandwidth": true}}
        ]
    });
    let bytes = serde_json::to_vec_pretty(&body)?;
    say("\nThe network configuration list (pod network):");
    for line in String::from_utf8_lossy(&bytes).lines() {
        say(&format!("    {line}"));
    }
    Ok(parse_conflist(&bytes, None)?)
}

fn demo_world(plugins: &Path, main_dir: &Path, tools: &Tools) -> Result<(), DemoError> {
    say("\n1. Building a throwaway world");
    let world = step(
        &format!("host netns with node IP {NODE_V4} (plays the node; every plugin runs in it)"),
        || HostWorld::new("dm"),
    )?;
    step(
        &format!("bridge {BRIDGE} with the fixed MAC {BRIDGE_MAC} (stays put as pods join)"),
        || world.add_bridge(),
    )?;
    say(&format!("     host netns: {}", world.host.name));
    let runtime = Runtime::new(vec![plugins.to_path_buf(), main_dir.to_path_buf()])
        .with_cache_dir(world.cache_dir())
        .with_exec_netns(world.host.path())
        .with_timeout(Duration::from_secs(60));
    let list = conflist(&world)?;
    let lo_list = parse_conflist(
        br#"{"cniVersion":"1.0.0","name":"demo-lo","plugins":[{"type":"loopback"}]}"#,
        None,
    )?;
    let pods = demo_pods()?;
    let result = attach_and_show(&runtime, &list, &lo_list, &pods, &world, tools);
    tear_down(&runtime, &list, &lo_list, &pods);
    show_leftovers(&world, tools)?;
    drop(pods);
    drop(world);
    result
}

/// The web pod (hostPort and shaping capabilities) and the client pod.
fn demo_pods() -> Result<Vec<DemoPod>, DemoError> {
    let mut pods = Vec::new();
    for (name, caps) in [("web", true), ("client", false)] {
        let pod = step(&format!("pod netns for {name}"), || Pod::new(name))?;
        let mut rt = RuntimeConf::new(&pod.container_id, pod.netns.path(), "eth0");
        if caps {
            rt.capability_args = web_capabilities();
        }
        let lo = RuntimeConf::new(&pod.container_id, pod.netns.path(), "lo");
        pods.push(DemoPod { pod, rt, lo });
    }
    Ok(pods)
}

/// hostPort 8080 → 80 and RATE each way.
fn web_capabilities() -> Map<String, Value> {
    let mut c = Map::new();
    c.insert(
        "portMappings".into(),
        json!([{"hostPort": HOST_PORT, "containerPort": 80, "protocol": "tcp"}]),
    );
    c.insert(
        "bandwidth".into(),
        json!({"ingressRate": RATE, "ingressBurst": BURST, "egressRate": RATE, "egressBurst": BURST}),
    );
    c
}

fn tear_down(
    runtime: &Runtime,
    list: &NetworkConfigList,
    lo_list: &NetworkConfigList,
    pods: &[DemoPod],
) {
    say("\n6. Tearing down");
    for p in pods {
        let _ = step(&format!("DEL pod network of {}", p.pod.netns.name), || {
            runtime.del_network_list(list, &p.rt)
        });
        let _ = step(&format!("DEL loopback of {}", p.pod.netns.name), || {
            runtime.del_network_list(lo_list, &p.lo)
        });
    }
}

/// IFBs, the hostPort, cached results and tuning backups after the DELs.
fn show_leftovers(world: &HostWorld, tools: &Tools) -> Result<(), DemoError> {
    say("\n7. What is left in the throwaway host netns");
    let ifbs = world
        .host
        .ip_json(&["link", "show", "type", "ifb"])
        .ok()
        .and_then(|v| v.as_array().map(|a| a.len()))
        .unwrap_or(0);
    say(&format!("  {} IFB device(s)", ifbs));
    let reach = tools.request(
        &world.host,
        false,
        SocketAddr::new(node_ip()?, HOST_PORT),
        Duration::from_millis(1500),
    );
    say(&format!(
        "  host → {NODE_V4}:{HOST_PORT}: {reach} {}",
        if matches!(reach, Reach::Refused) {
            "(nothing mapped any more)"
        } else {
            ""
        }
    ));
    let cached = crate::topology::files_under(&world.cache_dir());
    say(&format!("  {} result cache file(s)", cached.len()));
    let backups = crate::topology::files_under(&world.dir.path().join("tuning"));
    say(&format!("  {} tuning backup file(s)", backups.len()));
    Ok(())
}

fn node_ip() -> Result<std::net::IpAddr, DemoError> {
    NODE_V4
        .parse()
        .map_err(|_| DemoError::Broken("bad node ip"))
}

fn attach_and_show(
    runtime: &Runtime,
    list: &NetworkConfigList,
    lo_list: &NetworkConfigList,
    pods: &[DemoPod],
    world: &HostWorld,
    tools: &Tools,
) -> Result<(), DemoError> {
    attach(runtime, list, lo_list, pods)?;
    let web = &pods[0];
    let client = &pods[1];
    let _server = tools.serve(&web.pod.netns, &[80, 5201], &[], "hello from web", 60)?;
    show_host_port(world, tools, web, client)?;
    show_throughput(world, tools, web)?;
    show_tuned(web);
    Ok(())
}

/// Step 2: ADD loopback and the pod network of each pod, CHECK, show the result.
fn attach(
    runtime: &Runtime,
    list: &NetworkConfigList,
    lo_list: &NetworkConfigList,
    pods: &[DemoPod],
) -> Result<(), DemoError> {
    say("\n2. Attaching the pods (ADD through the runtime, as containerd/CRI-O would)");
    for (i, p) in pods.iter().enumerate() {
        step(&format!("ADD loopback in {}", p.pod.netns.name), || {
            runtime.add_network_list(lo_list, &p.lo).map(|_| ())
        })?;
        let r = step(
            &format!(
                "ADD pod network for {} ({})",
                p.pod.netns.name,
                if i == 0 {
                    "hostPort 8080→80, 20 Mbit/s each way"
                } else {
                    "no capabilities"
                }
            ),
            || runtime.add_network_list(list, &p.rt),
        )?;
        let ips: Vec<String> = r
            .result
            .ips
            .iter()
            .map(|ip| ip.address.to_string())
            .collect();
        let ifs: Vec<String> = r.result.interfaces.iter().map(|i| i.name.clone()).collect();
        say(&format!("     result: ips {ips:?}, interfaces {ifs:?}"));
        match runtime.check_network_list(list, &p.rt) {
            Ok(()) => say("     CHECK: ok"),
            Err(e) => say(&format!("     CHECK failed: {e}")),
        }
    }
    Ok(())
}

/// Step 3: the hostPort from the host, the other pod and the pod itself.
fn show_host_port(
    world: &HostWorld,
    tools: &Tools,
    web: &DemoPod,
    client: &DemoPod,
) -> Result<(), DemoError> {
    say("\n3. The hostPort answers (web pod serves tcp/80)");
    let node = node_ip()?;
    for (who, ns, to) in [
        ("host", &world.host, SocketAddr::new(node, HOST_PORT)),
        (
            "host",
            &world.host,
            SocketAddr::from(([127, 0, 0, 1], HOST_PORT)),
        ),
        (
            "client pod",
            &client.pod.netns,
            SocketAddr::new(node, HOST_PORT),
        ),
        (
            "web pod (hairpin, to itself)",
            &web.pod.netns,
            SocketAddr::new(node, HOST_PORT),
        ),
    ] {
        let got = tools.request(ns, false, to, Duration::from_secs(5));
        let mark = if matches!(got, Reach::Reply(_)) {
            "✓"
        } else {
            "✗"
        };
        say(&format!("  {mark} {who} → {to}: {got}"));
    }
    Ok(())
}

/// Step 4: the shaped rate each way, counted by the kernel.
fn show_throughput(world: &HostWorld, tools: &Tools, web: &DemoPod) -> Result<(), DemoError> {
    say(&format!(
        "\n4. Shaped throughput (configured {} Mbit/s each way; the bytes the shaper releases, counted by the kernel over {SECONDS} s per direction)",
        RATE / 1_000_000
    ));
    let web_ip = web
        .pod
        .address(4)
        .ok_or(DemoError::Broken("web pod has no IPv4 address"))?;
    let ingress = shaped_rate(
        tools,
        &world.host,
        (&world.host, &web.pod.netns, SocketAddr::new(web_ip, 5202)),
        true,
        RATE,
    );
    show_rate("towards the pod (ingress)", ingress);
    let egress = shaped_rate(
        tools,
        &world.host,
        (
            &web.pod.netns,
            &world.host,
            SocketAddr::from(([10, 88, 0, 1], 5203)),
        ),
        false,
        RATE,
    );
    show_rate("from the pod (egress)", egress);
    Ok(())
}

/// Step 5: the MTU and sysctls tuning set, and loopback's lo.
fn show_tuned(web: &DemoPod) {
    say("\n5. Tuned values inside the web pod");
    let link: Value = web.pod.netns.link("eth0").unwrap_or_default();
    say(&format!("  eth0 mtu {} (configured 1400)", link["mtu"]));
    for key in ["net/core/somaxconn", "net/ipv4/conf/eth0/arp_ignore"] {
        let v = web
            .pod
            .netns
            .read_sysctl(key)
            .unwrap_or_else(|e| e.to_string());
        say(&format!("  {} = {v}", key.replace('/', ".")));
    }
    let lo_up = web
        .pod
        .netns
        .link("lo")
        .and_then(|l| l["flags"].as_array().cloned())
        .is_some_and(|f| f.iter().any(|x| x == "UP"));
    say(&format!("  lo is {}", if lo_up { "UP" } else { "DOWN" }));
}

fn show_rate(what: &str, r: Result<String, crate::scenarios::CheckError>) {
    match r {
        Ok(text) => say(&format!("  ✓ {what}: {text}")),
        Err(e) => say(&format!("  ✗ {what}: {e}")),
    }
}
