//! One disk per node (issue 32): the UEFI firmware in the SSD's ESP (`ssd --with-firmware`,
//! pi-burn.toml `ssd_firmware`), checked as a card is (fsck.fat, mtools, virt-fw-vars, OVMF,
//! inspect); what cannot boot refused; a release that does not boot from microSD kept off cards
//! and allowed on SSDs; the EEPROM pins against rpi-eeprom's files.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::Output;

const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake");
const MIB: u64 = 1 << 20;

fn copy(t: &TestDir, from: &str, name: &str) -> PathBuf {
    run_ok(tool("cp").args(["-rL", from]).arg(t.path(name)));
    t.path(name)
}

/// `pi-burn ssd --node NODE --image NAME --size 4G --with-firmware` from `flake` with the
/// fixture zip `variant`, plus `extra`.
fn ssd_fw(
    t: &TestDir,
    flake: &Path,
    node: &str,
    name: &str,
    variant: Option<&str>,
    extra: &[&str],
) -> Output {
    t.pi_burn()
        .args(["ssd", "--node", node, "--flake"])
        .arg(flake)
        .args(["--eval", "builtin", "--image"])
        .arg(t.path(name))
        .args(["--size", "4G", "--with-firmware", "--manifest", MANIFEST])
        .arg("--firmware-zip")
        .arg(fixture_zip("rpi4", variant))
        .args(extra)
        .output()
        .unwrap()
}

