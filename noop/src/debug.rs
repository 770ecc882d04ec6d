//! The test-double debug file and command log, in the JSON shape of the
//! upstream cni `plugins/test/noop` (Go field names): reading, recording the
//! invocation back, appending to the command log. Only file I/O; decides
//! nothing about what to print.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use cni::CniError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The invocation as Go's `skel.CmdArgs` marshals it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedCmdArgs {
    #[serde(rename = "ContainerID", default)]
    pub container_id: String,
    #[serde(rename = "Netns", default)]
    pub netns: String,
    #[serde(rename = "IfName", default)]
    pub if_name: String,
    #[serde(rename = "Args", default)]
    pub args: String,
    #[serde(rename = "Path", default)]
    pub path: String,
    #[serde(rename = "NetnsOverride", default)]
    pub netns_override: String,
    /// Base64 of stdin, as Go encodes a `[]byte`.
    #[serde(rename = "StdinData", default)]
    pub stdin_data: String,
}

impl RecordedCmdArgs {
    pub fn encode_stdin(stdin: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(stdin)
    }
}

/// Controls the test double (`Report*`, `ExitWithCode`) and records what it
/// was called with (`Command`, `CmdArgs`). Unknown keys are kept. Read with
/// Go's rules ([`cni::gojson`]): Go writes `"StdinData": null` for an empty
/// byte slice, and keys match case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct DebugFile {
    #[serde(rename = "ReportResult", default)]
    pub report_result: String,
    #[serde(rename = "ReportError", default)]
    pub report_error: String,
    #[serde(rename = "ReportErrorCode", default)]
    pub report_error_code: u32,
    #[serde(rename = "ReportStderr", default)]
    pub report_stderr: String,
    #[serde(rename = "ReportVersionSupport", default)]
    pub report_version_support: Option<Vec<String>>,
    #[serde(rename = "ExitWithCode", default)]
    pub exit_with_code: i32,
    #[serde(rename = "Command", default)]
    pub command: String,
    #[serde(rename = "CmdArgs", default)]
    pub cmd_args: RecordedCmdArgs,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

cni::go_fields!(
    DebugFile,
    [
        "ReportResult",
        "ReportError",
        "ReportErrorCode",
        "ReportStderr",
        "ReportVersionSupport",
        "ExitWithCode",
        "Command",
        "CmdArgs",
    ]
);

/// One entry of the command log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandLogEntry {
    #[serde(rename = "Command")]
    pub command: String,
    #[serde(rename = "CmdArgs")]
    pub cmd_args: RecordedCmdArgs,
}

/// Reads a regular file. Opened non-blocking and checked before reading, so
/// a FIFO cannot hang the plugin and a device (`/dev/zero`) cannot make it
/// read forever.
fn read_regular(path: &Path, what: &str) -> Result<Vec<u8>, CniError> {
    let fail = |e: &dyn std::fmt::Display| {
        CniError::io(format!("noop: reading {what} {}: {e}", path.display()))
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| fail(&e))?;
    let meta = file.metadata().map_err(|e| fail(&e))?;
    if !meta.is_file() {
        return Err(fail(&"not a regular file"));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|e| fail(&e))?;
    Ok(bytes)
}

impl DebugFile {
    /// Reads the debug file; a missing or malformed file is an error that
    /// names it (the upstream double panics here).
    pub fn read(path: &Path) -> Result<DebugFile, CniError> {
        let bytes = read_regular(path, "debug file")?;
        cni::gojson::from_slice(&bytes).map_err(|e| {
            CniError::new(
                cni::ErrorCode::Decode,
                format!("noop: debug file {}: {e}", path.display()),
            )
        })
    }

    pub fn write(&self, path: &Path) -> Result<(), CniError> {
        let bytes = serde_json::to_vec(self)
            .map_err(|e| CniError::internal(format!("noop: encoding debug file: {e}")))?;
        std::fs::write(path, bytes)
            .map_err(|e| CniError::io(format!("noop: writing debug file {}: {e}", path.display())))
    }
}

