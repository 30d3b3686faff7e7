//! `pi-burn sdcard --image` and `pi-burn verify --image`, checked with independent tools.

use crate::harness::*;
use std::collections::BTreeSet;
use std::path::Path;

const MIB: u64 = 1 << 20;

fn fsck_clean(part: &Path) {
    let out = tool("fsck.fat")
        .args(["-n", "-v"])
        .arg(part)
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "fsck.fat -n -v complained:\n{text}");
    for bad in [
        "Invalid",
        "differs",
        "Dirty",
        "wrong",
        "Leaving filesystem unchanged",
        "Fix",
        "orphan",
        "Orphan",
        "no volume label",
        "corrected",
    ] {
        assert!(!text.contains(bad), "fsck.fat -n -v says '{bad}':\n{text}");
    }
}

/// Every file of the fixture, read back through mtools, byte-equal; nothing else on the card.
fn mtools_match(img: &Path, offset: u64, zip: &Path) {
    let spec = format!("{}@@{offset}", img.display());
    let listing = run_ok(tool("mdir").args(["-/", "-b", "-i", &spec, "::/"]));
    let on_card: BTreeSet<String> = listing
        .lines()
        .map(|l| {
            l.trim_start_matches("::/")
                .trim_end_matches('/')
                .to_string()
        })
        .filter(|l| !l.is_empty())
        .collect();
    let files = zip_files(zip);
    let mut expected: BTreeSet<String> = files.iter().map(|(p, _)| p.clone()).collect();
    for (p, _) in &files {
        let mut d = Path::new(p).parent();
        while let Some(dir) = d.filter(|d| !d.as_os_str().is_empty()) {
            expected.insert(dir.to_string_lossy().into_owned());
            d = dir.parent();
        }
    }
    // pi-burn's card record is the one file the zip does not have.
    expected.insert("pi-burn.json".into());
    assert_eq!(on_card, expected, "mdir listing differs from the zip");
    let record: serde_json::Value = serde_json::from_str(&run_ok(tool("mtype").args([
        "-i",
        &spec,
        "::/pi-burn.json",
    ])))
    .expect("the record is JSON");
    let recorded: BTreeSet<(String, String)> = record["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let hashed: BTreeSet<(String, String)> = files
        .iter()
        .map(|(p, d)| {
            use sha2::Digest;
            let h = sha2::Sha256::digest(d);
            (p.clone(), h.iter().map(|b| format!("{b:02x}")).collect())
        })
        .collect();
    assert_eq!(
        recorded, hashed,
        "the record lists every file with its SHA-256"
    );
    for (p, data) in files {
        let out = tool("mtype")
            .args(["-i", &spec])
            .arg(format!("::/{p}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "mtype {p}: {}", stderr(&out));
        assert!(
            out.stdout == data,
            "{p} differs on the card ({} vs {} bytes)",
            out.stdout.len(),
            data.len()
        );
    }
}

fn gpt_image_passes_sfdisk_sgdisk_fsck_and_mtools() {
    let t = TestDir::new();
    let o = t.sdcard("sd.img", &[]);
    assert_success(&o);
    let img = t.path("sd.img");
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 514 * MIB);

    if have_tool("sfdisk") {
        let j = sfdisk_json(&img);
        let pt = &j["partitiontable"];
        assert_eq!(pt["label"], "gpt");
        assert_eq!(pt["sectorsize"], 512);
        let parts = pt["partitions"].as_array().unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0]["start"], 2048);
        assert_eq!(parts[0]["size"], 1048576);
        assert_eq!(parts[0]["type"], "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(parts[0]["name"], "disk-sdcard-FIRMWARE");
    }
    if have_tool("sgdisk") {
        let out = run_ok(tool("sgdisk").arg("-v").arg(&img));
        assert!(out.contains("No problems found"), "sgdisk -v: {out}");
        // Partition entries at LBA 2 (rpi-eeprom #585).
        let info = run_ok(tool("sgdisk").arg("-p").arg(&img));
        assert!(
            info.contains("Partitions will be aligned on 2048-sector boundaries"),
            "{info}"
        );
    }
    if have_tool("fsck.fat") {
        let part = t.path("p1.img");
        extract(&img, MIB, 512 * MIB, &part);
        fsck_clean(&part);
    }
    if have_tool("mdir") && have_tool("mtype") {
        mtools_match(&img, MIB, &fixture_zip("rpi4", None));
        let info = run_ok(tool("minfo").args(["-i", &format!("{}@@{}", img.display(), MIB), "::"]));
        assert!(
            info.contains("hidden sectors: 2048"),
            "hidden sectors must be the partition start: {info}"
        );
        let label =
            run_ok(tool("mlabel").args(["-s", "-i", &format!("{}@@{}", img.display(), MIB), "::"]));
        assert!(label.contains("FIRMWARE"), "{label}");
    }
}

fn image_is_sparse() {
    use std::os::unix::fs::MetadataExt;
    let t = TestDir::new();
    assert_success(&t.sdcard("sd.img", &[]));
    let allocated = std::fs::metadata(t.path("sd.img")).unwrap().blocks() * 512;
    assert!(
        allocated < 16 * MIB,
        "a 514 MiB image with ~7 MB of firmware allocates {allocated} bytes"
    );
}

fn builds_are_byte_identical_whatever_the_clock_tz_umask_or_cwd() {
    let t = TestDir::new();
    let zip = fixture_zip("rpi4", None);
    std::fs::create_dir(t.path("elsewhere")).unwrap();
    let a = t.path("a.img");
    let b = t.path("b.img");
    run_ok(
        t.pi_burn()
            .env("TZ", "UTC")
            .args(["sdcard", "--image"])
            .arg(&a)
            .arg("--firmware-zip")
            .arg(&zip)
            .args(["--manifest", MANIFEST]),
    );
    // Another zone, another umask, another working directory, a relative path.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 077; cd '{}' && TZ=Pacific/Kiritimati '{}' sdcard --image ../b.img --firmware-zip '{}' --manifest '{}'",
            t.path("elsewhere").display(),
            env!("CARGO_BIN_EXE_pi-burn"),
            zip.display(),
            MANIFEST
        ))
        .env_remove("SOURCE_DATE_EPOCH")
        .env("PI_BURN_CACHE_DIR", t.path("cache"))
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(sha256_file(&a), sha256_file(&b));

    // SOURCE_DATE_EPOCH sets the timestamps, and so changes the bytes.
    let c = t.path("c.img");
    run_ok(
        t.pi_burn()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["sdcard", "--image"])
            .arg(&c)
            .arg("--firmware-zip")
            .arg(&zip)
            .args(["--manifest", MANIFEST]),
    );
    assert_ne!(sha256_file(&a), sha256_file(&c));
    if have_tool("mdir") {
        let l = run_ok(tool("mdir").args([
            "-i",
            &format!("{}@@{}", c.display(), MIB),
            "::/config.txt",
        ]));
        assert!(
            l.contains("2023-11-14"),
            "SOURCE_DATE_EPOCH=1700000000 is 2023-11-14: {l}"
        );
        let l = run_ok(tool("mdir").args([
            "-i",
            &format!("{}@@{}", a.display(), MIB),
            "::/config.txt",
        ]));
        assert!(
            l.contains("2025-11-21"),
            "without it, the release date: {l}"
        );
    }
    // Another seed gives other GUIDs.
    let d = t.path("d.img");
    assert_success(&t.sdcard("d.img", &["--seed", "pi-gamma"]));
    assert_ne!(sha256_file(&a), sha256_file(&d));
}

