//! The EEPROM bootloader card (issue 21), from the synthetic release files of
//! fixtures/make-eeprom.py pinned in the test manifest: pieeprom.bin as rpi-eeprom-config edits
//! it (its output's hashes are in fixtures/eeprom/), the card checked with sfdisk, fsck.fat and
//! mtools, .sig lines recomputed, hostile images refused in one line.

use crate::harness::*;
use crate::server::{Route, Server};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

const MIB: u64 = 1 << 20;
const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/eeprom/rpi-eeprom-config.sha256"
);

/// `pi-burn eeprom --image NAME` for `board` from the local fixture files, plus `extra`
/// (the release's pieeprom unless `extra` gives one; its vl805 unless another release).
fn card_cmd(t: &TestDir, board: &str, name: &str, extra: &[&str]) -> std::process::Command {
    let (pie, rec) = match board {
        "rpi5" => ("pieeprom-2712.bin", "recovery-2712.bin"),
        _ => ("pieeprom-2711.bin", "recovery-2711.bin"),
    };
    let mut c = t.pi_burn();
    c.args([
        "eeprom",
        "--board",
        board,
        "--manifest",
        MANIFEST,
        "--image",
    ])
    .arg(t.path(name))
    .arg("--recovery-file")
    .arg(eeprom_fixture(rec));
    if !extra.contains(&"--eeprom-file") {
        c.arg("--eeprom-file").arg(eeprom_fixture(pie));
    }
    if board == "rpi4" && !extra.contains(&"--release") {
        c.arg("--vl805-file").arg(eeprom_fixture("vl805.bin"));
    }
    c.args(extra);
    c
}

fn card(t: &TestDir, board: &str, name: &str, extra: &[&str]) -> Output {
    card_cmd(t, board, name, extra).output().unwrap()
}

/// One file of the card's FAT (mtools).
fn take(t: &TestDir, img: &Path, name: &str) -> Vec<u8> {
    let out = t.path(&format!("taken-{name}"));
    let spec = format!("{}@@{MIB}", img.display());
    run_ok(
        tool("mcopy")
            .args(["-n", "-i", &spec])
            .arg(format!("::/{name}"))
            .arg(&out),
    );
    std::fs::read(out).unwrap()
}

fn reference(name: &str) -> String {
    std::fs::read_to_string(REFERENCE)
        .unwrap()
        .lines()
        .find(|l| l.ends_with(&format!("  {name}")))
        .unwrap()[..64]
        .to_string()
}

fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The edit of pieeprom.bin is byte for byte rpi-eeprom-config's, at both sizes, with
/// bootconf.txt last and in the middle; the card is MBR 0x0c FAT32 at 1 MiB, fsck-clean, with
/// the files Imager's recovery images carry; pieeprom.sig's lines are its hash, ts, target-soc.
fn the_card_is_what_rpi_eeprom_config_and_imager_make() {
    if !(have_tool("mcopy") && have_tool("sfdisk") && have_tool("fsck.fat")) {
        return;
    }
    let t = TestDir::new();
    let edits = ["--bootconf", "BOOT_UART=1", "--boot-order", "sd,usb"];
    let mut cases = vec![("rpi4", "pieeprom-2711.bin", vec![])];
    cases.push(("rpi5", "pieeprom-2712.bin", vec![]));
    cases.push((
        "rpi4",
        "pieeprom-2711-middle.bin",
        vec!["--release", "2025-01-01"],
    ));
    for (board, pie, extra) in cases {
        let name = format!("{pie}.img");
        let pie_path = eeprom_fixture(pie);
        let mut args: Vec<&str> = edits.to_vec();
        args.extend(extra.iter());
        args.extend(["--eeprom-file", pie_path.to_str().unwrap()]);
        let mut c = card_cmd(&t, board, &name, &args);
        c.env("SOURCE_DATE_EPOCH", "1700000000");
        let o = c.output().unwrap();
        assert_success(&o);
        let img = t.path(&name);
        let got = take(&t, &img, "pieeprom.bin");
        assert_eq!(
            sha(&got),
            reference(pie),
            "{pie}: not rpi-eeprom-config's bytes"
        );
        let sig = String::from_utf8(take(&t, &img, "pieeprom.sig")).unwrap();
        let soc = if board == "rpi5" { "2712" } else { "2711" };
        assert_eq!(
            sig,
            format!("{}\nts: 1700000000\ntarget-soc: {soc}\n", sha(&got))
        );
        let sf = sfdisk_json(&img);
        assert_eq!(sf["partitiontable"]["label"], "dos");
        let p = &sf["partitiontable"]["partitions"][0];
        assert_eq!(
            (p["start"].as_u64(), p["type"].as_str()),
            (Some(2048), Some("c"))
        );
        assert_eq!(p["size"].as_u64(), Some(256 * MIB / 512));
        let part = t.path("part.img");
        extract(&img, MIB, 256 * MIB, &part);
        run_ok(tool("fsck.fat").args(["-n", "-v"]).arg(&part));
        let listing = run_ok(
            tool("mdir")
                .args(["-b", "-i"])
                .arg(format!("{}@@{MIB}", img.display())),
        );
        for f in [
            "recovery.bin",
            "pieeprom.bin",
            "pieeprom.sig",
            "pi-burn.json",
        ] {
            assert!(listing.to_lowercase().contains(f), "{f} missing: {listing}");
        }
        let vl805 = listing.to_lowercase().contains("vl805.bin");
        assert_eq!(
            vl805,
            board == "rpi4" && pie == "pieeprom-2711.bin",
            "{listing}"
        );
        if vl805 {
            let v = take(&t, &img, "vl805.bin");
            assert_eq!(
                String::from_utf8(take(&t, &img, "vl805.sig")).unwrap(),
                format!("{}\n", sha(&v))
            );
        }
    }
}

/// Two runs give the same image; without SOURCE_DATE_EPOCH, ts: is the build's timestamp.
fn two_runs_are_byte_identical_and_ts_is_the_build_s() {
    if !have_tool("mcopy") {
        return;
    }
    let t = TestDir::new();
    assert_success(&card(&t, "rpi4", "a.img", &["--boot-order", "usb,sd"]));
    assert_success(&card(&t, "rpi4", "b.img", &["--boot-order", "usb,sd"]));
    assert_eq!(sha256_file(&t.path("a.img")), sha256_file(&t.path("b.img")));
    let sig = String::from_utf8(take(&t, &t.path("a.img"), "pieeprom.sig")).unwrap();
    assert!(sig.contains("\nts: 1779045198\n"), "{sig}");
    let o = t
        .pi_burn()
        .args(["inspect", "--manifest", MANIFEST, "--image"])
        .arg(t.path("a.img"))
        .output()
        .unwrap();
    assert_success(&o);
    assert_stdout_has(&o, "EEPROM card: rpi4 bootloader 2026-05-17");
    assert_stdout_has(&o, "BOOT_ORDER=0xf14");
    // The local files went into the cache: inspect compares pieeprom.bin with the release's.
    assert_stdout_has(&o, "checked: /pieeprom.bin is rpi4 2026-05-17's");
    // A .sig that does not sign pieeprom.bin is a difference.
    let img = t.path("a.img");
    std::fs::write(t.path("bad.sig"), b"00\nts: 1\ntarget-soc: 2711\n").unwrap();
    run_ok(
        tool("mcopy")
            .args(["-o", "-i"])
            .arg(format!("{}@@{MIB}", img.display()))
            .arg(t.path("bad.sig"))
            .arg("::/pieeprom.sig"),
    );
    let o = t
        .pi_burn()
        .args(["inspect", "--manifest", MANIFEST, "--image"])
        .arg(&img)
        .output()
        .unwrap();
    assert_fails_with(&o, 3, &[]);
    assert_stdout_has(&o, "/pieeprom.sig names sha256 00");
}

