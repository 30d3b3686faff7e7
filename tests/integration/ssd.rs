//! `pi-burn ssd`: the disko evaluator against nix-instantiate, the layout against disko's own
//! sgdisk commands, stale signatures against blkid, and the refusals.

use crate::harness::*;
use std::path::{Path, PathBuf};

const FLAKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake-edge");
const GIB: u64 = 1 << 30;

/// What disko runs for each fixture node (gpt.nix: `sgdisk --align-end --new=N:0:+SIZE|-0
/// --change-name=N:LABEL --typecode=N:TYPE`), written out by hand from the configs.
fn disko_sgdisk_args(node: &str) -> Vec<String> {
    let hashed = |label: &str| -> String {
        use sha2::Digest;
        let h = sha2::Sha256::digest(label.as_bytes());
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()[..36].to_string()
    };
    let swap_label = hashed("disk-nvme_main-encrypted-swap-partition-with-a-long-name");
    let parts: Vec<(&str, String, &str)> = match node {
        "pi-alpha" | "pi-gamma" => vec![
            ("+1G", "disk-usb-ssd-BOOT".into(), "EF00"),
            ("-0", "disk-usb-ssd-zfs".into(), "8300"),
        ],
        "multi" => vec![
            ("+512M", "disk-nvme_main-ESP".into(), "EF00"),
            ("+1M", "disk-nvme_main-bios".into(), "EF02"),
            ("+4194304K", "disk-nvme_main-DATA".into(), "8309"),
            ("+3G", swap_label, "8200"),
            (
                "-0",
                "disk-nvme_main-root".into(),
                "6A85CF4D-1DD2-11B2-99A6-080020736631",
            ),
        ],
        "swap" => vec![
            ("+1G", "disk-main-ESP".into(), "EF00"),
            ("+20G", "disk-main-root".into(), "8300"),
            ("-0", "disk-main-swap".into(), "8200"),
        ],
        // Priorities: boot and lvm 1000 (by name), recovery 5000, the "100%" root 9001.
        "hashed" => vec![
            ("+512M", "disk-usb-samsung-t7-shield-boot".into(), "EF00"),
            ("+8G", "disk-usb-samsung-t7-shield-lvm".into(), "8E00"),
            ("+2G", "disk-usb-samsung-t7-shield-recovery".into(), "8300"),
            (
                "-0",
                hashed("disk-usb-samsung-t7-shield-encrypted-root-partition"),
                "8300",
            ),
        ],
        _ => unreachable!(),
    };
    let mut args = vec!["--align-end".to_string()];
    for (i, (end, label, ty)) in parts.iter().enumerate() {
        let n = i + 1;
        args.push(format!("--new={n}:0:{end}"));
        args.push(format!("--change-name={n}:{label}"));
        args.push(format!("--typecode={n}:{ty}"));
    }
    args
}

fn partitions(disk: &Path) -> Vec<(u64, u64, String, String)> {
    let j = sfdisk_json(disk);
    j["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn ssd(t: &TestDir, node: &str, extra: &[&str]) -> std::process::Output {
    t.pi_burn()
        .args(["ssd", "--node", node, "--flake"])
        .arg(crate::disko::flake_copy())
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn the_built_in_evaluator_gives_the_expected_json_and_agrees_with_nix_instantiate() {
    for node in ["pi-alpha", "multi", "swap", "hashed"] {
        let path = PathBuf::from(FLAKE)
            .join("hosts")
            .join(node)
            .join("disk-config.nix");
        let ours =
            pi_burn::ssd::nixeval::eval(&std::fs::read_to_string(&path).unwrap(), "t").unwrap();
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/fixtures/eval/{node}.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            ours, expected,
            "{node}: built-in evaluation differs from fixtures/eval/{node}.json"
        );
    }
    if !have_nix() {
        return;
    }
    for node in ["pi-alpha", "multi", "swap", "hashed", "needs-nix"] {
        let dir = PathBuf::from(FLAKE).join("hosts").join(node);
        let nix = pi_burn::ssd::config::eval_file(
            &dir.join("disk-config.nix"),
            pi_burn::ssd::EvalMode::Nix,
        )
        .unwrap();
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/fixtures/eval/{node}.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            nix, expected,
            "{node}: nix-instantiate differs from fixtures/eval/{node}.json"
        );
        if node != "needs-nix" {
            let ours = pi_burn::ssd::config::eval_file(
                &dir.join("disk-config.nix"),
                pi_burn::ssd::EvalMode::Builtin,
            )
            .unwrap();
            assert_eq!(
                ours, nix,
                "{node}: built-in evaluator and nix-instantiate disagree"
            );
        }
    }
    // --eval auto falls back to nix for what the built-in evaluator refuses.
    let t = TestDir::new();
    let o = ssd(
        &t,
        "needs-nix",
        &["--image", "x.img", "--size", "32G", "--dry-run"],
    );
    assert_success(&o);
    let o = ssd(
        &t,
        "needs-nix",
        &["--eval", "builtin", "--image", "x.img", "--size", "32G"],
    );
    assert_fails_with(
        &o,
        1,
        &["disk-config.nix:3", "'let'", "--eval nix", "--disko-json"],
    );
}

