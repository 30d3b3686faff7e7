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

// This module's tests, for the runner in main.rs.
crate::tests![
    successes_and_failures_are_one_object_each,
    flash_and_its_dry_run_are_one_object_with_the_same_target_shape,
];
