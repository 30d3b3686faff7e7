//! The README's examples, run as written where they can be: every `pi-burn ...` line of its
//! `sh` blocks that names no device and writes nowhere outside the working directory, run in a
//! scratch directory where `fixtures/` is the repository's. Commands that fetch firmware get
//! the fixture zip and the test manifest appended (no network in tests); nothing else changes.

use crate::harness::*;
use std::path::Path;

const README: &str = include_str!("../../README.md");

/// The `pi-burn` command lines of the README's ```sh blocks, comments cut.
fn commands() -> Vec<String> {
    let mut out = vec![];
    let mut in_sh = false;
    for line in README.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let cmd = match line.find(" #") {
            Some(i) => &line[..i],
            None => line,
        }
        .trim();
        if cmd.starts_with("pi-burn ") {
            out.push(cmd.to_string());
        }
    }
    out
}

/// Why a README command is not run here, if it is not.
fn not_here(cmd: &str) -> Option<&'static str> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    if cmd.contains("/dev/") {
        return Some("names a device");
    }
    if cmd.contains('|') || cmd.contains('>') {
        return Some("a pipeline or a redirection");
    }
    if words
        .iter()
        .skip(1)
        .any(|w| w.starts_with('/') || w.starts_with('~') || w.starts_with("../"))
    {
        return Some("writes outside the working directory");
    }
    if words.contains(&"--firmware-url") {
        return Some("names a URL");
    }
    if cmd.contains("<your") || cmd.contains("HEX") || cmd.contains("OLD_BIN") {
        return Some("a placeholder");
    }
    if words
        .windows(2)
        .any(|w| w[0] == "--firmware" && w[1].starts_with("v1."))
    {
        return Some("a real release (the network or the real cache)");
    }
    match words.get(1) {
        // The real releases, from the network: not in tests.
        Some(&"firmware") if matches!(words.get(2), Some(&"fetch") | Some(&"list")) => {
            Some("the network or the real manifest")
        }
        Some(&"ssd") if !words.contains(&"--image") => Some("a device from the config"),
        Some(&"flash") => Some("a device"),
        _ => None,
    }
}

/// Does this subcommand obtain firmware (and so get the fixture zip appended)?
fn takes_firmware(cmd: &str) -> bool {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    matches!(words.get(1), Some(&"sdcard") | Some(&"images"))
        || (words.get(1) == Some(&"ssd") && words.contains(&"--with-firmware"))
        || (words.get(1) == Some(&"firmware") && words.get(2) == Some(&"export"))
        || (words.get(1) == Some(&"verify") && !words.contains(&"--firmware"))
}

fn readme_examples_run_as_written() {
    if !have_tool("mcopy") {
        return;
    }
    let t = TestDir::new();
    // The working directory is the cluster's flake (hosts/, pi-burn.toml: `--flake .`), with the
    // repository's fixtures/ beside them.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::os::unix::fs::symlink(repo.join("fixtures"), t.path("fixtures")).unwrap();
    let flake_into = |dir: &Path| {
        // Copied, not linked: `nix eval` copies the flake into the store without following
        // links.
        for f in ["hosts", "flake.nix", "pi-burn.toml"] {
            run_ok(
                std::process::Command::new("cp")
                    .arg("-r")
                    .arg(repo.join("fixtures/flake").join(f))
                    .arg(dir.join(f)),
            );
        }
    };
    flake_into(&t.path(""));
    // A flake in git, as a user's is: nix copies only its tracked files into the store (not the
    // images the examples write beside them).
    std::fs::write(
        t.path(".gitignore"),
        "*\n!hosts/\n!hosts/**\n!flake.nix\n!pi-burn.toml\n!.gitignore\n",
    )
    .unwrap();
    run_ok(tool("git").args(["init", "-q"]).current_dir(t.path("")));
    run_ok(tool("git").args(["add", "."]).current_dir(t.path("")));
    // A node's options as `doctor --json` prints them (for the --options-json example).
    std::fs::write(t.path("pi-beta-options.json"), "{}").unwrap();
    // What the README's examples start from: release zips and an RPI_EFI.fd in the directory.
    let zip = fixture_zip("rpi4", None);
    for name in ["RPi4_UEFI_Firmware_v1.50.zip", "fw.zip"] {
        std::fs::copy(&zip, t.path(name)).unwrap();
    }
    let fd = zip_files(&zip)
        .into_iter()
        .find(|(p, _)| p == "RPI_EFI.fd")
        .unwrap()
        .1;
    std::fs::write(t.path("RPI_EFI.fd"), fd).unwrap();
    let mut ran = 0;
    for cmd in commands() {
        if let Some(why) = not_here(&cmd) {
            eprintln!("README example not run ({why}): {cmd}");
            continue;
        }
        let evaluates = cmd.contains("--eval flake")
            || (cmd.contains(" doctor ") && !cmd.contains("--options-json"));
        if evaluates && !have_nix() {
            continue;
        }
        let mut args: Vec<String> = cmd.split_whitespace().skip(1).map(str::to_string).collect();
        let verify_zip = args.first().map(String::as_str) == Some("firmware")
            && args.get(1).map(String::as_str) == Some("verify");
        let sub = args.first().map(String::as_str);
        if sub == Some("eeprom") {
            // The bootloader release from the synthetic fixtures, pinned by the test manifest.
            args.extend(["--manifest".into(), MANIFEST.into()]);
            for (flag, f) in [
                ("--eeprom-file", "pieeprom-2711.bin"),
                ("--recovery-file", "recovery-2711.bin"),
                ("--vl805-file", "vl805.bin"),
            ] {
                args.extend([flag.into(), eeprom_fixture(f).display().to_string()]);
            }
        } else if sub == Some("inspect") {
            args.extend(["--manifest".into(), MANIFEST.into()]);
        } else if args.iter().any(|a| a == "--firmware-zip") || verify_zip {
            // Its own zip (the fixture under that name), pinned by the test manifest.
            args.extend(["--manifest".into(), MANIFEST.into()]);
        } else if takes_firmware(&cmd) {
            args.extend([
                "--firmware-zip".into(),
                zip.display().to_string(),
                "--manifest".into(),
                MANIFEST.into(),
            ]);
        }
        // A command that names the test manifest itself keeps it once.
        if cmd.contains("--manifest fixtures/test-manifest.toml") {
            if let Some(i) = args.iter().rposition(|a| a == MANIFEST) {
                args.drain(i - 1..=i);
            }
        }
        // `verify --image` right after `sdcard --image` of the same file: as the README runs them.
        let o = t.pi_burn().args(&args).output().unwrap();
        assert!(
            o.status.success(),
            "README example failed: {cmd}\nexit {:?}\n{}{}",
            o.status.code(),
            stdout(&o),
            stderr(&o)
        );
        ran += 1;
    }
    assert!(ran >= 10, "only {ran} README examples ran");
    assert!(Path::new(&t.path("out/pi-beta-sdcard.img")).is_file());
}

// This module's tests, for the runner in main.rs.
crate::tests![readme_examples_run_as_written,];