/// The ESP of an SSD image with the firmware: a FAT32 fsck.fat passes, every file of the release
/// as it is in the zip (config.txt with pi-burn.toml's edit, RPI_EFI.fd with its settings, as
/// virt-fw-vars reads them), the SSD's other partition as disko lays it out; inspect passes it,
/// names the boot loader's files under EFI/ and loader/ when they come, and finds a stray file.
fn the_firmware_in_the_ssd_s_esp_is_checked_as_a_card_is() {
    if !(have_tool("fsck.fat")
        && have_tool("mcopy")
        && have_tool("sgdisk")
        && have_tool("virt-fw-vars"))
    {
        return;
    }
    let t = TestDir::new();
    let flake = copy(&t, CLUSTER, "cluster");
    let o = ssd_fw(&t, &flake, "pi-beta", "ssd.img", None, &[]);
    assert_success(&o);
    assert_stdout_has(
        &o,
        "firmware rpi4 v9.0 (16 files and the card record) in its ESP",
    );
    let img = t.path("ssd.img");
    // The table: sgdisk finds no problem; partition 2 is disko's zfs partition.
    let v = run_ok(tool("sgdisk").arg("-v").arg(&img));
    assert!(v.contains("No problems found"), "{v}");
    let j = sfdisk_json(&img);
    let parts = j["partitiontable"]["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0]["name"], "disk-usb-ssd-BOOT");
    assert_eq!(parts[0]["start"], 2048);
    // The ESP's FAT.
    let esp = t.path("esp.img");
    extract(&img, MIB, 1 << 30, &esp);
    let fsck = tool("fsck.fat")
        .args(["-n", "-v"])
        .arg(&esp)
        .output()
        .unwrap();
    assert_success(&fsck);
    assert!(
        stdout(&fsck).contains("32 bit entries"),
        "{}",
        stdout(&fsck)
    );
    // Every file of the release, byte for byte where pi-burn changes nothing.
    for (path, want) in zip_files(&fixture_zip("rpi4", None)) {
        let out = t.path("f.bin");
        let _ = std::fs::remove_file(&out);
        run_ok(
            tool("mcopy")
                .args(["-n", "-i", &mtools_at(&img)])
                .arg(format!("::/{path}"))
                .arg(&out),
        );
        let got = std::fs::read(&out).unwrap();
        match path.as_str() {
            "config.txt" => {
                let text = String::from_utf8(got).unwrap();
                assert!(text.starts_with(std::str::from_utf8(&want).unwrap()));
                assert!(text.contains("hdmi_force_hotplug=1"), "{text}");
            }
            "RPI_EFI.fd" => {
                assert_eq!(got.len(), want.len());
                // pi-burn.toml's settings for pi-beta, as virt-fw-vars reads the store.
                let json = t.path("vars.json");
                run_ok(
                    tool("virt-fw-vars")
                        .arg("-i")
                        .arg(&out)
                        .arg("--output-json")
                        .arg(&json),
                );
                let v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
                let names: Vec<&str> = strs(&v["variables"], "name");
                for n in ["SystemTableMode", "AssetTag", "RamLimitTo3GB", "Timeout"] {
                    assert!(names.contains(&n), "{n} not in {names:?}");
                }
            }
            _ => assert!(got == want, "/{path} differs from the release's"),
        }
    }
    // inspect passes the SSD, and says what it is.
    let o = t.inspect_image(&img);
    assert_success(&o);
    assert_stdout_has(&o, "firmware ESP on pi-beta's SSD (disk usb-ssd)");
    // systemd-boot's files and a NixOS kernel beside the firmware: named, still intact.
    let loader = t.path("loader.efi");
    std::fs::write(&loader, b"MZ systemd-boot stand-in").unwrap();
    let at = mtools_at(&img);
    run_ok(tool("mmd").args([
        "-i",
        &at,
        "::/EFI",
        "::/EFI/BOOT",
        "::/EFI/systemd",
        "::/EFI/nixos",
        "::/loader",
        "::/loader/entries",
    ]));
    for dest in [
        "::/EFI/BOOT/BOOTAA64.EFI",
        "::/EFI/systemd/systemd-bootaa64.efi",
        "::/EFI/nixos/x-linux-6.12-Image.efi",
        "::/loader/loader.conf",
        "::/loader/entries/nixos-generation-1.conf",
    ] {
        run_ok(tool("mcopy").args(["-i", &at]).arg(&loader).arg(dest));
    }
    let o = t.inspect_image(&img);
    assert_success(&o);
    assert_stdout_has(
        &o,
        "the OS's boot loader files beside the firmware (5 under EFI/ and loader/)",
    );
    // A file elsewhere at the root is a difference.
    run_ok(
        tool("mcopy")
            .args(["-i", &at])
            .arg(&loader)
            .arg("::/stray.bin"),
    );
    let o = t.inspect_image(&img);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert_stdout_has(&o, "/stray.bin: on the card but not in its record");
}

/// edk2 itself (OVMF) reads the SSD's ESP: its shell lists the firmware's files on the GPT
/// disk pi-burn wrote.
fn ovmf_reads_the_firmware_esp() {
    if !have_ovmf() {
        return;
    }
    let t = TestDir::new();
    let flake = copy(&t, CLUSTER, "cluster");
    assert_success(&ssd_fw(&t, &flake, "pi-alpha", "ssd.img", None, &[]));
    std::fs::copy(OVMF_VARS_PLAIN, t.path("vars.fd")).unwrap();
    std::fs::create_dir(t.path("nsh")).unwrap();
    std::fs::write(
        t.path("nsh/startup.nsh"),
        "ls fs0:\\\r\nls fs1:\\\r\nreset -s\r\n",
    )
    .unwrap();
    let text = ovmf_shell(&t.path("vars.fd"), &[&t.path("ssd.img")], &t.path("nsh"));
    for f in ["RPI_EFI.fd", "start4.elf", "config.txt", "pi-burn.json"] {
        assert!(text.contains(f), "edk2's shell does not list {f}:\n{text}");
    }
}

/// A flake of one node, `one`, whose SSD is `partitions` (disko text), and `toml` as its
/// pi-burn.toml.
fn one_node(t: &TestDir, name: &str, partitions: &str, toml: &str) -> PathBuf {
    let dir = t.path(name);
    std::fs::create_dir_all(dir.join("hosts/one")).unwrap();
    std::fs::write(
        dir.join("hosts/one/disk-config.nix"),
        format!(
            r#"{{
  disko.devices.disk.ssd = {{
    type = "disk";
    device = "/dev/disk/by-id/usb-one";
    content = {{ type = "gpt"; partitions = {{ {partitions} }}; }};
  }};
}}
"#
        ),
    )
    .unwrap();
    std::fs::write(dir.join("pi-burn.toml"), toml).unwrap();
    dir
}

const ESP: &str = r#"ESP = { size = "1G"; type = "EF00"; content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot"; }; };"#;
const ZFS: &str = r#"zfs = { size = "100%"; content = { type = "zfs"; pool = "rpool"; }; };"#;

