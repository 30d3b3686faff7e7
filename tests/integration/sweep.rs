//! The sweep of issue 30: each shape a hostile or careless input took, and what it must do now.
//! (Items 1-4 are in hostile:: and keys::, 12 in counterfeit::, 14 in the probe's tests, 15 and
//! 16 in json:: and disko::.)

use crate::harness::*;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::Output;

const MIB: u64 = 1 << 20;
const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake");

fn spec(img: &Path) -> String {
    format!("{}@@{MIB}", img.display())
}

/// The card image's record, as JSON.
fn record(t: &TestDir, img: &Path) -> serde_json::Value {
    let out = t.path("record.out");
    run_ok(
        tool("mcopy")
            .args(["-o", "-n", "-i", &spec(img)])
            .arg("::/pi-burn.json")
            .arg(&out),
    );
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

/// Writes `bytes` as the card image's /pi-burn.json.
fn put_record(t: &TestDir, img: &Path, bytes: &[u8]) {
    let local = t.path("record.in");
    std::fs::write(&local, bytes).unwrap();
    run_ok(
        tool("mcopy")
            .args(["-o", "-n", "-i", &spec(img)])
            .arg(&local)
            .arg("::/pi-burn.json"),
    );
}

fn inspect(t: &TestDir, img: &Path) -> Output {
    t.pi_burn()
        .args(["inspect", "--manifest", MANIFEST, "--image"])
        .arg(img)
        .output()
        .unwrap()
}

fn one_line_no_panic(o: &Output) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Item 5: verify --node X of another node's card, and --set of another value, are
/// mismatches (exit 3) naming each setting: they were "changed since burning", then "OK".
fn settings_asked_for_are_compared_with_the_card_s_store() {
    let t = TestDir::new();
    assert_success(&t.sdcard("beta.img", &["--node", "pi-beta", "--flake", CLUSTER]));
    let img = t.path("beta.img");
    let verify = |extra: &[&str]| {
        t.pi_burn()
            .args(["verify", "--manifest", MANIFEST, "--firmware-zip"])
            .arg(fixture_zip("rpi4", None))
            .arg("--image")
            .arg(&img)
            .args(extra)
            .output()
            .unwrap()
    };
    let o = verify(&["--node", "pi-gamma", "--flake", CLUSTER]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = stdout(&o);
    for s in [
        "UEFI SystemTableMode on the card is 2, not 1",
        "UEFI AssetTag on the card is \"pi-beta\", not \"pi-gamma\"",
        "UEFI FanOnGpio on the card is not set",
    ] {
        assert!(out.contains(s), "{s}: {out}");
    }
    assert!(!out.contains(": OK:"), "{out}");
    assert_eq!(verify(&["--set", "Timeout=9"]).status.code(), Some(3));
    assert_success(&verify(&["--node", "pi-beta", "--flake", CLUSTER]));
}

/// Item 6: the store is always read from the card: a record whose setting and burned store
/// were both edited (Timeout 9, the card holding 3) is a difference, as is a value out of the
/// setting's range (65539 for a 16-bit setting passed as 3).
fn a_record_is_checked_against_the_card_not_against_itself() {
    if !have_tool("mcopy") {
        return;
    }
    let t = TestDir::new();
    assert_success(&t.sdcard("t.img", &["--set", "Timeout=3"]));
    let img = t.path("t.img");
    let original = record(&t, &img);
    let edit = |value: serde_json::Value, data: &[u8]| {
        let mut r = original.clone();
        for s in r["uefi"].as_array_mut().unwrap() {
            if s["name"] == "Timeout" {
                s["value"] = value.clone();
            }
        }
        for v in r["store"]["variables"].as_array_mut().unwrap() {
            if v["name"] == "Timeout" {
                v["data"] = hex(data).into();
                v["sha256"] = hex(&sha2::Sha256::digest(data)).into();
            }
        }
        put_record(&t, &img, &serde_json::to_vec_pretty(&r).unwrap());
    };
    assert_success(&inspect(&t, &img));
    edit(9.into(), &[9, 0]);
    let o = inspect(&t, &img);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("UEFI Timeout: 9 -> 3"),
        "{}",
        stdout(&o)
    );
    edit(65539.into(), &[3, 0]);
    let o = inspect(&t, &img);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(stdout(&o).contains("Timeout = 65539"), "{}", stdout(&o));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Item 7: a string for a numeric setting in a record is a difference or a refusal in one line
/// for inspect, verify and sdcard --from-record (it panicked all three, exit 101).
fn a_record_value_of_the_wrong_kind_panics_nothing() {
    if !have_tool("mcopy") {
        return;
    }
    let t = TestDir::new();
    assert_success(&t.sdcard("k.img", &["--set", "Timeout=3"]));
    let img = t.path("k.img");
    let mut r = record(&t, &img);
    for s in r["uefi"].as_array_mut().unwrap() {
        s["value"] = "three".into();
    }
    put_record(&t, &img, &serde_json::to_vec_pretty(&r).unwrap());
    let o = inspect(&t, &img);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("not the kind of value"),
        "{}",
        stdout(&o)
    );
    let o = t
        .pi_burn()
        .args(["--json", "verify", "--manifest", MANIFEST, "--image"])
        .arg(&img)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(serde_json::from_str::<serde_json::Value>(&stdout(&o)).is_ok());
    let o = t.sdcard("again.img", &["--from-record", img.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    one_line_no_panic(&o);
    assert!(
        stderr(&o).contains("not the kind of value"),
        "{}",
        stderr(&o)
    );
}

/// Items 8, 9 and 16: --from-record checks the record's fields as the flags are checked: a
/// table kind that is neither gpt nor mbr, a name with a terminal escape, a record that is no
/// JSON (named with its parse error); --partition-name refuses control characters too; an image
/// as large as the record's card is said so.
fn from_record_checks_the_record_as_the_flags_are() {
    if !have_tool("mcopy") {
        return;
    }
    let t = TestDir::new();
    assert_success(&t.sdcard("r.img", &[]));
    let img = t.path("r.img");
    let original = record(&t, &img);
    for (field, value, needle) in [
        (
            "kind",
            serde_json::json!("iso"),
            "table kind 'iso' is neither gpt nor mbr",
        ),
        (
            "name",
            serde_json::json!("evil\u{1b}[2Jname"),
            "control or direction characters",
        ),
        ("sector_size", serde_json::json!(1000), "sector size 1000"),
    ] {
        let mut r = original.clone();
        r["table"][field] = value;
        put_record(&t, &img, &serde_json::to_vec_pretty(&r).unwrap());
        let o = t.sdcard("n.img", &["--from-record", img.to_str().unwrap()]);
        assert_ne!(o.status.code(), Some(0), "{field}");
        one_line_no_panic(&o);
        assert!(stderr(&o).contains(needle), "{field}: {}", stderr(&o));
        assert!(!t.path("n.img").exists());
    }
    let o = t.sdcard("p.img", &["--partition-name", "a\u{7}b"]);
    assert_fails_with(
        &o,
        2,
        &["--partition-name", "control or direction characters"],
    );
    // Not JSON: the parse error is named (it said "not a card pi-burn made").
    put_record(&t, &img, b"{ not json");
    let o = t.sdcard("n.img", &["--from-record", img.to_str().unwrap()]);
    assert_fails_with(
        &o,
        1,
        &["is not a pi-burn card record", "key must be a string"],
    );
    // A card of 1 TiB makes an image of 1 TiB: said, and --size chooses another.
    let mut r = original.clone();
    r["table"]["disk_bytes"] = (1u64 << 40).into();
    put_record(&t, &img, &serde_json::to_vec_pretty(&r).unwrap());
    let o = t.sdcard(
        "big.img",
        &["--from-record", img.to_str().unwrap(), "--size", "600M"],
    );
    assert_success(&o);
    assert!(
        !stderr(&o).contains("the size of the card the record"),
        "{}",
        stderr(&o)
    );
}

/// Item 16: --from-record of a booted card names what the firmware changed and that the new
/// card gets the recorded values.
fn from_record_of_a_booted_card_says_what_the_firmware_changed() {
    if !(have_tool("mcopy") && have_tool("virt-fw-vars")) {
        return;
    }
    let t = TestDir::new();
    assert_success(&t.sdcard("b.img", &["--set", "SystemTableMode=2"]));
    let img = t.path("b.img");
    let fd = t.path("RPI_EFI.fd");
    run_ok(
        tool("mcopy")
            .args(["-o", "-n", "-i", &spec(&img), "::/RPI_EFI.fd"])
            .arg(&fd),
    );
    std::fs::write(
        t.path("set.json"),
        r#"{"version": 2, "variables": [{"name": "SystemTableMode", "guid": "cd7cc258-31db-22e6-9f22-63b0b8eed6b5", "attr": 7, "data": "01000000"}]}"#,
    )
    .unwrap();
    run_ok(
        tool("virt-fw-vars")
            .arg("--inplace")
            .arg(&fd)
            .arg("--set-json")
            .arg(t.path("set.json")),
    );
    run_ok(
        tool("mcopy")
            .args(["-o", "-n", "-i", &spec(&img)])
            .arg(&fd)
            .arg("::/RPI_EFI.fd"),
    );
    let o = t.sdcard("again.img", &["--from-record", img.to_str().unwrap()]);
    assert_success(&o);
    assert!(
        stderr(&o).contains("the firmware changed")
            && stderr(&o).contains("SystemTableMode: 2 -> 1")
            && stderr(&o).contains("the new card gets the values its record names"),
        "{}",
        stderr(&o)
    );
    assert_success(&inspect(&t, &t.path("again.img")));
}

/// Item 10: flash --no-bmap of an image whose GPT partitions overlap is refused before the
/// device is touched (it said ok; the device then failed sgdisk -v).
fn an_image_whose_partitions_overlap_is_refused_without_its_map() {
    if !(is_root() && have_tool("losetup")) {
        return;
    }
    let t = TestDir::new();
    assert_success(&t.sdcard("o.img", &[]));
    let img = t.path("o.img");
    overlap_partitions(&img);
    let dev = t.sparse_file("dev.img", 600 * MIB);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&dev).unwrap();
        f.write_all_at(b"old contents", 0).unwrap();
    }
    let lo = Loop::attach(&dev, 512, false);
    // (With its block map the edited image is refused already: it no longer matches the map.)
    for extra in [&["--no-bmap"][..], &["--no-bmap", "--dry-run"]] {
        let o = t
            .pi_burn()
            .args(["flash", img.to_str().unwrap(), &lo.dev, "--yes"])
            .args(extra)
            .output()
            .unwrap();
        assert_ne!(o.status.code(), Some(0), "{extra:?}");
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains("overlap"), "{extra:?}: {all}");
    }
    drop(lo);
    assert_eq!(&std::fs::read(&dev).unwrap()[..12], b"old contents");
}

