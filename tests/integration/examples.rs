//! examples/: no Docker engine or cluster runs here, so the examples are checked for what can
//! be checked without one. Every policy (presets, examples/policies, the policy inside the
//! Kubernetes ConfigMap) parses and plans, and every one that stores archives signs them and
//! trusts signed archives only (issue 27); every Kubernetes manifest is valid YAML of the kind
//! it says, mounts its Secrets mode 0400 and the signing key where the policy names it; every
//! offsite command line in the manifests, hooks, systemd units and Dockerfile is accepted by
//! the CLI; the Grafana dashboard uses only metric names that offsite writes.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::common::*;

/// The clone's root, read at run time, not with env!: a test binary reused by a clone at
/// another path (one target dir shared by several clones) must read this clone's files.
pub fn root() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

/// Checks an offsite command line (words after `offsite`) with the CLI's own parser. Shell
/// variables stand for values: a word that is a variable becomes a placeholder path.
fn accepted(origin: &str, words: &[String]) {
    let argv: Vec<String> = std::iter::once("offsite".to_string())
        .chain(words.iter().map(|w| {
            // Kubernetes expands $(JOB_COMPLETION_INDEX) in an Indexed Job's args.
            let w = &w.replace("$(JOB_COMPLETION_INDEX)", "0");
            if w.contains('$') {
                "/tmp/placeholder".to_string()
            } else {
                w.clone()
            }
        }))
        .collect();
    if let Err(e) = offsite::cli::Cli::try_parse_from(&argv) {
        // --help and --version end parsing on purpose.
        use clap::error::ErrorKind;
        if !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            panic!("{origin}: the CLI refuses `{}`:\n{e}", argv.join(" "));
        }
    }
}

/// Every `offsite ...` command in a shell text (lines joined at trailing backslashes).
fn shell_commands(origin: &str, text: &str) -> usize {
    let joined = text.replace("\\\n", " ");
    let mut n = 0;
    for line in joined.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(words) = shlex::split(line) else {
            continue;
        };
        let cut: Vec<&String> = words
            .iter()
            .take_while(|w| !matches!(w.as_str(), "||" | "&&" | "|" | ";"))
            .collect();
        let first = cut.first().map(|w| w.as_str()).unwrap_or_default();
        let named = first == "offsite" || first == "$offsite" || first.ends_with("/offsite");
        if named && !first.contains('=') {
            let i = 0;
            let rest: Vec<String> = cut[i + 1..]
                .iter()
                .map(|s| s.to_string())
                .filter(|w| !w.starts_with('>'))
                .collect();
            accepted(&format!("{origin}: {line}"), &rest);
            n += 1;
        }
    }
    n
}

