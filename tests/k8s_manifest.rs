//! The Kubernetes manifest (`scripts/k8s/infersim-indexed-job.yaml`) as a cluster
//! would run it, without a cluster: the file is parsed as YAML, its structure is
//! checked (an Indexed Job whose `completions` equal every `SHARDS`, the volumes its
//! commands use mounted where they use them, the merge Job reading the same
//! experiment), and then its own commands are run with `sh`, as the pods would run
//! them: each shard pod's with its `JOB_COMPLETION_INDEX`, the merge Job's wait
//! script and merge command, the mount paths mapped to folders of a temporary
//! directory and `infersim` on `PATH`. The merged files must be byte-identical to an
//! unsharded run given the shards' other options (as `scripts/slurm/ci-test.sh`
//! checks for the Slurm array). What is not checked: the Kubernetes API's own
//! validation of the objects, scheduling, retries (`backoffLimitPerIndex`) and the
//! ReadWriteMany volume.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use yaml_rust2::{Yaml, YamlLoader};

const MANIFEST: &str = "scripts/k8s/infersim-indexed-job.yaml";

fn docs() -> Vec<Yaml> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(MANIFEST))
        .expect("manifest readable");
    YamlLoader::load_from_str(&text).expect("manifest is valid YAML")
}

fn kind_named<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} named {name} in {MANIFEST}"))
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .unwrap_or_else(|| panic!("not a list: {y:?}"))
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

