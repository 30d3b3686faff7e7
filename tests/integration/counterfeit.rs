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

/// A 1 GiB limbo fake holding 256 MiB behind a cache of `blocks` 4 KiB blocks of the latest
/// writes (the probe must push them out).
fn limbo_cached(t: &TestDir, name: &str, blocks: &'static str) -> FakeDevice {
    FakeDevice::start(t, name, &limbo_args(blocks))
}

fn limbo_args(blocks: &'static str) -> Vec<&'static str> {
    let mut args = vec!["--mode", "limbo", "--claimed", "1G", "--real", "256M"];
    args.extend(["--cache-blocks", blocks]);
    args
}

/// A limbo fake with a 1 MiB cache.
fn limbo(t: &TestDir) -> FakeDevice {
    limbo_cached(t, "limbo", "256")
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

/// Found with exit 3 (as `probe` says a counterfeit, issue 28) naming both sizes and what was
/// written (`then`); the table areas at both ends wiped, no table.
fn assert_refused_as_fake(o: &Output, dev: &str, then: &str) {
    assert_fails_with(
        o,
        3,
        &[dev, "holds", "256 MiB, not 1 GiB: a counterfeit", then],
    );
    assert!(read_dev(dev, 0, 32 << 10).iter().all(|b| *b == 0));
    assert!(read_dev(dev, (1 << 30) - (32 << 10), 32 << 10)
        .iter()
        .all(|b| *b == 0));
}

/// The wrap-around fake is found before the card (the wrap test), the limbo fake behind its
/// 1 MiB cache after it (the samples, read back behind the card's 8 MiB): both refused, their
/// tables wiped.
fn sdcard_and_ssd_refuse_wrap_around_and_limbo_fakes() {
    if !can_fake_devices() {
        return;
    }
    let t = TestDir::new();
    for (name, fake) in [("wrap", wrap(&t)), ("limbo", limbo(&t))] {
        let dev = fake.dev().to_string();
        let then = if name == "wrap" {
            "nothing else was written"
        } else {
            "found behind the card's data, which was written: its partition table is wiped again"
        };
        let o = burn(&t, &dev, &[]);
        assert_refused_as_fake(&o, &dev, then);
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
        assert_refused_as_fake(&o, &dev, then);
        // --no-probe: the card is written and says so (a read-back of its own ranges passes:
        // the reason for the probe).
        let o = burn(&t, &dev, &["--no-probe"]);
        assert_stdout_has(&o, "not probed (--no-probe)");
    }
}

/// A burn's probe costs almost nothing beyond the card (issue 29): the device (its
/// /sys/block/loopN/stat) sees at most the card's bytes plus 1 MiB written, and at most 1 MiB
/// more read than a burn without the probe.
fn a_burn_s_probe_costs_at_most_1_mib_beyond_the_card() {
    if !can_fake_devices() {
        return;
    }
    let t = TestDir::new();
    let fake = FakeDevice::start(&t, "honest", &["--claimed", "1G"]);
    let dev = fake.dev();
    let mut seen = vec![];
    for extra in [&["--no-probe"][..], &[][..]] {
        let (r0, w0) = loop_bytes(dev);
        let o = burn(&t, dev, &[&["--json"][..], extra].concat());
        assert_success(&o);
        let (r1, w1) = loop_bytes(dev);
        let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        if extra.is_empty() {
            assert_eq!(j["probe"]["verdict"], "honest", "{}", j["probe"]);
            assert_eq!(j["probe"]["in_burn"], true);
        } else {
            assert!(j.get("probe").is_none());
        }
        seen.push((r1 - r0, w1 - w0, j["bytes_written"].as_u64().unwrap()));
    }
    let [(r_plain, w_plain, card), (r_probe, w_probe, _)] = seen[..] else {
        unreachable!()
    };
    assert!(w_plain <= card, "{seen:?}");
    assert!(
        w_probe <= card + MIB,
        "written {w_probe} for a card of {card}"
    );
    assert!(
        r_probe <= r_plain + MIB,
        "read {r_probe} with the probe, {r_plain} without"
    );
    assert_success(&t.verify_device(dev));
    // The plan names the probe and what it costs.
    let o = burn(&t, dev, &["--dry-run"]);
    assert_stderr_has(
        &o,
        "probe:       a wrap test and 64 samples stamped beside the data before it, read back after it and put back (65 KiB written, 69.50 KiB read)",
    );
}

/// A burn onto a limbo fake whose cache (16 MiB) is larger than the card (8 MiB): the card
/// lands below the fake's real end and reads back, and the burn says what its probe could not
/// rule out; `pi-burn probe` then finds the fake.
fn a_burn_says_what_its_probe_could_not_rule_out() {
    if !can_fake_devices() {
        return;
    }
    let t = TestDir::new();
    let fake = limbo_cached(&t, "cached", "4096");
    let o = burn(&t, fake.dev(), &[]);
    assert_success(&o);
    let out = stdout(&o);
    assert!(
        out.contains("no smaller card hides behind a cache of up to 7.88 MiB; a larger cache could hide one (`pi-burn probe` is the full test)")
            && !out.contains("holds the"),
        "{out}"
    );
    let o = t
        .pi_burn()
        .args(["probe", fake.dev(), "--yes"])
        .output()
        .unwrap();
    assert_fails_with(&o, 3, &["holds 256 MiB, not 1 GiB: a counterfeit"]);
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
    assert_stdout_has(&o, "no sign it holds less than its 96 MiB: no wrap-around");
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

/// The full test and f3probe on the same fakes (issue 29), each on a fresh device: the same
/// verdict, the same real size, and pi-burn writing no more than f3probe (bytes from
/// /sys/block/loopN/stat); on the limbo fakes behind caches of 4, 16 and 64 MiB, the cache
/// named within bounds that hold it. f3probe 8.0 passes a wrap-around of 33 MiB (not a power
/// of two) in a 40 MiB fake: pi-burn finds it, and leaves the device as it was.
fn the_probe_agrees_with_f3probe_on_every_fake_at_no_more_writes() {
    if !(can_fake_devices() && have_tool("f3probe")) {
        return;
    }
    let t = TestDir::new();
    struct Case {
        args: Vec<&'static str>,
        f3: &'static str,
        real: Option<u64>,
        cache: u64,
    }
    let case = |args: &[&'static str], f3, real, cache| Case {
        args: args.to_vec(),
        f3,
        real,
        cache,
    };
    let (good, limbo) = ("is the real thing", "counterfeit of type limbo");
    let cases = [
        case(&["--claimed", "1G"], good, None, 0),
        case(&["--claimed", "64M"], good, None, 0),
        case(
            &["--mode", "wrap", "--claimed", "1G", "--real", "256M"],
            "Bad news",
            Some(256 * MIB),
            0,
        ),
        case(
            &["--mode", "limbo", "--claimed", "1G", "--real", "300M"],
            limbo,
            Some(300 * MIB),
            0,
        ),
        case(&limbo_args("1024"), limbo, Some(256 * MIB), 4 * MIB),
        case(&limbo_args("4096"), limbo, Some(256 * MIB), 16 * MIB),
        case(&limbo_args("16384"), limbo, Some(256 * MIB), 64 * MIB),
    ];
    for (i, c) in cases.iter().enumerate() {
        let fake = FakeDevice::start(&t, &format!("f3-{i}"), &c.args);
        let (_, w0) = loop_bytes(fake.dev());
        let o = t
            .pi_burn()
            .args(["--json", "probe", fake.dev(), "--yes"])
            .output()
            .unwrap();
        let (_, w1) = loop_bytes(fake.dev());
        let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        drop(fake);
        let fake = FakeDevice::start(&t, &format!("f3-{i}-again"), &c.args);
        let f3 = tool("f3probe").arg(fake.dev()).output().unwrap();
        let (_, w2) = loop_bytes(fake.dev());
        let f3_out = stdout(&f3);
        assert!(f3_out.contains(c.f3), "case {i}: {f3_out}");
        assert!(
            w1 - w0 <= w2,
            "case {i}: pi-burn wrote {} bytes, f3probe {w2}",
            w1 - w0
        );
        let p = &j["probe"];
        match c.real {
            None => {
                assert_eq!(o.status.code(), Some(0), "case {i}: {j}");
                assert_eq!(p["verdict"], "honest");
            }
            Some(real) => {
                assert_eq!(o.status.code(), Some(3), "case {i}: {j}");
                let got = p["every"].as_u64().or(p["holds"].as_u64());
                assert_eq!(got, Some(real), "case {i}: {j}");
            }
        }
        if c.cache > 0 {
            let (lo, hi) = (
                p["cache"]["more_than"].as_u64().unwrap(),
                p["cache"]["at_most"].as_u64().unwrap(),
            );
            assert!(lo < c.cache && c.cache <= hi, "case {i}: {j}");
            assert!(
                stderr(&o).contains("behind a cache of more than"),
                "{}",
                stderr(&o)
            );
        }
    }
    // Wrapping every 33 MiB in 40: f3probe says good news, pi-burn finds it and puts every
    // block back.
    let fake = FakeDevice::start(
        &t,
        "wrap33",
        &["--mode", "wrap", "--claimed", "40M", "--real", "33M"],
    );
    let f3 = tool("f3probe").arg(fake.dev()).output().unwrap();
    assert!(stdout(&f3).contains("is the real thing"), "{}", stdout(&f3));
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(fake.dev())
            .unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let chunk: Vec<u8> = (0..MIB)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for m in 0..40 {
            f.write_all_at(&chunk, m * MIB).unwrap();
        }
        f.sync_all().unwrap();
    }
    // Read past the page cache: the fake's aliases change what the kernel may hold.
    let direct = |dev: &str| {
        let o = tool("dd")
            .arg(format!("if={dev}"))
            .args(["iflag=direct", "bs=1M", "count=40", "status=none"])
            .output()
            .unwrap();
        assert_success(&o);
        o.stdout
    };
    let before = direct(fake.dev());
    assert_eq!(before.len() as u64, 40 * MIB);
    for _ in 0..2 {
        let o = t
            .pi_burn()
            .args(["probe", fake.dev(), "--yes"])
            .output()
            .unwrap();
        assert_fails_with(
            &o,
            3,
            &["holds 33 MiB, not 40 MiB: a counterfeit (its addresses wrap around every 33 MiB, measured"],
        );
        assert!(direct(fake.dev()) == before, "the probe changed the device");
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
    a_burn_s_probe_costs_at_most_1_mib_beyond_the_card,
    a_burn_says_what_its_probe_could_not_rule_out,
    probe_is_0_on_honest_and_3_on_fake_devices_and_keeps_the_content,
    the_probe_agrees_with_f3probe_on_every_fake_at_no_more_writes,
    a_read_back_difference_names_the_range_and_the_wrap,
    devices_answers_with_a_stalled_device_attached,
    a_named_device_that_stops_answering_ends_the_run,
];
