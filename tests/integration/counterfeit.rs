//! Counterfeit cards and drives (issue 20): fake devices (fixtures/fake-device.py, a FUSE file
//! behind a loop device) that claim 1 GiB and hold 256 MiB, by wrapping around or by losing
//! what is written past 256 MiB, against honest ones; Debian's f3probe for a second verdict.

use crate::harness::*;
use std::process::Output;

const MIB: u64 = 1 << 20;

/// A flake directory with one node, `small`, whose SSD fits in 1 GiB (a 256M ESP, ZFS over the
/// rest).
fn small_node(t: &TestDir) -> std::path::PathBuf {
    let dir = t.path("flake");
    std::fs::create_dir_all(dir.join("hosts/small")).unwrap();
    std::fs::write(
        dir.join("hosts/small/disk-config.nix"),
        r#"{
  disko.devices.disk.ssd = {
    type = "disk";
    device = "/dev/disk/by-id/usb-fake";
    content = {
      type = "gpt";
      partitions = {
        ESP = { size = "256M"; type = "EF00"; content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot"; }; };
        zfs = { size = "100%"; content = { type = "zfs"; pool = "rpool"; }; };
      };
    };
  };
}
"#,
    )
    .unwrap();
    dir
}

fn wrap(t: &TestDir) -> FakeDevice {
    FakeDevice::start(
        t,
        "wrap",
        &["--mode", "wrap", "--claimed", "1G", "--real", "256M"],
    )
}

/// A limbo fake with a 1 MiB cache of the latest writes (the probe must push them out).
fn limbo(t: &TestDir) -> FakeDevice {
    FakeDevice::start(
        t,
        "limbo",
        &[
            "--mode",
            "limbo",
            "--claimed",
            "1G",
            "--real",
            "256M",
            "--cache-blocks",
            "256",
        ],
    )
}

fn burn(t: &TestDir, dev: &str, extra: &[&str]) -> Output {
    t.burn_device(dev, extra)
}

fn read_dev(dev: &str, off: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(dev).unwrap();
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, off).unwrap();
    b
}

/// Found with exit 3 (as `probe` says a counterfeit, issue 28) naming both sizes; the table
/// areas at both ends wiped, no table.
fn assert_refused_as_fake(o: &Output, dev: &str) {
    assert_fails_with(
        o,
        3,
        &[
            dev,
            "holds",
            "256 MiB, not 1 GiB: a counterfeit",
            "nothing else was written",
        ],
    );
    assert!(read_dev(dev, 0, 32 << 10).iter().all(|b| *b == 0));
    assert!(read_dev(dev, (1 << 30) - (32 << 10), 32 << 10)
        .iter()
        .all(|b| *b == 0));
}