/// Adds a second GPT entry over the first partition's sectors, with every CRC fixed (primary
/// only: flash reads the first MiB).
fn overlap_partitions(img: &Path) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(img)
        .unwrap();
    let mut hdr = vec![0u8; 92];
    f.read_exact_at(&mut hdr, 512).unwrap();
    let mut entries = vec![0u8; 128 * 128];
    f.read_exact_at(&mut entries, 1024).unwrap();
    let (first, second) = entries.split_at_mut(128);
    second[..128].copy_from_slice(first);
    second[16] ^= 0xff; // another partition GUID
    let crc = crc32fast::hash(&entries);
    hdr[88..92].copy_from_slice(&crc.to_le_bytes());
    hdr[16..20].fill(0);
    let hcrc = crc32fast::hash(&hdr);
    hdr[16..20].copy_from_slice(&hcrc.to_le_bytes());
    f.write_all_at(&entries, 1024).unwrap();
    f.write_all_at(&hdr, 512).unwrap();
}

/// Item 11: the plan names a filesystem on the whole disk (it said "blank").
fn a_whole_disk_filesystem_is_named_in_the_plan() {
    if !(is_root() && have_tool("losetup") && have_tool("mkfs.ext4")) {
        return;
    }
    let t = TestDir::new();
    let dev = t.sparse_file("ext4.img", 600 * MIB);
    run_ok(tool("mkfs.ext4").args(["-q", "-F"]).arg(&dev));
    let lo = Loop::attach(&dev, 512, false);
    let o = t
        .pi_burn()
        .args([
            "sdcard",
            &lo.dev,
            "--dry-run",
            "--manifest",
            MANIFEST,
            "--firmware-zip",
        ])
        .arg(fixture_zip("rpi4", None))
        .output()
        .unwrap();
    assert_success(&o);
    assert!(
        stderr(&o)
            .contains("holds now:   ext2/3/4 on the whole disk (a filesystem, no partition table)"),
        "{}",
        stderr(&o)
    );
}

