//! `pi-burn flash`: images from pi-burn and from the shell recipe, compressed inputs, several
//! targets at once, onto loop devices each test creates (root only).

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const MIB: u64 = 1 << 20;

fn can_run() -> bool {
    is_root() && have_tool("losetup") && have_tool("sgdisk") && have_tool("sfdisk")
}

fn backing(t: &TestDir, name: &str, size: u64) -> PathBuf {
    t.sparse_file(name, size)
}

fn flash(t: &TestDir, image: &Path, devs: &[&str], extra: &[&str]) -> Output {
    t.pi_burn()
        .arg("flash")
        .arg(image)
        .args(devs)
        .args(["--yes"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn verify_card(t: &TestDir, dev: &str) {
    assert_success(&t.verify_device(dev));
}

fn golden(t: &TestDir) -> PathBuf {
    assert_success(&t.sdcard("golden.img", &[]));
    t.path("golden.img")
}

/// The shell recipe: truncate + sfdisk + mkfs.vfat --offset + mcopy -s (no block map).
fn shell_image(t: &TestDir) -> PathBuf {
    let img = t.path("shell.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(514 * MIB)
        .unwrap();
    let mut sf = tool("sfdisk")
        .arg("-q")
        .arg(&img)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    sf.stdin.take().unwrap().write_all(b"label: gpt\nstart=2048, size=1048576, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"disk-sdcard-FIRMWARE\"\n").unwrap();
    assert!(sf.wait().unwrap().success());
    run_ok(
        tool("mkfs.vfat")
            .args(["-F", "32", "-n", "FIRMWARE", "--offset", "2048"])
            .arg(&img)
            .arg("524288"),
    );
    let tree = t.path("tree");
    zip::ZipArchive::new(std::fs::File::open(fixture_zip("rpi4", None)).unwrap())
        .unwrap()
        .extract(&tree)
        .unwrap();
    let mut c = tool("mcopy");
    c.env("MTOOLS_SKIP_CHECK", "1")
        .args(["-s", "-i", &format!("{}@@{}", img.display(), MIB)]);
    for e in std::fs::read_dir(&tree).unwrap() {
        c.arg(e.unwrap().path());
    }
    c.arg("::/");
    run_ok(&mut c);
    img
}

fn images_from_pi_burn_and_the_shell_recipe_land_on_bigger_devices() {
    if !(can_run() && have_tool("mkfs.vfat") && have_tool("mcopy") && have_tool("fsck.fat")) {
        return;
    }
    let t = TestDir::new();
    // pi-burn's golden image, with its block map: exactly the mapped ranges.
    let img = golden(&t);
    let mapped = pi_burn::disk::bmap::parse(
        &std::fs::read_to_string(pi_burn::disk::bmap::sidecar(&img)).unwrap(),
        "t",
    )
    .unwrap()
    .mapped_bytes();
    let file = backing(&t, "card.img", 600 * MIB);
    let lo = Loop::attach(&file, 512, false);
    let before = loop_bytes_written(&lo.dev);
    let o = flash(&t, &img, &[&lo.dev], &["--json"]);
    assert_success(&o);
    let written = loop_bytes_written(&lo.dev) - before;
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["targets"][0]["gpt_relocated"], true);
    // The device counts whole pages; the report counts the bytes pi-burn wrote.
    let probe = &j["targets"][0]["probe"];
    assert_eq!(probe["verdict"], "honest", "{probe}");
    let probed = probe["bytes_written"].as_u64().unwrap();
    let reported = j["targets"][0]["bytes_written"].as_u64().unwrap() + probed;
    assert!(
        written >= reported && written - reported <= 64 * 1024,
        "reported {reported}, the device saw {written}"
    );
    assert!(
        ((written - probed) as f64) <= 1.1 * mapped as f64,
        "wrote {written} bytes for {mapped} mapped"
    );
    let v = run_ok(tool("sgdisk").arg("-v").arg(&lo.dev));
    assert!(v.contains("No problems found"), "{v}");
    let sf = sfdisk_json(Path::new(&lo.dev));
    assert_eq!(sf["partitiontable"]["lastlba"], 600 * 2048 - 34);
    verify_card(&t, &lo.dev);
    drop(lo);

    // The shell recipe's image, no block map: the file's data extents.
    // A used card: old bytes where the image has holes must not survive (issue 11).
    let img = shell_image(&t);
    let file = backing(&t, "card2.img", 600 * MIB);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&vec![0xA5u8; 64 * MIB as usize], 0).unwrap();
    }
    let lo = Loop::attach(&file, 512, false);
    let o = flash(&t, &img, &[&lo.dev], &[]);
    assert_success(&o);
    assert!(
        stderr(&o).contains("holes written as zeros"),
        "{}",
        stderr(&o)
    );
    let v = run_ok(tool("sgdisk").arg("-v").arg(&lo.dev));
    assert!(v.contains("No problems found"), "{v}");
    let part = t.path("p.img");
    extract(&file, MIB, 512 * MIB, &part);
    let f = tool("fsck.fat").args(["-n"]).arg(&part).output().unwrap();
    assert!(f.status.success(), "{}", stdout(&f));
    verify_card(&t, &lo.dev);
}

fn zstd_xz_and_gzip_images_with_and_without_their_block_map() {
    if !(can_run() && have_tool("zstd") && have_tool("xz") && have_tool("gzip")) {
        return;
    }
    let t = TestDir::new();
    let img = golden(&t);
    let file = backing(&t, "card.img", 514 * MIB);
    let lo = Loop::attach(&file, 512, false);
    for (tool_name, ext) in [("zstd", "zst"), ("xz", "xz"), ("gzip", "gz")] {
        run_ok(Command::new(tool_name).args(["-k", "-f", "-1"]).arg(&img));
        let packed = PathBuf::from(format!("{}.{ext}", img.display()));
        // Its block map is found as golden.img.bmap.
        let o = flash(&t, &packed, &[&lo.dev], &[]);
        assert_success(&o);
        assert!(
            stderr(&o).contains(&format!("{ext} stream")) || stderr(&o).contains(tool_name),
            "{}",
            stderr(&o)
        );
        assert!(stderr(&o).contains("block map"), "{}", stderr(&o));
        verify_card(&t, &lo.dev);
        let o = flash(&t, &packed, &[&lo.dev], &["--no-bmap"]);
        assert_success(&o);
        assert!(stderr(&o).contains("whole"), "{}", stderr(&o));
        verify_card(&t, &lo.dev);
        std::fs::remove_file(&packed).unwrap();
    }
    // From standard input.
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cat '{}' | '{}' flash - {} --yes",
            img.display(),
            env!("CARGO_BIN_EXE_pi-burn"),
            lo.dev
        ))
        .env("PI_BURN_CACHE_DIR", t.path("cache"))
        .output()
        .unwrap();
    assert_success(&o);
    verify_card(&t, &lo.dev);
}