fn sdcard_and_ssd_refuse_wrap_around_and_limbo_fakes() {
    if !can_fake_devices() {
        return;
    }
    let t = TestDir::new();
    for (name, fake) in [("wrap", wrap(&t)), ("limbo", limbo(&t))] {
        let dev = fake.dev().to_string();
        let o = burn(&t, &dev, &[]);
        assert_refused_as_fake(&o, &dev);
        if name == "limbo" {
            // Found to the block, behind the cache.
            assert!(
                stderr(&o).contains("holds 256 MiB, not 1 GiB"),
                "{}",
                stderr(&o)
            );
        }
        // The SSD of a node whose disk fits in 1 GiB: refused the same way.
        let o = t
            .pi_burn()
            .args(["ssd", "--node", "small", "--flake"])
            .arg(small_node(&t))
            .args([&dev, "--yes"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_refused_as_fake(&o, &dev);
        // --no-probe: the card is written and says so (a read-back of its own ranges passes:
        // the reason for the probe).
        let o = burn(&t, &dev, &["--no-probe"]);
        assert_stdout_has(&o, "not probed (--no-probe)");
    }
}

fn an_honest_device_burns_with_at_most_9_mib_more_for_the_probe() {
    if !can_fake_devices() {
        return;
    }
    let t = TestDir::new();
    let fake = FakeDevice::start(&t, "honest", &["--claimed", "1G"]);
    let dev = fake.dev();
    let mut written = vec![];
    for extra in [&["--no-probe"][..], &[][..]] {
        let before = loop_bytes_written(dev);
        let o = burn(&t, dev, &[&["--json"][..], extra].concat());
        assert_success(&o);
        written.push(loop_bytes_written(dev) - before);
        let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        if extra.is_empty() {
            assert_eq!(j["probe"]["verdict"], "honest", "{}", j["probe"]);
        } else {
            assert!(j.get("probe").is_none());
        }
    }
    assert!(
        written[1] - written[0] <= 9 * MIB,
        "the probe cost {} bytes ({written:?})",
        written[1] - written[0]
    );
    assert_success(&t.verify_device(dev));
    // The plan names the probe's cost.
    let o = burn(&t, dev, &["--dry-run"]);
    assert_stderr_has(
        &o,
        "probe:       first 8.51 MiB written at random places and put back",
    );
}

fn probe_is_0_on_honest_and_3_on_fake_devices_and_keeps_the_content() {
    if !can_fake_devices() {
        return;
    }
    let t = TestDir::new();
    // An honest device full of content: every byte as it was after the probe.
    let file = t.path("honest.img");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&file).unwrap();
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut buf = vec![0u8; MIB as usize];
        for _ in 0..96 {
            for c in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&buf).unwrap();
        }
    }
    let before = sha256_file(&file);
    let lo = Loop::attach(&file, 512, false);
    let o = t
        .pi_burn()
        .args(["probe", &lo.dev, "--yes"])
        .output()
        .unwrap();
    assert_success(&o);
    assert_stdout_has(&o, "holds the 96 MiB it claims");
    drop(lo);
    assert_eq!(sha256_file(&file), before, "the probe changed the device");
    // Fakes: exit 3 naming the real size, in text and JSON.
    for fake in [wrap(&t), limbo(&t)] {
        let o = t
            .pi_burn()
            .args(["probe", fake.dev(), "--yes"])
            .output()
            .unwrap();
        assert_fails_with(&o, 3, &["256 MiB, not 1 GiB: a counterfeit"]);
        let o = t
            .pi_burn()
            .args(["--json", "probe", fake.dev(), "--yes"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(3));
        let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(j["honest"], false);
        assert_eq!(j["exit_code"], 3);
        let real = j["probe"]["every"]
            .as_u64()
            .or(j["probe"]["holds"].as_u64());
        assert_eq!(real, Some(256 * MIB), "{j}");
    }
    // The same device rules as a burn: no terminal and no --yes is a refusal.
    let fake = wrap(&t);
    let o = t
        .pi_burn()
        .args(["probe", fake.dev()])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_fails_with(&o, 4, &[]);
}

/// f3probe's verdict on the same fakes: bad news on both, good news on the honest one; on the
/// limbo fake it finds the same 256 MiB.
fn f3probe_agrees_with_the_probe_on_the_fakes() {
    if !(can_fake_devices() && have_tool("f3probe")) {
        return;
    }
    let t = TestDir::new();
    let honest = FakeDevice::start(&t, "honest", &["--claimed", "1G"]);
    let cases = [
        (honest, "Good news"),
        (wrap(&t), "Bad news"),
        (limbo(&t), "Bad news"),
    ];
    for (i, (fake, want)) in cases.iter().enumerate() {
        let out = stdout(&tool("f3probe").arg(fake.dev()).output().unwrap());
        assert!(out.contains(want), "case {i}: {out}");
        let o = t
            .pi_burn()
            .args(["probe", fake.dev(), "--yes"])
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(if i == 0 { 0 } else { 3 }),
            "case {i}"
        );
        if i == 2 {
            assert!(out.contains("Usable* size: 256.00 MB"), "{out}");
        }
    }
}

/// A read-back difference on a wrap-around fake says which range differs and that the device
/// wraps (without the probe, on a bare image with data 256 MiB apart).
fn a_read_back_difference_names_the_range_and_the_wrap() {
    if !can_fake_devices() {
        return;
    }
    let t = TestDir::new();
    let img = t.path("data.img");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(300 * MIB).unwrap();
        let a: Vec<u8> = (0..MIB as u32).map(|i| (i % 251) as u8 + 1).collect();
        let b: Vec<u8> = (0..MIB as u32).map(|i| (i % 241) as u8 + 2).collect();
        f.write_all_at(&a, 10 * MIB).unwrap();
        f.write_all_at(&b, 266 * MIB).unwrap();
    }
    let fake = wrap(&t);
    let o = t
        .pi_burn()
        .args(["flash", "--no-table", "--no-bmap", "--no-probe", "--yes"])
        .arg(&img)
        .arg(fake.dev())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        all.contains("read back differs from what was written at byte")
            && all.contains("wraps around every 256 MiB"),
        "{all}"
    );
}

