//! A new user's path (issue 23): the silent wrong results and rough edges a first run found,
//! each as a user would see it.

use crate::harness::*;
use std::path::Path;
use std::process::{Output, Stdio};

const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake");
const EDGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake-edge");
const MIB: u64 = 1 << 20;

fn fw_args() -> Vec<String> {
    vec![
        "--firmware-zip".into(),
        fixture_zip("rpi4", None).display().to_string(),
        "--manifest".into(),
        MANIFEST.into(),
    ]
}

fn run(t: &TestDir, args: &[&str]) -> Output {
    t.pi_burn()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Items 2 and 3: a node's card is GPT (NixOS mounts it by its GPT name), and the nodes' cards
/// never share a disk GUID, a partition GUID or a FAT volume id.
fn node_cards_are_gpt_only_and_each_node_s_ids_are_its_own() {
    let t = TestDir::new();
    let img = t.path("a.img").display().to_string();
    for extra in [&["--table", "mbr"][..], &["--mbr-type", "0x0c"][..]] {
        let mut args = vec![
            "sdcard", "--image", &img, "--node", "pi-alpha", "--flake", CLUSTER,
        ];
        args.extend(extra);
        let fw = fw_args();
        args.extend(fw.iter().map(String::as_str));
        let o = run(&t, &args);
        assert_fails_with(&o, 2, &[]);
        assert!(!Path::new(&img).exists());
    }
    if !have_tool("sfdisk") {
        return;
    }
    let out = t.path("out").display().to_string();
    let mut args = vec![
        "images",
        "--flake",
        CLUSTER,
        "--out",
        &out,
        "--ssd-size",
        "2G",
    ];
    let fw = fw_args();
    args.extend(fw.iter().map(String::as_str));
    assert_success(&run(&t, &args));
    let mut seen = std::collections::BTreeSet::new();
    for node in ["pi-alpha", "pi-beta", "pi-gamma"] {
        let p = t.path(&format!("out/{node}-sdcard.img"));
        let j = sfdisk_json(&p);
        let pt = &j["partitiontable"];
        let mut vid = [0u8; 4];
        use std::os::unix::fs::FileExt;
        std::fs::File::open(&p)
            .unwrap()
            .read_exact_at(&mut vid, MIB + 67)
            .unwrap();
        for id in [
            pt["id"].as_str().unwrap().to_string(),
            pt["partitions"][0]["uuid"].as_str().unwrap().to_string(),
            format!("{vid:02x?}"),
        ] {
            assert!(
                seen.insert(id.clone()),
                "{node} shares {id} with another node"
            );
        }
    }
}

/// Item 4: as a user who may not write the device, the refusal comes before the plan and the
/// question (exit 4), and `devices` says why for each loop device.
fn an_unprivileged_user_is_refused_before_the_question() {
    if !is_root() || !have_tool("losetup") || !have_tool("runuser") {
        return;
    }
    let t = TestDir::new();
    let file = t.path("card.dev");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(600 * MIB)
        .unwrap();
    let lo = Loop::attach(&file, 512, false);
    let o = tool("runuser")
        .args(["-u", "nobody", "--"])
        .arg(env!("CARGO_BIN_EXE_pi-burn"))
        .args(["sdcard", &lo.dev])
        .current_dir("/")
        .env("PI_BURN_CACHE_DIR", "/nonexistent/cache")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_fails_with(&o, 4, &[&lo.dev, "needs root"]);
    assert!(!stderr(&o).contains("will write"), "{}", stderr(&o));
    let o = tool("runuser")
        .args(["-u", "nobody", "--"])
        .arg(env!("CARGO_BIN_EXE_pi-burn"))
        .args(["--json", "devices"])
        .current_dir("/")
        .output()
        .unwrap();
    assert_success(&o);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let row = j["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == lo.dev.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["accepted"], false, "{row}");
    assert!(row["reasons"].to_string().contains("needs root"), "{row}");
}

/// Item 5: the plan says what is on the disk, read by pi-burn (the kernel does not scan loop
/// devices): a card's node and firmware, an SSD's partitions.
fn the_plan_shows_what_is_on_the_disk() {
    if !is_root() || !have_tool("losetup") {
        return;
    }
    let t = TestDir::new();
    let file = t.path("card.dev");
    std::fs::File::create(&file)
        .unwrap()
        .set_len(2048 * MIB)
        .unwrap();
    let lo = Loop::attach(&file, 512, false);
    let fw = fw_args();
    let card = |extra: &[&str]| {
        let mut a = vec!["sdcard", &lo.dev, "--node", "pi-alpha", "--flake", CLUSTER];
        a.extend(fw.iter().map(String::as_str));
        a.extend(extra);
        run(&t, &a)
    };
    let o = card(&["--dry-run"]);
    assert_success(&o);
    assert!(
        stderr(&o).contains("holds now:   no partition table"),
        "{}",
        stderr(&o)
    );
    assert_success(&card(&["--yes"]));
    let o = card(&["--dry-run"]);
    assert!(
        stderr(&o).contains("holds now:   a pi-burn card: pi-alpha: rpi4 v9.0"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &t,
        &[
            "ssd", "--node", "pi-alpha", "--flake", CLUSTER, &lo.dev, "--yes",
        ],
    );
    assert_success(&o);
    let o = run(
        &t,
        &[
            "ssd",
            "--node",
            "pi-alpha",
            "--flake",
            CLUSTER,
            &lo.dev,
            "--dry-run",
        ],
    );
    let err = stderr(&o);
    assert!(
        err.contains("holds now:   gpt table: disk-usb-ssd-BOOT (EF00, 1 GiB, FAT32)")
            && err.contains("disko's partition names"),
        "{err}"
    );
}

/// Items 7 and 8: "500GB" is 500 * 10^9 bytes and the plan says so; inspect says what a disk
/// is when it is not a card (an SSD image, an ISO).
fn sizes_in_gb_are_si_and_inspect_names_what_is_not_a_card() {
    let t = TestDir::new();
    let img = t.path("ssd.img").display().to_string();
    let base = [
        "ssd", "--node", "pi-alpha", "--flake", CLUSTER, "--image", &img,
    ];
    let o = run(&t, &[&base[..], &["--size", "500GB", "--dry-run"]].concat());
    assert_success(&o);
    assert!(
        stderr(&o).contains("(500000000000 bytes)"),
        "{}",
        stderr(&o)
    );
    assert_success(&run(&t, &[&base[..], &["--size", "4G"]].concat()));
    let o = run(&t, &["inspect", "--image", &img]);
    assert_fails_with(
        &o,
        1,
        &[
            "is a node's disk as disko names its partitions, not a card",
            "disk-usb-ssd-BOOT (EF00, 1 GiB, FAT32)",
            "disk-usb-ssd-zfs (8300",
        ],
    );
    let iso = t.path("x.iso");
    let mut b = vec![0u8; 2 * MIB as usize];
    b[0x8001..0x8006].copy_from_slice(b"CD001");
    b[510] = 0x55;
    b[511] = 0xAA;
    b[446 + 4] = 0xEF;
    b[446 + 8..446 + 12].copy_from_slice(&64u32.to_le_bytes());
    b[446 + 12..446 + 16].copy_from_slice(&64u32.to_le_bytes());
    std::fs::write(&iso, b).unwrap();
    let o = run(&t, &["inspect", "--image", &iso.display().to_string()]);
    assert_fails_with(&o, 1, &["ISO 9660"]);
}

/// Item 9: fetch says where the zip is cached; a custom build pinned by --sha256 is found in
/// the cache offline; firmware list shows it.
fn custom_builds_in_the_cache_are_listed_and_found_offline() {
    let t = TestDir::new();
    let zip = fixture_zip("rpi4", Some("exec"));
    let sha = sha256_file(&zip);
    let o = t
        .pi_burn()
        .args([
            "firmware",
            "fetch",
            "--manifest",
            MANIFEST,
            "--sha256",
            &sha,
        ])
        .arg("--firmware-zip")
        .arg(&zip)
        .output()
        .unwrap();
    assert_success(&o);
    assert!(
        stdout(&o).contains(&format!("cache/blobs/{sha}.zip")),
        "{}",
        stdout(&o)
    );
    let img = t.path("c.img").display().to_string();
    let o = run(
        &t,
        &[
            "sdcard",
            "--image",
            &img,
            "--manifest",
            MANIFEST,
            "--sha256",
            &sha,
            "--offline",
        ],
    );
    assert_success(&o);
    let o = run(&t, &["firmware", "list", "--manifest", MANIFEST]);
    assert!(
        stdout(&o).contains("cached builds the manifest does not pin") && stdout(&o).contains(&sha),
        "{}",
        stdout(&o)
    );
}

/// Items 10 to 12: hints that keep what was given and name what exists, node names on
/// `images` lines, one byte count per image, small things.
fn hints_and_messages_point_the_right_way() {
    let t = TestDir::new();
    // flash takes devices only: no --image hint.
    std::fs::write(t.path("file.img"), [0u8; 512]).unwrap();
    let o = run(&t, &["flash", "file.img", "other.img", "--yes"]);
    assert_fails_with(&o, 1, &["flash writes block devices only"]);
    assert!(!stderr(&o).contains("--image"), "{}", stderr(&o));
    // A device that is not there: where the disks are, and where image files go.
    let fw = fw_args();
    let o = run(
        &t,
        &[
            &["sdcard", "/nonexistent/sdx"][..],
            &fw.iter().map(String::as_str).collect::<Vec<_>>(),
        ]
        .concat(),
    );
    assert_fails_with(&o, 1, &["pi-burn devices", "--image PATH"]);
    // A version without its v.
    let o = run(
        &t,
        &[
            "sdcard",
            "--image",
            "v.img",
            "--manifest",
            MANIFEST,
            "--firmware",
            "9.0",
        ],
    );
    assert_fails_with(&o, 1, &["did you mean v9.0?"]);
    // completions needs a shell, and names them.
    let o = run(&t, &["completions"]);
    assert_fails_with(&o, 2, &["bash", "zsh", "fish"]);
    // man's SYNOPSIS gives options with their values.
    let o = run(&t, &["man", "sdcard"]);
    assert!(
        stdout(&o).contains("\\fB\\-\\-table\\fR \\fITABLE\\fR"),
        "{}",
        stdout(&o)
    );
    // One byte count for an image: the progress line and the result say the same.
    let o = run(
        &t,
        &[
            &["sdcard", "--image", "one.img"][..],
            &fw.iter().map(String::as_str).collect::<Vec<_>>(),
        ]
        .concat(),
    );
    assert_success(&o);
    let n = stderr(&o)
        .lines()
        .find_map(|l| {
            l.strip_prefix("pi-burn: writing image (")
                .map(|r| r.trim_end_matches(')').to_string())
        })
        .unwrap_or_else(|| panic!("{}", stderr(&o)));
    assert!(
        stdout(&o).contains(&format!("{n} written")),
        "{n}: {}",
        stdout(&o)
    );
    // images: every line says which node; a pi-burn.toml error names the file, not a node.
    let out = t.path("out").display().to_string();
    let mut args = vec!["images", "--flake", CLUSTER, "--out", &out];
    args.extend(fw.iter().map(String::as_str));
    let o = run(&t, &args);
    assert_success(&o);
    for l in stderr(&o).lines().filter(|l| l.contains("building")) {
        assert!(
            ["pi-alpha: ", "pi-beta: ", "pi-gamma: "]
                .iter()
                .any(|n| l.starts_with(&format!("pi-burn: {n}"))),
            "{l}"
        );
    }
    run_ok(tool("cp").args(["-rL", CLUSTER]).arg(t.path("bad")));
    std::fs::write(t.path("bad/pi-burn.toml"), "[defaults\n").unwrap();
    let bad = t.path("bad").display().to_string();
    let out2 = t.path("out2").display().to_string();
    let mut args = vec!["images", "--flake", &bad, "--out", &out2];
    args.extend(fw.iter().map(String::as_str));
    let o = run(&t, &args);
    assert_fails_with(&o, 2, &["pi-burn.toml: line 1"]);
    assert!(!stderr(&o).contains("node pi-"), "{}", stderr(&o));
}

/// Item 13: a node whose NixOS config boots with extlinux is named (the flake evaluation sees
/// it); a failed flake evaluation names the ways on without it.
fn a_config_that_boots_with_extlinux_is_refused() {
    if !have_nix() {
        return;
    }
    let t = TestDir::new();
    run_ok(tool("cp").args(["-rL", EDGE]).arg(t.path("edge")));
    let edge = t.path("edge").display().to_string();
    // The doctor's error refuses the node before anything is written (it was a warning, and
    // only under --eval flake: issue 27); --allow-config-errors writes it, saying so.
    let args = [
        "ssd", "--node", "extlinux", "--flake", &edge, "--image", "x.img", "--size", "4G",
    ];
    let o = run(&t, &args);
    assert_fails_with(
        &o,
        3,
        &[
            "generic-extlinux-compatible.enable = true",
            "--allow-config-errors",
        ],
    );
    assert!(!t.path("x.img").exists());
    let o = run(&t, &[&args[..], &["--allow-config-errors"]].concat());
    assert_success(&o);
    assert!(
        stderr(&o).contains("--allow-config-errors: writing anyway")
            && stderr(&o).contains("generic-extlinux-compatible"),
        "{}",
        stderr(&o)
    );
    std::fs::write(
        t.path("edge/flake.nix"),
        "{ outputs = { self }: throw \"no inputs here\"; }",
    )
    .unwrap();
    let o = run(
        &t,
        &[
            "ssd", "--node", "pi-alpha", "--flake", &edge, "--eval", "flake", "--image", "y.img",
            "--size", "4G",
        ],
    );
    assert_fails_with(&o, 1, &["--eval builtin", "--disko-json"]);
}

// This module's tests, for the runner in main.rs.
crate::tests![
    node_cards_are_gpt_only_and_each_node_s_ids_are_its_own,
    an_unprivileged_user_is_refused_before_the_question,
    the_plan_shows_what_is_on_the_disk,
    sizes_in_gb_are_si_and_inspect_names_what_is_not_a_card,
    custom_builds_in_the_cache_are_listed_and_found_offline,
    hints_and_messages_point_the_right_way,
    a_config_that_boots_with_extlinux_is_refused,
];