/// A container's environment, name → value.
fn env_of(c: &Yaml) -> BTreeMap<String, String> {
    c["env"]
        .as_vec()
        .map(|v| {
            v.iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap().to_string(),
                        e["value"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A pod's volumes by name, as (kind, what): `pvc`/claim or `configMap`/name.
fn volumes_of(spec: &Yaml) -> BTreeMap<String, (String, String)> {
    spec["volumes"]
        .as_vec()
        .expect("volumes")
        .iter()
        .map(|v| {
            let name = v["name"].as_str().unwrap().to_string();
            let what = if let Some(c) = v["persistentVolumeClaim"]["claimName"].as_str() {
                ("pvc".to_string(), c.to_string())
            } else if let Some(c) = v["configMap"]["name"].as_str() {
                ("configMap".to_string(), c.to_string())
            } else {
                panic!("volume {name}: neither a claim nor a config map")
            };
            (name, what)
        })
        .collect()
}

/// A container's mounts, mount path → volume name.
fn mounts_of(c: &Yaml) -> BTreeMap<String, String> {
    c["volumeMounts"]
        .as_vec()
        .expect("volumeMounts")
        .iter()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap().to_string(),
                m["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `text` with every mount path replaced by its folder under `root`, where it starts
/// a path (at the start of a word, followed by `/`, a quote, a blank or the end).
fn remap(text: &str, mounts: &BTreeMap<String, String>, root: &Path) -> String {
    let mut out = text.to_string();
    for path in mounts.keys() {
        let mut next = String::new();
        let mut rest = out.as_str();
        while let Some(k) = rest.find(path.as_str()) {
            let before = rest[..k].chars().last().or_else(|| next.chars().last());
            let after = rest[k + path.len()..].chars().next();
            let starts = before.is_none_or(|c| c.is_whitespace() || c == '"' || c == '\'');
            let ends = after.is_none_or(|c| c == '/' || c == '"' || c.is_whitespace());
            next.push_str(&rest[..k]);
            if starts && ends {
                next.push_str(&format!("{}{path}", root.display()));
            } else {
                next.push_str(path);
            }
            rest = &rest[k + path.len()..];
        }
        next.push_str(rest);
        out = next;
    }
    out
}

/// Runs `argv` (a container's command and args) with `env`, `infersim` on `PATH`.
fn sh(argv: &[String], env: &BTreeMap<String, String>, bin_dir: &Path, cwd: &Path) {
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .envs(env)
        .env("PATH", path)
        .current_dir(cwd)
        .output()
        .expect("the command starts");
    assert!(
        out.status.success(),
        "{argv:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file below `dir`, relative path → bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn the_manifest_is_an_indexed_job_whose_shards_and_merge_agree() {
    let docs = docs();
    let shards = kind_named(&docs, "Job", "infersim-shards");
    let merge = kind_named(&docs, "Job", "infersim-merge");
    let claim = kind_named(&docs, "PersistentVolumeClaim", "infersim-results");
    assert!(strings(&claim["spec"]["accessModes"]).contains(&"ReadWriteMany".to_string()));
    let spec = &shards["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let completions = spec["completions"].as_i64().expect("completions");
    assert!(completions >= 2);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    let shard = &pod["containers"][0];
    assert_eq!(env_of(shard)["SHARDS"], completions.to_string());
    let args = strings(&shard["args"]).join(" ");
    for needed in [
        "infersim run",
        "--shard \"${JOB_COMPLETION_INDEX}/${SHARDS}\"",
        "--resume",
    ] {
        assert!(args.contains(needed), "shard args lack {needed}: {args}");
    }
    // The volumes each pod mounts are the claim and the experiment's config map.
    let mpod = &merge["spec"]["template"]["spec"];
    for p in [pod, mpod] {
        let vols = volumes_of(p);
        assert_eq!(vols["results"], ("pvc".into(), "infersim-results".into()));
        assert_eq!(
            vols["experiment"],
            ("configMap".into(), "infersim-experiment".into())
        );
    }
    // The merge waits for as many shard files as there are completions, in the
    // folder the shards write, and reads the experiment the shards ran.
    let wait = &mpod["initContainers"][0];
    assert_eq!(env_of(wait)["SHARDS"], completions.to_string());
    let merge_cmd = strings(&mpod["containers"][0]["command"]);
    assert_eq!(&merge_cmd[..2], ["infersim", "merge"]);
    let out_dir = args
        .split_whitespace()
        .skip_while(|w| *w != "--out")
        .nth(1)
        .expect("the shards' --out");
    assert_eq!(merge_cmd[2], out_dir);
    let exp = args
        .split_whitespace()
        .nth(3)
        .expect("the shards' experiment");
    assert_eq!(
        merge_cmd
            .iter()
            .skip_while(|w| *w != "--experiment")
            .nth(1)
            .map(String::as_str),
        Some(exp)
    );
    assert!(strings(&wait["args"]).join(" ").contains(out_dir));
}

#[test]
fn the_manifests_commands_shard_and_merge_as_an_unsharded_run() {
    let docs = docs();
    let shards = kind_named(&docs, "Job", "infersim-shards");
    let merge = kind_named(&docs, "Job", "infersim-merge");
    let pod = &shards["spec"]["template"]["spec"];
    let mpod = &merge["spec"]["template"]["spec"];
    let shard = &pod["containers"][0];
    let completions = shards["spec"]["completions"].as_i64().unwrap();
    // (A mismatch would leave the merge's wait script waiting for shards that never
    // come: fail at once instead.)
    assert_eq!(env_of(shard)["SHARDS"], completions.to_string());
    let mounts = mounts_of(shard);

    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    // The folder under `root` where the volume `name` is mounted, made.
    let mounted = |name: &str| {
        let at = mounts.iter().find(|m| m.1 == name).expect("mounted").0;
        let dir = root.join(at.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    };
    // The config map's one key, and the claim: an empty folder.
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/shard-sweep.toml"),
        mounted("experiment").join("experiment.toml"),
    )
    .unwrap();
    mounted("results");
    let bin_dir = root.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_infersim"), bin_dir.join("infersim")).unwrap();

    let mut command = strings(&shard["command"]);
    command.extend(strings(&shard["args"]));
    let command: Vec<String> = command.iter().map(|a| remap(a, &mounts, root)).collect();
    // The reference: the shards' command without its --shard, run the same way.
    let mut reference = command.clone();
    let script = reference.last_mut().unwrap();
    *script = script.replace("--shard \"${JOB_COMPLETION_INDEX}/${SHARDS}\"", "");
    assert!(!script.contains("--shard"));
    sh(&reference, &env_of(shard), &bin_dir, root);
    let out_dir = PathBuf::from(
        command
            .last()
            .unwrap()
            .split_whitespace()
            .skip_while(|w| *w != "--out")
            .nth(1)
            .unwrap(),
    );
    let reference_dir = root.join("reference");
    std::fs::rename(&out_dir, &reference_dir).unwrap();

    // The Indexed Job: one pod per completion index (in reverse, as pods finish in
    // any order).
    for i in (0..completions).rev() {
        let mut env = env_of(shard);
        env.insert("JOB_COMPLETION_INDEX".into(), i.to_string());
        sh(&command, &env, &bin_dir, root);
    }
    // The merge Job: its wait script (which must see every shard file), then the merge.
    let wait = &mpod["initContainers"][0];
    let mut wait_cmd = strings(&wait["command"]);
    wait_cmd.extend(strings(&wait["args"]));
    // Bounded here: the script itself waits up to a day.
    let wait_cmd: Vec<String> = ["timeout".to_string(), "60".to_string()]
        .into_iter()
        .chain(wait_cmd.iter().map(|a| remap(a, &mounts, root)))
        .collect();
    sh(&wait_cmd, &env_of(wait), &bin_dir, root);
    let merge_cmd: Vec<String> = strings(&mpod["containers"][0]["command"])
        .iter()
        .map(|a| remap(a, &mounts_of(&mpod["containers"][0]), root))
        .collect();
    sh(&merge_cmd, &BTreeMap::new(), &bin_dir, root);

    let want = tree(&reference_dir);
    let got = tree(&out_dir);
    assert!(want.contains_key(Path::new("summary.json")));
    for (name, bytes) in &want {
        assert!(
            got.get(name) == Some(bytes),
            "{} differs after the manifest's shards and merge",
            name.display()
        );
    }
    let shard_files = got
        .keys()
        .filter(|p| p.to_string_lossy().starts_with("shard-"))
        .count();
    assert_eq!(shard_files as i64, completions);
}