/// What cannot boot from the SSD is refused before anything is written: partition 1 not the
/// ESP, an ESP disko would make FAT16, a BOOT_ORDER without USB; none given is a warning; the
/// firmware's flags without --with-firmware are a usage error.
fn what_cannot_boot_from_the_ssd_is_refused() {
    let t = TestDir::new();
    let usb = "[nodes.one.eeprom]\nBOOT_ORDER = 0xf14\n";
    let cases: [(&str, String, &str, &str); 5] = [
        (
            "empty",
            String::new(),
            usb,
            "disk 'ssd' has no partitions: the firmware needs partition 1 as the FAT32 ESP",
        ),
        (
            "second",
            format!(
                r#"{} root = {{ priority = 100; size = "2G"; content = {{ type = "filesystem"; format = "ext4"; mountpoint = "/"; }}; }};"#,
                ESP.replace("ESP = {", "ESP = { priority = 2000;")
            ),
            usb,
            "partition 1 of disk 'ssd' (disk-ssd-root) is no vfat partition",
        ),
        (
            "small",
            format!("{} {ZFS}", ESP.replace("\"1G\"", "\"256M\"")),
            usb,
            "below 512 MiB mkfs.vfat makes FAT16",
        ),
        (
            "sd-only",
            format!("{ESP} {ZFS}"),
            "[nodes.one.eeprom]\nBOOT_ORDER = 0xf1\n",
            "BOOT_ORDER = 0xf1 (from pi-burn.toml [nodes.one] eeprom) never tries USB mass storage",
        ),
        (
            "stop-first",
            format!("{ESP} {ZFS}"),
            "[nodes.one.eeprom]\nBOOT_ORDER = 0xf4e1\n",
            "never tries USB mass storage",
        ),
    ];
    for (name, parts, toml, says) in cases {
        let flake = one_node(&t, name, &parts, toml);
        let o = ssd_fw(&t, &flake, "one", &format!("{name}.img"), None, &[]);
        assert_fails_with(&o, 2, &[says]);
        assert!(
            !t.path(&format!("{name}.img")).exists(),
            "{name}: an image was written"
        );
    }
    // No BOOT_ORDER anywhere: written, with a warning.
    let flake = one_node(&t, "unknown", &format!("{ESP} {ZFS}"), "");
    let o = ssd_fw(&t, &flake, "one", "unknown.img", None, &[]);
    assert_success(&o);
    assert_stderr_has(
        &o,
        "gives one no eeprom BOOT_ORDER: pi-burn cannot tell whether its bootloader tries USB",
    );
    // A firmware flag alone: the ESP gets no firmware unless asked.
    let o = t
        .pi_burn()
        .args(["ssd", "--node", "one", "--flake"])
        .arg(&flake)
        .args(["--image", "x.img", "--size", "4G", "--set", "Timeout=3"])
        .output()
        .unwrap();
    assert_fails_with(
        &o,
        2,
        &["--set is for the firmware in the SSD's ESP: add --with-firmware"],
    );
    let o = t
        .pi_burn()
        .args(["ssd", "--node", "one", "--flake"])
        .arg(&flake)
        .args([
            "--image",
            "x.img",
            "--size",
            "4G",
            "--with-firmware",
            "--no-format",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!t.path("x.img").exists());
}

/// A release the manifest marks as not booting from microSD (the fixture's stand-in for
/// pftf/RPi4#285): `sdcard` refuses it with the reason and writes nothing, `ssd
/// --with-firmware` takes it, `firmware list` shows the mark.
fn a_release_that_does_not_boot_from_microsd_goes_only_on_an_ssd() {
    let t = TestDir::new();
    let o = t.sdcard_with("rpi4", Some("not-on-sd"), "sd.img", &[]);
    assert_fails_with(
        &o,
        2,
        &[
            "firmware rpi4 v9.2 does not boot from a microSD card",
            "pftf/RPi4#285",
            "--with-firmware",
        ],
    );
    assert!(!t.path("sd.img").exists());
    let flake = copy(&t, CLUSTER, "cluster");
    let o = ssd_fw(&t, &flake, "pi-alpha", "ssd.img", Some("not-on-sd"), &[]);
    assert_success(&o);
    assert_stdout_has(&o, "firmware rpi4 v9.2");
    assert_success(&t.inspect_image(&t.path("ssd.img")));
    let o = t
        .pi_burn()
        .args(["firmware", "list", "--manifest", MANIFEST])
        .output()
        .unwrap();
    assert_success(&o);
    assert_stdout_has(
        &o,
        "not on SD cards: the fixture's stand-in for pftf/RPi4#285",
    );
}

/// pi-burn.toml's `ssd_firmware = true`: `images` makes that node no SD card and puts the
/// firmware, with its settings, in its SSD image; the doctor then checks /boot as the
/// firmware's place (a systemd-boot extraFiles entry over a firmware file is an error).
fn images_and_the_doctor_know_a_node_whose_firmware_is_on_its_ssd() {
    let t = TestDir::new();
    let flake = copy(&t, CLUSTER, "cluster");
    // (A BOOT_ORDER would come with an EEPROM card for the node: without one, a warning.)
    let toml = std::fs::read_to_string(flake.join("pi-burn.toml")).unwrap();
    let toml = toml.replace(
        "[nodes.pi-gamma]\n",
        "[nodes.pi-gamma]\nssd_firmware = true\n",
    );
    std::fs::write(flake.join("pi-burn.toml"), toml).unwrap();
    let out = t.path("out");
    let o = t.images(&flake, &out, &["--eval", "builtin"]);
    assert_success(&o);
    assert_stderr_has(&o, "pi-burn.toml gives pi-gamma no eeprom BOOT_ORDER");
    assert!(!out.join("pi-gamma-sdcard.img").exists());
    assert!(out.join("pi-alpha-sdcard.img").exists());
    let o = t.inspect_image(&out.join("pi-gamma-ssd.img"));
    assert_success(&o);
    assert_stdout_has(&o, "firmware ESP on pi-gamma's SSD");
    assert_stdout_has(
        &o,
        "UEFI FanOnGpio = 18 (from pi-burn.toml [nodes.pi-gamma])",
    );
    // The doctor, from the options a user would write out: extraFiles over config.txt.
    let opts = t.path("gamma.json");
    std::fs::write(
        &opts,
        r#"{"boot.loader.systemd-boot.enable": true,
            "boot.loader.systemd-boot.extraFiles": ["config.txt", "EFI/memtest.efi"]}"#,
    )
    .unwrap();
    let doctor = |node: &str| {
        t.pi_burn()
            .args(["--json", "doctor", "--flake"])
            .arg(&flake)
            .args(["--manifest", MANIFEST, "--node", node, "--options-json"])
            .arg(&opts)
            .output()
            .unwrap()
    };
    let o = doctor("pi-gamma");
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("boot.loader.systemd-boot.extraFiles")
            && stdout(&o).contains("[\\\"config.txt\\\"]"),
        "{}",
        stdout(&o)
    );
    // The same options on a node whose firmware is on its card: no clash.
    assert_success(&doctor("pi-alpha"));
}