/// A manifest pinning `file` as rpi4 2026-05-17's pieeprom (for hostile images).
fn manifest_pinning(t: &TestDir, file: &Path) -> PathBuf {
    let text = std::fs::read_to_string(MANIFEST).unwrap().replace(
        &sha256_file(&eeprom_fixture("pieeprom-2711.bin")),
        &sha256_file(file),
    );
    let text = text.replace(
        "size = 524288, sha256 = \"",
        &format!(
            "size = {}, sha256 = \"",
            std::fs::metadata(file).unwrap().len()
        ),
    );
    let p = t.path("pinned.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Hostile images, each pinned so the parser sees it: one-line errors, never a panic, no
/// image written.
fn hostile_images_and_inputs_are_one_line_errors() {
    let t = TestDir::new();
    let good = std::fs::read(eeprom_fixture("pieeprom-2711.bin")).unwrap();
    let at = |needle: &[u8]| {
        good.windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    };
    let bootconf = at(b"bootconf.txt") - 8;
    let mut past_end = good.clone();
    past_end[bootconf + 4..bootconf + 8].copy_from_slice(&0x00FF_FFFFu32.to_be_bytes());
    let mut no_bootconf = good.clone();
    no_bootconf[bootconf + 8..bootconf + 20].copy_from_slice(b"notbootconf\0");
    let mut huge_conf = good.clone();
    // A bootconf.txt of 4060 bytes (a comment): one more property and it would not fit.
    let comment = format!("[all]\n#{}\n", "x".repeat(4061));
    huge_conf[bootconf + 4..bootconf + 8]
        .copy_from_slice(&((16 + comment.len()) as u32).to_be_bytes());
    huge_conf[bootconf + 24..bootconf + 24 + comment.len()].copy_from_slice(comment.as_bytes());
    let wrong_size = good[..300_000].to_vec();
    let cases: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        ("past.bin", past_end, 1, "past the image's end"),
        ("nobootconf.bin", no_bootconf, 1, "no bootconf.txt"),
        ("huge.bin", huge_conf, 2, "at most 4076"),
        (
            "size.bin",
            wrong_size,
            1,
            "pieeprom is 300000 bytes; a rpi4 image is 524288",
        ),
    ];
    for (name, bytes, code, want) in cases {
        let f = t.path(name);
        std::fs::write(&f, &bytes).unwrap();
        let m = manifest_pinning(&t, &f);
        let o = t
            .pi_burn()
            .args(["eeprom", "--manifest"])
            .arg(&m)
            .args([
                "--image",
                "out.img",
                "--bootconf",
                "BOOT_UART=1",
                "--eeprom-file",
            ])
            .arg(&f)
            .arg("--recovery-file")
            .arg(eeprom_fixture("recovery-2711.bin"))
            .arg("--vl805-file")
            .arg(eeprom_fixture("vl805.bin"))
            .output()
            .unwrap();
        assert_fails_with(&o, code, &[want]);
        assert!(!t.path("out.img").exists(), "{name}: an image was written");
    }
}

/// A file that matches no pin, another board's, and a misspelt or mistyped property are
/// refused before anything is built.
fn unpinned_files_and_bad_properties_are_refused_first() {
    let t = TestDir::new();
    let good = std::fs::read(eeprom_fixture("pieeprom-2711.bin")).unwrap();
    // Not pinned at all; another board's; a Pi 4 image for --board rpi5 that no pin names.
    let mut other = good.clone();
    other[100] ^= 1;
    std::fs::write(t.path("other.bin"), &other).unwrap();
    let o = card(
        &t,
        "rpi4",
        "x.img",
        &["--eeprom-file", t.path("other.bin").to_str().unwrap()],
    );
    assert_fails_with(
        &o,
        1,
        &["matches no pinned pieeprom file", "nothing was written"],
    );
    let o = card(
        &t,
        "rpi5",
        "x.img",
        &[
            "--eeprom-file",
            eeprom_fixture("pieeprom-2711.bin").to_str().unwrap(),
        ],
    );
    assert_fails_with(
        &o,
        1,
        &["is the rpi4 2026-05-17 pieeprom file", "--board rpi4"],
    );
    let o = card(
        &t,
        "rpi5",
        "x.img",
        &["--eeprom-file", t.path("other.bin").to_str().unwrap()],
    );
    assert_fails_with(
        &o,
        1,
        &["Pi 4 (BCM2711) EEPROM, not a Pi 5", "--board rpi4"],
    );
    for (args, want) in [
        (
            &["--bootconf", "BOOT_ODER=0xf41"][..],
            "did you mean BOOT_ORDER?",
        ),
        (&["--bootconf", "BOOT_ORDER=0xf9"][..], "no boot mode"),
        (
            &["--boot-order", "sd,floppy"][..],
            "'floppy' is no boot mode",
        ),
        (
            &["--boot-order", "sd", "--bootconf", "BOOT_ORDER=0xf14"][..],
            "disagree",
        ),
        (&["--bootconf", "PCIE_PROBE=1"][..], "Pi 5 bootloader only"),
    ] {
        let o = card(&t, "rpi4", "x.img", args);
        assert_fails_with(&o, 2, &[want]);
    }
    assert!(!t.path("x.img").exists());
}

/// pi-burn.toml's [defaults.eeprom] and [nodes.NAME.eeprom] for --node; `images` writes the
/// cluster's EEPROM card (and a node's own) beside the nodes' images.
fn pi_burn_toml_sets_a_node_s_bootconf_and_images_writes_the_card() {
    if !have_tool("mcopy") {
        return;
    }
    let t = TestDir::new();
    let flake = t.path("flake");
    for n in ["pi-alpha", "pi-beta"] {
        std::fs::create_dir_all(flake.join("hosts").join(n)).unwrap();
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/flake/hosts/pi-alpha/disk-config.nix"
            ),
            flake.join("hosts").join(n).join("disk-config.nix"),
        )
        .unwrap();
    }
    std::fs::write(
        flake.join("pi-burn.toml"),
        "[defaults.eeprom]\nBOOT_ORDER = 0xf41\nPOWER_OFF_ON_HALT = 1\n[nodes.pi-beta.eeprom]\nBOOT_UART = 1\n",
    )
    .unwrap();
    let f = flake.to_str().unwrap();
    let o = card(&t, "rpi4", "beta.img", &["--node", "pi-beta", "--flake", f]);
    assert_success(&o);
    let rec = String::from_utf8(take(&t, &t.path("beta.img"), "pi-burn.json")).unwrap();
    for want in ["BOOT_ORDER=0xf41", "POWER_OFF_ON_HALT=1", "BOOT_UART=1"] {
        assert!(rec.contains(want), "{want}: {rec}");
    }
    assert!(rec.contains("pi-burn.toml [nodes.pi-beta] eeprom"), "{rec}");
    // A misspelt property in the file is exit 2 naming the file.
    std::fs::write(
        flake.join("pi-burn.toml"),
        "[defaults.eeprom]\nBOOT_ORDR = 1\n",
    )
    .unwrap();
    let o = card(&t, "rpi4", "bad.img", &["--node", "pi-alpha", "--flake", f]);
    assert_fails_with(&o, 2, &["pi-burn.toml [defaults] eeprom", "BOOT_ORDER"]);
    std::fs::write(
        flake.join("pi-burn.toml"),
        "[defaults.eeprom]\nBOOT_ORDER = 0xf41\n[nodes.pi-beta.eeprom]\nBOOT_UART = 1\n",
    )
    .unwrap();
    // images: the release comes from the cache (the runs above put the files there).
    let o = t
        .pi_burn()
        .args(["images", "--manifest", MANIFEST, "--flake", f, "--out"])
        .arg(t.path("out"))
        .arg("--firmware-zip")
        .arg(fixture_zip("rpi4", None))
        .args(["--offline", "--eval", "builtin"])
        .output()
        .unwrap();
    assert_success(&o);
    for img in ["eeprom.img", "pi-beta-eeprom.img"] {
        let p = t.path("out").join(img);
        assert!(
            p.exists() && crate::harness::sha256_file(&p).len() == 64,
            "{img}"
        );
    }
    // The cluster's card has [defaults.eeprom] only; pi-beta's has its own line too.
    for (img, want) in [
        ("eeprom.img", vec!["BOOT_ORDER"]),
        ("pi-beta-eeprom.img", vec!["BOOT_ORDER", "BOOT_UART"]),
    ] {
        let rec: serde_json::Value =
            serde_json::from_slice(&take(&t, &t.path("out").join(img), "pi-burn.json")).unwrap();
        let keys: Vec<&str> = strs(&rec["bootconf"], "key");
        assert_eq!(keys, want, "{img}");
    }
}