fn mbr_mode_writes_type_ef_or_0c() {
    let t = TestDir::new();
    assert_success(&t.sdcard("m.img", &["--table", "mbr"]));
    assert_success(&t.sdcard("c.img", &["--table", "mbr", "--mbr-type", "0x0c"]));
    if have_tool("sfdisk") {
        for (name, ty) in [("m.img", "ef"), ("c.img", "c")] {
            let j = sfdisk_json(&t.path(name));
            let pt = &j["partitiontable"];
            assert_eq!(pt["label"], "dos", "{name}");
            assert_eq!(pt["partitions"][0]["start"], 2048);
            assert_eq!(pt["partitions"][0]["size"], 1048576);
            assert_eq!(pt["partitions"][0]["type"], ty);
        }
    }
    if have_tool("fsck.fat") {
        let part = t.path("p.img");
        extract(&t.path("m.img"), MIB, 512 * MIB, &part);
        fsck_clean(&part);
    }
    let o = t
        .pi_burn()
        .args(["verify", "--table", "mbr", "--image"])
        .arg(t.path("m.img"))
        .arg("--firmware-zip")
        .arg(fixture_zip("rpi4", None))
        .args(["--manifest", MANIFEST])
        .output()
        .unwrap();
    assert_success(&o);
}

fn sector_size_4096_image_checks_out_on_a_4k_loop_device() {
    let t = TestDir::new();
    assert_success(&t.sdcard("s4.img", &["--sector-size", "4096"]));
    let img = t.path("s4.img");
    if have_tool("fsck.fat") {
        let part = t.path("p.img");
        extract(&img, MIB, 512 * MIB, &part);
        fsck_clean(&part);
    }
    if have_tool("mdir") && have_tool("mtype") {
        mtools_match(&img, MIB, &fixture_zip("rpi4", None));
    }
    let o = t
        .pi_burn()
        .args(["verify", "--sector-size", "4096", "--image"])
        .arg(&img)
        .arg("--firmware-zip")
        .arg(fixture_zip("rpi4", None))
        .args(["--manifest", MANIFEST])
        .output()
        .unwrap();
    assert_success(&o);
    if !(is_root() && have_tool("losetup") && have_tool("sfdisk") && have_tool("sgdisk")) {
        return;
    }
    let lo = Loop::attach(&img, 4096, true);
    let j = sfdisk_json(Path::new(&lo.dev));
    let pt = &j["partitiontable"];
    assert_eq!(pt["sectorsize"], 4096);
    assert_eq!(pt["partitions"][0]["start"], 256);
    assert_eq!(pt["partitions"][0]["size"], 131072);
    assert_eq!(pt["partitions"][0]["name"], "disk-sdcard-FIRMWARE");
    let v = run_ok(tool("sgdisk").arg("-v").arg(&lo.dev));
    assert!(v.contains("No problems found"), "{v}");
}