/// `devices` with a device whose reads stall (issue 24): answered within its bound, the
/// device named as not answering.
fn devices_answers_with_a_stalled_device_attached() {
    if !can_fake_devices() {
        return;
    }
    let t = TestDir::new();
    let fake = FakeDevice::start(
        &t,
        "stall",
        &[
            "--mode",
            "stall",
            "--claimed",
            "64M",
            "--stall-seconds",
            "30",
        ],
    );
    // The stall (30 s) is longer than the bound (20 s), so an answer within it proves the bound;
    // the fake's end (its FUSE process killed first) fails the stuck reads, so the test itself
    // does not wait for the stalls (10 s, was 60 s).
    // Twice: the second run finds the first one's reader still stuck in the disk's read, and
    // the kernel then holds every open of the disk too (measured before the fix: 29.5 s for
    // a reader's child holding stdout, 59.5 s for this process opening the disk).
    let devices = || {
        let start = std::time::Instant::now();
        let o = t.pi_burn().args(["--json", "devices"]).output().unwrap();
        let took = start.elapsed();
        assert_success(&o);
        assert!(took.as_secs() < 20, "devices took {took:?}");
        o
    };
    devices();
    let o = devices();
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let row = j["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == fake.dev())
        .unwrap_or_else(|| panic!("{} not listed: {j}", fake.dev()))
        .clone();
    assert!(row.to_string().contains("not answering"), "{row}");
}

/// A device the user named that stops answering (issue 30 item 12): every command that reads
/// or writes it ends within PI_BURN_DEVICE_TIMEOUT, saying so and what the device was left as;
/// SIGTERM ends a run whose device does not answer within seconds (it hung until the device
/// went: the process sat in the kernel, deaf even to SIGKILL).
fn a_named_device_that_stops_answering_ends_the_run() {
    if !can_fake_devices() {
        return;
    }
    let t = TestDir::new();
    assert_success(&t.sdcard("sd.img", &[]));
    let fake = FakeDevice::start(
        &t,
        "stall",
        &[
            "--mode",
            "stall",
            "--claimed",
            "64M",
            "--stall-seconds",
            "120",
        ],
    );
    let dev = fake.dev().to_string();
    let zip = fixture_zip("rpi4", None);
    let zip = zip.to_str().unwrap();
    let sd = t.path("sd.img");
    let runs: [Vec<&str>; 5] = [
        vec!["inspect", &dev],
        vec![
            "sdcard",
            &dev,
            "--dry-run",
            "--manifest",
            MANIFEST,
            "--firmware-zip",
            zip,
        ],
        vec![
            "sdcard",
            &dev,
            "--yes",
            "--manifest",
            MANIFEST,
            "--firmware-zip",
            zip,
        ],
        vec!["probe", &dev, "--yes"],
        vec!["flash", sd.to_str().unwrap(), &dev, "--yes"],
    ];
    for args in &runs {
        let start = std::time::Instant::now();
        let o = t
            .pi_burn()
            .env("PI_BURN_DEVICE_TIMEOUT", "3")
            .args(args)
            .output()
            .unwrap();
        let took = start.elapsed();
        assert!(took.as_secs() < 12, "{args:?} took {took:?}");
        assert_fails_with(
            &o,
            1,
            &[&dev, "stopped answering", "nothing was written to it"],
        );
    }
    // SIGTERM, with the default bound (30 s): the run ends within seconds, exit 130.
    let start = std::time::Instant::now();
    let child = t
        .pi_burn()
        .args(["--json", "inspect", &dev])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(1));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    let took = start.elapsed();
    assert!(took.as_secs() < 12, "SIGTERM: took {took:?}");
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["exit_code"], 130, "{j}");
    assert!(
        j["error"].as_str().unwrap().contains("after SIGTERM"),
        "{j}"
    );
}

// This module's tests, for the runner in main.rs.
crate::tests![
    sdcard_and_ssd_refuse_wrap_around_and_limbo_fakes,
    an_honest_device_burns_with_at_most_9_mib_more_for_the_probe,
    probe_is_0_on_honest_and_3_on_fake_devices_and_keeps_the_content,
    f3probe_agrees_with_the_probe_on_the_fakes,
    a_read_back_difference_names_the_range_and_the_wrap,
    devices_answers_with_a_stalled_device_attached,
    a_named_device_that_stops_answering_ends_the_run,
];
