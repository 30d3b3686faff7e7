//! Hostile inputs (issue 24), each at its bound: an answer within seconds and bounded memory,
//! a one-line error or a correct result, never a panic or an abort.

use crate::harness::*;
use pi_burn::disk::fat::bpb::Bpb;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
/// The address space every pi-burn here gets: a run that grows past it aborts, and fails.
const MEMORY: u64 = 1 << 30;

/// `cmd` under the memory cap, timed: its output and how long it took.
fn capped(mut cmd: Command) -> (Output, Duration) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit(2) is async-signal-safe and only sets the child's own limit.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: MEMORY,
                rlim_max: MEMORY,
            };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    let t0 = Instant::now();
    let o = cmd.stdin(Stdio::null()).output().unwrap();
    (o, t0.elapsed())
}

/// A one-line failure with `code` within `secs` seconds, naming `needles` (a difference, exit
/// 3, is named on stdout).
fn bounded_failure((o, took): (Output, Duration), code: i32, secs: u64, needles: &[&str]) {
    assert!(took < Duration::from_secs(secs), "took {took:?}");
    // verify lists what differs on stdout; inspect and the others say what they found on
    // stderr (both exit 3: the card is not intact).
    if code == 3 && stderr(&o).contains("verification failed") {
        assert_fails_with(&o, 3, &["verification failed"]);
        let out = stdout(&o);
        assert!(out.lines().count() <= 2 && out.len() < 4000, "{out}");
        for n in needles {
            assert!(out.contains(n), "{n}: {out}");
        }
    } else {
        assert_fails_with(&o, code, needles);
    }
    let last = stderr(&o).lines().last().unwrap_or_default().len();
    assert!(last < 4000, "a {last}-character error line");
}

/// A card image's FAT: (offset of the volume, its geometry).
fn fat_of(img: &Path) -> (u64, Bpb) {
    let mut bs = vec![0u8; 512];
    std::fs::File::open(img)
        .unwrap()
        .read_exact_at(&mut bs, MIB)
        .unwrap();
    (MIB, Bpb::parse(&bs, 512 * MIB).unwrap())
}

fn write_at(img: &Path, off: u64, data: &[u8]) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(img)
        .unwrap()
        .write_all_at(data, off)
        .unwrap();
}

fn read_at(img: &Path, off: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    std::fs::File::open(img)
        .unwrap()
        .read_exact_at(&mut b, off)
        .unwrap();
    b
}

/// Where the root directory's entry with short name `sfn` is.
fn root_entry(img: &Path, sfn: &[u8; 11]) -> u64 {
    let (base, b) = fat_of(img);
    let root = base + b.cluster_offset(b.root_cluster);
    let dir = read_at(img, root, b.cluster_size() as usize);
    let i = dir
        .chunks_exact(32)
        .position(|e| &e[..11] == sfn)
        .unwrap_or_else(|| panic!("no {sfn:?} in the root"));
    root + 32 * i as u64
}

/// The free entry slot after the root directory's last entry.
fn root_free_slot(img: &Path) -> u64 {
    let (base, b) = fat_of(img);
    let root = base + b.cluster_offset(b.root_cluster);
    let dir = read_at(img, root, b.cluster_size() as usize);
    let i = dir.chunks_exact(32).position(|e| e[0] == 0).unwrap();
    root + 32 * i as u64
}

fn set_fat(img: &Path, cluster: u32, next: u32) {
    let (base, b) = fat_of(img);
    write_at(
        img,
        base + b.fat_start() + 4 * cluster as u64,
        &next.to_le_bytes(),
    );
}

fn dir_entry(name: &[u8; 11], attr: u8, cluster: u32, size: u32) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[..11].copy_from_slice(name);
    e[11] = attr;
    e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