fn verify_passes_a_good_image_and_names_a_flipped_byte() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let t = TestDir::new();
    assert_success(&t.sdcard("sd.img", &[]));
    let img = t.path("sd.img");
    let verify = |extra: &[&str]| {
        t.pi_burn()
            .args(["verify", "--image"])
            .arg(&img)
            .arg("--firmware-zip")
            .arg(fixture_zip("rpi4", None))
            .args(["--manifest", MANIFEST])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = verify(&[]);
    assert_success(&o);
    assert!(stdout(&o).contains("OK"), "{}", stdout(&o));

    // Find config.txt's bytes in the image and flip one.
    let data = std::fs::read(&img).unwrap();
    let needle = b"armstub=RPI_EFI.fd";
    let pos = data
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("config.txt is on the card") as u64;
    drop(data);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(pos + 3)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(pos + 3)).unwrap();
    f.write_all(&[b[0] ^ 0x20]).unwrap();
    drop(f);
    let o = verify(&[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "one line per mismatch: {out}");
    assert!(
        out.contains("/config.txt") && out.contains("differs"),
        "{out}"
    );

    // A layout mismatch is caught too.
    let o = verify(&["--partition-name", "FIRMWARE"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stdout(&o).contains("expected name 'FIRMWARE'"),
        "{}",
        stdout(&o)
    );
}

fn json_report_describes_the_image() {
    let t = TestDir::new();
    let o = t.sdcard("sd.img", &["--json"]);
    assert_success(&o);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("stdout is JSON");
    assert_eq!(j["target"]["kind"], "image");
    assert_eq!(j["table"], "gpt");
    assert_eq!(j["sector_size"], 512);
    assert_eq!(j["partitions"][0]["start_lba"], 2048);
    assert_eq!(j["partitions"][0]["end_lba"], 1050623);
    assert_eq!(j["partitions"][0]["name"], "disk-sdcard-FIRMWARE");
    assert_eq!(j["filesystem"]["type"], "FAT32");
    assert_eq!(j["filesystem"]["label"], "FIRMWARE");
    assert_eq!(j["firmware"]["version"], "v9.0");
    assert_eq!(j["firmware"]["hash_kind"], "nar_sha256");
    let files = j["files"].as_array().unwrap();
    assert_eq!(files.len(), zip_files(&fixture_zip("rpi4", None)).len() + 1);
    assert!(files.iter().any(|f| f["path"] == "pi-burn.json"));
    assert!(files
        .iter()
        .any(|f| f["path"] == "overlays/upstream-pi4.dtbo"));
    assert!(j["bytes_written"].as_u64().unwrap() > 6 * MIB);
}

/// Each bad input: a clear one-line error, a non-zero exit, no image, an existing file untouched.
type Case<'a> = (Vec<String>, i32, Vec<&'a str>);

