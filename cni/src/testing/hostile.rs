//! Table-driven hostile-input runs of a real plugin binary (issue #15 §4):
//! each [`Row`] is a name, environment overrides, stdin bytes and the
//! expected outcome. [`World`] builds a throwaway host netns (the plugin runs
//! there) and a pod netns joined by a veth, and for every row checks that the
//! plugin answers a spec error JSON with the expected code and exit 1 (no
//! panic, no signal, no hang), that nothing secret-looking is echoed, and
//! that nothing changed: links, addresses, qdiscs, the nft ruleset and the
//! net sysctls of both namespaces, and the plugins' state files.
//!
//! Stdin and environment values may use placeholders: `@TYPE@` (the plugin),
//! `@PREV@` (a 1.1.0 prevResult describing the veth), `@DATADIR@` (an empty
//! dataDir, 0700, inside the world's temp dir), `@NETNS@` (the pod netns path),
//! `@FILE@` (a regular file), `@FIFO@` (a named pipe), `@DIR@` (a directory).

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{unique_name, veth_pair, TestNetns};

/// What the plugin reads on stdin.
#[derive(Clone, Copy)]
pub enum Stdin {
    /// Extra top-level fields spliced into the base config (`"k": v, ...`),
    /// verbatim text, so duplicate keys and odd spellings survive.
    Fields(&'static str),
    /// Extra fields on the base config without its prevResult (rows that
    /// bring their own).
    NoPrev(&'static str),
    /// A whole document (placeholders replaced).
    Text(&'static str),
    /// Bytes exactly as given (NULs, invalid UTF-8).
    Raw(&'static [u8]),
    /// A generated document (placeholders replaced), for sizes no table holds.
    Gen(fn() -> String),
}

/// How the run must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exit 1 with a spec error JSON of this code.
    Code(u32),
    /// Exit 0 (DEL rows that must succeed, no CNI_COMMAND), still no change.
    Ok,
}

/// One bad input.
#[derive(Clone, Copy)]
pub struct Row {
    /// The row's name in failure messages.
    pub name: &'static str,
    /// `CNI_COMMAND`.
    pub command: &'static str,
    /// `Some(v)` sets the variable, `None` removes it.
    pub env: &'static [(&'static str, Option<&'static str>)],
    /// What goes on stdin.
    pub stdin: Stdin,
    /// What the plugin must answer.
    pub expect: Expect,
}

/// A row that must fail with `code`.
pub const fn err(name: &'static str, command: &'static str, stdin: Stdin, code: u32) -> Row {
    Row {
        name,
        command,
        env: &[],
        stdin,
        expect: Expect::Code(code),
    }
}

/// A row that must succeed and change nothing.
pub const fn ok(name: &'static str, command: &'static str, stdin: Stdin) -> Row {
    Row {
        name,
        command,
        env: &[],
        stdin,
        expect: Expect::Ok,
    }
}

impl Row {
    /// The same row with these environment overrides.
    pub const fn env(self, env: &'static [(&'static str, Option<&'static str>)]) -> Row {
        Row { env, ..self }
    }
}

/// A value put into every config under an unknown key: it must never come
/// back on stdout or stderr (no plugin logs or echoes a whole config).
pub const CANARY: &str = "s3cr3t-hostile-canary";

/// The base config the `Fields` rows extend.
const BASE_NO_PREV: &str =
    r#"{"cniVersion":"1.1.0","name":"hostile","type":"@TYPE@","apiToken":"s3cr3t-hostile-canary""#;

/// Depth far beyond serde_json's recursion limit (128).
pub const DEEP: usize = 100_000;

fn deep_arrays() -> String {
    format!(
        r#"{{"cniVersion":"1.1.0","name":"hostile","type":"@TYPE@","x":{}{}}}"#,
        "[".repeat(DEEP),
        "]".repeat(DEEP)
    )
}

fn deep_objects() -> String {
    format!(
        r#"{{"cniVersion":"1.1.0","name":"hostile","type":"@TYPE@","x":{}1{}}}"#,
        r#"{"a":"#.repeat(DEEP),
        "}".repeat(DEEP)
    )
}

fn deep_prev_result() -> String {
    format!(
        r#"{{"cniVersion":"1.1.0","name":"hostile","type":"@TYPE@","prevResult":{{"cniVersion":"1.1.0","dns":{}{}}}}}"#,
        "[".repeat(DEEP),
        "]".repeat(DEEP)
    )
}

/// 10 MB of string in an unknown key, with an unsupported version.
fn ten_mb_bad_version() -> String {
    format!(
        r#"{{"cniVersion":"9.9.9","name":"hostile","type":"@TYPE@","pad":"{}"}}"#,
        "x".repeat(10 << 20)
    )
}

/// 10 MB of whitespace before a truncated document.
fn ten_mb_truncated() -> String {
    format!(
        "{}{{\"cniVersion\":\"1.1.0\",\"name\":",
        " ".repeat(10 << 20)
    )
}

/// 10 MB network name (valid characters, then one bad one).
fn ten_mb_name() -> String {
    format!(
        r#"{{"cniVersion":"1.1.0","name":"{}/","type":"@TYPE@"}}"#,
        "n".repeat(10 << 20)
    )
}

const NO_NETNS: &[(&str, Option<&str>)] = &[("CNI_NETNS", None)];

/// Rows every plugin answers the same way, because `cni::skel` decides them
/// before the plugin's own code runs.
pub const COMMON_ROWS: &[Row] = &[
    // Malformed and truncated JSON: code 6.
    err("empty-stdin", "ADD", Stdin::Raw(b""), 6),
    err("whitespace-only", "ADD", Stdin::Raw(b" \n\t "), 6),
    err("open-brace", "ADD", Stdin::Raw(b"{"), 6),
    err(
        "truncated-string",
        "ADD",
        Stdin::Raw(br#"{"cniVersion":"1.1.0","name":"host"#),
        6,
    ),
    err(
        "truncated-after-colon",
        "ADD",
        Stdin::Raw(br#"{"cniVersion":"1.1.0","name":"#),
        6,
    ),
    err(
        "trailing-comma",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1.0","name":"hostile","type":"@TYPE@",}"#),
        6,
    ),
    err(
        "single-quotes",
        "ADD",
        Stdin::Raw(b"{'cniVersion':'1.1.0','name':'hostile'}"),
        6,
    ),
    err(
        "comment",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1.0", /* c */ "name":"hostile","type":"@TYPE@"}"#),
        6,
    ),
    err(
        "trailing-garbage",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1.0","name":"hostile","type":"@TYPE@"}xyz"#),
        6,
    ),
    err(
        "two-documents",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1.0","name":"hostile","type":"@TYPE@"}{"name":"b"}"#),
        6,
    ),
    err("json-null", "ADD", Stdin::Raw(b"null"), 6),
    err("json-array", "ADD", Stdin::Raw(b"[]"), 6),
    err("json-string", "ADD", Stdin::Raw(br#""hostile""#), 6),
    err("json-number", "ADD", Stdin::Raw(b"1e999"), 6),
    err(
        "utf8-bom",
        "ADD",
        Stdin::Raw(b"\xef\xbb\xbf{\"cniVersion\":\"1.1.0\",\"name\":\"hostile\"}"),
        6,
    ),
    err(
        "invalid-utf8",
        "ADD",
        Stdin::Raw(b"{\"cniVersion\":\"1.1.0\",\"name\":\"host\xff\xfe\"}"),
        6,
    ),
    err(
        "nul-byte-between-keys",
        "ADD",
        Stdin::Raw(b"{\"cniVersion\":\"1.1.0\",\0\"name\":\"hostile\"}"),
        6,
    ),
    err(
        "raw-nul-in-string",
        "ADD",
        Stdin::Raw(b"{\"cniVersion\":\"1.1.0\",\"name\":\"host\0ile\"}"),
        6,
    ),
    err(
        "lone-surrogate-escape",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1.0","name":"\ud800","type":"@TYPE@"}"#),
        6,
    ),
    // Stack safety: nesting far past the recursion limit, in every place.
    err("nested-arrays-100k", "ADD", Stdin::Gen(deep_arrays), 6),
    err("nested-objects-100k", "ADD", Stdin::Gen(deep_objects), 6),
    err(
        "nested-prev-result-100k",
        "ADD",
        Stdin::Gen(deep_prev_result),
        6,
    ),
    err(
        "nested-arrays-100k-check",
        "CHECK",
        Stdin::Gen(deep_arrays),
        6,
    ),
    // Sizes.
    err(
        "10mb-unknown-key-bad-version",
        "ADD",
        Stdin::Gen(ten_mb_bad_version),
        1,
    ),
    err(
        "10mb-whitespace-truncated",
        "ADD",
        Stdin::Gen(ten_mb_truncated),
        6,
    ),
    err("10mb-name", "ADD", Stdin::Gen(ten_mb_name), 7),
    // Common fields: wrong types are decoding failures (6), bad values 7 or 1.
    err(
        "cni-version-number",
        "ADD",
        Stdin::Text(r#"{"cniVersion":1.0,"name":"hostile","type":"@TYPE@"}"#),
        6,
    ),
    err(
        "name-number",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1.0","name":42,"type":"@TYPE@"}"#),
        6,
    ),
    err(
        "name-object",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1.0","name":{"a":1},"type":"@TYPE@"}"#),
        6,
    ),
    err(
        "version-unknown",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"9.9.9","name":"hostile","type":"@TYPE@"}"#),
        1,
    ),
    err(
        "version-two-parts",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1","name":"hostile","type":"@TYPE@"}"#),
        1,
    ),
    err(
        "version-v-prefix",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"v1.0.0","name":"hostile","type":"@TYPE@"}"#),
        1,
    ),
    err(
        "version-huge-number",
        "ADD",
        Stdin::Text(
            r#"{"cniVersion":"99999999999999999999.0.0","name":"hostile","type":"@TYPE@"}"#,
        ),
        1,
    ),
    err(
        "name-missing",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1.0","type":"@TYPE@","prevResult":@PREV@}"#),
        7,
    ),
    err(
        "name-empty",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1.0","name":"","type":"@TYPE@"}"#),
        7,
    ),
    err(
        "name-path-traversal",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1.0","name":"../../etc","type":"@TYPE@"}"#),
        7,
    ),
    err(
        "name-escaped-nul",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1.0","name":"host\u0000ile","type":"@TYPE@"}"#),
        7,
    ),
    err(
        "name-newline",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1.0","name":"host\nile","type":"@TYPE@"}"#),
        7,
    ),
    err(
        "check-on-0.3.1",
        "CHECK",
        Stdin::Text(
            r#"{"cniVersion":"0.3.1","name":"hostile","type":"@TYPE@","prevResult":{"cniVersion":"0.3.1"}}"#,
        ),
        1,
    ),
    err(
        "gc-on-1.0.0",
        "GC",
        Stdin::Text(r#"{"cniVersion":"1.0.0","name":"hostile","type":"@TYPE@"}"#),
        1,
    ),
    err(
        "status-on-0.4.0",
        "STATUS",
        Stdin::Text(r#"{"cniVersion":"0.4.0","name":"hostile","type":"@TYPE@"}"#),
        1,
    ),
    // prevResult (skel parses it for every plugin; DEL ignores a bad one).
    err(
        "prev-result-string",
        "ADD",
        Stdin::NoPrev(r#""prevResult":"10.0.0.2""#),
        6,
    ),
    err(
        "prev-result-array",
        "ADD",
        Stdin::NoPrev(r#""prevResult":[1,2]"#),
        6,
    ),
    err(
        "prev-result-bad-address",
        "ADD",
        Stdin::NoPrev(r#""prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.300/24"}]}"#),
        6,
    ),
    err(
        "prev-result-prefix-33",
        "ADD",
        Stdin::NoPrev(r#""prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.2/33"}]}"#),
        6,
    ),
    err(
        "prev-result-bad-gateway",
        "ADD",
        Stdin::NoPrev(
            r#""prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.2/24","gateway":"gw"}]}"#,
        ),
        6,
    ),
    err(
        "prev-result-interface-huge",
        "ADD",
        Stdin::NoPrev(
            r#""prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.2/24","interface":99999999999999999999}]}"#,
        ),
        6,
    ),
    err(
        "prev-result-interface-negative",
        "CHECK",
        Stdin::NoPrev(
            r#""prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.0.0.2/24","interface":-1}]}"#,
        ),
        6,
    ),
    err(
        "prev-result-route-garbage",
        "ADD",
        Stdin::NoPrev(r#""prevResult":{"cniVersion":"1.1.0","routes":[{"dst":"default"}]}"#),
        6,
    ),
    // Environment.
    ok("no-cni-command", "", Stdin::Fields("")).env(&[("CNI_COMMAND", None)]),
    err("command-garbage", "ADDX", Stdin::Fields(""), 4),
    err("command-lowercase", "add", Stdin::Fields(""), 4),
    err("command-with-backslash", "ADD\\0", Stdin::Fields(""), 4),
    err("containerid-missing", "ADD", Stdin::Fields(""), 4).env(&[("CNI_CONTAINERID", None)]),
    err("containerid-traversal", "ADD", Stdin::Fields(""), 4)
        .env(&[("CNI_CONTAINERID", Some("../../etc/passwd"))]),
    err("containerid-newline", "ADD", Stdin::Fields(""), 4)
        .env(&[("CNI_CONTAINERID", Some("ctr\nrm -rf"))]),
    err("containerid-missing-del", "DEL", Stdin::Fields(""), 4).env(&[("CNI_CONTAINERID", None)]),
    err("ifname-missing", "ADD", Stdin::Fields(""), 4).env(&[("CNI_IFNAME", None)]),
    err("ifname-too-long", "ADD", Stdin::Fields(""), 4)
        .env(&[("CNI_IFNAME", Some("eth0123456789abc"))]),
    err("ifname-slash", "ADD", Stdin::Fields(""), 4).env(&[("CNI_IFNAME", Some("../eth0"))]),
    err("ifname-dotdot", "ADD", Stdin::Fields(""), 4).env(&[("CNI_IFNAME", Some(".."))]),
    err("ifname-space", "CHECK", Stdin::Fields(""), 4).env(&[("CNI_IFNAME", Some("eth 0"))]),
    err("netns-missing", "ADD", Stdin::Fields(""), 4).env(NO_NETNS),
    err("netns-missing-check", "CHECK", Stdin::Fields(""), 4).env(NO_NETNS),
    err("netns-regular-file", "ADD", Stdin::Fields(""), 4).env(&[("CNI_NETNS", Some("@FILE@"))]),
    err("netns-fifo", "ADD", Stdin::Fields(""), 4).env(&[("CNI_NETNS", Some("@FIFO@"))]),
    err("netns-fifo-check", "CHECK", Stdin::Fields(""), 4).env(&[("CNI_NETNS", Some("@FIFO@"))]),
    err("netns-directory", "ADD", Stdin::Fields(""), 4).env(&[("CNI_NETNS", Some("@DIR@"))]),
    err("netns-dev-null", "ADD", Stdin::Fields(""), 4).env(&[("CNI_NETNS", Some("/dev/null"))]),
    err("netns-sysfs", "ADD", Stdin::Fields(""), 4).env(&[("CNI_NETNS", Some("/sys/kernel"))]),
    err("netns-own", "ADD", Stdin::Fields(""), 8).env(&[("CNI_NETNS", Some("/proc/self/ns/net"))]),
    err("netns-own-check", "CHECK", Stdin::Fields(""), 8)
        .env(&[("CNI_NETNS", Some("/proc/thread-self/ns/net"))]),
    // CNI_PATH is optional and unused; garbage there changes no answer.
    err(
        "cni-path-garbage",
        "ADD",
        Stdin::Text(r#"{"cniVersion":"1.1.0","type":"@TYPE@"}"#),
        7,
    )
    .env(&[("CNI_PATH", Some(":::\x01/../../;rm -rf /"))]),
];

/// How long a plugin may take before the run counts as hung.
const HANG: Duration = Duration::from_secs(60);

/// The throwaway world one plugin's table runs in.
pub struct World {
    /// The plugin's `type`.
    pub plugin_type: &'static str,
    /// Its binary.
    pub binary: PathBuf,
    /// The netns the plugin runs in.
    pub host: TestNetns,
    /// The pod's netns.
    pub pod: TestNetns,
    /// The host end of the pod's veth.
    pub host_veth: String,
    /// The container ID every row uses.
    pub container_id: String,
    /// A temp dir for state files.
    pub tmp: PathBuf,
    prev: String,
}

/// Set in every plugin run of a [`World`] (the host netns's name), so the
/// world can tell its plugin's detached children from other processes.
pub const WORLD_ENV: &str = "CNI_TEST_WORLD";

/// How long [`World::snapshot`] waits for the plugin's background children.
pub const BACKGROUND_WAIT: Duration = Duration::from_secs(5);

/// Whether a process runs `binary` with `mark` (`KEY=value`) in its
/// environment.
fn plugin_running(binary: &Path, mark: &[u8]) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        let dir = p.path();
        std::fs::read_link(dir.join("exe")).is_ok_and(|exe| exe == binary)
            && std::fs::read(dir.join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == mark))
    })
}

impl World {
    /// Host netns + pod netns with veth `host_veth` ↔ `eth0` (10.251.0.1/24 ↔
    /// 10.251.0.2/24, fixed MACs, no IPv6 DAD so nothing changes by itself),
    /// pod `lo` down, a temp dir with a file, a FIFO and a directory.
    pub fn new(plugin_type: &'static str, binary: &Path) -> World {
        let host = TestNetns::new("hh");
        let pod = TestNetns::new("hp");
        for ns in [&host, &pod] {
            ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
            ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
        }
        let host_veth = unique_name("hv");
        veth_pair(&host, &host_veth, &pod, "eth0");
        host.exec(&[
            "ip",
            "link",
            "set",
            &host_veth,
            "address",
            "02:fe:00:00:00:01",
        ]);
        pod.exec(&["ip", "link", "set", "eth0", "address", "02:fe:00:00:00:02"]);
        host.exec(&["ip", "addr", "add", "10.251.0.1/24", "dev", &host_veth]);
        pod.exec(&["ip", "addr", "add", "10.251.0.2/24", "dev", "eth0"]);
        pod.exec(&["ip", "link", "set", "lo", "down"]);
        let tmp = std::env::temp_dir().join(unique_name("hi"));
        std::fs::create_dir_all(tmp.join("dir")).unwrap();
        // The dataDir exists, as after any first ADD: a failed ADD that
        // leaves a backup behind shows up, an mkdir does not.
        std::fs::create_dir_all(tmp.join("data")).unwrap();
        std::fs::set_permissions(tmp.join("data"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(tmp.join("file"), b"not a netns\n").unwrap();
        nix::unistd::mkfifo(
            &tmp.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let prev = serde_json::json!({
            "cniVersion": "1.1.0",
            "interfaces": [
                {"name": host_veth, "mac": "02:fe:00:00:00:01"},
                {"name": "eth0", "mac": "02:fe:00:00:00:02", "sandbox": pod.path()}
            ],
            "ips": [{"address": "10.251.0.2/24", "gateway": "10.251.0.1", "interface": 1}]
        })
        .to_string();
        let world = World {
            plugin_type,
            binary: binary.to_path_buf(),
            container_id: format!("hostile-{}", std::process::id()),
            host,
            pod,
            host_veth,
            tmp,
            prev,
        };
        world.wait_operstate_up();
        world
    }

    /// Link state settles asynchronously after `up`; wait for it so that no
    /// row sees the kernel change by itself.
    fn wait_operstate_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let h = self.host.exec(&[
                "cat",
                &format!("/sys/class/net/{}/operstate", self.host_veth),
            ]);
            let p = self.pod.exec(&["cat", "/sys/class/net/eth0/operstate"]);
            if h.trim() == "up" && p.trim() == "up" {
                return;
            }
            assert!(Instant::now() < deadline, "veth never came up: {h} / {p}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn substitute(&self, s: &str) -> String {
        s.replace("@TYPE@", self.plugin_type)
            .replace("@PREV@", &self.prev)
            .replace("@DATADIR@", &self.tmp.join("data").display().to_string())
            .replace("@NETNS@", &self.pod.path().display().to_string())
            .replace("@FILE@", &self.tmp.join("file").display().to_string())
            .replace("@FIFO@", &self.tmp.join("fifo").display().to_string())
            .replace("@DIR@", &self.tmp.join("dir").display().to_string())
    }

    /// The stdin bytes of a row.
    pub fn stdin(&self, stdin: Stdin) -> Vec<u8> {
        match stdin {
            Stdin::Fields("") => {
                { self.substitute(&format!(r#"{BASE_NO_PREV},"prevResult":@PREV@}}"#)) }
                    .into_bytes()
            }
            Stdin::Fields(f) => {
                { self.substitute(&format!(r#"{BASE_NO_PREV},"prevResult":@PREV@,{f}}}"#)) }
                    .into_bytes()
            }
            Stdin::NoPrev("") => self.substitute(&format!("{BASE_NO_PREV}}}")).into_bytes(),
            Stdin::NoPrev(f) => self
                .substitute(&format!("{BASE_NO_PREV},{f}}}"))
                .into_bytes(),
            Stdin::Text(t) => self.substitute(t).into_bytes(),
            Stdin::Raw(b) => b.to_vec(),
            Stdin::Gen(g) => self.substitute(&g()).into_bytes(),
        }
    }

    /// Runs the plugin in the host netns; (exit code or None for a signal,
    /// stdout, stderr).
    pub fn exec(&self, row: &Row) -> (Option<i32>, String, String) {
        self.exec_with(row, &[])
    }

    /// [`World::exec`] with more environment variables (after the row's),
    /// in a process group of its own (`ip netns exec` and the plugin), as a
    /// runtime that kills the group at its timeout starts it.
    pub fn exec_with(&self, row: &Row, extra: &[(&str, String)]) -> (Option<i32>, String, String) {
        let mut env: HashMap<String, String> = [
            ("CNI_COMMAND", row.command.to_string()),
            ("CNI_CONTAINERID", self.container_id.clone()),
            ("CNI_NETNS", self.pod.path().display().to_string()),
            ("CNI_IFNAME", "eth0".to_string()),
            ("CNI_PATH", "/usr/lib/cni".to_string()),
            ("PATH", std::env::var("PATH").unwrap_or_default()),
            (WORLD_ENV, self.host.name.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in row.env {
            match v {
                Some(v) => env.insert(k.to_string(), self.substitute(v)),
                None => env.remove(*k),
            };
        }
        for (k, v) in extra {
            env.insert(k.to_string(), v.clone());
        }
        let stdin = self.stdin(row.stdin);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.host.name])
            .arg(&self.binary)
            .env_clear()
            .envs(&env)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.binary.display()));
        let mut pipe = child.stdin.take().unwrap();
        // A plugin that stops reading must not block the test: write apart.
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&stdin);
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(HANG) {
            Ok(out) => out.unwrap(),
            Err(_) => {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                panic!("row {}: the plugin hung for {HANG:?}", row.name)
            }
        };
        let _ = writer.join();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Waits (at most [`BACKGROUND_WAIT`]) until no process of this
    /// world's plugin is left: verbs finish in detached children after
    /// replying (bandwidth deletes its retired IFB, portmap flushes UDP
    /// conntrack and closes its socket, both at nice 10), so on a loaded
    /// machine a snapshot right after the reply could see that work undone.
    /// The children inherit [`WORLD_ENV`], which names the world.
    fn wait_for_background(&self) {
        let binary = std::fs::canonicalize(&self.binary).unwrap_or_else(|_| self.binary.clone());
        let mark = format!("{WORLD_ENV}={}", self.host.name).into_bytes();
        let start = Instant::now();
        while start.elapsed() < BACKGROUND_WAIT && plugin_running(&binary, &mark) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything a plugin could have changed, as text (once the plugin's
    /// background children are done).
    pub fn snapshot(&self) -> String {
        self.wait_for_background();
        let mut s = String::new();
        for (label, ns) in [("host", &self.host), ("pod", &self.pod)] {
            for cmd in [
                &["ip", "-d", "link", "show"][..],
                &["ip", "addr", "show"],
                &["ip", "route", "show", "table", "all"],
                &["tc", "qdisc", "show"],
                &["nft", "list", "ruleset"],
            ] {
                s += &format!("== {label}: {}\n{}", cmd.join(" "), ns.exec(cmd));
            }
            let (_, sysctls, _) = ns.try_exec(&[
                "sh",
                "-c",
                "grep -r . /proc/sys/net/ipv4/conf /proc/sys/net/ipv6/conf /proc/sys/net/core \
                 /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/ip_local_port_range \
                 /proc/sys/net/bridge /proc/sys/kernel/hostname /proc/sys/kernel/domainname \
                 2>/dev/null",
            ]);
            s += &format!("== {label}: sysctls\n{sysctls}");
        }
        s += "== files\n";
        let host_ino = std::fs::metadata(self.host.path())
            .map(|m| m.ino())
            .unwrap_or(0);
        let portmap = format!("/run/cni-portmap/netns-{host_ino}");
        for root in [
            self.tmp.clone(),
            PathBuf::from(&portmap),
            PathBuf::from(format!("{portmap}.lock")),
        ] {
            list_files(&root, &mut s);
        }
        // The default dataDirs are shared with other tests: only our entries.
        for dir in [
            "/run/cni/tuning",
            "/var/lib/cni/bandwidth",
            "/run/cni-portmap",
        ] {
            if let Ok(rd) = std::fs::read_dir(dir) {
                let mut names: Vec<PathBuf> = rd
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().contains(&self.container_id))
                    .collect();
                names.sort();
                for p in names {
                    list_files(&p, &mut s);
                }
            }
        }
        s
    }

    /// Runs every row, asserting outcome and no change; returns the count.
    pub fn run_rows(&self, rows: &[Row]) -> usize {
        let mut before = self.snapshot();
        let mut failures = Vec::new();
        for row in rows {
            let (code, stdout, stderr) = self.exec(row);
            if let Err(why) = judge(row, code, &stdout, &stderr) {
                failures.push(format!("{}: {why}", row.name));
            }
            let after = self.snapshot();
            if after != before {
                failures.push(format!(
                    "{}: changed the world:\n{}",
                    row.name,
                    diff(&before, &after)
                ));
                before = after;
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} rows failed for {}:\n{}",
            failures.len(),
            rows.len(),
            self.plugin_type,
            failures.join("\n")
        );
        rows.len()
    }

    /// A good invocation: exits 0, and (when `changes`) the snapshot sees
    /// what it did, which proves the snapshot can see this plugin's work.
    pub fn control(&self, command: &'static str, stdin: Stdin, changes: bool) {
        let before = self.snapshot();
        let row = ok("control", command, stdin);
        let (code, stdout, stderr) = self.exec(&row);
        assert_eq!(code, Some(0), "control {command}: {stdout} {stderr}");
        let after = self.snapshot();
        assert_eq!(
            after != before,
            changes,
            "control {command}: changed={} expected {changes}:\n{}",
            after != before,
            diff(&before, &after)
        );
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
        for dir in ["/run/cni/tuning"] {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().contains(&self.container_id) {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
    }
}

/// The outcome of one run against its row.
fn judge(row: &Row, code: Option<i32>, stdout: &str, stderr: &str) -> Result<(), String> {
    let Some(code) = code else {
        return Err(format!("killed by a signal; stderr {stderr:?}"));
    };
    if stderr.contains("panicked") || stdout.contains("panicked") {
        return Err(format!("panicked: {stdout} {stderr}"));
    }
    if stdout.contains(CANARY) || stderr.contains(CANARY) {
        return Err(format!("echoed a config value: {stdout} {stderr}"));
    }
    match row.expect {
        Expect::Ok if code == 0 => Ok(()),
        Expect::Ok => Err(format!("exit {code}, expected 0: {stdout}")),
        Expect::Code(want) => {
            if code != 1 {
                return Err(format!("exit {code}, expected 1: {stdout} {stderr}"));
            }
            let v: serde_json::Value = serde_json::from_str(stdout.trim())
                .map_err(|e| format!("stdout is not JSON ({e}): {stdout:?}"))?;
            let obj = v
                .as_object()
                .ok_or(format!("stdout is not an object: {v}"))?;
            if let Some(k) = obj
                .keys()
                .find(|k| !["cniVersion", "code", "msg", "details"].contains(&k.as_str()))
            {
                return Err(format!("error JSON has key {k:?}: {v}"));
            }
            if !obj.get("cniVersion").is_some_and(|v| v.is_string()) {
                return Err(format!("error JSON has no cniVersion: {v}"));
            }
            if obj
                .get("msg")
                .and_then(|m| m.as_str())
                .is_none_or(str::is_empty)
            {
                return Err(format!("error JSON has no msg: {v}"));
            }
            match obj.get("code").and_then(|c| c.as_u64()) {
                Some(c) if c == u64::from(want) => Ok(()),
                other => Err(format!("code {other:?}, expected {want}: {v}")),
            }
        }
    }
}

fn list_files(root: &Path, out: &mut String) {
    let Ok(meta) = std::fs::symlink_metadata(root) else {
        return;
    };
    *out += &format!("{} {:o} {}\n", root.display(), meta.mode(), meta.len());
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            list_files(&e, out);
        }
    } else if meta.is_file() {
        if let Ok(text) = std::fs::read(root) {
            *out += &format!("  {}\n", String::from_utf8_lossy(&text));
        }
    }
}

pub(crate) fn diff(before: &str, after: &str) -> String {
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    let mut out = String::new();
    for l in &b {
        if !a.contains(l) {
            out += &format!("- {l}\n");
        }
    }
    for l in &a {
        if !b.contains(l) {
            out += &format!("+ {l}\n");
        }
    }
    out
}
