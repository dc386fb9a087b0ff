//! `deploy/kubernetes/`: the manifests validate against the Kubernetes schemas (offline,
//! `kubernetes-validate`), and the fields soak relies on agree with its commands.

use std::path::Path;

use clap::Parser as _;
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");

/// The YAML documents of a manifest, as JSON.
fn load(python: &Path, name: &str) -> Value {
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(format!("{DIR}/{name}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(docs.len(), 1, "{name}: one resource");
    docs.into_iter().next().unwrap()
}

fn validate(python: &Path, files: &[String]) -> std::process::Output {
    std::process::Command::new(python)
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--kubernetes-version",
            "1.30.0",
        ])
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let Some(python) = crate::clients::python("kubernetes_validate") else {
        return;
    };
    let files: Vec<String> = ["results-pvc.yaml", "segments-job.yaml", "merge-job.yaml"]
        .iter()
        .map(|f| format!("{DIR}/{f}"))
        .collect();
    let out = validate(&python, &files);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator does reject a broken Job (so the check above can fail).
    let tmp = tempfile::tempdir().unwrap();
    let broken = tmp.path().join("broken.yaml");
    let text = std::fs::read_to_string(&files[1]).unwrap();
    std::fs::write(
        &broken,
        text.replace("completionMode: Indexed", "completionMode: [Indexed]"),
    )
    .unwrap();
    assert!(
        !validate(&python, &[broken.display().to_string()])
            .status
            .success()
    );
}

#[test]
fn the_indexed_job_and_the_merge_agree_with_soaks_commands() {
    let Some(python) = crate::clients::python("yaml") else {
        return;
    };
    let job = load(&python, "segments-job.yaml");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    assert_eq!(spec["completions"], spec["parallelism"]);
    let n = spec["completions"].as_u64().unwrap();
    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let value = |flag: &str| {
        let i = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag} in {args:?}"));
        args[i + 1].clone()
    };
    // The index comes from JOB_COMPLETION_INDEX through --segments N, N = completions.
    assert_eq!(value("--segments"), n.to_string());
    // The start time: an env var from the pod template's annotation.
    assert_eq!(value("--start-at"), "$(SOAK_START_AT)");
    let env = &container["env"][0];
    assert_eq!(env["name"], "SOAK_START_AT");
    let path = env["valueFrom"]["fieldRef"]["fieldPath"].as_str().unwrap();
    let key = path
        .strip_prefix("metadata.annotations['")
        .and_then(|k| k.strip_suffix("']"))
        .unwrap();
    assert!(spec["template"]["metadata"]["annotations"][key].is_string());
    // Prometheus finds each segment's /metrics by the container's `metrics` port.
    let listen: std::net::SocketAddr = value("--metrics-listen").parse().unwrap();
    let port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "metrics")
        .unwrap();
    assert_eq!(port["containerPort"], listen.port());
    // The args are a valid soak run once Kubernetes has put the start time in.
    let mut argv = vec!["soak".to_string()];
    argv.extend(args.iter().map(|a| a.replace("$(SOAK_START_AT)", "+1s")));
    let cli = soak::cli::Cli::try_parse_from(&argv).unwrap();
    assert_eq!(cli.run.segments, Some(n as u32));
    assert!(
        soak::segment::start_at(&cli.run.start_at.unwrap(), std::time::SystemTime::now()).is_ok()
    );
    // Results go to the shared volume, where the merge reads them.
    let out = value("--out");
    let mount = |pod: &Value, container: &Value| {
        let m = &container["volumeMounts"][0];
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == m["name"])
            .unwrap();
        (
            m["mountPath"].as_str().unwrap().to_string(),
            volume["persistentVolumeClaim"]["claimName"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    let (seg_mount, seg_claim) = mount(pod, container);
    assert!(
        out.starts_with(&format!("{seg_mount}/")),
        "{out} under {seg_mount}"
    );

    let merge = load(&python, "merge-job.yaml");
    let mpod = &merge["spec"]["template"]["spec"];
    let mcontainer = &mpod["containers"][0];
    let margs: Vec<String> = mcontainer["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let mut argv = vec!["soak".to_string()];
    argv.extend(margs.iter().cloned());
    soak::cli::Cli::try_parse_from(&argv).unwrap();
    assert_eq!(margs[0], "merge");
    assert_eq!(
        margs[1], out,
        "merge reads the folder the segments write into"
    );
    let (merge_mount, merge_claim) = mount(mpod, mcontainer);
    assert_eq!(
        (merge_mount.as_str(), merge_claim.as_str()),
        (seg_mount.as_str(), seg_claim.as_str())
    );
    // The merge waits for one run-data.json per segment in that folder.
    let wait = &mpod["initContainers"][0];
    assert_eq!(wait["env"][0]["value"], n.to_string());
    assert!(
        wait["command"][2]
            .as_str()
            .unwrap()
            .contains(&format!("{out}/*-seg*of$SEGMENTS/run-data.json"))
    );
    let pvc = load(&python, "results-pvc.yaml");
    assert_eq!(pvc["metadata"]["name"], seg_claim.as_str());
}
