//! Golden images in CI (issue 31): `images --compress zstd` with SHA256SUMS, the images as a Nix
//! derivation (nix/images.nix) built offline with Debian's nix-bin, and the repository's
//! flake.nix evaluated without nixpkgs.
//!
//! The Nix builds run with the sandbox off: the pi-burn under test is this build's glibc-linked
//! binary, which runs in a build only when the host's /lib is visible (shared/FACTS.md 15); a
//! user's flake builds pi-burn with nixpkgs instead and needs no such option.

use crate::harness::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const CLUSTER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/flake");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn copy(t: &TestDir, from: &str, name: &str) -> PathBuf {
    run_ok(tool("cp").args(["-rL", from]).arg(t.path(name)));
    t.path(name)
}

/// nix-build offline: no sandbox (see above), no build users (root, single-user store), no
/// binary cache.
fn nix_build(expr: &str, extra: &[&str]) -> Output {
    Command::new("nix-build")
        .args(["--option", "sandbox", "false"])
        .args(["--option", "build-users-group", ""])
        .args(["--option", "substituters", ""])
        .args(["--extra-experimental-features", "nix-command flakes"])
        .arg("--no-out-link")
        .args(extra)
        .args(["-E", expr])
        .output()
        .unwrap()
}

/// The store path a successful nix-build printed.
fn built(o: &Output) -> PathBuf {
    assert!(o.status.success(), "nix-build failed: {}", stderr(o));
    PathBuf::from(stdout(o).trim())
}

/// This pi-burn as a store path (a copy, so that a new binary is a new derivation).
fn pi_burn_dir(t: &TestDir) -> PathBuf {
    let dir = t.path("pb");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_pi-burn"), dir.join("bin/pi-burn")).unwrap();
    dir
}

/// `import nix/images.nix { ... }` for the flake copy at `flake`, plus `args` (Nix text).
fn images_expr(pb: &Path, flake: &Path, args: &str) -> String {
    format!(
        r#"import {ROOT}/nix/images.nix {{
  pi-burn = builtins.path {{ path = "{}"; name = "pi-burn"; }};
  flake = builtins.getFlake "path:{}";
  {args}
}}"#,
        pb.display(),
        flake.display()
    )
}

/// Whether the zstd stream `zst` decompresses to exactly the bytes of `raw`.
fn same_after_zstd(zst: &Path, raw: &Path) -> bool {
    let mut z = tool("zstd")
        .args(["-dc", "-q"])
        .arg(zst)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut a = z.stdout.take().unwrap();
    let mut b = std::fs::File::open(raw).unwrap();
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let same = loop {
        let n = read_full(&mut a, &mut x);
        let m = read_full(&mut b, &mut y);
        if n != m || x[..n] != y[..m] {
            break false;
        }
        if n == 0 {
            break true;
        }
    };
    drop(a);
    let _ = z.wait();
    same
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

fn sha256sum_check(dir: &Path) {
    run_ok(
        tool("sha256sum")
            .args(["-c", "--strict", "SHA256SUMS"])
            .current_dir(dir),
    );
}

/// The derivation, built offline from the fixture flake and the fixture zip: the same images as
/// `pi-burn images` (decompressed, byte for byte, with the same block maps), SHA256SUMS that
/// `sha256sum -c` accepts, the non-Pi host left out, and a `--check` rebuild bit for bit. The
/// fixed-output fetch (a file:// URL with the zip's SHA-256) builds too; a release pinned only
/// by its NAR hash is refused at evaluation, naming what to give.
fn the_nix_derivation_builds_pi_burn_s_own_images_offline() {
    if !(have_nix() && is_root() && have_tool("zstd") && have_tool("sha256sum")) {
        return;
    }
    let t = TestDir::new();
    let flake = copy(&t, CLUSTER, "cluster");
    let pb = pi_burn_dir(&t);
    let zip = fixture_zip("rpi4", None);
    let expr = images_expr(
        &pb,
        &flake,
        &format!("firmwareZip = {}; manifest = {MANIFEST};", zip.display()),
    );
    let start = std::time::Instant::now();
    let out = built(&nix_build(&expr, &[]));
    eprintln!("nix build of the images: {:?}", start.elapsed());
    sha256sum_check(&out);
    let raw = t.path("raw");
    let o = t.images(&flake, &raw, &["--eval", "flake"]);
    assert_success(&o);
    assert_stderr_has(&o, "left out: ocean");
    let mut names: Vec<String> = std::fs::read_dir(&raw)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".img"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 6, "{names:?}");
    for n in &names {
        let zst = out.join(format!("{n}.zst"));
        assert!(same_after_zstd(&zst, &raw.join(n)), "{n} differs");
        assert_eq!(
            std::fs::read(out.join(format!("{n}.bmap"))).unwrap(),
            std::fs::read(raw.join(format!("{n}.bmap"))).unwrap(),
            "{n}.bmap"
        );
    }
    // Nothing else in the output but the sums.
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        2 * names.len() + 1
    );
    // Rebuilt, bit for bit.
    assert_success(&nix_build(&expr, &["--check"]));
    // The fixed-output fetch: the manifest's URL (file://, offline) and the zip's own pin.
    let manifest = t.path("pinned.toml");
    let sha = sha256_file(&zip);
    let text = std::fs::read_to_string(MANIFEST).unwrap().replacen(
        "url = \"http://127.0.0.1:9/RPi4_UEFI_Firmware_v9.0.zip\"",
        &format!("url = \"file://{}\"\nsha256 = \"{sha}\"", zip.display()),
        1,
    );
    std::fs::write(&manifest, text).unwrap();
    let fetched = built(&nix_build(
        &images_expr(
            &pb,
            &flake,
            &format!(
                "manifest = {}; nodes = [ \"pi-alpha\" ];",
                manifest.display()
            ),
        ),
        &[],
    ));
    sha256sum_check(&fetched);
    let mut got: Vec<String> = std::fs::read_dir(&fetched)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "SHA256SUMS",
            "pi-alpha-sdcard.img.bmap",
            "pi-alpha-sdcard.img.zst",
            "pi-alpha-ssd.img.bmap",
            "pi-alpha-ssd.img.zst"
        ]
    );
    // Pinned by the NAR hash only: no fixed-output fetch is possible; said at evaluation.
    let o = nix_build(
        &images_expr(&pb, &flake, &format!("manifest = {MANIFEST};")),
        &[],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("by the NAR hash of its unpacked tree only")
            && stderr(&o).contains("pass sha256 = ")
            && stderr(&o).contains("firmwareZip = "),
        "{}",
        stderr(&o)
    );
}