/// Item 13: records past their bounds are refused at once (an EEPROM record of 8,000
/// properties took inspect 143 s, 2,000 config.txt edits 96 s), and so are flags past them.
fn hostile_records_are_refused_within_their_bounds() {
    if !have_tool("mcopy") {
        return;
    }
    let t = TestDir::new();
    assert_success(&t.sdcard("h.img", &[]));
    let img = t.path("h.img");
    let mut r = record(&t, &img);
    r["config_txt"] = (0..2000)
        .map(|i| serde_json::json!({"key": format!("k{i}"), "value": "1", "from": "x"}))
        .collect::<Vec<_>>()
        .into();
    put_record(&t, &img, &serde_json::to_vec(&r).unwrap());
    let start = std::time::Instant::now();
    let o = inspect(&t, &img);
    assert!(start.elapsed().as_secs() < 5, "{:?}", start.elapsed());
    assert_fails_with(&o, 1, &["2000 config.txt edits", "more than the 256"]);
    let mut args: Vec<String> = vec![];
    for i in 0..300 {
        args.push("--config-txt".into());
        args.push(format!("k{i}=1"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = t.sdcard("many.img", &args);
    assert_fails_with(&o, 2, &["300 config.txt edits", "more than the 256"]);
}

/// Item 17: a used EEPROM card (recovery.bin renamed recovery.000 by the bootloader) is named
/// as used, with how to use it again; an SSD image says what it is; a card made with another
/// manifest says which.
fn used_cards_ssd_images_and_manifests_are_named() {
    if !have_tool("mren") {
        return;
    }
    let t = TestDir::new();
    let o = eeprom_card(&t, "e.img");
    assert_success(&o);
    let img = t.path("e.img");
    run_ok(tool("mren").args(["-i", &spec(&img), "::/recovery.bin", "::/recovery.000"]));
    let o = inspect(&t, &img);
    assert_success(&o);
    assert!(
        stdout(&o).contains("the card was used")
            && stdout(&o).contains("::/RECOVERY.000 ::/recovery.bin"),
        "{}",
        stdout(&o)
    );
    let ssd = t.path("s.img");
    assert_success(
        &t.pi_burn()
            .args([
                "ssd", "--node", "pi-alpha", "--flake", CLUSTER, "--size", "4G", "--image",
            ])
            .arg(&ssd)
            .output()
            .unwrap(),
    );
    let o = inspect(&t, &ssd);
    assert_fails_with(
        &o,
        1,
        &[
            "is a node's disk as disko names its partitions",
            "disk-usb-ssd-zfs",
        ],
    );
    assert_success(&t.sdcard("m.img", &[]));
    let o = t
        .pi_burn()
        .args(["inspect", "--image"])
        .arg(t.path("m.img"))
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("made with the manifest test-manifest.toml"),
        "{}",
        stdout(&o)
    );
}

fn eeprom_card(t: &TestDir, name: &str) -> Output {
    t.pi_burn()
        .args(["eeprom", "--manifest", MANIFEST, "--image"])
        .arg(t.path(name))
        .arg("--recovery-file")
        .arg(eeprom_fixture("recovery-2711.bin"))
        .arg("--eeprom-file")
        .arg(eeprom_fixture("pieeprom-2711.bin"))
        .arg("--vl805-file")
        .arg(eeprom_fixture("vl805.bin"))
        .output()
        .unwrap()
}

/// Item 17: without the network, the EEPROM card names the flags that take local files (it
/// ended at "cannot resolve"). The test manifest's URLs point at a closed port on 127.0.0.1.
fn an_offline_eeprom_names_its_local_file_options() {
    let t = TestDir::new();
    let o = t
        .pi_burn()
        .args([
            "eeprom",
            "--image",
            "e.img",
            "--retries",
            "0",
            "--manifest",
            MANIFEST,
        ])
        .output()
        .unwrap();
    assert_fails_with(&o, 1, &["--eeprom-file", "--recovery-file", "--vl805-file"]);
}

/// Item 18: the fixture scripts answer --help (they wrote a zip, or a directory, named --help).
fn fixture_scripts_answer_help() {
    let t = TestDir::new();
    for script in ["make-firmware-zip.py", "make-eeprom.py"] {
        let o = std::process::Command::new("python3")
            .arg(
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("fixtures")
                    .join(script),
            )
            .arg("--help")
            .current_dir(t.path("."))
            .output()
            .unwrap();
        assert_success(&o);
        assert!(
            stdout(&o).contains("Usage") || stdout(&o).contains("OUT"),
            "{script}"
        );
        assert!(!t.path("--help").exists(), "{script} wrote --help");
    }
}

/// Item 19: an EEPROM card on a 4096-byte-sector device (it always failed: 256 MiB cannot hold
/// FAT32 at 4 KiB clusters), its FAT checked by fsck.fat.
fn an_eeprom_card_fits_a_4096_byte_sector_device() {
    if !(is_root() && have_tool("losetup") && have_tool("fsck.fat")) {
        return;
    }
    let t = TestDir::new();
    let dev = t.sparse_file("e4k.img", 600 * MIB);
    let lo = Loop::attach(&dev, 4096, false);
    let o = t
        .pi_burn()
        .args(["eeprom", &lo.dev, "--yes", "--manifest", MANIFEST])
        .arg("--recovery-file")
        .arg(eeprom_fixture("recovery-2711.bin"))
        .arg("--eeprom-file")
        .arg(eeprom_fixture("pieeprom-2711.bin"))
        .arg("--vl805-file")
        .arg(eeprom_fixture("vl805.bin"))
        .output()
        .unwrap();
    assert_success(&o);
    drop(lo);
    let part = t.path("part.img");
    extract(&dev, 1 << 20, 264 << 20, &part);
    let fsck = tool("fsck.fat")
        .args(["-n", "-v"])
        .arg(&part)
        .output()
        .unwrap();
    assert!(fsck.status.success(), "{}", stdout(&fsck));
    assert!(
        stdout(&fsck).contains("4096 bytes per logical sector"),
        "{}",
        stdout(&fsck)
    );
}

crate::tests![
    settings_asked_for_are_compared_with_the_card_s_store,
    a_record_is_checked_against_the_card_not_against_itself,
    a_record_value_of_the_wrong_kind_panics_nothing,
    from_record_checks_the_record_as_the_flags_are,
    from_record_of_a_booted_card_says_what_the_firmware_changed,
    an_image_whose_partitions_overlap_is_refused_without_its_map,
    a_whole_disk_filesystem_is_named_in_the_plan,
    hostile_records_are_refused_within_their_bounds,
    used_cards_ssd_images_and_manifests_are_named,
    an_offline_eeprom_names_its_local_file_options,
    fixture_scripts_answer_help,
    an_eeprom_card_fits_a_4096_byte_sector_device,
];
