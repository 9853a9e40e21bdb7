//! What the Kubernetes schemas cannot say about `deploy/`: that the
//! manifests, the container build file and the systemd units give the
//! daemon exactly what the code needs (its capabilities, every host path
//! it uses, the probes' port and paths) and that the policies ConfigMap is
//! `policies/` byte for byte and loads as the daemon loads it.
//!
//! Run by `cargo xtask test` (the deploy suite, beside the offline schema
//! validation) as `cargo test -p acelogic-tests --test deploy`.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use acelogic_agent::privileges;
use acelogic_domain::policy;
use acelogic_kernel as kernel;
use acelogic_proto as api;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every resource of `deploy/kubernetes/*.yaml` (not the kustomization),
/// with the file it is in.
fn resources() -> Vec<(String, Value)> {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        out.extend(docs.into_iter().map(|d| (name.clone(), d)));
    }
    out
}

fn find(kind: &str, name: &str) -> Value {
    resources()
        .into_iter()
        .map(|(_, r)| r)
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"))
}

fn container(workload: &Value, name: &str) -> Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
        .clone()
}

/// `--flag=value` arguments of a container, by flag.
fn flags(container: &Value) -> BTreeMap<String, String> {
    container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| {
            let a = a.as_str().expect("string arg");
            match a.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (a.to_owned(), String::new()),
            }
        })
        .collect()
}

fn flag(flags: &BTreeMap<String, String>, name: &str) -> String {
    flags
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not passed (as {name}=VALUE)"))
        .clone()
}

/// The volume mounted at `mount_path` and the mount itself.
fn mount_at(workload: &Value, container: &Value, mount_path: &str) -> (Value, Value) {
    let mount = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["mountPath"] == mount_path)
        .unwrap_or_else(|| panic!("nothing is mounted at {mount_path}"))
        .clone();
    let volume = workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("no volume {} for {mount_path}", mount["name"]))
        .clone();
    (volume, mount)
}

/// Asserts a host directory is mounted at `container_path`, writable or not.
fn assert_host_mount(ds: &Value, c: &Value, host: &str, container_path: &str, writable: bool) {
    let (volume, mount) = mount_at(ds, c, container_path);
    assert_eq!(
        volume["hostPath"]["path"], host,
        "{container_path} must be the host's {host}: {volume}"
    );
    let read_only = mount["readOnly"].as_bool().unwrap_or(false);
    assert_eq!(
        read_only,
        !writable,
        "{container_path} must be {}",
        if writable { "writable" } else { "read-only" }
    );
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {addr}"))
}