fn the_table_equals_disko_s_sgdisk_commands_on_32g_500g_and_2t_disks() {
    if !(have_tool("sgdisk") && have_tool("sfdisk")) {
        return;
    }
    for node in ["pi-alpha", "multi", "swap", "hashed"] {
        for size in [32 * GIB, 500 * GIB, 2048 * GIB] {
            let t = TestDir::new();
            let ours = t.path("ours.img");
            let o = ssd(
                &t,
                node,
                &[
                    "--image",
                    ours.to_str().unwrap(),
                    "--size",
                    &size.to_string(),
                ],
            );
            assert_success(&o);
            let theirs = t.path("sgdisk.img");
            std::fs::File::create(&theirs)
                .unwrap()
                .set_len(size)
                .unwrap();
            run_ok(tool("sgdisk").args(disko_sgdisk_args(node)).arg(&theirs));
            assert_eq!(
                partitions(&ours),
                partitions(&theirs),
                "{node} on {size} bytes"
            );
            let v = run_ok(tool("sgdisk").arg("-v").arg(&ours));
            assert!(v.contains("No problems found"), "{v}");
        }
    }
}

fn the_table_equals_disko_s_on_a_4096_byte_sector_loop_device() {
    if !(is_root() && have_tool("losetup") && have_tool("sgdisk") && have_tool("sfdisk")) {
        return;
    }
    for node in ["pi-alpha", "multi"] {
        let t = TestDir::new();
        let a = t.path("a.img");
        let b = t.path("b.img");
        for f in [&a, &b] {
            std::fs::File::create(f).unwrap().set_len(32 * GIB).unwrap();
        }
        let la = Loop::attach(&a, 4096, false);
        let lb = Loop::attach(&b, 4096, false);
        let o = ssd(&t, node, &[&la.dev, "--yes"]);
        assert_success(&o);
        assert!(
            stderr(&o).contains("is not the configured"),
            "an explicit device other than the configured one warns: {}",
            stderr(&o)
        );
        run_ok(tool("sgdisk").args(disko_sgdisk_args(node)).arg(&lb.dev));
        assert_eq!(
            partitions(Path::new(&la.dev)),
            partitions(Path::new(&lb.dev)),
            "{node}"
        );
        let j = sfdisk_json(Path::new(&la.dev));
        assert_eq!(j["partitiontable"]["sectorsize"], 4096);
    }
}

fn blkid_finds(file: &Path, offset: u64, size: u64) -> Option<String> {
    let o = tool("blkid")
        .args(["-p", "-O", &offset.to_string(), "-S", &size.to_string()])
        .arg(file)
        .output()
        .unwrap();
    match o.status.code() {
        Some(2) => None,
        _ => Some(format!("{}{}", stdout(&o), stderr(&o))),
    }
}

