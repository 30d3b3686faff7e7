//! From the media to a running node (issue 27): the doctor's checks of each node's NixOS config
//! against its media, the install that keeps what pi-burn wrote (checked against disko's modes),
//! a card re-GUIDed by disko's install still intact, and the cluster's nodes among a flake's
//! hosts.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::Output;

const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake");
const PRIMER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake-primer");

/// A copy of a fixture flake outside the repository (nix copies a flake in a git tree as git
/// sees it), links followed.
fn copy(t: &TestDir, flake: &str, name: &str) -> PathBuf {
    run_ok(tool("cp").args(["-rL", flake]).arg(t.path(name)));
    t.path(name)
}

fn doctor(t: &TestDir, flake: &Path, extra: &[&str]) -> Output {
    t.pi_burn()
        .args(["--json", "doctor", "--flake"])
        .arg(flake)
        .args(["--manifest", MANIFEST])
        .args(extra)
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// The node's diagnosis in doctor's JSON.
fn node<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    j["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == name)
        .unwrap_or_else(|| panic!("{name} not in {j}"))
}

fn errors(n: &serde_json::Value) -> Vec<String> {
    n["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["level"] == "error")
        .map(|f| f["option"].as_str().unwrap().to_string())
        .collect()
}

/// The cluster's own nodes pass (warnings allowed); the primer's node fails naming each option;
/// the vendor kernel under ACPI fails; the laptop host is left out, by name.
fn doctor_fails_the_primer_s_node_by_option_and_passes_the_cluster() {
    if !have_nix() {
        return;
    }
    let t = TestDir::new();
    let cluster = copy(&t, CLUSTER, "cluster");
    let o = doctor(&t, &cluster, &[]);
    assert_success(&o);
    let j = json(&o);
    for n in ["pi-alpha", "pi-beta", "pi-gamma"] {
        assert_eq!(errors(node(&j, n)), Vec::<String>::new(), "{n}: {j}");
    }
    assert!(
        j["left_out"][0]
            .as_str()
            .unwrap()
            .starts_with("ocean: no firmware card"),
        "{j}"
    );
    assert!(stderr(&o).contains("left out: ocean"), "{}", stderr(&o));
    let primer = copy(&t, PRIMER, "primer");
    let o = doctor(&t, &primer, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(
        errors(node(&j, "pi-delta")),
        [
            "boot.loader.generic-extlinux-compatible.enable",
            "raspberry-pi-nix.firmware-migration-service.enable"
        ]
    );
    assert_eq!(errors(node(&j, "pi-epsilon")), ["boot.kernelPackages"]);
    // As text: each error on its own line with the value, the clash and the fix.
    let o = t
        .pi_burn()
        .args(["doctor", "--node", "pi-delta", "--flake"])
        .arg(&primer)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let out = stdout(&o);
    assert!(
        out.contains("pi-delta: error: raspberry-pi-nix.firmware-migration-service.enable = true (raspberry-pi-nix.firmware-partition-label = \"FIRMWARE\"")
            && out.contains("Fix: raspberry-pi-nix.firmware-migration-service.enable = false;")
            && out.contains("pi-delta: error: boot.loader.generic-extlinux-compatible.enable = true"),
        "{out}"
    );
}

/// The same checks from --options-json, on a machine without Nix: the options the apply picks,
/// as a user would write them out.
fn doctor_reads_the_options_from_json_without_nix() {
    let t = TestDir::new();
    let opts = t.path("delta.json");
    std::fs::write(
        &opts,
        r#"{
  "boot.loader.systemd-boot.enable": false,
  "boot.loader.generic-extlinux-compatible.enable": true,
  "raspberry-pi-nix.firmware-migration-service.enable": true,
  "raspberry-pi-nix.firmware-partition-label": "FIRMWARE",
  "raspberry-pi-nix.uboot.enable": true
}"#,
    )
    .unwrap();
    let primer = copy(&t, PRIMER, "primer");
    let from_json = || {
        doctor(
            &t,
            &primer,
            &[
                "--node",
                "pi-delta",
                "--options-json",
                opts.to_str().unwrap(),
            ],
        )
    };
    let o = from_json();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(
        errors(node(&json(&o), "pi-delta")),
        [
            "boot.loader.generic-extlinux-compatible.enable",
            "raspberry-pi-nix.firmware-migration-service.enable"
        ]
    );
    // A misspelt option checks nothing: refused by name.
    std::fs::write(&opts, r#"{"boot.loader.systemd-boot.enabled": true}"#).unwrap();
    let o = from_json();
    assert_fails_with(
        &o,
        1,
        &["systemd-boot.enabled", "is not an option the doctor reads"],
    );
}

/// The printed install is nixos-anywhere's default mode, never --disko-mode format or mount:
/// with destroy = false on the disks pi-burn prepared (pi-beta) it keeps them; without
/// (pi-alpha, the primer's disk config) it names the lines to add first. As the disko model
/// (ssd::install) says: only the default mode with destroy = false keeps a disk and installs.
fn the_install_keeps_what_pi_burn_wrote() {
    if !have_nix() {
        return;
    }
    let t = TestDir::new();
    let cluster = copy(&t, CLUSTER, "cluster");
    let j = json(&doctor(&t, &cluster, &[]));
    let alpha = &node(&j, "pi-alpha")["install"];
    assert_eq!(
        alpha["needs_destroy_false"],
        serde_json::json!(["sdcard", "usb-ssd"])
    );
    let beta = &node(&j, "pi-beta")["install"];
    assert_eq!(beta["needs_destroy_false"], serde_json::json!([]));
    let want = format!(
        "nixos-anywhere --flake {}#pi-beta --target-host root@<pi-beta's address>",
        cluster.display()
    );
    assert_eq!(beta["command"], want.as_str());
    // keys prints the same install, with the node's keys, for every node; never a mode.
    let o = t
        .pi_burn()
        .args(["keys", "--flake"])
        .arg(&cluster)
        .arg("--out")
        .arg(t.path("keys"))
        .output()
        .unwrap();
    assert_success(&o);
    let out = stdout(&o);
    for n in ["pi-alpha", "pi-beta", "pi-gamma"] {
        let line = format!(
            "  nixos-anywhere --flake {}#{n} --extra-files {} --target-host root@<{n}'s address>",
            cluster.display(),
            t.path("keys").join(n).display()
        );
        assert!(out.lines().any(|l| l == line), "{n}: {out}");
    }
    assert!(
        out.contains("add `destroy = false;` to disko.devices.disk.{sdcard, usb-ssd} in hosts/pi-alpha/disk-config.nix"),
        "{out}"
    );
    assert!(
        out.lines()
            .filter(|l| l.contains("nixos-anywhere --flake"))
            .all(|l| !l.contains("--disko-mode")),
        "{out}"
    );
    // The laptop host of the flake gets no keys.
    assert!(!t.path("keys/ocean").exists());
    assert!(stderr(&o).contains("left out: ocean"), "{}", stderr(&o));
}

/// images refuses a node the doctor fails and writes nothing; --allow-config-errors writes it,
/// saying so. sdcard --node refuses it the same way.
fn images_and_sdcard_refuse_a_node_whose_config_does_not_fit() {
    if !have_nix() {
        return;
    }
    let t = TestDir::new();
    let primer = copy(&t, PRIMER, "primer");
    let images = |extra: &[&str]| t.images(&primer, &t.path("out"), extra);
    let o = images(&[]);
    assert_fails_with(
        &o,
        3,
        &[
            "pi-delta's NixOS config does not fit",
            "pi-epsilon's",
            "nothing was written",
        ],
    );
    assert!(!t.path("out").exists());
    let o = images(&["--node", "pi-delta", "--allow-config-errors"]);
    assert_success(&o);
    assert!(
        stderr(&o).contains("--allow-config-errors: writing anyway"),
        "{}",
        stderr(&o)
    );
    assert!(t.path("out/pi-delta-sdcard.img").is_file());
    assert!(!t.path("out/pi-epsilon-sdcard.img").exists());
    let o = t.sdcard(
        "d.img",
        &["--node", "pi-delta", "--flake", primer.to_str().unwrap()],
    );
    assert_fails_with(
        &o,
        3,
        &["raspberry-pi-nix.firmware-migration-service.enable"],
    );
    assert!(!t.path("d.img").exists());
}

/// disko's install re-GUIDs the card's partition (sgdisk --partition-guid=1:R with the same name,
/// type and attributes, as lib/types/gpt.nix runs it on an existing partition): inspect passes
/// it, naming the change. A card whose config pins the GUID (uuid) gets it, and keeps it.
fn a_card_re_guided_by_disko_s_install_is_intact() {
    if !(have_tool("sgdisk") && have_nix()) {
        return;
    }
    let t = TestDir::new();
    assert_success(&t.sdcard("c.img", &[]));
    let img = t.path("c.img");
    let disko = |uuid: &str| {
        run_ok(
            tool("sgdisk")
                .arg(format!("--partition-guid=1:{uuid}"))
                .arg("--change-name=1:disk-sdcard-FIRMWARE")
                .arg("--typecode=1:EF00")
                .arg("--attributes=1:=:0")
                .arg(&img),
        );
    };
    disko("R");
    let o = t
        .pi_burn()
        .args(["inspect", "--manifest", MANIFEST, "--image"])
        .arg(&img)
        .output()
        .unwrap();
    assert_success(&o);
    assert!(
        stdout(&o).contains("partition 1's GUID is")
            && stdout(&o).contains("disko's install sets a new one"),
        "{}",
        stdout(&o)
    );
    // Anything else changed with it is still a difference.
    run_ok(tool("sgdisk").args(["--change-name=1:other"]).arg(&img));
    let o = t
        .pi_burn()
        .args(["inspect", "--manifest", MANIFEST, "--image"])
        .arg(&img)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    // Pinned by the node's config: the card carries it, the install keeps it.
    let edge = copy(
        &t,
        concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake-edge"),
        "edge",
    );
    let pinned = t.path("p.img");
    let o = t.sdcard(
        "p.img",
        &["--node", "pinned", "--flake", edge.to_str().unwrap()],
    );
    assert_success(&o);
    let j = sfdisk_json(&pinned);
    assert_eq!(
        j["partitiontable"]["partitions"][0]["uuid"],
        "5EA1ED00-0000-4000-8000-00000000C0DE"
    );
    let img = pinned.clone();
    run_ok(
        tool("sgdisk")
            .arg("--partition-guid=1:5ea1ed00-0000-4000-8000-00000000c0de")
            .arg("--change-name=1:disk-sdcard-FIRMWARE")
            .arg("--typecode=1:EF00")
            .arg("--attributes=1:=:0")
            .arg(&img),
    );
    let o = t
        .pi_burn()
        .args(["inspect", "--manifest", MANIFEST, "--image"])
        .arg(&img)
        .output()
        .unwrap();
    assert_success(&o);
    assert!(
        !stdout(&o).contains("partition 1's GUID is"),
        "{}",
        stdout(&o)
    );
}

/// --eval auto goes through the flake whenever nix can (the one-file evaluator never sees the
/// NixOS config); without nix the node is said not checked.
fn auto_evaluates_the_flake_and_says_when_it_could_not() {
    if !have_nix() {
        return;
    }
    let t = TestDir::new();
    let cluster = copy(&t, CLUSTER, "cluster");
    let o = t
        .pi_burn()
        .args([
            "ssd", "--node", "pi-beta", "--size", "4G", "--image", "s.img", "--flake",
        ])
        .arg(&cluster)
        .output()
        .unwrap();
    assert_success(&o);
    assert!(stdout(&o).contains("(nix eval)"), "{}", stdout(&o));
    let o = t
        .pi_burn()
        .env("PATH", "/usr/sbin:/sbin")
        .args([
            "ssd", "--node", "pi-beta", "--size", "4G", "--image", "s2.img", "--flake",
        ])
        .arg(&cluster)
        .output()
        .unwrap();
    assert_success(&o);
    assert!(
        stderr(&o).contains(
            "not checked: pi-beta's NixOS config against its media (nix is not installed here)"
        ),
        "{}",
        stderr(&o)
    );
    // The doctor itself, unable to evaluate: the node is "not checked", never "ok", and the run
    // did not do its job (exit 1).
    let o = t
        .pi_burn()
        .env("PATH", "/usr/sbin:/sbin")
        .args(["doctor", "--node", "pi-beta", "--flake"])
        .arg(&cluster)
        .output()
        .unwrap();
    assert_fails_with(
        &o,
        1,
        &["pi-beta: the NixOS config could not be evaluated, so it was not checked"],
    );
    assert_stdout_has(
        &o,
        "pi-beta: not checked (its NixOS config was not evaluated)",
    );
    assert!(!stdout(&o).contains("pi-beta: ok"), "{}", stdout(&o));
}

crate::tests![
    doctor_fails_the_primer_s_node_by_option_and_passes_the_cluster,
    doctor_reads_the_options_from_json_without_nix,
    the_install_keeps_what_pi_burn_wrote,
    images_and_sdcard_refuse_a_node_whose_config_does_not_fit,
    a_card_re_guided_by_disko_s_install_is_intact,
    auto_evaluates_the_flake_and_says_when_it_could_not,
];