fn container_port(c: &Value, name: &str) -> u64 {
    c["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
        .as_u64()
        .expect("containerPort")
}

/// The daemon's start capabilities as Kubernetes spells them (no `CAP_`).
fn daemon_capabilities() -> BTreeSet<String> {
    privileges::NEEDED_AT_START
        .iter()
        .map(|c| c.to_string().trim_start_matches("CAP_").to_owned())
        .collect()
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

#[test]
fn policies_configmap_is_policies_dir_byte_for_byte() {
    let cm = find("ConfigMap", "acelogic-policies");
    let data = cm["data"].as_object().expect("data");
    let mut files = BTreeMap::new();
    for e in fs::read_dir(repo().join("policies")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            files.insert(name, fs::read_to_string(&p).unwrap());
        }
    }
    let keys: BTreeSet<&String> = data.keys().collect();
    assert_eq!(
        keys,
        files.keys().collect(),
        "the ConfigMap's keys are not policies/*.yaml; run `cargo xtask policies-configmap`"
    );
    for (name, text) in &files {
        assert!(
            data[name].as_str() == Some(text.as_str()),
            "{name} in the ConfigMap differs from policies/{name}; run `cargo xtask \
             policies-configmap`"
        );
    }
}

/// The kubelet's layout of a ConfigMap volume: the files are symlinks
/// into `..data`, itself a symlink to a timestamped directory it swaps
/// atomically on every update.
#[test]
fn policies_configmap_loads_as_the_daemon_loads_it() {
    let cm = find("ConfigMap", "acelogic-policies");
    let dir = std::env::temp_dir().join(format!("acelogic-deploy-cm-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    let stamped = dir.join("..2026_01_01_00_00_00.000000001");
    fs::create_dir_all(&stamped).unwrap();
    std::os::unix::fs::symlink(stamped.file_name().unwrap(), dir.join("..data")).unwrap();
    for (name, text) in cm["data"].as_object().unwrap() {
        fs::write(stamped.join(name), text.as_str().unwrap()).unwrap();
        std::os::unix::fs::symlink(Path::new("..data").join(name), dir.join(name)).unwrap();
    }
    let from_cm = policy::load_inputs(&dir, &dir.join("trust.yaml"));
    let from_repo = policy::load_inputs(
        &repo().join("policies"),
        &repo().join("policies/trust.yaml"),
    );
    fs::remove_dir_all(&dir).unwrap();
    let (loaded, _trust) = from_cm.unwrap_or_else(|e| panic!("the ConfigMap's policies: {e}"));
    let (expected, _) = from_repo.unwrap_or_else(|e| panic!("policies/: {e}"));
    let workloads: Vec<&String> = loaded.set.workloads.keys().collect();
    assert_eq!(workloads, expected.set.workloads.keys().collect::<Vec<_>>());
    for w in ["coding-agent", "deploy-agent", "scaling-agent"] {
        assert!(loaded.set.workloads.contains_key(w), "workload {w} missing");
    }
    assert_eq!(
        loaded.set.files.len(),
        3,
        "three policies besides trust.yaml"
    );
    // The policy hash lineage records is over file names and contents:
    // the same in the pod as from the repository.
    assert_eq!(loaded.set.sha256, expected.set.sha256);
    assert_eq!(loaded.warnings.len(), expected.warnings.len());
}

#[test]
fn agent_is_root_with_exactly_the_daemons_capabilities() {
    let ds = find("DaemonSet", "acelogic-agent");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true, "hostPID");
    assert_ne!(pod["hostNetwork"], true, "hostNetwork is not needed");
    assert_ne!(pod["hostIPC"], true, "hostIPC is not needed");
    assert_eq!(pod["automountServiceAccountToken"], false);
    let c = container(&ds, "agent");
    let sc = &c["securityContext"];
    assert_eq!(strings(&sc["capabilities"]["add"]), daemon_capabilities());
    assert_eq!(
        strings(&sc["capabilities"]["drop"]),
        BTreeSet::from(["ALL".to_owned()])
    );
    assert_ne!(sc["privileged"], true, "must not be privileged");
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["runAsUser"], 0, "bpffs and cgroupfs belong to root");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    // Kubernetes refuses allowPrivilegeEscalation: false with an added
    // "CAP_SYS_ADMIN" spelled so; the runtime adds the prefix itself.
    assert!(
        !strings(&sc["capabilities"]["add"])
            .iter()
            .any(|c| c.starts_with("CAP_"))
    );
}

#[test]
fn agent_probes_use_the_metrics_port_and_paths() {
    let ds = find("DaemonSet", "acelogic-agent");
    let c = container(&ds, "agent");
    let f = flags(&c);
    assert_eq!(flag(&f, "--metrics-listen"), "0.0.0.0:9464");
    assert_eq!(container_port(&c, "metrics"), 9464);
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert!(
            get["port"] == "metrics" || get["port"] == 9464,
            "{probe} must probe the metrics port, not {}",
            get["port"]
        );
    }
}