fn stale_zfs_luks_and_ext4_signatures_are_wiped() {
    if !(is_root()
        && have_tool("losetup")
        && have_tool("blkid")
        && have_tool("mkfs.ext4")
        && have_tool("fsck.fat"))
    {
        return;
    }
    use std::os::unix::fs::FileExt;
    let t = TestDir::new();
    let file = t.path("ssd.img");
    let size = 32 * GIB;
    std::fs::File::create(&file).unwrap().set_len(size).unwrap();
    // Where disko puts the partitions on this disk.
    let (esp, esp_len) = (2048 * 512, 2097152 * 512);
    let zfs = 2099200 * 512;
    let zfs_len = (67106815 - 2099200 + 1) * 512;
    {
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        // ext4 at the ESP: a real superblock from mkfs.ext4.
        let ext = t.path("ext4.img");
        std::fs::File::create(&ext)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        run_ok(tool("mkfs.ext4").args(["-q", "-F"]).arg(&ext));
        let head = std::fs::read(&ext).unwrap();
        f.write_all_at(&head[..64 * 1024], esp).unwrap();
        // LUKS1 header and ZFS labels (uberblocks) at both ends of the zfs partition.
        let mut luks = vec![0u8; 592];
        luks[..6].copy_from_slice(b"LUKS\xba\xbe");
        luks[6..8].copy_from_slice(&1u16.to_be_bytes());
        luks[168..204].copy_from_slice(b"4ea0a5f5-7b7d-4c21-9c44-0c2f0f0c3b8e");
        f.write_all_at(&luks, zfs).unwrap();
        for label in [
            zfs + 256 * 1024,
            zfs + zfs_len - 512 * 1024,
            zfs + zfs_len - 256 * 1024,
        ] {
            for i in 0..8u64 {
                let mut ub = 0x00bab10cu64.to_le_bytes().to_vec();
                ub.extend_from_slice(&5000u64.to_le_bytes());
                f.write_all_at(&ub, label + 128 * 1024 + i * 1024).unwrap();
            }
        }
    }
    assert!(
        blkid_finds(&file, zfs, zfs_len).is_some(),
        "the stale signatures are there before"
    );
    assert!(blkid_finds(&file, zfs + 256 * 1024, zfs_len - 256 * 1024)
        .unwrap()
        .contains("zfs"));
    assert!(blkid_finds(&file, esp, esp_len).unwrap().contains("ext4"));
    {
        let lo = Loop::attach(&file, 512, false);
        let o = ssd(&t, "pi-alpha", &[&lo.dev, "--yes"]);
        assert_success(&o);
    }
    assert_eq!(
        blkid_finds(&file, zfs, zfs_len),
        None,
        "blkid -p finds a signature on the zfs partition"
    );
    let esp_found = blkid_finds(&file, esp, esp_len).unwrap();
    assert!(
        esp_found.contains("TYPE=\"vfat\"") && !esp_found.contains("ext4"),
        "{esp_found}"
    );
    let part = t.path("esp.img");
    extract(&file, esp, esp_len, &part);
    let fsck = tool("fsck.fat")
        .args(["-n", "-v"])
        .arg(&part)
        .output()
        .unwrap();
    assert!(fsck.status.success(), "{}", stdout(&fsck));
    assert!(
        stdout(&fsck).contains("4096 bytes per cluster")
            && stdout(&fsck).contains("2048 hidden sectors"),
        "{}",
        stdout(&fsck)
    );
}