/// The release downloaded from a server on 127.0.0.1 into the cache; then offline.
fn the_release_is_downloaded_once_verified_and_cached() {
    let t = TestDir::new();
    let files = ["pieeprom-2711.bin", "recovery-2711.bin", "vl805.bin"];
    let routes: Vec<(String, Route)> = files
        .iter()
        .map(|f| {
            (
                format!("/{f}"),
                Route::Bytes(Arc::new(std::fs::read(eeprom_fixture(f)).unwrap())),
            )
        })
        .collect();
    let server = Server::start(
        routes
            .iter()
            .map(|(p, r)| (p.as_str(), r.clone()))
            .collect(),
    );
    let m = t.path("m.toml");
    std::fs::write(
        &m,
        std::fs::read_to_string(MANIFEST).unwrap().replace(
            "http://127.0.0.1:9/",
            &format!("http://127.0.0.1:{}/", server.port),
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        t.pi_burn()
            .args(["eeprom", "--manifest"])
            .arg(&m)
            .args(["--image", "d.img", "--force"])
            .args(extra)
            .output()
            .unwrap()
    };
    assert_success(&run(&[]));
    assert_eq!(server.log.lock().unwrap().len(), 3);
    assert_success(&run(&["--offline"]));
    assert_eq!(server.log.lock().unwrap().len(), 3, "offline: no request");
    // Offline with an empty cache: the way on named.
    let t2 = TestDir::new();
    let o = t2
        .pi_burn()
        .args(["eeprom", "--manifest"])
        .arg(&m)
        .args(["--image", "d.img", "--offline"])
        .output()
        .unwrap();
    assert_fails_with(&o, 1, &["not in the cache", "--eeprom-file"]);
}

/// Onto a loop device: the probe, the card, inspect and devices name it.
fn an_eeprom_card_is_burned_on_a_device_and_named_by_devices() {
    if !(is_root() && have_tool("losetup")) {
        return;
    }
    let t = TestDir::new();
    let file = t.sparse_file("card.dev", 300 * MIB);
    let lo = Loop::attach(&file, 512, false);
    let mut c = t.pi_burn();
    c.args(["eeprom", &lo.dev, "--yes", "--manifest", MANIFEST])
        .arg("--eeprom-file")
        .arg(eeprom_fixture("pieeprom-2711.bin"))
        .arg("--recovery-file")
        .arg(eeprom_fixture("recovery-2711.bin"))
        .arg("--vl805-file")
        .arg(eeprom_fixture("vl805.bin"))
        .stdin(std::process::Stdio::null());
    let o = c.output().unwrap();
    assert_success(&o);
    assert_stdout_has(
        &o,
        "read back and verified; probe (65 KiB written and put back): no wrap-around",
    );
    let o = t
        .pi_burn()
        .args(["inspect", &lo.dev, "--manifest", MANIFEST])
        .output()
        .unwrap();
    assert_success(&o);
    let row = t.devices_row(&lo.dev);
    assert_eq!(row["card"]["firmware"], "bootloader 2026-05-17", "{row}");
    assert!(
        row["holds"].as_str().unwrap().contains("EEPROM card"),
        "{row}"
    );
}

// This module's tests, for the runner in main.rs.
crate::tests![
    the_card_is_what_rpi_eeprom_config_and_imager_make,
    two_runs_are_byte_identical_and_ts_is_the_build_s,
    hostile_images_and_inputs_are_one_line_errors,
    unpinned_files_and_bad_properties_are_refused_first,
    pi_burn_toml_sets_a_node_s_bootconf_and_images_writes_the_card,
    the_release_is_downloaded_once_verified_and_cached,
    an_eeprom_card_is_burned_on_a_device_and_named_by_devices,
];