/// The readers of a card, each with the exit code a damaged FAT gives it (verify: a
/// difference).
fn readers(t: &TestDir, img: &Path) -> Vec<(Command, i32)> {
    let mut out = vec![];
    for (args, code) in [
        // A card that is not intact is exit 3 for every reader (issue 30 item 15).
        (&["inspect", "--image"][..], 3),
        (&["verify", "--image"][..], 3),
        (&["firmware", "settings", "--image"][..], 3),
    ] {
        let mut c = t.pi_burn();
        c.args(args).arg(img);
        out.push((c, code));
    }
    out
}

/// Items 5 and 6: a directory pointing back at the root, and 60,000 entries sharing one
/// 100,000-cluster chain: each reader answers in seconds within 1 GiB, with one short line.
fn looping_and_cross_linked_fats_are_named_within_bounds() {
    let t = TestDir::new();
    assert_success(&t.sdcard("loop.img", &[]));
    let img = t.path("loop.img");
    let at = root_entry(&img, b"OVERLAYS   ");
    let mut e = read_at(&img, at, 32);
    e[20..22].fill(0);
    e[26..28].copy_from_slice(&2u16.to_le_bytes());
    write_at(&img, at, &e);
    for (c, code) in readers(&t, &img) {
        bounded_failure(capped(c), code, 10, &["share cluster 2"]);
    }
    // devices reads every portable disk: one hostile stick does not take it down.
    if is_root() && have_tool("losetup") {
        let lo = Loop::attach(&img, 512, true);
        let mut c = t.pi_burn();
        c.args(["--json", "devices"]);
        let (o, took) = capped(c);
        assert_success(&o);
        assert!(took < Duration::from_secs(20), "devices took {took:?}");
        let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        let row = j["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["path"] == lo.dev.as_str())
            .unwrap()
            .clone();
        assert!(row["holds"].to_string().contains("cannot be read"), "{row}");
    }
    assert_success(&t.sdcard("cross.img", &[]));
    let img = t.path("cross.img");
    let (base, b) = fat_of(&img);
    let (chain0, chain_len) = (20_000u32, 100_000u32);
    let mut fat = vec![0u8; 4 * chain_len as usize];
    for k in 0..chain_len {
        let next = if k + 1 == chain_len {
            0x0FFF_FFFF
        } else {
            chain0 + k + 1
        };
        fat[4 * k as usize..4 * k as usize + 4].copy_from_slice(&next.to_le_bytes());
    }
    write_at(&img, base + b.fat_start() + 4 * chain0 as u64, &fat);
    let entries: Vec<u8> = (0..60_000u32)
        .flat_map(|i| {
            let name: [u8; 11] = format!("X{i:07}BIN").as_bytes().try_into().unwrap();
            dir_entry(&name, 0x20, chain0, 0x1000_0000)
        })
        .collect();
    let dir0 = 10_000u32;
    let dir_clusters = entries.len().div_ceil(b.cluster_size() as usize) as u32;
    for k in 0..dir_clusters {
        let next = if k + 1 == dir_clusters {
            0x0FFF_FFFF
        } else {
            dir0 + k + 1
        };
        set_fat(&img, dir0 + k, next);
    }
    write_at(&img, base + b.cluster_offset(dir0), &entries);
    write_at(
        &img,
        root_free_slot(&img),
        &dir_entry(b"BIG        ", 0x10, dir0, 0),
    );
    for (c, code) in readers(&t, &img) {
        bounded_failure(capped(c), code, 20, &["cross-linked", "more problems"]);
    }
}

/// Item 7: a card of 5,000 directories of one file each is read back in seconds.
fn a_card_of_thousands_of_directories_is_read_back_linearly() {
    let t = TestDir::new();
    let base = fixture_zip("rpi4", None);
    let zip = t.path("dirs.zip");
    let script = format!(
        "import zipfile\nb = zipfile.ZipFile({:?})\nz = zipfile.ZipFile({:?}, 'w')\nfor i in b.infolist(): z.writestr(i, b.read(i.filename))\nfor i in range(5000): z.writestr('d%d/f.txt' % i, b'x')\nz.close()\n",
        base.display().to_string(),
        zip.display().to_string()
    );
    run_ok(Command::new("python3").args(["-c", &script]));
    let sha = sha256_file(&zip);
    let o = t
        .pi_burn()
        .args([
            "sdcard",
            "--image",
            "dirs.img",
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
    let mut c = t.pi_burn();
    c.args(["inspect", "--image"]).arg(t.path("dirs.img"));
    let (o, took) = capped(c);
    assert_success(&o);
    assert!(took < Duration::from_secs(15), "inspect took {took:?}");
}

/// Items 8 to 10: inputs with no end, or far past what their format holds.
fn endless_and_oversized_inputs_are_refused_within_bounds() {
    let t = TestDir::new();
    let mut c = t.pi_burn();
    c.args(["firmware", "settings", "/dev/zero"]);
    bounded_failure(capped(c), 1, 10, &["/dev/zero", "larger than"]);
    // A 48 KB image claiming a huge GPT entry array.
    let mut img = vec![0u8; 48 << 10];
    img[510] = 0x55;
    img[511] = 0xAA;
    img[446 + 4] = 0xEE;
    img[512..520].copy_from_slice(b"EFI PART");
    std::fs::write(t.path("tiny.img"), &img).unwrap();
    let mut c = t.pi_burn();
    c.args(["inspect", "--image"]).arg(t.path("tiny.img"));
    let (o, took) = capped(c);
    assert!(took < Duration::from_secs(5));
    assert_fails_with(&o, 1, &["tiny.img"]);
    // A 250 KB operator chain for the built-in Nix evaluator.
    let flake = t.path("f");
    std::fs::create_dir_all(flake.join("hosts/n")).unwrap();
    let chain = vec!["1"; 125_000].join("+");
    std::fs::write(
        flake.join("hosts/n/disk-config.nix"),
        format!("{{ disko.devices.disk.x.imageSize = {chain}; }}"),
    )
    .unwrap();
    let mut c = t.pi_burn();
    c.args([
        "ssd", "--node", "n", "--eval", "builtin", "--image", "x.img", "--size", "1G", "--flake",
    ])
    .arg(&flake);
    bounded_failure(
        capped(c),
        1,
        10,
        &["more than 256 operators", "disk-config.nix:1:"],
    );
    // pi-burn.toml: a 2 MiB file, a config.txt line past the boot loader's 98 characters.
    let fw = fixture_zip("rpi4", None);
    let cluster = t.path("cluster");
    run_ok(
        tool("cp")
            .args([
                "-rL",
                concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake"),
            ])
            .arg(&cluster),
    );
    for (toml, want) in [
        (
            format!(
                "[defaults]\nconfig_txt = {{ x = \"{}\" }}\n",
                "y".repeat(2 << 20)
            ),
            "larger than",
        ),
        (
            format!(
                "[defaults]\nconfig_txt = {{ x = \"{}\" }}\n",
                "y".repeat(100)
            ),
            "at most 98",
        ),
        (
            "[defaults]\nuefi = { Timeout = 2, timeout = 3 }\n".to_string(),
            "one setting",
        ),
    ] {
        std::fs::write(cluster.join("pi-burn.toml"), toml).unwrap();
        let mut c = t.pi_burn();
        c.args([
            "sdcard",
            "--image",
            "n.img",
            "--node",
            "pi-alpha",
            "--manifest",
            MANIFEST,
        ])
        .arg("--flake")
        .arg(&cluster)
        .arg("--firmware-zip")
        .arg(&fw);
        bounded_failure(capped(c), 2, 10, &["pi-burn.toml", want]);
    }
    assert!(!t.path("n.img").exists());
}

/// Item 12: a record's text cannot put terminal escapes into inspect's output.
fn a_record_s_text_is_printed_escaped() {
    if !have_tool("mcopy") {
        return;
    }
    let t = TestDir::new();
    assert_success(&t.sdcard("e.img", &[]));
    let img = t.path("e.img");
    let spec = format!("{}@@{MIB}", img.display());
    let rec = run_ok(tool("mtype").args(["-i", &spec, "::/pi-burn.json"]));
    let evil = rec.replace(
        "\"node\": null",
        "\"node\": \"pi\\u001b[2J\\u001b]0;owned\\u0007\"",
    );
    assert_ne!(rec, evil, "the record has a node field");
    std::fs::write(t.path("rec"), evil).unwrap();
    run_ok(
        tool("mcopy")
            .args(["-o", "-i", &spec])
            .arg(t.path("rec"))
            .arg("::/pi-burn.json"),
    );
    let o = t
        .pi_burn()
        .args(["inspect", "--image"])
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        !o.stdout.contains(&0x1b) && !o.stderr.contains(&0x1b),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("pi\\u{1b}[2J"), "{}", stdout(&o));
}

/// Items 1, 4 and 15: a truncated raw image is refused before any write; `images` is all or
/// nothing; a killed export's directory is removed by the next run; a user's own IMAGE.bmap
/// is not replaced without --force.
fn partial_outputs_never_stand_as_whole_ones() {
    let t = TestDir::new();
    let fw: Vec<String> = vec![
        "--firmware-zip".into(),
        fixture_zip("rpi4", None).display().to_string(),
        "--manifest".into(),
        MANIFEST.into(),
    ];
    let fw: Vec<&str> = fw.iter().map(String::as_str).collect();
    // images: a second run into a full --out is refused; one that fails leaves nothing.
    let cluster = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake");
    let images = |out: &str, extra: &[&str]| {
        let mut a = vec!["images", "--flake", cluster, "--out", out];
        a.extend(&fw);
        a.extend(extra);
        t.pi_burn().args(a).output().unwrap()
    };
    assert_success(&images("out", &["--ssd-size", "2G"]));
    assert_fails_with(&images("out", &[]), 2, &["not empty", "--force"]);
    let o = images("fail", &["--ssd-size", "64T"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!t.path("fail").exists(), "a failed run leaves no --out");
    assert_success(&images("out", &["--force", "--ssd-size", "3G"]));
    let names: Vec<String> = std::fs::read_dir(t.path("."))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".pi-burn-")), "{names:?}");
    assert_eq!(
        std::fs::metadata(t.path("out/pi-beta-ssd.img"))
            .unwrap()
            .len(),
        3 << 30
    );
    // A killed export's staging directory (its process gone) is removed by the next run.
    let stale = t.path(".tftp.pi-burn-4294960.tmp");
    std::fs::create_dir(&stale).unwrap();
    let mut a = vec!["firmware", "export", "--dir", "tftp"];
    a.extend(&fw);
    assert_success(&t.pi_burn().args(a).output().unwrap());
    assert!(!stale.exists());
    // A block map pi-burn did not write is not replaced without --force.
    std::fs::write(t.path("mine.img.bmap"), "my notes").unwrap();
    let o = t.sdcard("mine.img", &[]);
    assert_fails_with(&o, 1, &["mine.img.bmap", "--force"]);
    assert_eq!(
        std::fs::read_to_string(t.path("mine.img.bmap")).unwrap(),
        "my notes"
    );
    assert_success(&t.sdcard("mine.img", &["--force"]));
    // A raw GPT image cut short (a partial download) is refused before anything is written.
    if !(is_root() && have_tool("losetup")) {
        return;
    }
    assert_success(&t.sdcard("whole.img", &[]));
    let whole = std::fs::read(t.path("whole.img")).unwrap();
    std::fs::write(t.path("cut.img"), &whole[..(120 * MIB) as usize]).unwrap();
    let dev = t.path("card.dev");
    std::fs::File::create(&dev)
        .unwrap()
        .set_len(600 * MIB)
        .unwrap();
    write_at(&dev, 0, b"old contents");
    let lo = Loop::attach(&dev, 512, false);
    for extra in [&["--dry-run"][..], &[][..]] {
        let o = t
            .pi_burn()
            .args(["flash", "cut.img", &lo.dev, "--yes", "--no-bmap"])
            .args(extra)
            .output()
            .unwrap();
        assert_ne!(o.status.code(), Some(0));
        assert!(
            format!("{}{}", stdout(&o), stderr(&o)).contains("truncated"),
            "{}{}",
            stdout(&o),
            stderr(&o)
        );
    }
    drop(lo);
    assert_eq!(
        read_at(&dev, 0, 12),
        b"old contents",
        "the device was not touched"
    );
}

