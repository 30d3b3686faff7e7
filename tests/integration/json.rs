//! `--json`: every outcome is exactly one JSON object on stdout, failures included, with one
//! shape for `target` ({kind, path, size}) across sdcard, ssd, verify, inspect and flash.

use crate::harness::*;
use std::process::Output;

const FLAKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake");

/// The one JSON object on stdout.
fn one_object(o: &Output) -> serde_json::Value {
    let out = stdout(o);
    let values: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&out)
        .into_iter::<serde_json::Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{out}\nstderr: {}", stderr(o)));
    assert_eq!(values.len(), 1, "one object, not {}:\n{out}", values.len());
    assert!(values[0].is_object(), "{out}");
    values.into_iter().next().unwrap()
}

fn assert_target(t: &serde_json::Value, kind: &str, path: &str) {
    assert_eq!(t["kind"], kind, "{t}");
    assert_eq!(t["path"], path, "{t}");
    assert!(t["size"].as_u64().unwrap() > 0, "{t}");
    assert_eq!(
        t.as_object().unwrap().len(),
        3,
        "only kind, path, size: {t}"
    );
}

fn assert_failure(o: &Output, code: i32) -> serde_json::Value {
    assert_eq!(o.status.code(), Some(code), "{}", stderr(o));
    let j = one_object(o);
    assert_eq!(j["exit_code"], code, "{j}");
    assert!(j["error"].as_str().is_some_and(|e| !e.is_empty()), "{j}");
    j
}

fn successes_and_failures_are_one_object_each() {
    let t = TestDir::new();
    let img = t.path("sd.img");
    // sdcard and verify: the report, with target.
    let o = t.sdcard("sd.img", &["--json"]);
    assert_success(&o);
    assert_target(
        &one_object(&o)["target"],
        "image",
        &img.display().to_string(),
    );
    let o = t.verify_image(&["--json"], &img, &[]);
    assert_success(&o);
    assert_target(
        &one_object(&o)["target"],
        "image",
        &img.display().to_string(),
    );
    // A verification difference: still one object, the mismatches in it.
    let o = t.verify_image(&["--json"], &img, &["--set", "Timeout=9"]);
    assert_eq!(o.status.code(), Some(3));
    let j = one_object(&o);
    assert!(!j["mismatches"].as_array().unwrap().is_empty(), "{j}");
    // inspect.
    let o = t
        .pi_burn()
        .args(["--json", "inspect", "--image"])
        .arg(&img)
        .output()
        .unwrap();
    assert_success(&o);
    assert_target(
        &one_object(&o)["target"],
        "image",
        &img.display().to_string(),
    );
    // ssd.
    let ssd = t.path("ssd.img");
    let o = t
        .pi_burn()
        .args([
            "--json", "ssd", "--node", "pi-alpha", "--flake", FLAKE, "--size", "4G", "--image",
        ])
        .arg(&ssd)
        .output()
        .unwrap();
    assert_success(&o);
    assert_target(
        &one_object(&o)["target"],
        "image",
        &ssd.display().to_string(),
    );

    // Failures: a usage error (caught by the argument parser), a missing file, a refusal.
    let o = t.sdcard("x.img", &["--json", "--sector-size", "1000"]);
    assert_failure(&o, 2);
    let o = t
        .pi_burn()
        .args([
            "--json",
            "sdcard",
            "--image",
            "y.img",
            "--firmware-zip",
            "/nonexistent.zip",
        ])
        .output()
        .unwrap();
    assert_failure(&o, 1);
    // firmware verify of a zip no pin matches: one object with the mismatch, exit 3.
    let o = t
        .pi_burn()
        .args(["--json", "firmware", "verify"])
        .arg(fixture_zip("rpi4", None))
        .args(["--manifest", MANIFEST, "--sha256", &"0".repeat(64)])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let j = one_object(&o);
    assert_eq!(j["ok"], false);
    assert!(
        j["mismatches"][0].as_str().unwrap().contains("expected"),
        "{j}"
    );
}