#[test]
fn agent_mounts_every_host_path_the_daemon_uses() {
    let ds = find("DaemonSet", "acelogic-agent");
    let c = container(&ds, "agent");
    let f = flags(&c);

    // State (state.db, journal.db, node.key) survives the pod.
    let state = flag(&f, "--state-dir");
    assert_host_mount(&ds, &c, "/var/lib/acelogic", &state, true);
    // Pins live in the host's bpffs, at the daemon's default place.
    let pin = flag(&f, "--pin-dir");
    assert_eq!(pin, kernel::DEFAULT_PIN_DIR);
    let bpffs = Path::new(&pin).parent().unwrap().to_str().unwrap();
    assert_host_mount(&ds, &c, "/sys/fs/bpf", bpffs, true);
    // The socket is in the host's /run/acelogic, where agents look.
    let socket = flag(&f, "--socket");
    assert_eq!(socket, api::DEFAULT_SOCKET);
    let run = Path::new(&socket).parent().unwrap().to_str().unwrap();
    assert_host_mount(&ds, &c, "/run/acelogic", run, true);
    // The host's cgroup2 root, named to the daemon.
    let cgroup = flag(&f, "--cgroup-root");
    assert_host_mount(&ds, &c, "/sys/fs/cgroup", &cgroup, true);
    assert_ne!(
        cgroup, "/sys/fs/cgroup",
        "that is the pod's namespaced cgroupfs"
    );
    // What the node checks and the loader read, at the paths they read.
    for file in [kernel::check::VMLINUX_BTF, kernel::check::LSM_LIST] {
        let dir = Path::new(file).parent().unwrap().to_str().unwrap();
        assert_host_mount(&ds, &c, dir, dir, false);
    }
    // Policies from the ConfigMap, where --policies says.
    let (volume, mount) = mount_at(&ds, &c, &flag(&f, "--policies"));
    assert_eq!(volume["configMap"]["name"], "acelogic-policies");
    assert_eq!(mount["readOnly"], true);
    // The root filesystem is read-only: SQLite's temporary files need /tmp.
    let (volume, _) = mount_at(&ds, &c, "/tmp");
    assert!(volume["emptyDir"].is_object(), "{volume}");
    // No volume is left unmounted.
    let mounted: BTreeSet<String> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    let declared: BTreeSet<String> = ds["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(mounted, declared);
    // And no host path beyond those: the lineage recorders are BTF
    // tracepoints, so tracefs (and debugfs) stay out of the pod.
    let host_paths: BTreeSet<&str> = ds["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str())
        .collect();
    let btf = Path::new(kernel::check::VMLINUX_BTF).parent().unwrap();
    let lsm = Path::new(kernel::check::LSM_LIST).parent().unwrap();
    let expected = BTreeSet::from([
        "/var/lib/acelogic",
        "/sys/fs/bpf",
        "/run/acelogic",
        "/sys/fs/cgroup",
        btf.to_str().unwrap(),
        lsm.to_str().unwrap(),
    ]);
    assert_eq!(host_paths, expected, "the agent's host paths");
}

#[test]
fn agent_names_its_node_and_reaches_the_collector_service() {
    let ds = find("DaemonSet", "acelogic-agent");
    let c = container(&ds, "agent");
    let f = flags(&c);
    assert_eq!(flag(&f, "--node-name"), "$(NODE_NAME)");
    let env = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "NODE_NAME")
        .expect("env NODE_NAME");
    assert_eq!(env["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");

    let svc = find("Service", "acelogic-collector");
    let grpc = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "grpc")
        .expect("grpc port")
        .clone();
    let want = format!(
        "http://{}.{}.svc:{}",
        svc["metadata"]["name"].as_str().unwrap(),
        svc["metadata"]["namespace"].as_str().unwrap(),
        grpc["port"]
    );
    assert_eq!(flag(&f, "--collector"), want);
}

#[test]
fn collector_is_one_recreated_replica_on_its_volume() {
    let dep = find("Deployment", "acelogic-collector");
    assert_eq!(dep["spec"]["replicas"], 1);
    assert_eq!(dep["spec"]["strategy"]["type"], "Recreate");
    let c = container(&dep, "collector");
    let f = flags(&c);
    let claim = find("PersistentVolumeClaim", "acelogic-collector");
    for file in [flag(&f, "--db"), flag(&f, "--key")] {
        let dir = Path::new(&file).parent().unwrap().to_str().unwrap();
        let (volume, mount) = mount_at(&dep, &c, dir);
        assert_eq!(
            volume["persistentVolumeClaim"]["claimName"],
            claim["metadata"]["name"]
        );
        assert_ne!(mount["readOnly"], true);
    }
    assert_eq!(
        port_of(&flag(&f, "--listen")),
        container_port(&c, "grpc"),
        "--listen"
    );
    assert_eq!(
        port_of(&flag(&f, "--metrics-listen")),
        container_port(&c, "metrics")
    );
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["httpGet"]["path"], "/healthz", "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "metrics", "{probe}");
    }
    let sc = &c["securityContext"];
    assert_eq!(
        strings(&sc["capabilities"]["drop"]),
        BTreeSet::from(["ALL".to_owned()])
    );
    assert!(sc["capabilities"]["add"].is_null());
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(
        dep["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );

    // The Service reaches those ports on these pods.
    let svc = find("Service", "acelogic-collector");
    let labels = &dep["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "selector {k}");
    }
    for p in svc["spec"]["ports"].as_array().unwrap() {
        let target = p["targetPort"].as_str().expect("named targetPort");
        container_port(&c, target);
    }
}

#[test]
fn every_resource_is_in_the_namespace_and_the_kustomization() {
    let ns = find("Namespace", "acelogic");
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "privileged",
        "hostPID and hostPath are refused below the privileged level"
    );
    let mut files = BTreeSet::new();
    for (file, r) in resources() {
        files.insert(file);
        if r["kind"] != "Namespace" {
            assert_eq!(r["metadata"]["namespace"], "acelogic", "{}", r["metadata"]);
        }
    }
    let kustomization: Value =
        serde_saphyr::from_str(&read("deploy/kubernetes/kustomization.yaml"))
            .expect("kustomization.yaml");
    let listed = strings(&kustomization["resources"]);
    assert_eq!(listed, files, "kustomization.yaml must list every manifest");
}

/// `(flags, source, destination)` of each `COPY` in the Containerfile.
fn copies(containerfile: &str) -> Vec<(Vec<String>, Vec<String>, String)> {
    let joined = containerfile.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.trim().strip_prefix("COPY "))
        .map(|rest| {
            let words: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
            let (flags, paths): (Vec<String>, Vec<String>) =
                words.into_iter().partition(|w| w.starts_with("--"));
            let (dest, sources) = paths.split_last().expect("COPY SRC DEST");
            (flags, sources.to_vec(), dest.clone())
        })
        .collect()
}