/// Each case fails with its code and message, and touches neither an existing image (it has
/// an MBR signature) nor leaves a new one or a temporary file behind.
fn refused_and_nothing_written(cases: Vec<Case>) {
    let t = TestDir::new();
    let existing = t.path("existing.img");
    let mut precious = b"precious".to_vec();
    precious.resize(512, 0);
    precious[510] = 0x55;
    precious[511] = 0xAA;
    std::fs::write(&existing, &precious).unwrap();
    for (args, code, needles) in cases {
        let o = t
            .pi_burn()
            .args(["sdcard", "--manifest", MANIFEST, "--image"])
            .arg(&existing)
            .args(&args)
            .output()
            .unwrap();
        assert_fails_with(&o, code, &needles);
        assert_eq!(
            std::fs::read(&existing).unwrap(),
            precious,
            "{args:?} touched the existing image"
        );
        let o = t
            .pi_burn()
            .args(["sdcard", "--manifest", MANIFEST, "--image"])
            .arg(t.path("new.img"))
            .args(&args)
            .output()
            .unwrap();
        assert_fails_with(&o, code, &needles);
        assert!(!t.path("new.img").exists(), "{args:?} left an image behind");
    }
    let leftovers: Vec<_> = std::fs::read_dir(t.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "temporary files left behind: {leftovers:?}"
    );
}

fn bad_firmware_is_refused_and_nothing_is_written() {
    refused_and_nothing_written(vec![
        (
            zip_args("traversal"),
            1,
            vec!["refusing entry '../evil.txt'"],
        ),
        (
            zip_args("absolute"),
            1,
            vec!["refusing entry '/etc/evil.txt'"],
        ),
        (
            zip_args("symlink"),
            1,
            vec!["overlays/link", "symbolic link"],
        ),
        (
            zip_args("collision"),
            1,
            vec!["README.MD", "Readme.md", "same name on FAT"],
        ),
        (
            zip_args("missing-start4"),
            1,
            vec!["lacks the required file 'start4.elf'"],
        ),
        (zip_args("bomb"), 1, vec!["limit of 268435456 bytes"]),
        (
            zip_args("exec"),
            1,
            vec![
                "matches no pinned rpi4 release",
                "computed sha256",
                "sha256-Vc4qBLD2",
            ],
        ),
        (
            [zip_args("exec"), s(&["--firmware", "v9.0"])].concat(),
            1,
            vec![
                "hash mismatch",
                "expected sha256-Vc4qBLD2",
                "computed sha256-",
            ],
        ),
        (
            [zip_args("good"), s(&["--firmware", "v7.0"])].concat(),
            1,
            vec!["v7.0 has no pinned hash", "--sha256"],
        ),
        (
            [zip_args("good"), s(&["--sha256", &"0".repeat(64)])].concat(),
            1,
            vec!["hash mismatch", "--sha256 expected 0000"],
        ),
        (
            [zip_args("good"), s(&["--firmware", "v1.0"])].concat(),
            1,
            vec!["unknown firmware version 'v1.0'"],
        ),
        (
            [zip_args("good"), s(&["--board", "rpi3"])].concat(),
            1,
            vec!["unknown board 'rpi3'"],
        ),
        (
            [zip_args("good"), s(&["--board", "rpi5"])].concat(),
            1,
            vec!["lacks the required file 'bcm2712-rpi-5-b.dtb'"],
        ),
        (
            s(&["--firmware-zip", "/nonexistent/fw.zip"]),
            1,
            vec!["/nonexistent/fw.zip"],
        ),
        (s(&["--offline"]), 1, vec!["not in the cache", "--offline"]),
    ]);
}