#[test]
fn every_policy_under_examples_and_presets_parses_and_plans() {
    let sb = Sandbox::new();
    let mut policies: Vec<(String, String)> = Vec::new();
    for dir in ["policies/presets", "examples/policies"] {
        for f in files(&root().join(dir), "toml") {
            policies.push((
                f.display().to_string(),
                std::fs::read_to_string(&f).unwrap(),
            ));
        }
    }
    for (origin, _, text) in configmap_policies() {
        policies.push((origin, text));
    }
    assert!(policies.len() >= 8, "{}", policies.len());
    let rfile = sb.path("recipients.txt");
    std::fs::write(&rfile, format!("{}\n", sb.recipient)).unwrap();
    // The signing key and allowed_signers a user makes before using a preset (README, Signing).
    let key = sb.path("keys/signing.key");
    let o = sb
        .cmd()
        .args(["keygen", "--signing", "--comment", "host-a", "-o"])
        .arg(&key)
        .output()
        .unwrap();
    assert_code(&o, 0);
    let allowed = sb.path("allowed_signers");
    std::fs::write(&allowed, format!("host-a {}", stdout(&o))).unwrap();
    for (origin, text) in &policies {
        let policy = offsite_policies::policy::Policy::parse(text, origin)
            .unwrap_or_else(|e| panic!("{origin}: {}", e.0));
        // What stores archives signs them, and its readers trust signed archives only.
        let signing = policy.signing.as_ref();
        if policy.has_archives() {
            let s = signing.unwrap_or_else(|| panic!("{origin}: no [signing]"));
            assert!(s.key_file.is_some(), "{origin}: [signing] has no key-file");
            assert!(s.has_trust(), "{origin}: [signing] trusts no key");
        }
        // And offsite plan accepts it as a user would run it (its recipients file, signing key
        // and allowed_signers here).
        let mut text = text.replace("/etc/offsite/recipients.txt", &rfile.display().to_string());
        if let Some(f) = signing.and_then(|s| s.key_file.as_ref()) {
            text = text.replace(&f.display().to_string(), &key.display().to_string());
        }
        if let Some(f) = signing.and_then(|s| s.trusted_file.as_ref()) {
            text = text.replace(&f.display().to_string(), &allowed.display().to_string());
        }
        let p = sb.path("p.toml");
        std::fs::write(&p, text).unwrap();
        let o = sb
            .cmd()
            .arg("plan")
            .arg("--policy")
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{origin}: {}{}", stdout(&o), stderr(&o));
        if policy.has_archives() {
            assert!(
                stdout(&o).contains("readers trust only signed archives"),
                "{origin}: {}",
                stdout(&o)
            );
        }
    }
}