#[test]
fn container_build_copies_what_exists_and_installs_the_binaries_the_manifests_run() {
    let text = read("deploy/Containerfile");
    let copies = copies(&text);
    assert!(!copies.is_empty(), "no COPY in deploy/Containerfile");
    let bins = service_bins();
    let mut installed = BTreeSet::new();
    let mut context = BTreeSet::new();
    for (flags, sources, dest) in &copies {
        if flags.iter().any(|f| f.starts_with("--from=")) {
            for src in sources {
                let name = src
                    .strip_prefix("/src/target/release/")
                    .unwrap_or_else(|| panic!("unexpected build output {src}"));
                assert!(
                    bins.contains(name),
                    "{name} is not a binary of {SERVICES:?}"
                );
                installed.insert(dest.clone());
            }
        } else {
            for src in sources {
                assert!(
                    repo().join(src).exists(),
                    "COPY source {src} is not in the repository"
                );
                context.insert(src.trim_end_matches('/').to_owned());
            }
        }
    }
    // Cargo reads every workspace member to resolve the workspace.
    for member in workspace_members() {
        assert!(
            context.contains(&member),
            "workspace member {member} is not copied"
        );
    }
    assert!(text.contains(
        "cargo build --release --locked -p acelogic-agent -p acelogic-collector -p acelogicctl"
    ));
    assert!(
        read(".dockerignore").lines().any(|l| l.trim() == "target"),
        ".dockerignore must keep target/ out of the build context"
    );
    // The image has every binary the manifests run.
    let authority = authority_resource("Deployment", "acelogic-authority");
    for (workload, c) in [
        (find("DaemonSet", "acelogic-agent"), "agent"),
        (find("Deployment", "acelogic-collector"), "collector"),
        (authority.clone(), "authority"),
        (authority, "issuer-key"),
    ] {
        let containers = ["containers", "initContainers"]
            .iter()
            .flat_map(|k| {
                workload["spec"]["template"]["spec"][k]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>();
        let c = containers
            .iter()
            .find(|x| x["name"] == c)
            .unwrap_or_else(|| panic!("no container {c}"));
        let command = c["command"][0].as_str().expect("command").to_owned();
        if command.starts_with("/usr/local/bin/") {
            assert!(
                installed.contains(&command),
                "{command} is not in the image: {installed:?}"
            );
        } else {
            // What the base image has (the init container's install).
            assert!(command.starts_with("/usr/bin/"), "{command}");
        }
    }
}

/// The packages whose binaries the image ships.
const SERVICES: [&str; 4] = [
    "acelogic-agent",
    "acelogic-collector",
    "acelogicctl",
    "acelogic-authority",
];

/// The binary targets of [`SERVICES`], as cargo resolves them.
fn service_bins() -> BTreeSet<String> {
    metadata()["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| SERVICES.contains(&p["name"].as_str().unwrap_or_default()))
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "bin"))
        })
        .map(|t| t["name"].as_str().expect("target name").to_owned())
        .collect()
}