fn bad_layouts_are_refused_before_any_download_and_nothing_is_written() {
    refused_and_nothing_written(vec![
        (
            [zip_args("good"), s(&["--size", "100M"])].concat(),
            1,
            vec!["too small", "514 MiB"],
        ),
        (
            [zip_args("good"), s(&["--partition-size", "16M"])].concat(),
            1,
            vec!["cannot hold FAT32"],
        ),
        (
            [
                zip_args("good"),
                s(&["--sector-size", "4096", "--partition-size", "128M"]),
            ]
            .concat(),
            1,
            vec!["cannot hold FAT32 with 4096-byte sectors"],
        ),
        (
            [zip_args("good"), s(&["--size", "12X"])].concat(),
            2,
            vec!["--size", "unknown unit"],
        ),
        (
            [zip_args("good"), s(&["--mbr-type", "zz"])].concat(),
            2,
            vec!["--mbr-type"],
        ),
        (
            [zip_args("good"), s(&["--label", "MUCH_TOO_LONG_LABEL"])].concat(),
            2,
            vec!["--label"],
        ),
        (
            [zip_args("good"), s(&["--sector-size", "1024"])].concat(),
            2,
            vec!["--sector-size"],
        ),
        // Layout mistakes are named before the firmware step, offline too (issue 23).
        (
            s(&["--offline", "--mbr-type", "0x0c"]),
            2,
            vec!["--mbr-type applies to --table mbr only"],
        ),
        (
            s(&["--offline", "--label", "A_26_CHARACTER_LABEL_XXXXX"]),
            2,
            vec!["--label"],
        ),
        (s(&["--offline", "--gpt-type", "8300"]), 2, vec!["8300"]),
        // The partition-type guard and options that do not apply (issue 12).
        (
            [zip_args("good"), s(&["--gpt-type", "8300"])].concat(),
            2,
            vec!["8300", "--allow-unbootable-type"],
        ),
        (
            [
                zip_args("good"),
                s(&["--table", "mbr", "--mbr-type", "0x83"]),
            ]
            .concat(),
            2,
            vec!["0x83", "--allow-unbootable-type"],
        ),
        (
            [zip_args("good"), s(&["--mbr-type", "0x0c"])].concat(),
            2,
            vec!["--mbr-type applies to --table mbr only"],
        ),
        (
            [
                zip_args("good"),
                s(&["--table", "mbr", "--gpt-type", "EF00"]),
            ]
            .concat(),
            2,
            vec!["--gpt-type applies to --table gpt only"],
        ),
    ]);
}

fn s(a: &[&str]) -> Vec<String> {
    a.iter().map(|x| x.to_string()).collect()
}

fn zip_args(variant: &str) -> Vec<String> {
    let v = (variant != "good").then_some(variant);
    vec![
        "--firmware-zip".into(),
        fixture_zip("rpi4", v).display().to_string(),
    ]
}

fn an_unpinned_release_is_accepted_with_the_users_sha256() {
    let t = TestDir::new();
    let zip = fixture_zip("rpi4", None);
    let hex = sha256_file(&zip);
    let o = t.sdcard("a.img", &["--firmware", "v7.0", "--sha256", &hex, "--json"]);
    assert_success(&o);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["firmware"]["version"], "v7.0");
    assert_eq!(j["firmware"]["hash_kind"], "user_sha256");
    // A custom build: matches no release, pinned by the user.
    let custom = fixture_zip("rpi4", Some("exec"));
    let o = t
        .pi_burn()
        .args(["sdcard", "--json", "--manifest", MANIFEST, "--image"])
        .arg(t.path("c.img"))
        .arg("--firmware-zip")
        .arg(&custom)
        .args(["--sha256", &sha256_file(&custom)])
        .output()
        .unwrap();
    assert_success(&o);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(j["firmware"]["version"]
        .as_str()
        .unwrap()
        .starts_with("custom-"));
}

fn rpi5_firmware_builds_its_own_card() {
    let t = TestDir::new();
    let zip = fixture_zip("rpi5", None);
    let o = t.sdcard_with("rpi5", None, "5.img", &[]);
    assert_success(&o);
    if have_tool("mdir") && have_tool("mtype") {
        mtools_match(&t.path("5.img"), MIB, &zip);
    }
}