/// flake.nix and nix/images.nix parse; lib.images, called through the flake's outputs with a
/// stub for nixpkgs (nothing of it is needed when `pi-burn` is given), instantiates the
/// derivation. Building packages.default needs nixpkgs and is not checked here.
fn the_flake_parses_and_lib_images_evaluates_without_nixpkgs() {
    if !(have_nix() && is_root()) {
        return;
    }
    for f in ["flake.nix", "nix/images.nix", "nix/eval.nix"] {
        run_ok(Command::new("nix-instantiate").args(["--parse", &format!("{ROOT}/{f}")]));
    }
    let t = TestDir::new();
    let flake = copy(&t, CLUSTER, "cluster");
    let zip = fixture_zip("rpi4", None);
    let expr = format!(
        r#"let
  stub = {{
    lib.genAttrs = names: f: builtins.listToAttrs (map (n: {{ name = n; value = f n; }}) names);
    legacyPackages = {{ }};
  }};
  self = (import {ROOT}/flake.nix).outputs {{ inherit self; nixpkgs = stub; }} // {{ outPath = {ROOT}; }};
in self.lib.images {{
  system = builtins.currentSystem;
  pi-burn = "/nonexistent";
  flake = builtins.getFlake "path:{}";
  firmwareZip = {};
  manifest = {MANIFEST};
}}"#,
        flake.display(),
        zip.display()
    );
    let o = Command::new("nix-instantiate")
        .args(["--extra-experimental-features", "nix-command flakes"])
        .args(["--option", "substituters", ""])
        .args(["-E", &expr])
        .output()
        .unwrap();
    assert_success(&o);
    let drv = stdout(&o).trim().to_string();
    assert!(drv.ends_with("-pi-burn-images.drv"), "{drv}");
    // The derivation runs pi-burn images on the flake as Nix evaluated it.
    let shown = run_ok(Command::new("nix").args([
        "--extra-experimental-features",
        "nix-command",
        "show-derivation",
        &drv,
    ]));
    for arg in [
        "/nonexistent/bin/pi-burn",
        "--eval-json",
        "--compress",
        "zstd",
    ] {
        assert!(shown.contains(arg), "{arg}: {shown}");
    }
    // The flake's outputs name the package, app, overlay and lib.
    let o = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E"])
        .arg(format!(
            r#"let stub = {{ lib.genAttrs = names: f: builtins.listToAttrs (map (n: {{ name = n; value = f n; }}) names); legacyPackages = {{ }}; }};
o = (import {ROOT}/flake.nix).outputs {{ self = o; nixpkgs = stub; }};
in [ (builtins.attrNames o) (builtins.attrNames o.packages) (builtins.attrNames o.packages.x86_64-linux) ]"#
        ))
        .output()
        .unwrap();
    assert_success(&o);
    assert_eq!(
        stdout(&o).trim(),
        r#"[["apps","lib","overlays","packages"],["aarch64-linux","x86_64-linux"],["default","pi-burn"]]"#
    );
}