/// The workspace members' directories, relative to the repository, as
/// cargo resolves them (`cargo metadata`, offline: nothing is fetched).
fn workspace_members() -> BTreeSet<String> {
    metadata()["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let manifest = Path::new(p["manifest_path"].as_str().expect("manifest_path"));
            let dir = manifest.parent().unwrap().strip_prefix(repo()).unwrap();
            dir.to_string_lossy().into_owned()
        })
        .collect()
}

/// `cargo metadata --no-deps` of the workspace.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(repo())
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

/// `key -> values` of a unit file's `[Service]` section (keys may repeat).
fn service_section(unit: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut in_service = false;
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service
            && !line.starts_with('#')
            && let Some((k, v)) = line.split_once('=')
        {
            out.entry(k.to_owned()).or_default().push(v.to_owned());
        }
    }
    out
}

fn one<'a>(s: &'a BTreeMap<String, Vec<String>>, key: &str) -> &'a str {
    match s.get(key).map(Vec::as_slice) {
        Some([v]) => v,
        other => panic!("{key}= must be set once, found {other:?}"),
    }
}

#[test]
fn agent_unit_grants_the_daemons_capabilities_and_keeps_its_directories() {
    let s = service_section(&read("deploy/systemd/acelogic-agent.service"));
    let caps: BTreeSet<String> = privileges::NEEDED_AT_START
        .iter()
        .map(ToString::to_string)
        .collect();
    for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
        let set: BTreeSet<String> = one(&s, key).split_whitespace().map(str::to_owned).collect();
        assert_eq!(set, caps, "{key}");
    }
    assert_eq!(one(&s, "User"), "root");
    assert_eq!(one(&s, "Restart"), "always");
    // --state-dir and --socket defaults: /var/lib/acelogic, /run/acelogic.
    assert_eq!(one(&s, "StateDirectory"), "acelogic");
    assert_eq!(one(&s, "RuntimeDirectory"), "acelogic");
    assert_eq!(one(&s, "RuntimeDirectoryPreserve"), "yes");
    assert_eq!(
        Path::new(api::DEFAULT_SOCKET).parent(),
        Some(Path::new("/run/acelogic"))
    );
    let exec = one(&s, "ExecStart");
    assert!(exec.starts_with("/usr/local/bin/acelogic-agent "), "{exec}");
    assert!(exec.contains("--metrics-listen "), "{exec}");
    // Options that would break what the daemon does (see the unit's notes).
    for (key, bad) in [
        ("ProtectKernelTunables", "yes"),
        ("ProtectControlGroups", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectHome", "yes"),
        ("DynamicUser", "yes"),
    ] {
        assert!(
            s.get(key).is_none_or(|v| !v.iter().any(|v| v == bad)),
            "{key}={bad} breaks the daemon"
        );
    }
    assert_eq!(one(&s, "ProtectSystem"), "strict");
    assert_eq!(one(&s, "NoNewPrivileges"), "yes");
}