fn completions_and_man_page_are_generated() {
    let t = TestDir::new();
    for sh in ["bash", "zsh", "fish"] {
        let out = run_ok(t.pi_burn().args(["completions", sh]));
        assert!(out.contains("sdcard"), "{sh}");
    }
    let man = run_ok(t.pi_burn().arg("man"));
    assert!(man.contains(".TH") && man.contains("sdcard"));
    let o = t.pi_burn().arg("frobnicate").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

fn bash_completes_options_after_a_subcommand() {
    // Regression (issue 12): clap_complete's function names broke on the '-' in pi-burn, so
    // `pi-burn sdcard --ta<TAB>` gave nothing. The script's own function, called as bash
    // calls it.
    let t = TestDir::new();
    std::fs::write(
        t.path("pb.bash"),
        run_ok(t.pi_burn().args(["completions", "bash"])),
    )
    .unwrap();
    let complete = |words: &[&str]| -> String {
        let script = format!(
            "source {}; f=$(complete -p pi-burn | sed 's/.*-F \\([^ ]*\\).*/\\1/'); COMP_WORDS=({}); COMP_CWORD={}; $f pi-burn '{}' '{}'; echo \"${{COMPREPLY[*]}}\"",
            t.path("pb.bash").display(),
            words.join(" "),
            words.len() - 1,
            words[words.len() - 1],
            words[words.len() - 2],
        );
        run_ok(tool("bash").args(["-c", &script]))
            .trim()
            .to_string()
    };
    assert_eq!(complete(&["pi-burn", "sdcard", "--ta"]), "--table");
    assert_eq!(complete(&["pi-burn", "firmware", "se"]), "settings");
    assert!(complete(&["pi-burn", "ssd", "--no-f"]).contains("--no-format"));
    assert!(complete(&["pi-burn", "ins"]).contains("inspect"));
}

fn fish_completes_options_after_a_subcommand() {
    if !have_tool("fish") {
        return;
    }
    let t = TestDir::new();
    std::fs::write(
        t.path("pb.fish"),
        run_ok(t.pi_burn().args(["completions", "fish"])),
    )
    .unwrap();
    let out = run_ok(tool("fish").args([
        "-c",
        &format!(
            "source {}; complete -C 'pi-burn sdcard --ta'; complete -C 'pi-burn firmware se'",
            t.path("pb.fish").display()
        ),
    ]));
    assert!(out.lines().any(|l| l.starts_with("--table")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("settings")), "{out}");
}

fn zsh_completes_options_after_a_subcommand() {
    if !have_tool("zsh") {
        return;
    }
    // An interactive zsh in a pseudo-terminal (zsh/zpty), with the script on its fpath,
    // typing `pi-burn sdcard --ta` and TAB.
    let t = TestDir::new();
    std::fs::create_dir(t.path("fpath")).unwrap();
    std::fs::write(
        t.path("fpath/_pi-burn"),
        run_ok(t.pi_burn().args(["completions", "zsh"])),
    )
    .unwrap();
    let script = format!(
        r#"zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=({} \$fpath); autoload -U compinit; compinit -u -D; PS1='> '; pi-burn() {{ :; }}"
zpty -w -n z "pi-burn sdcard --ta"$'	'
sleep 2
out=""
while zpty -r -t z chunk; do out+=$chunk; done
print -r -- "$out"
zpty -d z
"#,
        t.path("fpath").display()
    );
    std::fs::write(t.path("t.zsh"), script).unwrap();
    let out = run_ok(tool("zsh").arg("-f").arg(t.path("t.zsh")));
    assert!(out.contains("pi-burn sdcard --table"), "{out}");
}

fn man_pages_per_subcommand_with_exit_status_environment_and_examples() {
    let t = TestDir::new();
    for sub in [
        &["sdcard"][..],
        &["firmware", "fetch"],
        &["images"],
        &["inspect"],
    ] {
        let page = run_ok(t.pi_burn().arg("man").args(sub));
        for section in [
            ".SH EXIT STATUS",
            ".SH ENVIRONMENT",
            ".SH EXAMPLES",
            ".SH OPTIONS",
        ] {
            assert!(page.contains(section), "{sub:?}: {section}");
        }
        for var in [
            "PI_BURN_CACHE_DIR",
            "XDG_CACHE_HOME",
            "SOURCE_DATE_EPOCH",
            "HTTPS_PROXY",
            "PI_BURN_REQUIRE_ALL_TESTS",
        ] {
            assert!(page.contains(var), "{sub:?}: {var}");
        }
        assert!(page.contains("130"), "{sub:?}: exit 130");
    }
    let o = t.pi_burn().args(["man", "frobnicate"]).output().unwrap();
    assert_fails_with(&o, 2, &["no page for 'frobnicate'", "sdcard"]);
    run_ok(t.pi_burn().args(["man", "--out"]).arg(t.path("man")));
    for f in [
        "pi-burn.1",
        "pi-burn-sdcard.1",
        "pi-burn-firmware-fetch.1",
        "pi-burn-images.1",
    ] {
        assert!(t.path("man").join(f).is_file(), "{f}");
    }
    if have_tool("man") {
        // man itself renders a page without warnings.
        let o = tool("man")
            .args(["--warnings", "-l"])
            .arg(t.path("man/pi-burn-sdcard.1"))
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stdout).contains("EXAMPLES"));
    }
}