/// `images --compress zstd`: each image as .zst beside its raw image's .bmap, SHA256SUMS that
/// `sha256sum -c` accepts, streams `zstd -t` accepts; a .zst flashes with its block map (only
/// the mapped bytes) and the card verifies; --force replaces the compressed set.
fn images_compress_zstd_writes_sums_and_the_zst_flashes() {
    if !(is_root() && have_tool("zstd") && have_tool("sha256sum")) {
        return;
    }
    let t = TestDir::new();
    let flake = copy(&t, CLUSTER, "cluster");
    let out = t.path("set");
    let images = |extra: &[&str]| {
        let mut a = vec![
            "--eval",
            "builtin",
            "--node",
            "pi-beta",
            "--compress",
            "zstd",
        ];
        a.extend_from_slice(extra);
        t.images(&flake, &out, &a)
    };
    let o = images(&[]);
    assert_success(&o);
    assert_stdout_has(&o, "pi-beta-sdcard.img.zst");
    sha256sum_check(&out);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "SHA256SUMS",
            "pi-beta-sdcard.img.bmap",
            "pi-beta-sdcard.img.zst",
            "pi-beta-ssd.img.bmap",
            "pi-beta-ssd.img.zst"
        ]
    );
    run_ok(
        tool("zstd")
            .args(["-t", "-q"])
            .arg(out.join("pi-beta-sdcard.img.zst"))
            .arg(out.join("pi-beta-ssd.img.zst")),
    );
    // A 2 GiB SSD image of tables only: a few hundred KiB.
    assert!(
        std::fs::metadata(out.join("pi-beta-ssd.img.zst"))
            .unwrap()
            .len()
            < 512 << 10
    );
    // Flashed with its block map, found beside it: the mapped bytes only.
    let dev_file = t.path("dev.img");
    std::fs::File::create(&dev_file)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let lo = Loop::attach(&dev_file, 512, false);
    let before = loop_bytes_written(&lo.dev);
    let o = t
        .pi_burn()
        .args(["flash", "--yes", "--no-probe"])
        .arg(out.join("pi-beta-sdcard.img.zst"))
        .arg(&lo.dev)
        .output()
        .unwrap();
    assert_success(&o);
    let written = loop_bytes_written(&lo.dev) - before;
    assert!(
        written < 16 << 20,
        "flashed {written} bytes of a 514 MiB image"
    );
    // The card as its record says it was made (the node's settings included).
    let o = t
        .pi_burn()
        .args(["inspect", &lo.dev, "--manifest", MANIFEST])
        .output()
        .unwrap();
    assert_success(&o);
    drop(lo);
    // --force replaces pi-burn's own compressed set, sums included.
    let o = images(&["--force"]);
    assert_success(&o);
    sha256sum_check(&out);
}

/// `images --eval-json`: what Nix evaluated, checked before anything is written; each bad file
/// a one-line error naming it, exit 2 for a file that is not what the flag takes.
fn a_bad_eval_json_is_refused_and_nothing_is_written() {
    let t = TestDir::new();
    let flake = copy(&t, CLUSTER, "cluster");
    let good = serde_json::json!({
        "devices": { "disk": {} },
        "options": {},
    });
    let cases: [(&str, String, i32, &str); 5] = [
        ("list", "[]".into(), 2, "not an object of nodes"),
        ("text", "{".into(), 1, "not JSON"),
        (
            "no-options",
            serde_json::json!({ "pi-alpha": { "devices": {} } }).to_string(),
            2,
            "node pi-alpha has no devices and options",
        ),
        (
            "stranger",
            serde_json::json!({ "pi-omega": good }).to_string(),
            2,
            "node pi-omega is not a host of --flake",
        ),
        (
            "misspelt-option",
            serde_json::json!({ "pi-alpha": {
                "devices": { "disk": {} },
                "options": { "boot.loader.systemd-boot.enabled": true },
            } })
            .to_string(),
            1,
            "is not an option the doctor reads",
        ),
    ];
    for (name, text, code, says) in cases {
        let file = t.path(&format!("{name}.json"));
        std::fs::write(&file, text).unwrap();
        let out = t.path(&format!("out-{name}"));
        let o = t
            .pi_burn()
            .args(["images", "--flake"])
            .arg(&flake)
            .arg("--eval-json")
            .arg(&file)
            .arg("--out")
            .arg(&out)
            .arg("--firmware-zip")
            .arg(fixture_zip("rpi4", None))
            .args(["--manifest", MANIFEST])
            .output()
            .unwrap();
        assert_fails_with(&o, code, &[says]);
        assert!(!out.exists(), "{name}: {} was made", out.display());
    }
    // Past the bound: refused unread.
    let big = t.path("big.json");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    let o = t
        .pi_burn()
        .args(["images", "--flake"])
        .arg(&flake)
        .arg("--eval-json")
        .arg(&big)
        .args(["--out", "x"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert_stderr_has(&o, "--eval-json");
}

crate::tests![
    the_nix_derivation_builds_pi_burn_s_own_images_offline,
    the_flake_parses_and_lib_images_evaluates_without_nixpkgs,
    images_compress_zstd_writes_sums_and_the_zst_flashes,
    a_bad_eval_json_is_refused_and_nothing_is_written,
];
