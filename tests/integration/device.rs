//! Burning block devices: loop devices that each test creates over its own files (root only),
//! checked with sfdisk, sgdisk, fsck.fat and mtools. No test opens any other disk.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::Output;

const MIB: u64 = 1 << 20;

fn can_run() -> bool {
    is_root()
        && have_tool("losetup")
        && have_tool("sfdisk")
        && have_tool("sgdisk")
        && have_tool("fsck.fat")
        && have_tool("mdir")
}

/// A sparse file of `size` bytes.
fn backing(t: &TestDir, name: &str, size: u64) -> PathBuf {
    t.sparse_file(name, size)
}

fn burn(t: &TestDir, dev: &str, extra: &[&str]) -> Output {
    t.burn_device(dev, extra)
}

/// Payload + FAT metadata + the table areas: what a card must receive at the least.
fn payload_and_metadata(img: &Path) -> u64 {
    let payload: u64 = zip_files(&fixture_zip("rpi4", None))
        .iter()
        .map(|(_, d)| d.len() as u64)
        .sum();
    let part = img.with_extension("p1");
    extract(img, MIB, 512 * MIB, &part);
    let out = run_ok(tool("fsck.fat").args(["-n", "-v"]).arg(&part));
    let per_fat: u64 = out
        .lines()
        .find(|l| l.contains("bytes per FAT"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    std::fs::remove_file(&part).unwrap();
    payload + 2 * per_fat + 2 * MIB
}

fn check_card(t: &TestDir, lo: &Loop, file: &Path, sector: u64) {
    let j = sfdisk_json(Path::new(&lo.dev));
    let pt = &j["partitiontable"];
    assert_eq!(pt["label"], "gpt");
    assert_eq!(pt["sectorsize"], sector);
    assert_eq!(pt["partitions"][0]["start"], MIB / sector);
    assert_eq!(pt["partitions"][0]["size"], 512 * MIB / sector);
    assert_eq!(
        pt["partitions"][0]["type"],
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    );
    assert_eq!(pt["partitions"][0]["name"], "disk-sdcard-FIRMWARE");
    let v = run_ok(tool("sgdisk").arg("-v").arg(&lo.dev));
    assert!(v.contains("No problems found"), "{v}");
    let part = t.path("part.img");
    extract(file, MIB, 512 * MIB, &part);
    let fsck = tool("fsck.fat")
        .args(["-n", "-v"])
        .arg(&part)
        .output()
        .unwrap();
    assert!(fsck.status.success(), "{}", stdout(&fsck));
    for (p, data) in zip_files(&fixture_zip("rpi4", None)) {
        let out = tool("mtype")
            .args(["-i", &format!("{}@@{}", file.display(), MIB)])
            .arg(format!("::/{p}"))
            .output()
            .unwrap();
        assert!(out.stdout == data, "{p} differs on the card");
    }
    assert_success(&t.verify_device(&lo.dev));
}

fn burns_and_verifies_512_and_4096_byte_sector_loop_devices() {
    if !can_run() {
        return;
    }
    for sector in [512u64, 4096] {
        let t = TestDir::new();
        let file = backing(&t, "card.img", 600 * MIB);
        // Stale content where the tables go: an old MBR signature and a GPT header at the end.
        {
            use std::os::unix::fs::FileExt;
            let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
            f.write_all_at(&[0x55, 0xAA], 510).unwrap();
            f.write_all_at(b"EFI PART", 600 * MIB - sector).unwrap();
        }
        let lo = Loop::attach(&file, sector, false);
        let before = loop_bytes_written(&lo.dev);
        let o = burn(&t, &lo.dev, &["--json"]);
        assert_success(&o);
        let written = loop_bytes_written(&lo.dev) - before;
        let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(j["target"]["kind"], "device");
        assert_eq!(j["sector_size"], sector);
        assert!(j["bytes_read_back"].as_u64().unwrap() > 6 * MIB);
        // The report counts what the device received: the card, and the probe apart (the
        // device counts whole pages: a page the probe's flush wrote out and the card's table
        // wrote again reaches it twice).
        let probe = &j["probe"];
        assert_eq!(probe["verdict"], "honest", "{probe}");
        let probed = probe["bytes_written"].as_u64().unwrap();
        let reported = j["bytes_written"].as_u64().unwrap() + probed;
        assert!(
            written >= reported && written - reported <= 8192,
            "the report counts what the device received: {reported} reported, {written} received"
        );
        check_card(&t, &lo, &file, sector);
        // Without --json: one byte count for the run, in the plan, the progress and the result.
        let o = burn(&t, &lo.dev, &[]);
        assert_success(&o);
        let err = stderr(&o);
        let planned = err
            .lines()
            .find(|l| l.starts_with("will write:"))
            .and_then(|l| l.rsplit("; ").next())
            .and_then(|p| p.strip_suffix(" to write, table last"))
            .unwrap_or_else(|| panic!("no planned bytes in:\n{err}"))
            .to_string();
        assert!(
            err.contains(&format!("writing {} ({planned})", lo.dev)),
            "{err}"
        );
        assert!(
            stdout(&o).contains(&format!(": {planned} written, read back and verified")),
            "{}",
            stdout(&o)
        );
        let budget = payload_and_metadata(&file);
        let written = written - probed;
        assert!(
            written as f64 <= 1.25 * budget as f64,
            "{sector}: wrote {written} bytes, more than 1.25x payload + metadata ({budget}); a whole image is {}",
            514 * MIB
        );
    }
}

fn a_mounted_loop_device_is_refused() {
    if !(can_run() && have_tool("mkfs.ext4") && have_tool("mount")) {
        return;
    }
    let t = TestDir::new();
    let file = backing(&t, "ext4.img", 600 * MIB);
    run_ok(tool("mkfs.ext4").args(["-q", "-F"]).arg(&file));
    let lo = Loop::attach(&file, 512, false);
    let mnt = t.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run_ok(tool("mount").arg(&lo.dev).arg(&mnt));
    let o = burn(&t, &lo.dev, &[]);
    let _ = tool("umount").arg(&mnt).status();
    assert_fails_with(
        &o,
        4,
        &["refusing", "is mounted at", &mnt.display().to_string()],
    );
}

fn a_too_small_device_is_refused_and_left_alone() {
    if !can_run() {
        return;
    }
    let t = TestDir::new();
    let file = backing(&t, "small.img", 100 * MIB);
    let lo = Loop::attach(&file, 512, false);
    let before = loop_bytes_written(&lo.dev);
    let o = burn(&t, &lo.dev, &[]);
    assert_fails_with(&o, 1, &[&lo.dev, "too small"]);
    assert_eq!(loop_bytes_written(&lo.dev), before, "nothing was written");
}

fn dry_run_and_missing_confirmation_write_nothing() {
    if !can_run() {
        return;
    }
    let t = TestDir::new();
    let file = backing(&t, "card.img", 600 * MIB);
    let lo = Loop::attach(&file, 512, false);
    let before = loop_bytes_written(&lo.dev);
    let o = burn(&t, &lo.dev, &["--dry-run"]);
    assert_success(&o);
    let err = stderr(&o);
    for shown in [
        "device:",
        "size:",
        "600 MiB",
        "will write:",
        "disk-sdcard-FIRMWARE",
        "backing:",
    ] {
        assert!(err.contains(shown), "the plan lacks '{shown}': {err}");
    }
    // No --yes and no terminal: refused.
    let o = t
        .pi_burn()
        .args(["sdcard", &lo.dev, "--manifest", MANIFEST])
        .arg("--firmware-zip")
        .arg(fixture_zip("rpi4", None))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_fails_with(&o, 4, &["without confirmation", "--yes"]);
    assert_eq!(loop_bytes_written(&lo.dev), before, "nothing was written");
    assert!(std::fs::read(&file).unwrap().iter().all(|b| *b == 0));
}

/// A loop device over a file on a 4 MiB tmpfs: the write runs out of space halfway.
fn a_write_that_fails_partway_leaves_no_partition_table() {
    if !(can_run() && have_tool("mount")) {
        return;
    }
    let t = TestDir::new();
    let mnt = t.path("tmpfs");
    std::fs::create_dir(&mnt).unwrap();
    run_ok(
        tool("mount")
            .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
            .arg(&mnt),
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = tool("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let file = mnt.join("card.img");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(600 * MIB)
        .unwrap();
    let o = {
        let lo = Loop::attach(&file, 512, false);
        let o = burn(&t, &lo.dev, &[]);
        let sf = tool("sfdisk").arg("--json").arg(&lo.dev).output().unwrap();
        assert!(
            !sf.status.success() || !stdout(&sf).contains("partitiontable"),
            "a table survived: {}",
            stdout(&sf)
        );
        o
    };
    assert_ne!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(
        err.lines().last().unwrap().contains("burn it again"),
        "{err}"
    );
    let head = {
        use std::io::Read;
        let mut b = vec![0u8; 1024];
        std::fs::File::open(&file)
            .unwrap()
            .read_exact(&mut b)
            .unwrap();
        b
    };
    assert!(
        head[510..512] != [0x55, 0xAA] && &head[512..520] != b"EFI PART",
        "no MBR or GPT signature is left"
    );
}

fn a_loop_device_whose_file_was_deleted_is_in_use_and_refused() {
    if !can_run() {
        return;
    }
    let t = TestDir::new();
    let file = backing(&t, "gone.img", 600 * MIB);
    let lo = Loop::attach(&file, 512, false);
    std::fs::remove_file(&file).unwrap();
    let row = t.devices_row(&lo.dev);
    assert_eq!(row["in_use"], true, "{row}");
    assert!(
        row["reasons"][0].as_str().unwrap().contains("deleted file"),
        "{row}"
    );
    let o = burn(&t, &lo.dev, &[]);
    assert_fails_with(&o, 4, &["deleted file"]);
}

// This module's tests, for the runner in main.rs.
crate::tests![
    burns_and_verifies_512_and_4096_byte_sector_loop_devices,
    a_mounted_loop_device_is_refused,
    a_too_small_device_is_refused_and_left_alone,
    dry_run_and_missing_confirmation_write_nothing,
    a_write_that_fails_partway_leaves_no_partition_table,
    a_loop_device_whose_file_was_deleted_is_in_use_and_refused,
];