/// The EEPROM pins are rpi-eeprom's files: every pinned path, size and SHA-256 of the built-in
/// manifest (default and latest channels) as `git show` of rpi-eeprom at the pinned commit
/// gives them (fixtures/eeprom/rpi-eeprom-86759b0.sha256); a release older than the default
/// is warned about with the minimum-bootloader rule.
fn the_eeprom_pins_are_rpi_eeprom_s_files() {
    let reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/eeprom/rpi-eeprom-86759b0.sha256"
    ))
    .unwrap();
    let listed: Vec<(String, u64, String)> = reference
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut w = l.split_whitespace();
            (
                w.next().unwrap().to_string(),
                w.next().unwrap().parse().unwrap(),
                w.next().unwrap().to_string(),
            )
        })
        .collect();
    let m = pi_burn::firmware::manifest::Manifest::embedded();
    let mut pinned = 0;
    for (board, b) in &m.eeprom {
        for r in &b.releases {
            assert!(r.commit.starts_with("86759b0"), "{board} {}", r.date);
            for (role, f) in r.files() {
                assert!(
                    listed.contains(&(f.sha256.clone(), f.size, f.path.clone())),
                    "{board} {} {role}: {} is not rpi-eeprom's",
                    r.date,
                    f.path
                );
                pinned += 1;
            }
        }
    }
    // Both channels: Pi 4 default and 2026-08-04; Pi 5 default and four latest.
    assert_eq!(
        m.eeprom["rpi4"]
            .releases
            .iter()
            .map(|r| r.date.as_str())
            .collect::<Vec<_>>(),
        ["2026-05-17", "2026-08-04"]
    );
    assert_eq!(m.eeprom["rpi5"].releases.len(), 5);
    assert_eq!(pinned, 6 + 10);
    // An older release than the default: written, with the rule named.
    let t = TestDir::new();
    let o = t
        .pi_burn()
        .args([
            "eeprom",
            "--board",
            "rpi4",
            "--release",
            "2025-01-01",
            "--manifest",
            MANIFEST,
            "--image",
        ])
        .arg(t.path("old.img"))
        .arg("--eeprom-file")
        .arg(eeprom_fixture("pieeprom-2711-middle.bin"))
        .arg("--recovery-file")
        .arg(eeprom_fixture("recovery-2711.bin"))
        .output()
        .unwrap();
    assert_success(&o);
    assert_stderr_has(&o, "is older than 2026-05-17, the default release");
    assert_stderr_has(&o, "rpi-min-boot-ver");
}