fn three_targets_where_one_is_too_small() {
    if !can_run() {
        return;
    }
    let t = TestDir::new();
    let img = golden(&t);
    let files = [
        backing(&t, "a.img", 600 * MIB),
        backing(&t, "b.img", 514 * MIB),
        backing(&t, "c.img", 300 * MIB),
    ];
    let loops: Vec<Loop> = files.iter().map(|f| Loop::attach(f, 512, false)).collect();
    let devs: Vec<&str> = loops.iter().map(|l| l.dev.as_str()).collect();
    let before = loop_bytes_written(devs[2]);
    let o = flash(&t, &img, &devs, &[]);
    assert_fails_with(
        &o,
        1,
        &["1 of 3 device(s) failed", devs[2], "larger than the device"],
    );
    let table = stdout(&o);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(devs[0]) && l.contains(" ok ")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(devs[1]) && l.contains(" ok ")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(devs[2]) && l.contains("FAILED")),
        "{table}"
    );
    verify_card(&t, devs[0]);
    verify_card(&t, devs[1]);
    assert_eq!(
        loop_bytes_written(devs[2]),
        before,
        "the small device was not written"
    );
}

fn what_is_not_a_disk_image_and_what_does_not_fit_leave_the_device_untouched() {
    // Regressions (issue 11): a bz2 file, a block map, random bytes and empty input were written
    // raw and reported ok; --dry-run of a too-large image said "nothing was written", exit 0.
    if !can_run() {
        return;
    }
    let t = TestDir::new();
    let img = golden(&t);
    let file = backing(&t, "small.img", 100 * MIB);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        f.write_all_at(&vec![0x5Au8; 4 * MIB as usize], 0).unwrap();
    }
    let lo = Loop::attach(&file, 512, false);
    let untouched = || {
        let data = std::fs::read(&file).unwrap();
        assert!(
            data[..4 * MIB as usize].iter().all(|b| *b == 0x5A),
            "the first 4 MiB are as they were"
        );
    };
    let o = flash(&t, &img, &[&lo.dev], &["--dry-run"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("larger than the device"),
        "{}",
        stdout(&o)
    );
    untouched();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("x.img.bz2", b"BZh91AY&SY\x01\x02".to_vec(), "bzip2"),
        (
            "x.bin",
            (0..4 * MIB).map(|i| (i * 2654435761 % 251) as u8).collect(),
            "not a disk image",
        ),
        (
            "x.img.bmap",
            b"<?xml version=\"1.0\"?><bmap/>".to_vec(),
            "XML",
        ),
        ("empty.img", vec![], "empty"),
    ];
    for (name, bytes, want) in cases {
        let p = t.path(name);
        std::fs::write(&p, bytes).unwrap();
        let o = flash(&t, &p, &[&lo.dev], &[]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(all.contains(want), "{name}: {all}");
        untouched();
    }
    // Empty standard input, too.
    let o = t
        .pi_burn()
        .args(["flash", "-", &lo.dev, "--yes"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("empty"), "{}", stderr(&o));
    untouched();
}

/// A 64 MiB GPT image (one partition, from sgdisk) to stream.
fn small_gpt_image(t: &TestDir) -> PathBuf {
    let img = backing(t, "src.img", 64 * MIB);
    run_ok(tool("sgdisk").args(["-n", "1:2048:+32M"]).arg(&img));
    img
}

/// `sh -c FEED | pi-burn flash - DEV --yes`; with `interrupt_after`, SIGINT then. FEED gets the
/// image as $0.
fn flash_from_pipe(
    t: &TestDir,
    feed: &str,
    img: &Path,
    dev: &str,
    interrupt_after: Option<std::time::Duration>,
) -> Output {
    let mut feed = Command::new("sh")
        .args(["-c", feed])
        .arg(img)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let child = t
        .pi_burn()
        .args(["flash", "-", dev, "--yes"])
        .stdin(feed.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(d) = interrupt_after {
        std::thread::sleep(d);
        run_ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
    }
    let o = child.wait_with_output().unwrap();
    let _ = feed.kill();
    let _ = feed.wait();
    o
}

/// The first and last 32 KiB of a device's backing file are zeros: no table is left.
fn assert_no_table_left(dev_file: &Path) {
    let bytes = std::fs::read(dev_file).unwrap();
    assert!(
        bytes[..32 * 1024].iter().all(|b| *b == 0),
        "no table is left"
    );
    assert!(bytes[bytes.len() - 32 * 1024..].iter().all(|b| *b == 0));
}

fn ctrl_c_while_writing_wipes_the_table_says_so_and_exits_130() {
    if !can_run() {
        return;
    }
    let t = TestDir::new();
    let img = small_gpt_image(&t);
    let dev_file = backing(&t, "dev.img", 64 * MIB);
    let lo = Loop::attach(&dev_file, 512, false);
    // The stream stalls after 16 MiB (the engine reads 4 MiB chunks): after 3 s pi-burn has
    // started writing (through the page cache, so the device's counters may not show it yet;
    // the message says it started), then waits.
    let feed = format!("head -c {} \"$0\"; sleep 60", 16 * MIB);
    let o = flash_from_pipe(
        &t,
        &feed,
        &img,
        &lo.dev,
        Some(std::time::Duration::from_secs(3)),
    );
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("interrupted (Ctrl-C)") && err.contains("wiped: burn it again"),
        "{err}"
    );
    drop(lo);
    assert_no_table_left(&dev_file);
}

fn ctrl_c_before_any_write_exits_130_and_says_nothing_was_written() {
    if !can_run() {
        return;
    }
    let t = TestDir::new();
    // pi-burn waiting for its input's first MiB: nothing has been written yet.
    let dev_file = backing(&t, "dev.img", 64 * MIB);
    let lo = Loop::attach(&dev_file, 512, false);
    let before = loop_bytes_written(&lo.dev);
    let o = flash_from_pipe(
        &t,
        "sleep 60",
        &dev_file,
        &lo.dev,
        Some(std::time::Duration::from_millis(700)),
    );
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no device was written"),
        "{}",
        stderr(&o)
    );
    assert_eq!(loop_bytes_written(&lo.dev), before);
}