/// Issue 30 item 1: `images --force` only ever replaces pi-burn's own earlier output. An
/// --out that is the flake, or holds it, is refused (it deleted .git, flake.nix and hosts/);
/// so is one holding anything else, named; the earlier set is replaced.
fn images_force_never_deletes_the_flake_or_files_it_did_not_make() {
    let t = TestDir::new();
    // A flake in git, with a file of the user's that nothing else holds.
    let flake = t.path("cluster");
    copy_tree(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake")),
        &flake,
    );
    std::fs::create_dir_all(flake.join(".git")).unwrap();
    std::fs::write(flake.join("notes.txt"), "uncommitted work").unwrap();
    let images = |out: &Path| t.images(&flake, out, &["--force"]);
    let before = tree(&flake);
    for out in [flake.clone(), t.path("."), flake.join("hosts")] {
        let o = images(&out);
        let needle = if out == flake.join("hosts") {
            "replaces only pi-burn's own"
        } else {
            "holds the flake"
        };
        assert_fails_with(&o, 4, &[needle]);
        assert_eq!(
            tree(&flake),
            before,
            "--out {}: the flake changed",
            out.display()
        );
    }
    // An --out holding a file of the user's: refused, the file named and kept.
    let out = t.path("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("thesis.odt"), "years of work").unwrap();
    assert_fails_with(&images(&out), 4, &["thesis.odt"]);
    assert_eq!(
        std::fs::read(out.join("thesis.odt")).unwrap(),
        b"years of work"
    );
    // A file named as pi-burn names its images but holding something else: kept too.
    std::fs::remove_file(out.join("thesis.odt")).unwrap();
    std::fs::write(out.join("pi-alpha-sdcard.img"), "not an image").unwrap();
    assert_fails_with(&images(&out), 4, &["pi-alpha-sdcard.img", "content"]);
    // pi-burn's own earlier set is replaced.
    std::fs::remove_file(out.join("pi-alpha-sdcard.img")).unwrap();
    assert_success(&images(&out));
    let first = tree(&out);
    assert_success(&images(&out));
    assert_eq!(tree(&out), first);
    assert_eq!(tree(&flake), before);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Every file under `dir` with its SHA-256 (an image by its size: its block map beside it
/// holds the SHA-256 of every mapped range).
fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else if p.extension().is_some_and(|x| x == "img") {
            let len = std::fs::metadata(&p).unwrap().len();
            out.push((p.display().to_string(), len.to_string()));
        } else {
            out.push((p.display().to_string(), sha256_file(&p)));
        }
    }
    out.sort();
    out
}

// This module's tests, for the runner in main.rs.
crate::tests![
    images_force_never_deletes_the_flake_or_files_it_did_not_make,
    looping_and_cross_linked_fats_are_named_within_bounds,
    a_card_of_thousands_of_directories_is_read_back_linearly,
    endless_and_oversized_inputs_are_refused_within_bounds,
    a_record_s_text_is_printed_escaped,
    partial_outputs_never_stand_as_whole_ones,
];
