//! Host keys before first boot (issue 22), checked with OpenSSH's ssh-keygen and with age (as
//! agenix uses the keys); no private key in any output; --out never where Nix copies a flake.

use crate::harness::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake");
const NODES: [&str; 3] = ["pi-alpha", "pi-beta", "pi-gamma"];

fn keys(t: &TestDir, flake: &Path, out: &Path, extra: &[&str]) -> Output {
    t.pi_burn()
        .arg("keys")
        .arg("--flake")
        .arg(flake)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn key_paths(out: &Path, node: &str) -> [PathBuf; 2] {
    let ssh = out.join(node).join("etc/ssh");
    [
        ssh.join("ssh_host_ed25519_key"),
        ssh.join("initrd_ssh_host_ed25519_key"),
    ]
}

/// Nothing of any private key in `text`: neither its armour nor a line of its body.
fn assert_no_secret(text: &str, out: &Path) {
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    for node in NODES {
        for k in key_paths(out, node) {
            let Ok(pem) = std::fs::read_to_string(&k) else {
                continue;
            };
            for line in pem
                .lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 16)
            {
                assert!(
                    !text.contains(line),
                    "a line of {} is in the output",
                    k.display()
                );
            }
        }
    }
}

/// ssh-keygen reads every key back to its .pub and calls it ED25519; no two keys are one;
/// the modes are what nixos-anywhere must copy; a second run changes nothing.
fn keys_read_back_with_ssh_keygen_and_a_second_run_changes_nothing() {
    if !have_tool("ssh-keygen") {
        return;
    }
    let t = TestDir::new();
    let out = t.path("secrets");
    let o = keys(&t, Path::new(CLUSTER), &out, &[]);
    assert_success(&o);
    let mut seen = vec![];
    for node in NODES {
        for d in ["", "etc", "etc/ssh"] {
            assert_eq!(mode(&out.join(node).join(d)), 0o755, "{node}/{d}");
        }
        for k in key_paths(&out, node) {
            let pubp = PathBuf::from(format!("{}.pub", k.display()));
            assert_eq!((mode(&k), mode(&pubp)), (0o600, 0o644));
            let derived = run_ok(tool("ssh-keygen").arg("-y").arg("-f").arg(&k));
            let public = std::fs::read_to_string(&pubp).unwrap();
            assert_eq!(
                derived.split_whitespace().take(2).collect::<Vec<_>>(),
                public.split_whitespace().take(2).collect::<Vec<_>>()
            );
            let l = run_ok(tool("ssh-keygen").arg("-l").arg("-f").arg(&k));
            assert!(l.trim_end().ends_with("(ED25519)"), "{l}");
            assert!(
                stdout(&o).contains(public.split_whitespace().nth(1).unwrap()),
                "{node}'s key is not printed"
            );
            seen.push(public.split_whitespace().nth(1).unwrap().to_string());
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6, "two keys are one");
    assert_eq!(mode(&out), 0o700);
    let out_text = stdout(&o);
    assert!(out_text.contains("pi-beta = \"ssh-ed25519 "), "{out_text}");
    assert!(
        out_text.contains("[pi-gamma]:2222 ssh-ed25519 "),
        "{out_text}"
    );
    assert!(out_text.contains(&format!("--extra-files {}", out.join("pi-alpha").display())));
    assert_no_secret(&format!("{out_text}{}", stderr(&o)), &out);
    // Again: every byte as it was, every key kept.
    let before: Vec<Vec<u8>> = NODES
        .iter()
        .flat_map(|n| key_paths(&out, n))
        .map(|k| std::fs::read(k).unwrap())
        .collect();
    let o = keys(&t, Path::new(CLUSTER), &out, &["--initrd-port", "2022"]);
    assert_success(&o);
    let after: Vec<Vec<u8>> = NODES
        .iter()
        .flat_map(|n| key_paths(&out, n))
        .map(|k| std::fs::read(k).unwrap())
        .collect();
    assert_eq!(before, after);
    assert!(!stderr(&o).contains(": made,"), "{}", stderr(&o));
    assert_stdout_has(&o, "[pi-alpha]:2022 ssh-ed25519 ");
    // --rotate --node: that node's keys replaced, named with the old fingerprint.
    let o = keys(
        &t,
        Path::new(CLUSTER),
        &out,
        &["--rotate", "--node", "pi-beta"],
    );
    assert_success(&o);
    assert_stderr_has(&o, "replaced (was SHA256:");
    assert_ne!(
        std::fs::read(&key_paths(&out, "pi-beta")[0]).unwrap(),
        before[2]
    );
    assert_eq!(
        std::fs::read(&key_paths(&out, "pi-alpha")[0]).unwrap(),
        before[0]
    );
}

/// `--json` carries the public keys and fingerprints only; age encrypts to a node's .pub and
/// decrypts with its key, as agenix does.
fn json_has_public_keys_only_and_age_uses_the_keys() {
    let t = TestDir::new();
    let out = t.path("k");
    let o = t
        .pi_burn()
        .args([
            "--json", "keys", "--flake", CLUSTER, "--node", "pi-alpha", "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_success(&o);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["nodes"].as_array().unwrap().len(), 1);
    let host = &j["nodes"][0]["host_key"];
    assert!(host["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    assert!(host["public"].as_str().unwrap().starts_with("ssh-ed25519 "));
    assert_eq!(host["fate"], "created");
    assert_no_secret(&format!("{}{}", stdout(&o), stderr(&o)), &out);
    if !have_tool("age") {
        return;
    }
    let [key, _] = key_paths(&out, "pi-alpha");
    let secret = t.path("secret.txt");
    std::fs::write(&secret, "the luks passphrase of pi-alpha\n").unwrap();
    run_ok(
        tool("age")
            .arg("-R")
            .arg(format!("{}.pub", key.display()))
            .arg("-o")
            .arg(t.path("secret.age"))
            .arg(&secret),
    );
    let plain = run_ok(
        tool("age")
            .arg("-d")
            .arg("-i")
            .arg(&key)
            .arg(t.path("secret.age")),
    );
    assert_eq!(plain, "the luks passphrase of pi-alpha\n");
}

/// `--out` where a flake's files go into the Nix store is refused (exit 4) naming the path:
/// inside the flake's git work tree unless ignored, anywhere in a flake that is not in git.
fn an_out_that_nix_would_copy_into_the_store_is_refused() {
    let t = TestDir::new();
    let flake = t.path("flake");
    std::fs::create_dir_all(flake.join("hosts/pi-alpha")).unwrap();
    std::fs::copy(
        format!("{CLUSTER}/hosts/pi-alpha/disk-config.nix"),
        flake.join("hosts/pi-alpha/disk-config.nix"),
    )
    .unwrap();
    let o = keys(&t, &flake, &flake.join("keys"), &[]);
    assert_fails_with(&o, 4, &["keys", "not in git", "Nix store"]);
    assert!(!flake.join("keys").exists());
    if !have_tool("git") {
        return;
    }
    run_ok(tool("git").arg("-C").arg(&flake).args(["init", "-q"]));
    let o = keys(&t, &flake, &flake.join("secrets/keys"), &[]);
    assert_fails_with(&o, 4, &["secrets/keys", "git work tree", ".gitignore"]);
    assert!(!flake.join("secrets").exists());
    std::fs::write(flake.join(".gitignore"), "/secrets/\n").unwrap();
    let o = keys(&t, &flake, &flake.join("secrets/keys"), &[]);
    assert_success(&o);
    assert!(key_paths(&flake.join("secrets/keys"), "pi-alpha")[0].is_file());
    // Outside the work tree: taken.
    assert_success(&keys(&t, &flake, &t.path("elsewhere"), &[]));
    let o = keys(&t, &flake, &t.path("x"), &["--node", "pi-omega"]);
    assert_fails_with(&o, 2, &["pi-omega", "pi-alpha"]);
}

// This module's tests, for the runner in main.rs.
/// Issue 30 item 2: a link planted under --out (another user's, in a shared directory) is
/// refused by name, with --rotate too, and nothing behind it is written; a FIFO at a key path
/// is refused without being opened (opening it would wait for a writer forever).
fn links_and_fifos_under_out_are_refused_and_nothing_behind_them_is_written() {
    let t = TestDir::new();
    let elsewhere = t.path("elsewhere");
    std::fs::create_dir_all(elsewhere.join("etc/ssh")).unwrap();
    std::fs::write(elsewhere.join("etc/ssh/ssh_host_ed25519_key"), "theirs").unwrap();
    let outside = || {
        let mut v: Vec<String> = walk(&elsewhere);
        v.sort();
        v
    };
    let before = outside();
    for (name, plant) in [
        ("node", "pi-alpha"),
        ("etc", "pi-alpha/etc"),
        ("etc/ssh", "pi-alpha/etc/ssh"),
        ("key", "pi-alpha/etc/ssh/ssh_host_ed25519_key"),
    ] {
        let out = t.path(&format!("out-{}", name.replace('/', "-")));
        let at = out.join(plant);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        let target = match name {
            "node" => elsewhere.clone(),
            "etc" => elsewhere.join("etc"),
            "etc/ssh" => elsewhere.join("etc/ssh"),
            _ => elsewhere.join("etc/ssh/ssh_host_ed25519_key"),
        };
        std::os::unix::fs::symlink(&target, &at).unwrap();
        for extra in [&[][..], &["--rotate"]] {
            let o = keys(&t, Path::new(CLUSTER), &out, extra);
            assert_fails_with(&o, 4, &["is a symbolic link", plant]);
            assert_eq!(
                outside(),
                before,
                "{name} {extra:?}: written through the link"
            );
        }
    }
    // The --out itself a link: refused too.
    let link = t.path("out-link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    assert_fails_with(
        &keys(&t, Path::new(CLUSTER), &link, &[]),
        4,
        &["is a symbolic link"],
    );
    assert_eq!(outside(), before);
    // A FIFO at the initrd key's path: refused, not opened (the run would hang on it).
    let out = t.path("out-fifo");
    let fifo = key_paths(&out, "pi-beta")[1].clone();
    std::fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let start = std::time::Instant::now();
    let o = keys(&t, Path::new(CLUSTER), &out, &["--node", "pi-beta"]);
    assert!(start.elapsed().as_secs() < 20);
    assert_fails_with(
        &o,
        4,
        &["not a regular file", "initrd_ssh_host_ed25519_key"],
    );
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(format!("{} {:?}", p.display(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// Issue 30 item 3: keys the node could not use are never reported as plainly kept: a private
/// key of mode 0644 is set to 0600 (sshd refuses it otherwise) and said so; the tree's
/// directories made 0700 become 0755 (they are the node's /, /etc and /etc/ssh); a key
/// encrypted with a passphrase is refused (sshd cannot ask for it at boot).
fn keys_the_node_could_not_use_are_set_right_or_refused() {
    if !have_tool("ssh-keygen") {
        return;
    }
    let t = TestDir::new();
    let out = t.path("keys");
    assert_success(&keys(&t, Path::new(CLUSTER), &out, &["--node", "pi-alpha"]));
    let [host, initrd] = key_paths(&out, "pi-alpha");
    let before = std::fs::read(&host).unwrap();
    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o644)).unwrap();
    for d in ["pi-alpha", "pi-alpha/etc", "pi-alpha/etc/ssh"] {
        std::fs::set_permissions(out.join(d), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let o = t
        .pi_burn()
        .args([
            "--json", "keys", "--flake", CLUSTER, "--node", "pi-alpha", "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_success(&o);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["nodes"][0]["host_key"]["fate"], "kept", "{j}");
    assert_eq!(
        j["nodes"][0]["host_key"]["fixed"], "mode 0644 -> 0600",
        "{j}"
    );
    assert_eq!(
        j["nodes"][0]["fixed_dirs"].as_array().unwrap().len(),
        3,
        "{j}"
    );
    assert!(
        stderr(&o).contains("kept, mode 0644 -> 0600"),
        "{}",
        stderr(&o)
    );
    assert_eq!(mode(&host), 0o600);
    assert_eq!(
        std::fs::read(&host).unwrap(),
        before,
        "the key itself is kept"
    );
    for d in ["pi-alpha", "pi-alpha/etc", "pi-alpha/etc/ssh"] {
        assert_eq!(mode(&out.join(d)), 0o755, "{d}");
    }
    // A key with a passphrase: refused, left as it is; --rotate replaces it.
    std::fs::remove_file(&initrd).unwrap();
    run_ok(
        tool("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
            .arg(&initrd),
    );
    let enc = std::fs::read(&initrd).unwrap();
    let o = keys(&t, Path::new(CLUSTER), &out, &["--node", "pi-alpha"]);
    assert_fails_with(&o, 1, &["encrypted with a passphrase", "--rotate"]);
    assert_eq!(std::fs::read(&initrd).unwrap(), enc);
    let o = keys(
        &t,
        Path::new(CLUSTER),
        &out,
        &["--node", "pi-alpha", "--rotate"],
    );
    assert_success(&o);
    assert_ne!(std::fs::read(&initrd).unwrap(), enc);
}

/// Issue 30 item 4: two runs at once print only keys that are on disk, each .pub matching
/// its key (they took turns: the second kept what the first made).
fn two_runs_at_once_print_the_keys_that_are_on_disk() {
    let t = TestDir::new();
    let out = t.path("keys");
    for round in 0..4 {
        let _ = std::fs::remove_dir_all(&out);
        let spawn = || {
            t.pi_burn()
                .args(["--json", "keys", "--flake", CLUSTER, "--out"])
                .arg(&out)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for o in [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()] {
            assert_success(&o);
            let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
            for n in j["nodes"].as_array().unwrap() {
                for k in ["host_key", "initrd_key"] {
                    let path = PathBuf::from(n[k]["path"].as_str().unwrap());
                    let printed = n[k]["public"].as_str().unwrap();
                    let on_disk =
                        std::fs::read_to_string(format!("{}.pub", path.display())).unwrap();
                    assert_eq!(
                        on_disk.trim_end(),
                        printed,
                        "round {round}: {}",
                        path.display()
                    );
                }
            }
        }
    }
}

crate::tests![
    keys_read_back_with_ssh_keygen_and_a_second_run_changes_nothing,
    json_has_public_keys_only_and_age_uses_the_keys,
    an_out_that_nix_would_copy_into_the_store_is_refused,
    links_and_fifos_under_out_are_refused_and_nothing_behind_them_is_written,
    keys_the_node_could_not_use_are_set_right_or_refused,
    two_runs_at_once_print_the_keys_that_are_on_disk,
];