fn a_stream_that_ends_before_its_gpt_says_is_refused_as_truncated() {
    if !can_run() {
        return;
    }
    let t = TestDir::new();
    let img = small_gpt_image(&t);
    let dev_file = backing(&t, "dev.img", 64 * MIB);
    let lo = Loop::attach(&dev_file, 512, false);
    let o = flash_from_pipe(
        &t,
        &format!("head -c {} \"$0\"", 16 * MIB),
        &img,
        &lo.dev,
        None,
    );
    assert_fails_with(&o, 1, &["truncated", "wiped: burn it again"]);
    drop(lo);
    assert_no_table_left(&dev_file);
}

/// `cat IMG | pi-burn flash - DEV` in a pseudo-terminal (script(1)), `typed` on the terminal.
fn flash_piped_with_a_terminal(img: &Path, dev: &str, typed: &str) -> Output {
    use std::io::Write;
    let cmd = format!(
        "cat {} | {} flash - {dev}",
        img.display(),
        env!("CARGO_BIN_EXE_pi-burn")
    );
    let mut c = tool("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(typed.as_bytes()).unwrap();
    // script ends when the command does; keep its input open until then.
    let o = c.wait_with_output().unwrap();
    drop(stdin);
    o
}

fn with_the_image_on_stdin_the_confirmation_is_asked_on_the_terminal() {
    if !can_run() || !have_tool("script") {
        return;
    }
    let t = TestDir::new();
    let img = small_gpt_image(&t);
    let dev_file = backing(&t, "dev.img", 64 * MIB);
    let lo = Loop::attach(&dev_file, 512, false);
    let name = Path::new(&lo.dev)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // A wrong answer: refused (exit 4), nothing written.
    let o = flash_piped_with_a_terminal(&img, &lo.dev, "sdz\n");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("Type its name"), "{out}");
    assert!(out.contains("not confirmed"), "{out}");
    assert!(sfdisk_json_or_none(&lo.dev).is_none(), "nothing written");
    // The device's name, typed on the terminal: written.
    let o = flash_piped_with_a_terminal(&img, &lo.dev, &format!("{name}\n"));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{out}");
    assert!(sfdisk_json_or_none(&lo.dev).is_some(), "{out}");
}