#[test]
fn collector_unit_runs_without_capabilities_on_its_state_directory() {
    let s = service_section(&read("deploy/systemd/acelogic-collector.service"));
    assert_eq!(one(&s, "CapabilityBoundingSet"), "");
    assert_eq!(one(&s, "DynamicUser"), "yes");
    assert_eq!(one(&s, "StateDirectory"), "acelogic-collector");
    let exec = one(&s, "ExecStart");
    assert!(
        exec.starts_with("/usr/local/bin/acelogic-collector "),
        "{exec}"
    );
    for path in [
        "--db /var/lib/acelogic-collector/",
        "--key /var/lib/acelogic-collector/",
    ] {
        assert!(exec.contains(path), "{exec} lacks {path}");
    }
}

/// A resource of the authority overlay's own manifest.
fn authority_resource(kind: &str, name: &str) -> Value {
    serde_saphyr::from_multiple::<Value>(&read("deploy/authority/authority.yaml"))
        .unwrap()
        .into_iter()
        .find(|r| r["kind"] == kind && r["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/authority/authority.yaml"))
}

/// The init container `name` of `workload`.
fn init_container(workload: &Value, name: &str) -> Value {
    workload["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .expect("initContainers")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no init container {name}"))
        .clone()
}

/// The authority overlay: one recreated replica on its volume, every input
/// mounted where its flag says (the issuer key owner-only, the TLS key from
/// its Secret), a Service on its port, probes on it; and every daemon
/// pointed at that Service over https with the CA alone mounted.
#[test]
fn authority_overlay_runs_the_authority_and_points_every_daemon_at_it() {
    let kustomization: Value =
        serde_saphyr::from_str(&read("deploy/authority/kustomization.yaml")).unwrap();
    let listed = strings(&kustomization["resources"]);
    assert!(listed.contains("../kubernetes") && listed.contains("authority.yaml"));
    for r in serde_saphyr::from_multiple::<Value>(&read("deploy/authority/authority.yaml")).unwrap()
    {
        assert_eq!(r["metadata"]["namespace"], "acelogic", "{}", r["metadata"]);
    }

    let dep = authority_resource("Deployment", "acelogic-authority");
    assert_eq!(dep["spec"]["replicas"], 1);
    assert_eq!(dep["spec"]["strategy"]["type"], "Recreate");
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    // The kubelet's recursive pass would make lineage.key group-readable.
    assert_eq!(
        pod["securityContext"]["fsGroupChangePolicy"],
        "OnRootMismatch"
    );
    let c = container(&dep, "authority");
    let f = flags(&c);

    // State on the claim, writable.
    let claim = authority_resource("PersistentVolumeClaim", "acelogic-authority");
    let (volume, mount) = mount_at(&dep, &c, &flag(&f, "--state-dir"));
    assert_eq!(
        volume["persistentVolumeClaim"]["claimName"],
        claim["metadata"]["name"]
    );
    assert_ne!(mount["readOnly"], true);

    // The issuer key: the init container copies it from the Secret, mode
    // 0400, to the memory volume the authority reads it from.
    let key = flag(&f, "--issuer-key");
    let key_dir = Path::new(&key).parent().unwrap().to_str().unwrap();
    let (volume, mount) = mount_at(&dep, &c, key_dir);
    assert_eq!(volume["emptyDir"]["medium"], "Memory");
    assert_eq!(mount["readOnly"], true);
    let init = init_container(&dep, "issuer-key");
    let args: Vec<&str> = init["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..3], ["/usr/bin/install", "-m", "0400"], "{args:?}");
    assert_eq!(args[4], key, "the copy is the file --issuer-key names");
    let (copy_volume, copy_mount) = mount_at(&dep, &init, key_dir);
    assert_eq!(copy_volume["name"], volume["name"]);
    assert_ne!(copy_mount["readOnly"], true);
    let from = Path::new(args[3]);
    let (secret, secret_mount) = mount_at(&dep, &init, from.parent().unwrap().to_str().unwrap());
    assert_eq!(secret["secret"]["secretName"], "acelogic-authority-issuer");
    assert_eq!(secret_mount["readOnly"], true);
    assert!(
        !c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == secret["name"]),
        "the authority reads the copy, not the Secret"
    );

    // Inputs from the policies ConfigMap, the nodes ConfigMap, the TLS Secret.
    for (flag_name, source) in [
        ("--issuing-policy", "acelogic-policies"),
        ("--trust", "acelogic-policies"),
        ("--nodes", "acelogic-authority-nodes"),
        ("--tls-cert", "acelogic-authority-tls"),
        ("--tls-key", "acelogic-authority-tls"),
    ] {
        let file = flag(&f, flag_name);
        let (volume, mount) = mount_at(
            &dep,
            &c,
            Path::new(&file).parent().unwrap().to_str().unwrap(),
        );
        let name = if volume["configMap"].is_object() {
            &volume["configMap"]["name"]
        } else {
            &volume["secret"]["secretName"]
        };
        assert_eq!(name, source, "{flag_name}");
        assert_eq!(mount["readOnly"], true, "{flag_name}");
    }
    let (volume, _) = mount_at(&dep, &c, &flag(&f, "--policies"));
    assert_eq!(volume["configMap"]["name"], "acelogic-policies");
    // issuing.yaml is in that ConfigMap (the authority refuses to start
    // without it).
    let cm = find("ConfigMap", "acelogic-policies");
    let issuing = Path::new(&flag(&f, "--issuing-policy"))
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cm["data"][&issuing].is_string(),
        "{issuing} is not in acelogic-policies"
    );

    // Ships to the collector's Service, as the daemons do.
    let ds = find("DaemonSet", "acelogic-agent");
    assert_eq!(
        flag(&f, "--collector"),
        flag(&flags(&container(&ds, "agent")), "--collector")
    );

    // Listens on its port; the Service and the probes reach it.
    let port = port_of(&flag(&f, "--listen"));
    assert_eq!(port, container_port(&c, "grpc"));
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["tcpSocket"]["port"], "grpc", "{probe}");
    }
    let sc = &c["securityContext"];
    assert_eq!(
        strings(&sc["capabilities"]["drop"]),
        BTreeSet::from(["ALL".to_owned()])
    );
    assert!(sc["capabilities"]["add"].is_null());
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    let svc = authority_resource("Service", "acelogic-authority");
    let labels = &dep["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "selector {k}");
    }
    let svc_port = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "grpc")
        .expect("grpc port")
        .clone();
    container_port(
        &c,
        svc_port["targetPort"].as_str().expect("named targetPort"),
    );

    // The daemons: https to that Service, the CA from its ConfigMap.
    let patch: Vec<Value> =
        serde_saphyr::from_str(&read("deploy/authority/agent-authority.yaml")).unwrap();
    let added = |path: &str| -> Vec<Value> {
        patch
            .iter()
            .filter(|op| op["op"] == "add" && op["path"] == path)
            .map(|op| op["value"].clone())
            .collect()
    };
    let args: BTreeMap<String, String> = added("/spec/template/spec/containers/0/args/-")
        .iter()
        .map(|a| {
            let (k, v) = a.as_str().unwrap().split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert_eq!(
        flag(&args, "--authority"),
        format!(
            "https://{}.{}.svc:{}",
            svc["metadata"]["name"].as_str().unwrap(),
            svc["metadata"]["namespace"].as_str().unwrap(),
            svc_port["port"]
        )
    );
    let mount = &added("/spec/template/spec/containers/0/volumeMounts/-")[0];
    let volume = &added("/spec/template/spec/volumes/-")[0];
    assert_eq!(mount["name"], volume["name"]);
    assert_eq!(mount["readOnly"], true);
    assert_eq!(volume["configMap"]["name"], "acelogic-authority-ca");
    let items = volume["configMap"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the CA alone");
    assert_eq!(
        flag(&args, "--authority-ca"),
        format!(
            "{}/{}",
            mount["mountPath"].as_str().unwrap(),
            items[0]["path"].as_str().unwrap()
        )
    );
}

#[test]
fn authority_unit_runs_without_capabilities_and_reads_its_key_owner_only() {
    let s = service_section(&read("deploy/systemd/acelogic-authority.service"));
    assert_eq!(one(&s, "CapabilityBoundingSet"), "");
    assert_eq!(one(&s, "DynamicUser"), "yes");
    assert_eq!(one(&s, "NoNewPrivileges"), "yes");
    assert_eq!(one(&s, "ProtectSystem"), "strict");
    // --state-dir's default.
    assert_eq!(one(&s, "StateDirectory"), "acelogic-authority");
    assert_eq!(one(&s, "RuntimeDirectory"), "acelogic-authority");
    let exec = one(&s, "ExecStart");
    assert!(
        exec.starts_with("/usr/local/bin/acelogic-authority "),
        "{exec}"
    );
    let words: Vec<&str> = exec.split_whitespace().collect();
    let value = |flag: &str| -> &str {
        let i = words
            .iter()
            .position(|w| *w == flag)
            .unwrap_or_else(|| panic!("{exec} lacks {flag}"));
        words[i + 1]
    };
    assert_eq!(value("--state-dir"), "/var/lib/acelogic-authority");
    // The issuer key: a credential, copied owner-only into the runtime
    // directory before the authority starts.
    let key = value("--issuer-key");
    assert!(key.starts_with("/run/acelogic-authority/"), "{key}");
    let credentials = &s["LoadCredential"];
    let issuer = credentials
        .iter()
        .find_map(|c| c.strip_prefix("issuer.key:"))
        .expect("LoadCredential=issuer.key:PATH");
    assert!(issuer.starts_with('/'), "{issuer}");
    assert_eq!(
        one(&s, "ExecStartPre"),
        format!("/usr/bin/install -m 0400 %d/issuer.key {key}")
    );
    assert_eq!(value("--tls-key"), "%d/tls.key");
    assert!(credentials.iter().any(|c| c.starts_with("tls.key:/")));
}

/// The cluster-store overlay: the daemons reach the dedicated etcd's
/// client Service over TLS, with the client certificate from the secret
/// the patch mounts, and the members require client certificates.
#[test]
fn cluster_store_overlay_points_every_daemon_at_its_etcd_with_a_client_certificate() {
    let patch: Vec<Value> =
        serde_saphyr::from_str(&read("deploy/cluster-store/agent-etcd.yaml")).unwrap();
    let added = |path: &str| -> Vec<Value> {
        patch
            .iter()
            .filter(|op| op["op"] == "add" && op["path"] == path)
            .map(|op| op["value"].clone())
            .collect()
    };
    let args: BTreeMap<String, String> = added("/spec/template/spec/containers/0/args/-")
        .iter()
        .map(|a| {
            let (k, v) = a.as_str().unwrap().split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&read("deploy/cluster-store/etcd.yaml")).unwrap();
    let svc = docs
        .iter()
        .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "acelogic-etcd")
        .expect("the client Service");
    let port = svc["spec"]["ports"][0]["port"].clone();
    assert_eq!(
        flag(&args, "--etcd-endpoints"),
        format!(
            "https://acelogic-etcd.{}.svc:{port}",
            svc["metadata"]["namespace"].as_str().unwrap()
        )
    );
    let mount = &added("/spec/template/spec/containers/0/volumeMounts/-")[0];
    let volume = &added("/spec/template/spec/volumes/-")[0];
    assert_eq!(mount["name"], volume["name"]);
    assert_eq!(volume["secret"]["secretName"], "acelogic-etcd-client");
    let dir = mount["mountPath"].as_str().unwrap();
    for f in ["--etcd-ca", "--etcd-cert", "--etcd-key"] {
        assert!(
            flag(&args, f).starts_with(&format!("{dir}/")),
            "{f} is in the secret"
        );
    }
    let sts = docs
        .iter()
        .find(|d| d["kind"] == "StatefulSet")
        .expect("the etcd StatefulSet");
    let etcd_args = strings(&container(sts, "etcd")["args"]);
    for want in [
        "--client-cert-auth=true",
        "--peer-client-cert-auth=true",
        "--listen-client-urls=https://0.0.0.0:2379",
    ] {
        assert!(etcd_args.contains(want), "etcd runs with {want}");
    }
}