/// An SSD's ESP under `verify` with a firmware named: checked against its record, its files
/// against that release (another release is a difference; settings named are refused: the
/// ESP is no layout of verify's). The command inspect prints for files it could not check (the
/// zip not in the cache), run as printed, lets inspect check them on the ESP and on a node's
/// card (settings and edits from pi-burn.toml).
fn verify_and_inspect_check_the_files_of_an_ssd_s_esp_against_the_release() {
    let t = TestDir::new();
    let flake = copy(&t, CLUSTER, "cluster");
    assert_success(&ssd_fw(&t, &flake, "pi-beta", "ssd.img", None, &[]));
    let verify = |zip: &Path, extra: &[&str]| {
        t.pi_burn()
            .args(["verify", "--manifest", MANIFEST, "--firmware-zip"])
            .arg(zip)
            .args(extra)
            .arg("--image")
            .arg(t.path("ssd.img"))
            .output()
            .unwrap()
    };
    let zip = fixture_zip("rpi4", None);
    let o = verify(&zip, &[]);
    assert_success(&o);
    assert_stdout_has(
        &o,
        "its files are rpi4 v9.0 (the firmware named) with the recorded settings and edits",
    );
    let o = verify(&fixture_zip("rpi4", Some("old-start4")), &[]);
    assert_fails_with(&o, 3, &["verification failed: 2 differences"]);
    let said = format!("{}{}", stdout(&o), stderr(&o));
    for n in [
        "the record says rpi4 v9.0",
        "the firmware named is rpi4 v8.0",
        "/start4.elf: not what rpi4 v8.0 with the recorded settings and edits gives",
    ] {
        assert!(said.contains(n), "{n}: {said}");
    }
    let o = verify(&zip, &["--set", "Timeout=5"]);
    assert_fails_with(
        &o,
        2,
        &[
            "is the firmware ESP of an SSD (disk usb-ssd)",
            "(`pi-burn inspect --image ",
        ],
    );
    // inspect's command for the files, then inspect again.
    let o = t
        .pi_burn()
        .args(["sdcard", "--node", "pi-beta", "--flake"])
        .arg(&flake)
        .args(["--eval", "builtin", "--image"])
        .arg(t.path("sd.img"))
        .with_fixture(&[]);
    assert_success(&o);
    for img in ["ssd.img", "sd.img"] {
        let _ = std::fs::remove_dir_all(t.path("cache"));
        let o = t.inspect_image(&t.path(img));
        assert_success(&o);
        let out = stdout(&o);
        let hint = out
            .split('`')
            .find(|s| s.starts_with("pi-burn firmware fetch"))
            .unwrap_or_else(|| panic!("no fetch hint: {out}"));
        assert!(!hint.contains("PATH"), "{hint}");
        let args: Vec<&str> = hint.split_whitespace().skip(1).collect();
        assert_success(
            &t.pi_burn()
                .args(&args)
                .arg("--firmware-zip")
                .arg(&zip)
                .output()
                .unwrap(),
        );
        let o = t.inspect_image(&t.path(img));
        assert_success(&o);
        assert_stdout_has(
            &o,
            "its files are rpi4 v9.0 (the cached zip) with the recorded settings and edits",
        );
        assert!(
            !stdout(&o).contains("unchecked: that the files"),
            "{}",
            stdout(&o)
        );
    }
}

crate::tests![
    the_firmware_in_the_ssd_s_esp_is_checked_as_a_card_is,
    ovmf_reads_the_firmware_esp,
    what_cannot_boot_from_the_ssd_is_refused,
    a_release_that_does_not_boot_from_microsd_goes_only_on_an_ssd,
    images_and_the_doctor_know_a_node_whose_firmware_is_on_its_ssd,
    the_eeprom_pins_are_rpi_eeprom_s_files,
    verify_and_inspect_check_the_files_of_an_ssd_s_esp_against_the_release,
];