/// Each ConfigMap's files beside its policy.toml: (file, ConfigMap name, key, text).
fn configmap_files() -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for f in files(&root().join("examples/kubernetes"), "yaml") {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        if doc["kind"] != "ConfigMap" {
            continue;
        }
        for (k, v) in doc["data"].as_mapping().into_iter().flatten() {
            out.push((
                f.display().to_string(),
                doc["metadata"]["name"].as_str().unwrap().to_string(),
                k.as_str().unwrap().to_string(),
                v.as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

#[test]
fn the_kubernetes_policy_trusts_an_allowed_signers_file_its_configmap_holds() {
    let files = configmap_files();
    let mut checked = 0;
    for (origin, name, text) in configmap_policies() {
        let policy = offsite_policies::policy::Policy::parse(&text, &name).unwrap();
        let Some(trusted) = policy
            .signing
            .as_ref()
            .and_then(|s| s.trusted_file.as_ref())
        else {
            continue;
        };
        // Every job mounts its policy's ConfigMap at /etc/offsite.
        let key = trusted
            .strip_prefix("/etc/offsite")
            .unwrap_or_else(|_| {
                panic!(
                    "{origin}: trusted-file {} is not in the ConfigMap's mount /etc/offsite",
                    trusted.display()
                )
            })
            .display()
            .to_string();
        let (_, _, _, allowed) = files
            .iter()
            .find(|(_, n, k, _)| *n == name && *k == key)
            .unwrap_or_else(|| panic!("{origin}: the ConfigMap {name} has no {key}"));
        let mut set = offsite_policies::signing::TrustedSigners::default();
        set.add_allowed_signers(allowed, &format!("{origin}: {key}"))
            .unwrap_or_else(|e| panic!("{}", e.0));
        assert!(!set.is_empty(), "{origin}: {key} trusts no key");
        checked += 1;
    }
    assert!(
        checked >= 1,
        "no Kubernetes policy trusts an allowed_signers file"
    );
}

/// The policies the Kubernetes ConfigMaps hold: (file, ConfigMap name, policy.toml).
fn configmap_policies() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for f in files(&root().join("examples/kubernetes"), "yaml") {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        if doc["kind"] == "ConfigMap" {
            if let Some(text) = doc["data"]["policy.toml"].as_str() {
                out.push((
                    f.display().to_string(),
                    doc["metadata"]["name"].as_str().unwrap().to_string(),
                    text.to_string(),
                ));
            }
        }
    }
    out
}

#[test]
fn kubernetes_manifests_are_cronjobs_whose_offsite_commands_the_cli_accepts() {
    let dir = root().join("examples/kubernetes");
    let mut commands = 0;
    let mut kinds = Vec::new();
    for f in files(&dir, "yaml") {
        let text = std::fs::read_to_string(&f).unwrap();
        let origin = f.display().to_string();
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{origin}: {e}"));
        let kind = doc["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{origin}: no kind"))
            .to_string();
        assert!(doc["apiVersion"].is_string(), "{origin}: no apiVersion");
        assert!(
            doc["metadata"]["name"].is_string(),
            "{origin}: no metadata.name"
        );
        kinds.push(kind.clone());
        let pod = match kind.as_str() {
            "CronJob" => {
                assert!(doc["spec"]["schedule"].is_string(), "{origin}: no schedule");
                &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            }
            "Job" => {
                // An Indexed Job whose pods each take the shard of their completion index.
                assert_eq!(doc["spec"]["completionMode"], "Indexed", "{origin}");
                let n = doc["spec"]["completions"].as_u64().unwrap();
                assert!(
                    text.contains(&format!("\"$(JOB_COMPLETION_INDEX)/{n}\"")),
                    "{origin}: --shard must be $(JOB_COMPLETION_INDEX)/{n}"
                );
                &doc["spec"]["template"]["spec"]
            }
            _ => continue,
        };
        assert_eq!(doc["apiVersion"], "batch/v1", "{origin}");
        assert_eq!(pod["restartPolicy"], "Never", "{origin}");
        let mut containers: Vec<&serde_yaml::Value> = Vec::new();
        for key in ["initContainers", "containers"] {
            if let Some(list) = pod[key].as_sequence() {
                containers.extend(list);
            }
        }
        // Every volume a container mounts is declared.
        let volumes: Vec<&str> = pod["volumes"]
            .as_sequence()
            .map(|v| v.iter().filter_map(|v| v["name"].as_str()).collect())
            .unwrap_or_default();
        // A policy it mounts from a ConfigMap is one shipped here: with [[snapshots]] for a job
        // that snapshots volumes, with destinations for one that works on archives.
        let snapshot_job = containers.iter().any(|c| {
            let words: Vec<&str> = c["command"]
                .as_sequence()
                .into_iter()
                .chain(c["args"].as_sequence())
                .flatten()
                .filter_map(|w| w.as_str())
                .collect();
            words.first() == Some(&"offsite") && words.get(1) == Some(&"snapshot")
        });
        let maps = configmap_policies();
        // Secrets (the identity, the signing key) are private to their owner: defaultMode
        // 0400, octal to Kubernetes (YAML 1.1), however this YAML 1.2 parser reads it.
        for v in pod["volumes"].as_sequence().into_iter().flatten() {
            if v["secret"].is_mapping() {
                let mode = &v["secret"]["defaultMode"];
                assert!(
                    matches!(mode.as_u64(), Some(0o400 | 400)) || mode.as_str() == Some("0400"),
                    "{origin}: the Secret volume {:?} needs defaultMode: 0400, has {mode:?}",
                    v["name"]
                );
            }
        }
        let mut key_file = None;
        for v in pod["volumes"].as_sequence().into_iter().flatten() {
            let Some(name) = v["configMap"]["name"].as_str() else {
                continue;
            };
            let (_, _, text) = maps
                .iter()
                .find(|(_, n, _)| n == name)
                .unwrap_or_else(|| panic!("{origin}: no ConfigMap {name} with a policy.toml here"));
            let policy = offsite_policies::policy::Policy::parse(text, name).unwrap();
            key_file = policy.signing.as_ref().and_then(|s| s.key_file.clone());
            if snapshot_job {
                assert!(
                    !policy.snapshots.is_empty(),
                    "{origin}: snapshots volumes by {name}, which has no [[snapshots]]"
                );
            } else {
                assert!(
                    policy.has_archives(),
                    "{origin}: works on archives by {name}, which has no [[destination]]"
                );
            }
        }
        for c in &containers {
            for m in c["volumeMounts"].as_sequence().into_iter().flatten() {
                let n = m["name"].as_str().unwrap();
                assert!(
                    volumes.contains(&n),
                    "{origin}: volume {n} is mounted but not declared"
                );
            }
            let words = |k: &str| -> Vec<String> {
                c[k].as_sequence()
                    .map(|s| s.iter().map(|w| w.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default()
            };
            let (cmd, args) = (words("command"), words("args"));
            // A container that pushes can read the signing key where the policy names it.
            let all = cmd
                .iter()
                .chain(&args)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            let pushes = all.contains("offsite push")
                || (cmd.first().map(String::as_str) == Some("offsite")
                    && args.first().map(String::as_str) == Some("push"));
            if let (true, Some(key)) = (pushes, &key_file) {
                let dir = key.parent().unwrap().display().to_string();
                assert!(
                    c["volumeMounts"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .any(|m| m["mountPath"].as_str() == Some(dir.as_str())),
                    "{origin}: pushes by a policy whose key-file is {}, but mounts nothing at {dir}",
                    key.display()
                );
            }
            if cmd.first().map(String::as_str) == Some("offsite") {
                accepted(
                    &origin,
                    &cmd[1..].iter().chain(&args).cloned().collect::<Vec<_>>(),
                );
                commands += 1;
            } else if cmd.iter().any(|w| w == "-c") {
                for script in &args {
                    commands += shell_commands(&origin, script);
                }
            }
        }
    }
    assert!(
        kinds.iter().filter(|k| *k == "CronJob").count() >= 3,
        "{kinds:?}"
    );
    assert!(commands >= 3, "{commands}");
}

#[test]
fn hooks_systemd_units_and_the_dockerfile_run_offsite_as_the_cli_accepts() {
    let mut n = 0;
    let hook = root().join("examples/hooks/backup.sh");
    n += shell_commands(
        "examples/hooks/backup.sh",
        &std::fs::read_to_string(&hook).unwrap(),
    );
    n += shell_commands(
        "examples/demo.sh",
        &std::fs::read_to_string(root().join("examples/demo.sh")).unwrap(),
    );
    for f in files(&root().join("examples/systemd"), "service") {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines().filter_map(|l| l.strip_prefix("ExecStart=")) {
            n += shell_commands(&f.display().to_string(), line);
        }
    }
    // The image's entrypoint is offsite, its default arguments --help.
    let docker = std::fs::read_to_string(root().join("examples/Dockerfile")).unwrap();
    assert!(docker.contains("ENTRYPOINT [\"offsite\"]"));
    let cmd = docker.lines().find_map(|l| l.strip_prefix("CMD ")).unwrap();
    let args: Vec<String> = serde_json::from_str(cmd).unwrap();
    accepted("examples/Dockerfile", &args);
    assert!(n >= 10, "{n} offsite commands found");
    // The hook is valid shell.
    let o = std::process::Command::new("bash")
        .arg("-n")
        .arg(&hook)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn the_grafana_dashboard_uses_only_metrics_offsite_writes() {
    let d: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/grafana/offsite-dashboard.json")).unwrap(),
    )
    .unwrap();
    let known: Vec<&str> = offsite::metrics::FAMILIES.iter().map(|f| f.0).collect();
    let mut used = std::collections::BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("offsite_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                used.insert(name);
            }
        }
    }
    assert!(used.len() >= 10, "{used:?}");
    for name in &used {
        assert!(
            known.contains(&name.as_str()),
            "the dashboard uses {name}, which offsite does not write"
        );
    }
}

#[test]
fn the_demo_never_deletes_a_directory_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("important");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("thesis.txt"), "years of work").unwrap();
    // A file where the directory would go is refused too.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "keep").unwrap();
    for target in [&mine, &file] {
        let o = std::process::Command::new("bash")
            .arg(root().join("examples/demo.sh"))
            .env("DEMO_DIR", target)
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("refusing to delete it"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(
        std::fs::read_to_string(mine.join("thesis.txt")).unwrap(),
        "years of work"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
}
