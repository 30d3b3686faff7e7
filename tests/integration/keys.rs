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
crate::tests![
    keys_read_back_with_ssh_keygen_and_a_second_run_changes_nothing,
    json_has_public_keys_only_and_age_uses_the_keys,
    an_out_that_nix_would_copy_into_the_store_is_refused,
];