fn help_ends_with_examples_and_groups_the_global_options() {
    let t = TestDir::new();
    for sub in [
        "sdcard", "ssd", "verify", "flash", "inspect", "images", "devices",
    ] {
        let help = run_ok(t.pi_burn().args([sub, "--help"]));
        assert!(help.contains("Examples:\n  # "), "{sub}:\n{help}");
        assert!(help.contains("Global options:"), "{sub}:\n{help}");
        let global = &help[help.find("Global options:").unwrap()..];
        assert!(
            global.contains("--json") && global.contains("--quiet"),
            "{sub}"
        );
    }
    // firmware verify takes only what it uses: no download options.
    let help = run_ok(t.pi_burn().args(["firmware", "verify", "--help"]));
    for gone in [
        "--offline",
        "--timeout",
        "--retries",
        "--firmware-url",
        "--firmware-zip",
    ] {
        assert!(!help.contains(gone), "{gone}");
    }
    let o = t
        .pi_burn()
        .args(["firmware", "verify", "x.zip", "--offline"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

fn verify_fails_a_damaged_primary_gpt_header_or_a_missing_backup_as_sgdisk_does() {
    // Regression (issue 11): verify said OK for both.
    use std::os::unix::fs::FileExt;
    let t = TestDir::new();
    assert_success(&t.sdcard("sd.img", &[]));
    let img = t.path("sd.img");
    let size = std::fs::metadata(&img).unwrap().len();
    let verify = || {
        t.pi_burn()
            .args(["verify", "--image"])
            .arg(&img)
            .arg("--firmware-zip")
            .arg(fixture_zip("rpi4", None))
            .args(["--manifest", MANIFEST])
            .output()
            .unwrap()
    };
    assert_success(&verify());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(&img)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 512 + 48).unwrap();
    f.write_all_at(&[b[0] ^ 0x40], 512 + 48).unwrap();
    let mismatch = |o: std::process::Output, want: &str| {
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(stdout(&o).contains(want), "{}", stdout(&o));
    };
    mismatch(verify(), "primary GPT header: CRC");
    f.write_all_at(&b, 512 + 48).unwrap();
    assert_success(&verify());
    f.write_all_at(&[0u8; 512], size - 512).unwrap();
    mismatch(verify(), "backup GPT header: no signature");
    if have_tool("sgdisk") {
        let v =
            String::from_utf8_lossy(&tool("sgdisk").arg("-v").arg(&img).output().unwrap().stdout)
                .to_string();
        assert!(
            v.contains("corrupt") || v.contains("problem") || v.contains("damaged"),
            "sgdisk agrees that it is damaged: {v}"
        );
    }
}

fn firmware_verify_exits_3_only_for_a_wrong_hash_and_checks_the_pin_before_inflating() {
    let t = TestDir::new();
    let junk = t.path("junk.zip");
    std::fs::write(&junk, b"this is not a zip file at all").unwrap();
    let run = |zip: &std::path::Path, extra: &[&str]| {
        t.pi_burn()
            .args(["firmware", "verify"])
            .arg(zip)
            .args(["--manifest", MANIFEST])
            .args(extra)
            .output()
            .unwrap()
    };
    // Not a zip, no pin to compare: an error (1), not a mismatch.
    assert_fails_with(&run(&junk, &[]), 1, &["junk.zip"]);
    // Pinned: the pin is compared first, so a wrong download is named as such.
    let zeros = "0".repeat(64);
    let o = run(&junk, &["--sha256", &zeros]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    for want in ["hash mismatch", "--sha256 expected 0000", "computed"] {
        assert!(stdout(&o).contains(want), "{want}: {}", stdout(&o));
    }
    assert!(!stdout(&o).contains("not a readable zip"), "{}", stdout(&o));
    assert_success(&run(&fixture_zip("rpi4", None), &[]));
}

fn verify_names_a_root_directory_whose_chain_loops() {
    // Regression (issue 14): verify followed the loop and said OK.
    use std::os::unix::fs::FileExt;
    let t = TestDir::new();
    assert_success(&t.sdcard("sd.img", &[]));
    let img = t.path("sd.img");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&img)
        .unwrap();
    let part = 1u64 << 20;
    let mut bs = [0u8; 512];
    f.read_exact_at(&mut bs, part).unwrap();
    let bps = u16::from_le_bytes([bs[11], bs[12]]) as u64;
    let reserved = u16::from_le_bytes([bs[14], bs[15]]) as u64;
    let fat_sectors = u32::from_le_bytes(bs[36..40].try_into().unwrap()) as u64;
    let root = u32::from_le_bytes(bs[44..48].try_into().unwrap()) as u64;
    for copy in 0..bs[16] as u64 {
        let at = part + (reserved + copy * fat_sectors) * bps + 4 * root;
        f.write_all_at(&(root as u32).to_le_bytes(), at).unwrap();
    }
    let o = t
        .pi_burn()
        .args(["verify", "--image"])
        .arg(&img)
        .arg("--firmware-zip")
        .arg(fixture_zip("rpi4", None))
        .args(["--manifest", MANIFEST])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stdout(&o).contains("loops back"), "{}", stdout(&o));
}

fn an_unbootable_partition_type_needs_saying_so() {
    let t = TestDir::new();
    let o = t.sdcard(
        "l.img",
        &["--gpt-type", "8300", "--allow-unbootable-type", "--json"],
    );
    assert_success(&o);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        j["partitions"][0]["type"], "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        "{j}"
    );
}

