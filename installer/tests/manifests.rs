//! The deploy/ manifests, parsed as YAML (yaml-rust2: pure Rust and
//! maintained, where serde_yaml is deprecated and its forks either wrap a
//! C-to-Rust libyaml port or are unmaintained) and checked for the fields
//! that decide whether the DaemonSet works: hostPath mounts matching the
//! installer's settings, tolerations for every node, the image, the
//! readiness probe on the readiness file, least-privilege securityContext,
//! priority, resources, update strategy, and environment variables the
//! installer really reads. No Kubernetes schema validator (kubeconform,
//! kubeval) is packaged in Debian or on crates.io, so none runs here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn deploy(name: &str) -> String {
    let path = format!("{}/../deploy/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(name: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&deploy(name)).unwrap();
    assert_eq!(docs.len(), 1, "{name}: one document");
    docs.remove(0)
}

fn s(y: &Yaml) -> &str {
    y.as_str().unwrap_or_else(|| panic!("not a string: {y:?}"))
}

fn list(y: &Yaml) -> &Vec<Yaml> {
    y.as_vec().unwrap_or_else(|| panic!("not a list: {y:?}"))
}

fn env_of(container: &Yaml, name: &str) -> String {
    list(&container["env"])
        .iter()
        .find(|e| s(&e["name"]) == name)
        .map(|e| s(&e["value"]).to_string())
        .unwrap_or_else(|| panic!("env {name} not set"))
}

fn mount_path<'a>(pod: &'a Yaml, container: &'a Yaml, host_path: &str) -> &'a str {
    let volume = list(&pod["volumes"])
        .iter()
        .find(|v| v["hostPath"]["path"].as_str() == Some(host_path))
        .unwrap_or_else(|| panic!("no hostPath volume for {host_path}"));
    assert_eq!(s(&volume["hostPath"]["type"]), "DirectoryOrCreate");
    let mount = list(&container["volumeMounts"])
        .iter()
        .find(|m| m["name"] == volume["name"])
        .unwrap_or_else(|| panic!("volume for {host_path} is not mounted"));
    assert!(mount["readOnly"].is_badvalue() || mount["readOnly"].as_bool() == Some(false));
    s(&mount["mountPath"])
}

#[test]
fn daemonset_mounts_the_host_dirs_the_installer_writes() {
    let ds = yaml("daemonset.yaml");
    assert_eq!(s(&ds["apiVersion"]), "apps/v1");
    assert_eq!(s(&ds["kind"]), "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    let containers = list(&pod["containers"]);
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert_eq!(
        mount_path(pod, c, "/opt/cni/bin"),
        env_of(c, "CNI_INSTALL_BIN_DIR")
    );
    assert_eq!(
        mount_path(pod, c, "/etc/cni/net.d"),
        env_of(c, "CNI_INSTALL_CONF_DIR")
    );
    // The readiness file lives on a writable volume (the root fs is read-only).
    let ready = env_of(c, "CNI_INSTALL_READINESS_FILE");
    let on_volume = list(&c["volumeMounts"]).iter().any(|m| {
        let dir = s(&m["mountPath"]);
        ready.starts_with(&format!("{dir}/"))
            && list(&pod["volumes"])
                .iter()
                .any(|v| v["name"] == m["name"] && !v["emptyDir"].is_badvalue())
    });
    assert!(on_volume, "{ready} is not on an emptyDir mount");
    // Selector matches the template.
    for (k, v) in ds["spec"]["selector"]["matchLabels"].as_hash().unwrap() {
        assert_eq!(&ds["spec"]["template"]["metadata"]["labels"][s(k)], v);
    }
}

#[test]
fn daemonset_runs_on_every_node_first_and_bounded() {
    let ds = yaml("daemonset.yaml");
    let pod = &ds["spec"]["template"]["spec"];
    let tolerations = list(&pod["tolerations"]);
    assert!(
        tolerations.iter().any(|t| s(&t["operator"]) == "Exists"
            && t["key"].is_badvalue()
            && t["effect"].is_badvalue()),
        "no toleration for every taint: {tolerations:?}"
    );
    assert_eq!(s(&pod["priorityClassName"]), "system-node-critical");
    assert_eq!(
        pod["hostNetwork"].as_bool(),
        Some(true),
        "must run before the pod network exists"
    );
    assert_eq!(pod["automountServiceAccountToken"].as_bool(), Some(false));
    let c = &list(&pod["containers"])[0];
    for kind in ["requests", "limits"] {
        for res in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][res].as_str().is_some(),
                "resources.{kind}.{res}"
            );
        }
    }
    let strategy = &ds["spec"]["updateStrategy"];
    assert_eq!(s(&strategy["type"]), "RollingUpdate");
    assert!(!strategy["rollingUpdate"]["maxUnavailable"].is_badvalue());
}

