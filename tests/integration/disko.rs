//! `pi-burn ssd` against the reference: for each disk of fixtures/disko/*.json, the commands
//! disko's gpt.nix `_create` generates (one `sgdisk --align-end [--set-alignment] --new ...`
//! per partition in priority order, then `sgdisk -h` and `sfdisk --label-nested dos` for hybrid
//! entries) are run with the real sgdisk on a blank disk of the same size and sector size; the
//! partition GUIDs (random in disko) are then set to pi-burn's, and both disks' table areas must
//! be byte-identical: protective/hybrid MBR, both headers, both entry arrays (start, end, type,
//! raw UTF-16 name, attributes).

use crate::harness::*;
use serde_json::Value;
use sha2::Digest;
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/disko");
/// A disk size that is not a whole number of MiB (a "1 TB" SSD).
const ODD: u64 = 1_000_204_886_016;

/// One partition as gpt.nix sees it after its defaults (written from gpt.nix, independently of
/// src/ssd).
struct Part {
    name: String,
    label: String,
    start: String,
    end: String,
    alignment: i64,
    type_: String,
    attributes: Vec<u64>,
    priority: i64,
    hybrid: Option<(Option<String>, bool)>,
}

fn parts_of(disk_attr: &str, disk: &Value) -> (Vec<Part>, bool) {
    let disk_name = disk["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| disk_attr.replace('/', "_"));
    let content = &disk["content"];
    let mut attrs: Vec<&String> = content["partitions"].as_object().unwrap().keys().collect();
    attrs.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let mut parts: Vec<Part> = attrs
        .into_iter()
        .map(|a| {
            let p = &content["partitions"][a];
            let name = p["name"].as_str().unwrap_or(a).to_string();
            let size = p["size"].as_str().unwrap_or("0").to_string();
            let type_ = p["type"].as_str().map(str::to_string).unwrap_or_else(|| {
                if p["content"]["type"] == "swap" {
                    "8200".into()
                } else {
                    "8300".into()
                }
            });
            let label = p["label"].as_str().map(str::to_string).unwrap_or_else(|| {
                let l = format!("disk-{disk_name}-{name}");
                if l.len() > 36 {
                    let h = sha2::Sha256::digest(l.as_bytes());
                    h.iter().map(|b| format!("{b:02x}")).collect::<String>()[..36].to_string()
                } else {
                    l
                }
            });
            let start = p["start"].as_str().unwrap_or("0").to_string();
            let end = p["end"].as_str().map(str::to_string).unwrap_or_else(|| {
                if size == "100%" {
                    "-0".into()
                } else {
                    format!("+{size}")
                }
            });
            let alignment =
                p["alignment"]
                    .as_i64()
                    .unwrap_or(if start.ends_with('s') || end.ends_with('s') {
                        1
                    } else {
                        0
                    });
            let priority = p["priority"].as_i64().unwrap_or(if size == "100%" {
                9001
            } else if type_ == "EF02" {
                100
            } else {
                1000
            });
            let hybrid = p["hybrid"].as_object().map(|h| {
                (
                    h.get("mbrPartitionType")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    h.get("mbrBootableFlag")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                )
            });
            let attributes = p["attributes"]
                .as_array()
                .map(|a| a.iter().map(|b| b.as_u64().unwrap()).collect())
                .unwrap_or_default();
            Part {
                name,
                label,
                start,
                end,
                alignment,
                type_,
                attributes,
                priority,
                hybrid,
            }
        })
        .collect();
    parts.sort_by_key(|p| p.priority);
    let efi_first = content["efiGptPartitionFirst"].as_bool().unwrap_or(true);
    (parts, efi_first)
}

/// Runs disko's commands for `parts` on `dev`. With `efi_first` disko's own `sgdisk -h` line
/// lacks a space before the device and does nothing; what it means is run instead (README).
fn run_disko_commands(dev: &Path, parts: &[Part], efi_first: bool) {
    run_ok(tool("sgdisk").arg("--clear").arg(dev));
    for (i, p) in parts.iter().enumerate() {
        let n = i + 1;
        let mut c = tool("sgdisk");
        c.arg("--align-end");
        if p.alignment != 0 {
            c.arg(format!("--set-alignment={}", p.alignment));
        }
        c.arg(format!("--new={n}:{}:{}", p.start, p.end))
            .arg(format!("--partition-guid={n}:R"))
            .arg(format!("--change-name={n}:{}", p.label))
            .arg(format!("--typecode={n}:{}", p.type_))
            .arg(format!("--attributes={n}:=:0"));
        for b in &p.attributes {
            c.arg(format!("--attributes={n}:set:{b}"));
        }
        run_ok(c.arg(dev));
        assert!(p.name.len() < 1000);
    }
    let hybrids: Vec<(usize, &Part)> = parts
        .iter()
        .enumerate()
        .filter(|(_, p)| p.hybrid.is_some())
        .collect();
    if hybrids.is_empty() {
        return;
    }
    let list: Vec<String> = hybrids.iter().map(|(i, _)| (i + 1).to_string()).collect();
    let spec = if efi_first {
        list.join(":")
    } else {
        format!("{}:EE", list.join(":"))
    };
    run_ok(tool("sgdisk").arg("-h").arg(spec).arg(dev));
    for (pos, (i, p)) in hybrids.iter().enumerate() {
        let (ty, boot) = p.hybrid.clone().unwrap();
        // disko passes _index; with the 0xEE entry first the partition's entry is one later.
        let entry = if efi_first { pos + 2 } else { i + 1 };
        if let Some(t) = ty {
            run_ok(
                tool("sfdisk")
                    .args(["--label-nested", "dos", "--part-type"])
                    .arg(dev)
                    .arg(entry.to_string())
                    .arg(t),
            );
        }
        if boot {
            run_ok(
                tool("sfdisk")
                    .args(["--label-nested", "dos", "--activate"])
                    .arg(dev)
                    .arg(entry.to_string()),
            );
        }
    }
}

fn read_range(path: &Path, offset: u64, len: u64) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// Compares one disk of a fixture at one size and sector size; returns a description of the
/// first difference.
fn compare(t: &TestDir, fixture: &str, disk: &str, size: u64, ss: u64) -> Result<(), String> {
    let json_path = PathBuf::from(FIXTURES).join(fixture);
    let devices: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let (parts, efi_first) = parts_of(disk, &devices["disk"][disk]);
    let ours = t.path(&format!("{disk}-{ss}-{size}.pi-burn.img"));
    let out = t
        .pi_burn()
        .args([
            "--json",
            "ssd",
            "--node",
            "n",
            "--no-format",
            "--disk",
            disk,
        ])
        .arg("--disko-json")
        .arg(&json_path)
        .arg("--image")
        .arg(&ours)
        .args([
            "--size",
            &size.to_string(),
            "--sector-size",
            &ss.to_string(),
        ])
        .output()
        .unwrap();
    assert_success(&out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let theirs = t.path(&format!("{disk}-{ss}-{size}.sgdisk.img"));
    std::fs::File::create(&theirs)
        .unwrap()
        .set_len(size)
        .unwrap();
    let lo = (ss != 512).then(|| Loop::attach(&theirs, ss, false));
    let dev = lo
        .as_ref()
        .map(|l| PathBuf::from(&l.dev))
        .unwrap_or(theirs.clone());
    run_disko_commands(&dev, &parts, efi_first);
    // disko's GUIDs are random: give the reference pi-burn's.
    let mut c = tool("sgdisk");
    c.arg(format!(
        "--disk-guid={}",
        report["disk_guid"].as_str().unwrap()
    ));
    for p in report["partitions"].as_array().unwrap() {
        c.arg(format!(
            "--partition-guid={}:{}",
            p["number"],
            p["guid"].as_str().unwrap()
        ));
    }
    run_ok(c.arg(&dev));
    drop(lo);
    let entries = 16384 / ss;
    let head = (2 + entries) * ss;
    let tail = (1 + entries) * ss;
    for (what, off, len) in [
        ("start of the disk", 0, head),
        ("backup table", size / ss * ss - tail, tail),
    ] {
        let a = read_range(&ours, off, len);
        let b = read_range(&theirs, off, len);
        if let Some(i) = (0..a.len()).find(|i| a[*i] != b[*i]) {
            let abs = off + i as u64;
            return Err(format!(
                "{fixture} disk {disk}, {size} bytes, {ss}-byte sectors: {what} differs at byte {abs} (sector {}, offset {}): pi-burn {:#04x}, disko+sgdisk {:#04x}\nsgdisk -p of the reference:\n{}",
                abs / ss, abs % ss, a[i], b[i],
                String::from_utf8_lossy(&tool("sgdisk").arg("-p").arg(&theirs).output().unwrap().stdout)
            ));
        }
    }
    // sgdisk finds pi-burn's table sound.
    if ss == 512 {
        let v = run_ok(tool("sgdisk").arg("-v").arg(&ours));
        assert!(v.contains("No problems found"), "{disk}: sgdisk -v: {v}");
    }
    let _ = std::fs::remove_file(&ours);
    let _ = std::fs::remove_file(&theirs);
    Ok(())
}

fn all_disks() -> Vec<(&'static str, String)> {
    let mut out = vec![];
    for f in ["rules.json", "hybrid-mbr.json"] {
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(PathBuf::from(FIXTURES).join(f)).unwrap(),
        )
        .unwrap();
        for d in v["disk"].as_object().unwrap().keys() {
            out.push((f, d.clone()));
        }
    }
    out
}

fn tables_equal_disko_and_sgdisk_byte_for_byte_at_512_byte_sectors() {
    if !have_tool("sgdisk") || !have_tool("sfdisk") {
        return;
    }
    let t = TestDir::new();
    let mut failures = vec![];
    for (f, d) in all_disks() {
        for size in [64 << 30, ODD] {
            if let Err(e) = compare(&t, f, &d, size, 512) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn tables_equal_disko_and_sgdisk_byte_for_byte_at_4096_byte_sectors() {
    if !have_tool("sgdisk") || !have_tool("sfdisk") || !have_tool("losetup") || !is_root() {
        return;
    }
    let t = TestDir::new();
    let mut failures = vec![];
    for (f, d) in all_disks() {
        for size in [64 << 30, ODD] {
            if let Err(e) = compare(&t, f, &d, size, 4096) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The fixture flake, copied out of the repository once per test process (so that `nix eval`
/// sees it as a plain directory, whatever git's state).
pub fn flake_copy() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let d = DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        run_ok(
            std::process::Command::new("cp")
                .arg("-rL")
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake-edge"))
                .arg(d.path()),
        );
        d
    });
    d.path().join("flake-edge")
}

fn ssd_image(t: &TestDir, flake: &Path, node: &str, extra: &[&str]) -> std::process::Output {
    t.pi_burn()
        .args([
            "ssd",
            "--node",
            node,
            "--no-format",
            "--size",
            "64G",
            "--image",
        ])
        .arg(t.path("x.img"))
        .arg("--flake")
        .arg(flake)
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn labels(t: &TestDir) -> Vec<String> {
    sfdisk_json(&t.path("x.img"))["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

fn no_silent_defaults_for_a_missing_flake_or_node() {
    let t = TestDir::new();
    let flake = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake-edge"));
    // A usage error (exit 2), as for every command (issue 30 item 15).
    let o = ssd_image(&t, Path::new("/nonexistent"), "pi-alpha", &[]);
    assert_fails_with(&o, 2, &["--flake /nonexistent", "no such directory"]);
    let o = ssd_image(&t, &flake, "pi-beta", &[]);
    assert_fails_with(
        &o,
        2,
        &["hosts/pi-beta/disk-config.nix", "pi-alpha, pi-gamma"],
    );
    // A misspelt node is not offered the documented layout (issue 30 item 16): it would make a
    // disk for the misspelt name; the hint names the node meant, and --layout default refuses it.
    let o = ssd_image(&t, &flake, "pi-gama", &[]);
    assert_fails_with(&o, 2, &["did you mean pi-gamma?"]);
    assert!(!stderr(&o).contains("--layout default"), "{}", stderr(&o));
    let o = ssd_image(&t, &flake, "pi-gama", &["--layout", "default"]);
    assert_fails_with(&o, 2, &["did you mean --node pi-gamma?"]);
    assert!(!t.path("x.img").exists());
    // The documented layout only when asked for, and it says so.
    let o = ssd_image(&t, &flake, "pi-beta", &["--layout", "default"]);
    assert_success(&o);
    assert!(stderr(&o).contains("--layout default"), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("the built-in default layout"),
        "{}",
        stdout(&o)
    );
    assert_eq!(labels(&t), ["disk-usb-ssd-BOOT", "disk-usb-ssd-zfs"]);
}

fn configs_beyond_the_single_file_are_refused_there_and_exact_from_the_flake() {
    if !have_nix() || !have_tool("sfdisk") {
        return;
    }
    let t = TestDir::new();
    let flake = flake_copy();
    // lib.genAttrs / lib.mkIf: the built-in evaluator and nix-instantiate's stub refuse by name.
    let o = ssd_image(&t, &flake, "flake-only", &["--eval", "builtin"]);
    assert_fails_with(
        &o,
        1,
        &["flake-only/disk-config.nix:4", "'let'", "--eval flake"],
    );
    let o = ssd_image(&t, &flake, "flake-only", &["--eval", "nix"]);
    assert_fails_with(&o, 1, &["needs 'genAttrs'", "--eval flake"]);
    // imports: nix-instantiate would drop the imported disk; refused.
    let o = ssd_image(&t, &flake, "with-imports", &["--eval", "nix"]);
    assert_fails_with(&o, 1, &["has 'imports'", "--eval flake"]);
    assert!(!t.path("x.img").exists());
    for eval in ["flake", "auto"] {
        let o = ssd_image(&t, &flake, "flake-only", &["--eval", eval]);
        assert_success(&o);
        assert!(stdout(&o).contains("nix eval"), "{}", stdout(&o));
        assert_eq!(
            labels(&t),
            ["disk-usb-ssd-BOOT", "disk-usb-ssd-swap", "disk-usb-ssd-zfs"]
        );
        let o = ssd_image(&t, &flake, "with-imports", &["--eval", eval]);
        assert_success(&o);
        assert_eq!(labels(&t), ["disk-usb-ssd-BOOT", "disk-usb-ssd-zfs"]);
    }
    // A node the flake lacks is nix's error, named.
    let o = ssd_image(&t, &flake, "pi-delta", &["--eval", "flake"]);
    assert_fails_with(&o, 1, &["nix eval", "pi-delta"]);
}

fn disko_computed_values_are_cross_checked_and_unknown_options_refused() {
    let t = TestDir::new();
    let write = |name: &str, v: serde_json::Value| -> PathBuf {
        let p = t.path(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p
    };
    let base = |extra: serde_json::Value| {
        let mut boot = serde_json::json!({"size": "1G", "type": "EF00", "_index": 1});
        for (k, v) in extra.as_object().unwrap() {
            boot[k] = v.clone();
        }
        serde_json::json!({"disk": {"usb-ssd": {"type": "disk", "content": {"type": "gpt",
            "partitions": {"boot": boot, "zfs": {"size": "100%", "_index": 2}}}}}})
    };
    let run = |json: &Path| {
        t.pi_burn()
            .args([
                "ssd",
                "--node",
                "n",
                "--no-format",
                "--size",
                "64G",
                "--image",
            ])
            .arg(t.path("y.img"))
            .arg("--disko-json")
            .arg(json)
            .output()
            .unwrap()
    };
    assert_success(&run(&write("ok.json", base(serde_json::json!({})))));
    let cases = [
        (serde_json::json!({"_index": 2}), "disko numbers it 2"),
        (
            serde_json::json!({"_options": ["size", "fancyNewOption"]}),
            "'fancyNewOption'",
        ),
        (serde_json::json!({"bogus": 1}), "option 'bogus'"),
        (
            serde_json::json!({"type": "00000000-0000-0000-0000-000000000000"}),
            "all-zero GUID",
        ),
        (
            serde_json::json!({"priority": "x"}),
            "'priority' must be an integer",
        ),
    ];
    let _ = std::fs::remove_file(t.path("y.img"));
    for (i, (extra, want)) in cases.into_iter().enumerate() {
        let o = run(&write(&format!("c{i}.json"), base(extra)));
        assert_fails_with(&o, 1, &[want]);
        assert!(!t.path("y.img").exists(), "{want}: nothing is written");
    }
}

// This module's tests, for the runner in main.rs.
crate::tests![
    tables_equal_disko_and_sgdisk_byte_for_byte_at_512_byte_sectors,
    tables_equal_disko_and_sgdisk_byte_for_byte_at_4096_byte_sectors,
    no_silent_defaults_for_a_missing_flake_or_node,
    configs_beyond_the_single_file_are_refused_there_and_exact_from_the_flake,
    disko_computed_values_are_cross_checked_and_unknown_options_refused,
];