fn an_existing_file_that_is_not_an_image_is_not_replaced_without_force() {
    // Issue 12: `--image notes.txt` replaced the notes.
    let t = TestDir::new();
    std::fs::write(t.path("notes.txt"), b"my notes").unwrap();
    let o = t.sdcard("notes.txt", &[]);
    assert_fails_with(&o, 1, &["notes.txt", "no partition table", "--force"]);
    assert_eq!(std::fs::read(t.path("notes.txt")).unwrap(), b"my notes");
    assert_success(&t.sdcard("notes.txt", &["--force"]));
    // An image pi-burn wrote is replaced without ado.
    assert_success(&t.sdcard("notes.txt", &[]));
}

// This module's tests, for the runner in main.rs.
crate::tests![
    gpt_image_passes_sfdisk_sgdisk_fsck_and_mtools,
    image_is_sparse,
    builds_are_byte_identical_whatever_the_clock_tz_umask_or_cwd,
    mbr_mode_writes_type_ef_or_0c,
    sector_size_4096_image_checks_out_on_a_4k_loop_device,
    verify_passes_a_good_image_and_names_a_flipped_byte,
    json_report_describes_the_image,
    bad_firmware_is_refused_and_nothing_is_written,
    bad_layouts_are_refused_before_any_download_and_nothing_is_written,
    an_unpinned_release_is_accepted_with_the_users_sha256,
    rpi5_firmware_builds_its_own_card,
    completions_and_man_page_are_generated,
    bash_completes_options_after_a_subcommand,
    fish_completes_options_after_a_subcommand,
    zsh_completes_options_after_a_subcommand,
    man_pages_per_subcommand_with_exit_status_environment_and_examples,
    help_ends_with_examples_and_groups_the_global_options,
    verify_fails_a_damaged_primary_gpt_header_or_a_missing_backup_as_sgdisk_does,
    firmware_verify_exits_3_only_for_a_wrong_hash_and_checks_the_pin_before_inflating,
    verify_names_a_root_directory_whose_chain_loops,
    an_unbootable_partition_type_needs_saying_so,
    an_existing_file_that_is_not_an_image_is_not_replaced_without_force,
];