fn refusals_and_dry_run() {
    let t = TestDir::new();
    let o = ssd(&t, "pi-delta", &["--image", "x.img", "--size", "32G"]);
    // A node the flake does not have is a usage error (exit 2), as for every command.
    assert_fails_with(
        &o,
        2,
        &[
            "pi-delta",
            "has no hosts/pi-delta/disk-config.nix",
            "its nodes",
        ],
    );
    let o = ssd(&t, "pi-alpha", &[]);
    assert_fails_with(
        &o,
        1,
        &[
            "/dev/disk/by-id/usb-Samsung_T7_SERIAL",
            "not attached here",
            // The hint keeps the flake the user gave (issue 23).
            "pi-burn ssd --node pi-alpha --flake ",
            "flake-edge /dev/sdX",
        ],
    );
    let o = ssd(&t, "mbr", &["--image", "x.img", "--size", "32G"]);
    assert_fails_with(&o, 1, &["content type 'table'", "GPT"]);
    let o = ssd(&t, "pi-alpha", &["--image", "x.img", "--size", "512M"]);
    assert_fails_with(&o, 1, &["disk-usb-ssd-BOOT", "does not fit"]);
    assert!(!t.path("x.img").exists());
    let o = ssd(
        &t,
        "pi-alpha",
        &["--disk", "nope", "--image", "x.img", "--size", "32G"],
    );
    assert_fails_with(&o, 1, &["no disk 'nope'", "sdcard, usb-ssd"]);
    let o = ssd(
        &t,
        "pi-beta",
        &[
            "--image",
            "x.img",
            "--size",
            "32G",
            "--dry-run",
            "--layout",
            "default",
        ],
    );
    assert_success(&o);
    assert!(
        stderr(&o).contains("the cluster's documented layout"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("disk-usb-ssd-zfs"));
    assert!(!t.path("x.img").exists(), "dry run wrote nothing");
    if !(is_root() && have_tool("losetup")) {
        return;
    }
    let small = t.path("small.img");
    std::fs::File::create(&small)
        .unwrap()
        .set_len(512 << 20)
        .unwrap();
    let lo = Loop::attach(&small, 512, false);
    let o = ssd(&t, "pi-alpha", &[&lo.dev, "--yes"]);
    assert_fails_with(&o, 1, &[&lo.dev, "does not fit"]);
    let o = ssd(&t, "pi-alpha", &[&lo.dev, "--dry-run"]);
    assert_fails_with(&o, 1, &["does not fit"]);
    assert!(
        std::fs::read(&small).unwrap().iter().all(|b| *b == 0),
        "nothing was written"
    );
}

fn sdcard_takes_its_layout_from_the_node_config() {
    let t = TestDir::new();
    let o = t.sdcard(
        "sd.img",
        &["--node", "pi-gamma", "--flake", FLAKE, "--json"],
    );
    assert_success(&o);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["partitions"][0]["name"], "disk-sdcard-FIRMWARE");
    assert_eq!(j["partitions"][0]["size"], 512u64 << 20);
    let o = t.sdcard(
        "sd2.img",
        &[
            "--node",
            "pi-gamma",
            "--flake",
            FLAKE,
            "--partition-name",
            "X",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "--node conflicts with --partition-name"
    );
}

fn the_next_step_names_the_flake_only_for_a_node_of_a_flake() {
    let t = TestDir::new();
    let flake = crate::disko::flake_copy();
    let o = ssd(&t, "pi-alpha", &["--image", "a.img", "--size", "4G"]);
    assert_success(&o);
    // The install that keeps what pi-burn wrote (issue 27): the default mode, never --disko-mode
    // format or mount; the primer's config has no destroy = false, so the lines to add first.
    let want = format!(
        "nixos-anywhere --flake {}#pi-alpha --target-host root@<pi-alpha's address>",
        flake.display()
    );
    let out = stdout(&o);
    assert!(out.contains(&want), "{out}");
    assert!(
        out.lines()
            .filter(|l| l.contains("nixos-anywhere --flake"))
            .all(|l| !l.contains("--disko-mode")),
        "{out}"
    );
    assert!(
        out.contains("add `destroy = false;` to disko.devices.disk.{sdcard, usb-ssd} in hosts/pi-alpha/disk-config.nix"),
        "{out}"
    );
    // A JSON file may describe any machine: no flake, no node to boot.
    let json = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/eval/pi-alpha.json");
    let o = t
        .pi_burn()
        .args([
            "ssd",
            "--node",
            "pi-alpha",
            "--disko-json",
            json,
            "--image",
            "b.img",
        ])
        .args(["--size", "4G"])
        .output()
        .unwrap();
    assert_success(&o);
    let out = stdout(&o);
    assert!(
        out.contains("names no flake: install with the flake it came from"),
        "{out}"
    );
    assert!(!out.contains("--flake"), "{out}");
}

// This module's tests, for the runner in main.rs.
crate::tests![
    the_next_step_names_the_flake_only_for_a_node_of_a_flake,
    the_built_in_evaluator_gives_the_expected_json_and_agrees_with_nix_instantiate,
    the_table_equals_disko_s_sgdisk_commands_on_32g_500g_and_2t_disks,
    the_table_equals_disko_s_on_a_4096_byte_sector_loop_device,
    stale_zfs_luks_and_ext4_signatures_are_wiped,
    refusals_and_dry_run,
    sdcard_takes_its_layout_from_the_node_config,
];