fn flash_and_its_dry_run_are_one_object_with_the_same_target_shape() {
    if !is_root() || !have_tool("losetup") {
        return;
    }
    let t = TestDir::new();
    assert_success(&t.sdcard("sd.img", &[]));
    let file = t.path("dev.img");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(600 << 20)
        .unwrap();
    let small = t.path("small.img");
    std::fs::File::create(&small)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let lo = Loop::attach(&file, 512, false);
    let lo_small = Loop::attach(&small, 512, false);
    let flash = |extra: &[&str], devs: &[&str]| {
        t.pi_burn()
            .args(["--json", "flash"])
            .arg(t.path("sd.img"))
            .args(devs)
            .arg("--yes")
            .args(extra)
            .output()
            .unwrap()
    };
    let o = flash(&["--dry-run"], &[&lo.dev]);
    assert_success(&o);
    let j = one_object(&o);
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["exit_code"], 0);
    assert_target(&j["targets"][0]["target"], "device", &lo.dev);
    // A dry run that finds a device too small: one object, with the error.
    let o = flash(&["--dry-run"], &[&lo.dev, &lo_small.dev]);
    let j = assert_failure(&o, 1);
    assert_eq!(j["targets"][0]["ok"], true, "{j}");
    assert_eq!(j["targets"][1]["ok"], false, "{j}");
    // The real thing.
    let o = flash(&[], &[&lo.dev]);
    assert_success(&o);
    let j = one_object(&o);
    assert_eq!(j["targets"][0]["ok"], true);
    assert_target(&j["targets"][0]["target"], "device", &lo.dev);
    assert!(j["targets"][0]["bytes_written"].as_u64().unwrap() > 0);
}

