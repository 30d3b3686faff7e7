//! A card in its life (issue 19): booted (the firmware rewrites its variable store), checked
//! against its record's every claim, made with an old start4.elf, burned again from its record.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::Output;

const MIB: u64 = 1 << 20;
const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake");

fn card(t: &TestDir, name: &str, variant: Option<&str>, extra: &[&str]) -> Output {
    t.sdcard_with("rpi4", variant, name, extra)
}

/// A file off the card image's FAT.
fn take(t: &TestDir, img: &Path, file: &str) -> PathBuf {
    let out = t.path(&format!("{file}.out"));
    run_ok(
        tool("mcopy")
            .args(["-o", "-i", &mtools_at(img)])
            .arg(format!("::/{file}"))
            .arg(&out),
    );
    out
}

fn put(img: &Path, local: &Path, file: &str) {
    run_ok(
        tool("mcopy")
            .args(["-o", "-i", &mtools_at(img)])
            .arg(local)
            .arg(format!("::/{file}")),
    );
}

/// A card whose firmware booted: virt-fw-vars (as edk2 would) adds a boot entry and changes a
/// setting in RPI_EFI.fd's store. inspect and verify call it intact and name both changes; a
/// byte changed outside the store, or a broken store header, is a difference.
fn a_booted_card_is_intact_and_its_changes_are_named() {
    if !(have_tool("virt-fw-vars") && have_tool("mcopy")) {
        return;
    }
    let t = TestDir::new();
    assert_success(&card(&t, "b.img", None, &["--set", "SystemTableMode=2"]));
    let img = t.path("b.img");
    let fd = take(&t, &img, "RPI_EFI.fd");
    let original = std::fs::read(&fd).unwrap();
    std::fs::write(
        t.path("set.json"),
        r#"{"version": 2, "variables": [{"name": "SystemTableMode", "guid": "cd7cc258-31db-22e6-9f22-63b0b8eed6b5", "attr": 7, "data": "01000000"}]}"#,
    )
    .unwrap();
    run_ok(
        tool("virt-fw-vars")
            .arg("--inplace")
            .arg(&fd)
            .args(["--set-boot-uri", "http://127.0.0.1/boot.efi", "--set-json"])
            .arg(t.path("set.json")),
    );
    put(&img, &fd, "RPI_EFI.fd");
    let verify = |extra: &[&str]| {
        t.pi_burn()
            .args(["verify", "--manifest", MANIFEST, "--image"])
            .arg(&img)
            .arg("--firmware-zip")
            .arg(fixture_zip("rpi4", None))
            .args(extra)
            .output()
            .unwrap()
    };
    let o = t.inspect_image(&img);
    assert_success(&o);
    let out = stdout(&o);
    assert!(out.contains("SystemTableMode: 2 -> 1"), "{out}");
    assert!(
        out.contains("added by the firmware") && out.contains("Boot"),
        "{out}"
    );
    // verify with the setting named checks it on the card (issue 30 item 5): the firmware's
    // setup changed it, so the card no longer holds what is asked; the boot entry it added is
    // still a change, named.
    let o = verify(&["--set", "SystemTableMode=2"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("UEFI SystemTableMode on the card is 1, not 2 (from --set) as asked"),
        "{out}"
    );
    assert!(
        out.contains("added by the firmware") && out.contains("Boot"),
        "{out}"
    );
    let j: serde_json::Value = serde_json::from_str(&stdout(
        &t.pi_burn()
            .args(["--json", "inspect", "--manifest", MANIFEST, "--image"])
            .arg(&img)
            .output()
            .unwrap(),
    ))
    .unwrap();
    assert_eq!(j["intact"], true);
    assert!(j["changes"].as_array().unwrap().len() >= 2, "{j}");
    // One byte of the firmware's code (outside the store) changed: a difference.
    let mut code = std::fs::read(&fd).unwrap();
    code[1000] ^= 1;
    std::fs::write(t.path("code.fd"), &code).unwrap();
    run_ok(tool("cp").arg(&img).arg(t.path("code.img")));
    put(&t.path("code.img"), &t.path("code.fd"), "RPI_EFI.fd");
    let o = t.inspect_image(&t.path("code.img"));
    assert_fails_with(&o, 3, &[]);
    assert_stdout_has(&o, "/RPI_EFI.fd: changed");
    // The store's header broken (its format byte): a difference naming the store.
    let store = pi_burn::firmware::uefivars::find_store(&original, "fd").unwrap();
    let mut broken = std::fs::read(&fd).unwrap();
    broken[store.store_offset + 20] = 0x00;
    std::fs::write(t.path("broken.fd"), &broken).unwrap();
    run_ok(tool("cp").arg(&img).arg(t.path("broken.img")));
    put(&t.path("broken.img"), &t.path("broken.fd"), "RPI_EFI.fd");
    let o = t.inspect_image(&t.path("broken.img"));
    assert_fails_with(&o, 3, &[]);
    assert_stdout_has(&o, "variable store is damaged");
}

/// start4.elf's build date, read from the file: one of Aug 24 2020 is refused on GPT (and
/// accepted on MBR or with --allow-old-start4), one of Nov 2025 accepted on both, one without
/// build strings warned about; the date is in the plan and the record.
fn an_old_start4_is_refused_on_gpt_and_its_build_date_recorded() {
    let t = TestDir::new();
    let o = card(&t, "old.img", Some("old-start4"), &["--firmware", "v8.0"]);
    assert_fails_with(
        &o,
        2,
        &[
            "2020-08-24",
            "#668",
            "--table mbr",
            "v1.42",
            "--allow-old-start4",
        ],
    );
    assert!(!t.path("old.img").exists());
    for extra in [&["--table", "mbr"][..], &["--allow-old-start4"][..]] {
        let mut args = vec!["--firmware", "v8.0"];
        args.extend(extra);
        assert_success(&card(&t, "old.img", Some("old-start4"), &args));
        std::fs::remove_file(t.path("old.img")).unwrap();
    }
    for table in ["gpt", "mbr"] {
        let o = card(&t, &format!("new-{table}.img"), None, &["--table", table]);
        assert_success(&o);
        assert_stderr_has(&o, "start4.elf built 2025-11-19");
    }
    let o = t.inspect_image(&t.path("new-gpt.img"));
    assert_stdout_has(&o, "start4.elf built 2025-11-19");
    let zip = fixture_zip("rpi4", Some("start4-unknown"));
    let o = card(
        &t,
        "u.img",
        Some("start4-unknown"),
        &["--sha256", &sha256_file(&zip)],
    );
    assert_success(&o);
    assert_stderr_has(&o, "carries no build date");
}

/// Every claim of the record is checked against the card: a record edited to name another
/// node, another setting value, a config.txt edit that is not there, or a release pinned
/// otherwise is a difference; with the release in the cache, every file is compared with it.
fn every_claim_of_the_record_is_checked_or_named_unchecked() {
    if !have_tool("mcopy") {
        return;
    }
    let t = TestDir::new();
    let o = t.sdcard("r.img", &["--node", "pi-beta", "--flake", CLUSTER]);
    assert_success(&o);
    let img = t.path("r.img");
    let o = t.inspect_image(&img);
    assert_success(&o);
    assert_stdout_has(&o, "unchecked: that the files are rpi4 v9.0's");
    let rec = std::fs::read_to_string(take(&t, &img, "pi-burn.json")).unwrap();
    for (from, to, want) in [
        (
            "\"node\": \"pi-beta\"",
            "\"node\": \"pi-betu\"",
            "disk GUID",
        ),
        (
            "\"value\": 2,",
            "\"value\": 3,",
            "the store it burned holds",
        ),
        ("\"value\": \"1\"", "\"value\": \"0\"", "does not set"),
        (
            "\"version\": \"v9.0\"",
            "\"version\": \"v8.0\"",
            "the manifest pins",
        ),
    ] {
        assert!(rec.contains(from), "the record has {from}");
        let name = format!("edit{}.img", want.len());
        run_ok(tool("cp").arg(&img).arg(t.path(&name)));
        std::fs::write(t.path("rec.json"), rec.replacen(from, to, 1)).unwrap();
        put(&t.path(&name), &t.path("rec.json"), "pi-burn.json");
        let o = t.inspect_image(&t.path(&name));
        assert_fails_with(&o, 3, &[]);
        assert!(stdout(&o).contains(want), "{from} -> {to}: {}", stdout(&o));
    }
    // The release in the cache: every file is compared with it, settings and edits applied.
    let o = t.fetch_fixture();
    assert_success(&o);
    let o = t.inspect_image(&img);
    assert_success(&o);
    assert!(!stdout(&o).contains("unchecked"), "{}", stdout(&o));
    assert_stderr_has(&o, "every file checked against rpi4 v9.0");
}

/// `--from-record`: a node's card made again from its record is byte for byte the same; an
/// option beside it overrides the record and is named; onto a device, it is the same card.
fn a_card_is_burned_again_from_its_record() {
    let t = TestDir::new();
    let make = |name: &str, extra: &[&str]| t.sdcard(name, extra);
    assert_success(&make(
        "a.img",
        &[
            "--node",
            "pi-beta",
            "--flake",
            CLUSTER,
            "--set",
            "Timeout=3",
            "--config-txt",
            "enable_uart=1",
        ],
    ));
    let a = t.path("a.img").display().to_string();
    let o = make("b.img", &["--from-record", &a]);
    assert_success(&o);
    assert_eq!(sha256_file(&t.path("a.img")), sha256_file(&t.path("b.img")));
    assert_eq!(
        std::fs::read(t.path("a.img.bmap")).unwrap(),
        std::fs::read(t.path("b.img.bmap")).unwrap()
    );
    let o = make("c.img", &["--from-record", &a, "--set", "Timeout=4"]);
    assert_success(&o);
    assert_stderr_has(&o, "overrides the record");
    let o = t.inspect_image(&t.path("c.img"));
    assert!(
        stdout(&o).contains("UEFI Timeout = 4") && stdout(&o).contains("for pi-beta"),
        "{}",
        stdout(&o)
    );
    // A record whose firmware zip is another: refused before anything is written.
    let o = t
        .pi_burn()
        .args([
            "sdcard",
            "--manifest",
            MANIFEST,
            "--image",
            "d.img",
            "--from-record",
            &a,
        ])
        .arg("--firmware-zip")
        .arg(fixture_zip("rpi4", Some("old-start4")))
        .output()
        .unwrap();
    assert_fails_with(&o, 1, &["hash mismatch"]);
    assert!(!t.path("d.img").exists());
    if !(is_root() && have_tool("losetup")) {
        return;
    }
    let dev = t.path("card.dev");
    std::fs::File::create(&dev)
        .unwrap()
        .set_len(514 * MIB)
        .unwrap();
    let lo = Loop::attach(&dev, 512, false);
    let o = t
        .pi_burn()
        .args([
            "sdcard",
            &lo.dev,
            "--yes",
            "--manifest",
            MANIFEST,
            "--from-record",
            &a,
        ])
        .arg("--firmware-zip")
        .arg(fixture_zip("rpi4", None))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_success(&o);
    drop(lo);
    assert_eq!(
        sha256_file(&dev),
        sha256_file(&t.path("a.img")),
        "the same card"
    );
}

// This module's tests, for the runner in main.rs.
crate::tests![
    a_booted_card_is_intact_and_its_changes_are_named,
    an_old_start4_is_refused_on_gpt_and_its_build_date_recorded,
    every_claim_of_the_record_is_checked_or_named_unchecked,
    a_card_is_burned_again_from_its_record,
];