/// sfdisk's view of a device's table, or None when it finds none.
fn sfdisk_json_or_none(dev: &str) -> Option<serde_json::Value> {
    let o = tool("sfdisk").args(["--json", dev]).output().unwrap();
    o.status
        .success()
        .then(|| serde_json::from_slice(&o.stdout).unwrap())
}

const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake");

/// Regression (issue 23): a 2 GiB SSD image flashed onto a bigger SSD kept a 1 GiB zfs
/// partition. With its block map, the disk is laid out for the device as disko would lay it
/// out there: the table is byte for byte the one `pi-burn ssd` writes onto that device, and
/// the grown partition's end (stale ZFS labels of the device) is wiped.
fn an_ssd_image_onto_a_bigger_device_gets_its_zfs_partition_grown_as_disko_would() {
    if !can_run() {
        return;
    }
    let t = TestDir::new();
    let o = t
        .pi_burn()
        .args(["ssd", "--node", "pi-gamma", "--flake", CLUSTER, "--image"])
        .arg(t.path("g.img"))
        .args(["--size", "2G"])
        .output()
        .unwrap();
    assert_success(&o);
    // The device holds stale bytes where the grown partition will end.
    let size = 8u64 << 30;
    let flashed = backing(&t, "flashed.dev", size);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&flashed)
            .unwrap();
        f.write_all_at(&[0xAB; 4096], size - 2 * MIB).unwrap();
    }
    let lo = Loop::attach(&flashed, 512, false);
    let o = flash(&t, &t.path("g.img"), &[&lo.dev], &[]);
    assert_success(&o);
    assert!(
        stderr(&o).contains("disk-usb-ssd-zfs: 1022 MiB -> "),
        "the grown partition is named: {}",
        stderr(&o)
    );
    // The same node's SSD made directly on a device of that size.
    let direct = backing(&t, "direct.dev", size);
    let lo2 = Loop::attach(&direct, 512, false);
    let o = t
        .pi_burn()
        .args([
            "ssd", "--node", "pi-gamma", "--flake", CLUSTER, &lo2.dev, "--yes",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_success(&o);
    // sfdisk's view of both, the device names aside.
    let table = |dev: &str| {
        let mut j = sfdisk_json(Path::new(dev));
        let pt = &mut j["partitiontable"];
        pt["device"] = serde_json::Value::Null;
        for p in pt["partitions"].as_array_mut().unwrap() {
            p["node"] = serde_json::Value::Null;
        }
        j
    };
    let (a, b) = (table(&lo.dev), table(&lo2.dev));
    assert_eq!(a, b);
    let parts = a["partitiontable"]["partitions"].as_array().unwrap();
    let last = &parts[parts.len() - 1];
    let end = last["start"].as_u64().unwrap() + last["size"].as_u64().unwrap();
    assert!(
        end * 512 > size - 2 * MIB,
        "the zfs partition reaches the end: {a}"
    );
    drop((lo, lo2));
    use std::os::unix::fs::FileExt;
    let read = |p: &Path, off: u64, len: usize| {
        let mut b = vec![0u8; len];
        std::fs::File::open(p)
            .unwrap()
            .read_exact_at(&mut b, off)
            .unwrap();
        b
    };
    for (off, len) in [(0, MIB as usize), (size - MIB, MIB as usize)] {
        assert!(
            read(&flashed, off, len) == read(&direct, off, len),
            "bytes {off}.. differ from pi-burn ssd's"
        );
    }
    assert!(
        read(&flashed, size - 2 * MIB, 4096).iter().all(|b| *b == 0),
        "the stale bytes at the grown partition's end are wiped"
    );
    let v = tool("sgdisk").arg("-v").arg(&flashed).output().unwrap();
    assert!(stdout(&v).contains("No problems found"), "{}", stdout(&v));
}

// This module's tests, for the runner in main.rs.
crate::tests![
    an_ssd_image_onto_a_bigger_device_gets_its_zfs_partition_grown_as_disko_would,
    images_from_pi_burn_and_the_shell_recipe_land_on_bigger_devices,
    zstd_xz_and_gzip_images_with_and_without_their_block_map,
    three_targets_where_one_is_too_small,
    what_is_not_a_disk_image_and_what_does_not_fit_leave_the_device_untouched,
    ctrl_c_while_writing_wipes_the_table_says_so_and_exits_130,
    ctrl_c_before_any_write_exits_130_and_says_nothing_was_written,
    a_stream_that_ends_before_its_gpt_says_is_refused_as_truncated,
    with_the_image_on_stdin_the_confirmation_is_asked_on_the_terminal,
];