/// Appends `entry` to the JSON array in `path`. The file must exist (an
/// empty file is an empty log), as upstream requires.
pub fn append_command_log(path: &Path, entry: CommandLogEntry) -> Result<(), CniError> {
    let name = path.display();
    let bytes = read_regular(path, "command log")?;
    let mut log: Vec<Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else {
        cni::gojson::from_slice(&bytes).map_err(|e| {
            CniError::new(
                cni::ErrorCode::Decode,
                format!("noop: command log {name} is not a JSON array: {e}"),
            )
        })?
    };
    let entry = serde_json::to_value(entry)
        .map_err(|e| CniError::internal(format!("noop: encoding command log entry: {e}")))?;
    log.push(entry);
    let bytes = serde_json::to_vec(&log)
        .map_err(|e| CniError::internal(format!("noop: encoding command log: {e}")))?;
    std::fs::write(path, bytes)
        .map_err(|e| CniError::io(format!("noop: writing command log {name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("noop-debug-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let _ = std::fs::remove_file(&fifo);
        nix_mkfifo(&fifo);
        for path in [fifo.as_path(), Path::new("/dev/zero"), dir.as_path()] {
            let e = DebugFile::read(path).unwrap_err();
            assert_eq!(e.code, cni::ErrorCode::Io, "{}: {e:?}", path.display());
            let entry = CommandLogEntry {
                command: "ADD".into(),
                cmd_args: RecordedCmdArgs::default(),
            };
            let e = append_command_log(path, entry).unwrap_err();
            assert!(
                e.msg.contains("not a regular file") || e.msg.contains("directory"),
                "{e:?}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn nix_mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn reads_go_shaped_files_and_keeps_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("noop-debug-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("debug.json");
        std::fs::write(
            &path,
            r#"{"ReportResult":"PASSTHROUGH","ReportErrorCode":7,"ReportVersionSupport":["0.4.0"],"Mine":1}"#,
        )
        .unwrap();
        let mut d = DebugFile::read(&path).unwrap();
        assert_eq!(d.report_result, "PASSTHROUGH");
        assert_eq!(d.report_error_code, 7);
        assert_eq!(d.report_version_support, Some(vec!["0.4.0".to_string()]));
        d.command = "ADD".into();
        d.cmd_args.stdin_data = RecordedCmdArgs::encode_stdin(b"{}");
        d.write(&path).unwrap();
        let back: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back["Mine"], 1);
        assert_eq!(back["Command"], "ADD");
        assert_eq!(back["CmdArgs"]["StdinData"], "e30=");
        assert_eq!(back["ReportStderr"], "");

        let e = DebugFile::read(&dir.join("missing.json")).unwrap_err();
        assert_eq!(e.code, cni::ErrorCode::Io);
        assert!(e.msg.contains("missing.json"), "{e}");
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(
            DebugFile::read(&path).unwrap_err().code,
            cni::ErrorCode::Decode
        );

        let log = dir.join("log.json");
        std::fs::write(&log, "").unwrap();
        for command in ["ADD", "DEL"] {
            append_command_log(
                &log,
                CommandLogEntry {
                    command: command.into(),
                    cmd_args: RecordedCmdArgs::default(),
                },
            )
            .unwrap();
        }
        let entries: Vec<CommandLogEntry> =
            serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].command, "DEL");
        assert!(append_command_log(
            &dir.join("no-log.json"),
            CommandLogEntry {
                command: "ADD".into(),
                cmd_args: RecordedCmdArgs::default()
            }
        )
        .is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What Go's noop double and libcni's tests write: `null` for an empty
    /// `[]byte`, Go-cased and mixed-cased keys.
    #[test]
    fn reads_go_nulls_and_any_key_case() {
        let dir = std::env::temp_dir().join(format!("noop-debug-go-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("debug.json");
        std::fs::write(
            &path,
            r#"{"ReportResult":"PASSTHROUGH","ReportError":"","ReportErrorCode":0,"ReportStderr":"",
               "ReportVersionSupport":null,"ExitWithCode":0,"Command":"ADD",
               "CmdArgs":{"ContainerID":"c1","Netns":"/n","IfName":"eth0","Args":"","Path":"",
                          "NetnsOverride":"","StdinData":null}}"#,
        )
        .unwrap();
        let d = DebugFile::read(&path).unwrap();
        assert_eq!(d.report_result, "PASSTHROUGH");
        assert_eq!(d.report_version_support, None);
        assert_eq!(d.cmd_args.container_id, "c1");
        assert_eq!(d.cmd_args.stdin_data, "");
        assert!(d.extra.is_empty(), "{:?}", d.extra);
        std::fs::write(
            &path,
            r#"{"reportresult":"INJECT-DNS","REPORTERRORCODE":7,"reportVersionSupport":["1.0.0"],
               "exitWithCode":3,"cmdargs":{"containerid":"c2","STDINDATA":"e30="},"Mine":null}"#,
        )
        .unwrap();
        let d = DebugFile::read(&path).unwrap();
        assert_eq!(
            (
                d.report_result.as_str(),
                d.report_error_code,
                d.exit_with_code
            ),
            ("INJECT-DNS", 7, 3)
        );
        assert_eq!(d.report_version_support, Some(vec!["1.0.0".to_string()]));
        assert_eq!(
            (
                d.cmd_args.container_id.as_str(),
                d.cmd_args.stdin_data.as_str()
            ),
            ("c2", "e30=")
        );
        assert_eq!(d.extra.get("Mine"), Some(&Value::Null));
        // Written back in Go's casing.
        d.write(&path).unwrap();
        let back: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back["ReportResult"], "INJECT-DNS");
        assert_eq!(back["CmdArgs"]["ContainerID"], "c2");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