/// The envelope of issue 28: every subcommand, on success and on failure, prints one object
/// with `error` (null on success) and `exit_code` equal to its exit status.
fn every_subcommand_answers_in_one_envelope() {
    let t = TestDir::new();
    let zip = fixture_zip("rpi4", None);
    let zip = zip.to_str().unwrap();
    let sd = t.path("sd.img");
    let sd = sd.to_str().unwrap();
    assert_success(&t.sdcard("sd.img", &[]));
    std::fs::write(t.path("not-a-card.img"), vec![7u8; 1 << 20]).unwrap();
    std::fs::create_dir_all(t.path("full")).unwrap();
    std::fs::write(t.path("full/x"), "x").unwrap();
    let eeprom = |name: &str| {
        let mut v = vec![
            "eeprom".to_string(),
            "--manifest".into(),
            MANIFEST.into(),
            "--image".into(),
            t.path(name).display().to_string(),
        ];
        for (flag, f) in [
            ("--recovery-file", "recovery-2711.bin"),
            ("--eeprom-file", "pieeprom-2711.bin"),
            ("--vl805-file", "vl805.bin"),
        ] {
            v.push(flag.into());
            v.push(eeprom_fixture(f).display().to_string());
        }
        v
    };
    let m = MANIFEST;
    let cases: Vec<(Vec<String>, i32)> = [
        (
            vec![
                "sdcard",
                "--image",
                "a.img",
                "--manifest",
                m,
                "--firmware-zip",
                zip,
            ],
            0,
        ),
        (
            vec![
                "sdcard",
                "--image",
                "b.img",
                "--manifest",
                m,
                "--firmware-zip",
                "/nonexistent.zip",
            ],
            1,
        ),
        (
            vec![
                "ssd", "--node", "pi-alpha", "--flake", FLAKE, "--size", "4G", "--image", "s.img",
            ],
            0,
        ),
        (
            vec![
                "ssd",
                "--node",
                "pi-nosuch",
                "--flake",
                FLAKE,
                "--size",
                "4G",
                "--image",
                "s2.img",
            ],
            2,
        ),
        (vec!["verify", "--image", sd], 0),
        (
            vec![
                "verify",
                "--image",
                sd,
                "--manifest",
                m,
                "--firmware-zip",
                zip,
                "--set",
                "Timeout=9",
            ],
            3,
        ),
        (vec!["inspect", "--image", sd], 0),
        (vec!["inspect", "--image", "not-a-card.img"], 1),
        (
            vec![
                "images",
                "--flake",
                FLAKE,
                "--out",
                "out",
                "--manifest",
                m,
                "--firmware-zip",
                zip,
            ],
            0,
        ),
        (
            vec!["images", "--flake", "/nonexistent", "--out", "out2"],
            2,
        ),
        (vec!["devices"], 0),
        (vec!["devices", "--bogus"], 2),
        (vec!["keys", "--flake", FLAKE, "--out", "keys"], 0),
        (vec!["keys", "--flake", "/nonexistent", "--out", "keys2"], 2),
        (vec!["eeprom", "--board", "rpi9", "--image", "e2.img"], 2),
        (vec!["probe", "/nonexistent-device"], 1),
        (vec!["flash", "/nonexistent.img", "/dev/null"], 1),
        (vec!["firmware", "list", "--manifest", m], 0),
        (
            vec!["firmware", "list", "--manifest", "/nonexistent.toml"],
            1,
        ),
        (
            vec!["firmware", "fetch", "--manifest", m, "--firmware-zip", zip],
            0,
        ),
        (
            vec![
                "firmware",
                "fetch",
                "--manifest",
                m,
                "--firmware",
                "v9.9",
                "--offline",
            ],
            1,
        ),
        (vec!["firmware", "verify", zip, "--manifest", m], 0),
        (
            vec!["firmware", "verify", "/nonexistent.zip", "--manifest", m],
            1,
        ),
        (vec!["firmware", "settings", "--image", sd], 0),
        (vec!["firmware", "settings", "/nonexistent.fd"], 1),
        (
            vec![
                "firmware",
                "export",
                "--dir",
                "tree",
                "--manifest",
                m,
                "--firmware-zip",
                zip,
            ],
            0,
        ),
        (
            vec![
                "firmware",
                "export",
                "--dir",
                "full",
                "--manifest",
                m,
                "--firmware-zip",
                zip,
            ],
            2,
        ),
        (vec!["completions", "bash"], 0),
        (vec!["completions"], 2),
        (vec!["man", "sdcard"], 0),
        (vec!["man", "no-such-page"], 2),
        (vec!["no-such-command"], 2),
    ]
    .into_iter()
    .map(|(a, c)| (a.into_iter().map(String::from).collect(), c))
    .chain([(eeprom("e.img"), 0)])
    .collect();
    let mut seen = std::collections::BTreeSet::new();
    for (args, code) in &cases {
        let o = t.pi_burn().arg("--json").args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(*code), "{args:?}: {}", stderr(&o));
        let j = one_object(&o);
        assert_eq!(j["exit_code"], *code, "{args:?}: {j}");
        match code {
            0 => assert!(j["error"].is_null(), "{args:?}: {j}"),
            _ => assert!(
                j["error"]
                    .as_str()
                    .is_some_and(|e| !e.is_empty() && !e.contains('\n')),
                "{args:?}: {j}"
            ),
        }
        seen.insert((args[0].clone(), *code == 0));
    }
    // Every subcommand was seen succeeding and failing (probe and flash succeed on devices
    // only: their success is in the next test and counterfeit::).
    for sub in [
        "sdcard",
        "ssd",
        "verify",
        "inspect",
        "images",
        "devices",
        "keys",
        "eeprom",
        "firmware",
        "completions",
        "man",
    ] {
        assert!(
            seen.contains(&(sub.to_string(), true)),
            "{sub} never succeeded"
        );
        assert!(
            seen.contains(&(sub.to_string(), false)),
            "{sub} never failed"
        );
    }
}

/// probe's success and a counterfeit's failure in the envelope, on a loop device.
fn probe_answers_in_the_envelope() {
    if !is_root() || !have_tool("losetup") {
        return;
    }
    let t = TestDir::new();
    let lo = Loop::attach(&t.sparse_file("p.img", 64 << 20), 512, false);
    let o = t
        .pi_burn()
        .args(["--json", "probe", &lo.dev, "--yes"])
        .output()
        .unwrap();
    assert_success(&o);
    let j = one_object(&o);
    assert_eq!(
        (j["exit_code"].clone(), j["error"].clone()),
        (0.into(), serde_json::Value::Null)
    );
    assert_eq!(j["honest"], true, "{j}");
    // Too small to probe: a failure, in the envelope.
    let small = Loop::attach(&t.sparse_file("q.img", 16 << 20), 512, false);
    let o = t
        .pi_burn()
        .args(["--json", "probe", &small.dev, "--yes"])
        .output()
        .unwrap();
    assert_failure(&o, 1);
}

// This module's tests, for the runner in main.rs.
crate::tests![
    successes_and_failures_are_one_object_each,
    flash_and_its_dry_run_are_one_object_with_the_same_target_shape,
    every_subcommand_answers_in_one_envelope,
    probe_answers_in_the_envelope,
];