#[test]
fn daemonset_runs_with_no_capability_and_no_escalation() {
    let ds = yaml("daemonset.yaml");
    let sc = &list(&ds["spec"]["template"]["spec"]["containers"])[0]["securityContext"];
    assert_eq!(sc["runAsUser"].as_i64(), Some(0));
    assert_eq!(sc["privileged"].as_bool(), Some(false));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(
        list(&sc["capabilities"]["drop"])
            .iter()
            .map(s)
            .collect::<Vec<_>>(),
        ["ALL"]
    );
    assert!(
        sc["capabilities"]["add"].is_badvalue(),
        "no capability is added"
    );
    assert_eq!(s(&sc["seccompProfile"]["type"]), "RuntimeDefault");
}

#[test]
fn image_probe_and_entrypoint_agree_with_the_containerfile() {
    let ds = yaml("daemonset.yaml");
    let c = &list(&ds["spec"]["template"]["spec"]["containers"])[0];
    let image = s(&c["image"]);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(image, format!("cni-chain-plugins:{version}"));
    let kustomization = yaml("kustomization.yaml");
    assert_eq!(
        list(&kustomization["resources"])
            .iter()
            .map(s)
            .collect::<Vec<_>>(),
        ["daemonset.yaml"]
    );
    let images = list(&kustomization["images"]);
    assert_eq!(s(&images[0]["name"]), image.split(':').next().unwrap());
    assert_eq!(s(&images[0]["newTag"]), version);
    let containerfile = deploy("Containerfile");
    let entrypoint = containerfile
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT [\"")?.strip_suffix("\"]"))
        .unwrap();
    let probe: Vec<&str> = list(&c["readinessProbe"]["exec"]["command"])
        .iter()
        .map(s)
        .collect();
    assert_eq!(probe, [entrypoint, "ready"]);
    assert_eq!(list(&c["args"]).iter().map(s).collect::<Vec<_>>(), ["run"]);
    // The image ships every plugin the DaemonSet installs.
    for plugin in env_of(c, "CNI_INSTALL_PLUGINS")
        .split(',')
        .chain(["cni-install"])
    {
        assert!(
            containerfile.contains(&format!("target/release/{plugin}")),
            "Containerfile does not copy {plugin}"
        );
    }
}

#[test]
fn every_environment_variable_is_a_setting_the_installer_reads() {
    let ds = yaml("daemonset.yaml");
    let c = &list(&ds["spec"]["template"]["spec"]["containers"])[0];
    let help = Command::new(env!("CARGO_BIN_EXE_cni-install"))
        .args(["run", "--help"])
        .env_clear()
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for e in list(&c["env"]) {
        let name = s(&e["name"]);
        assert!(
            help.contains(&format!("[env: {name}")),
            "{name} is not an installer setting:\n{help}"
        );
    }
    // And the values work: `cni-install once` with the manifest's
    // environment (host paths moved into a temp dir) chains a network.
    let tmp = tempfile::tempdir().unwrap();
    let (src, bin, conf) = (
        tmp.path().join("src"),
        tmp.path().join("bin"),
        tmp.path().join("net.d"),
    );
    for d in [&src, &bin, &conf] {
        std::fs::create_dir(d).unwrap();
    }
    let built = cni::testing::workspace_bin_dir();
    for p in env_of(c, "CNI_INSTALL_PLUGINS").split(',') {
        std::fs::copy(built.join(p), src.join(p))
            .unwrap_or_else(|e| panic!("{p}: {e} (run cargo build --workspace)"));
    }
    let flannel = format!(
        "{}/tests/fixtures/10-flannel.conflist",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::copy(flannel, conf.join("10-flannel.conflist")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cni-install"));
    cmd.env_clear().arg("once");
    for e in list(&c["env"]) {
        cmd.env(s(&e["name"]), s(&e["value"]));
    }
    let out = cmd
        .env("CNI_INSTALL_SOURCE_DIR", &src)
        .env("CNI_INSTALL_BIN_DIR", &bin)
        .env("CNI_INSTALL_CONF_DIR", &conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chained = std::fs::read_to_string(conf.join("10-flannel.conflist")).unwrap();
    assert!(chained.contains("\"maxBurst\": 1000000"), "{chained}");
}
