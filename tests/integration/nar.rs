//! The NAR hash pi-burn computes against Nix's own tools on the same trees.

use crate::harness::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// (path, contents, executable); a path ending in '/' is an empty directory.
const TREE: &[(&str, &[u8], bool)] = &[
    ("B", b"upper case first in byte order", false),
    ("a", b"lower case", false),
    ("_under", b"", false),
    ("empty-file", b"", false),
    ("run.sh", b"#!/bin/sh\necho hi\n", true),
    ("dir/Zeta.txt", b"zeta", false),
    ("dir/alpha.txt", b"alpha", false),
    ("dir/sub/deeper/x.bin", &[0, 1, 2, 3, 255], false),
    ("dir/sub/y", b"exactly eight!!!", false),
    ("empty-dir/", b"", false),
];

fn build(dir: &Path, zip_path: &Path) {
    let mut w = zip::ZipWriter::new(std::fs::File::create(zip_path).unwrap());
    for (p, data, exec) in TREE {
        let mode = if *exec { 0o755 } else { 0o644 };
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(mode);
        if let Some(d) = p.strip_suffix('/') {
            std::fs::create_dir_all(dir.join(d)).unwrap();
            w.add_directory(*p, opts).unwrap();
            continue;
        }
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, data).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        w.start_file(*p, opts).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap();
}

const TREE_MANIFEST: &str = r#"schema = 2
[boards.tree]
description = "any tree"
default = "v1"
required_files = []
[[boards.tree.releases]]
version = "v1"
date = "2025-01-01"
url = "http://127.0.0.1:9/x.zip"
nar_sha256 = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
"#;

fn hex_to_sri(hex: &str) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn nar_hash_matches_nix_store_dump_and_nix_hash() {
    if !(have_tool("nix-store") && have_tool("nix-hash")) {
        return;
    }
    let t = TestDir::new();
    let tree = t.path("tree");
    std::fs::create_dir(&tree).unwrap();
    let zip = t.path("tree.zip");
    build(&tree, &zip);
    let manifest = t.path("m.toml");
    std::fs::write(&manifest, TREE_MANIFEST).unwrap();
    let o = t
        .pi_burn()
        .args(["--json", "firmware", "verify"])
        .arg(&zip)
        .args([
            "--board",
            "tree",
            "--sha256",
            &sha256_file(&zip),
            "--manifest",
        ])
        .arg(&manifest)
        .output()
        .unwrap();
    assert_success(&o);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ours = j["nar_sha256"].as_str().unwrap().to_string();

    let dump = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("nix-store --dump '{}' | sha256sum", tree.display()))
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", stderr(&dump));
    let dump_hex = stdout(&dump).split_whitespace().next().unwrap().to_string();
    assert_eq!(
        ours,
        hex_to_sri(&dump_hex),
        "against nix-store --dump | sha256sum"
    );

    let nh = run_ok(tool("nix-hash").args(["--type", "sha256"]).arg(&tree));
    assert_eq!(
        ours,
        hex_to_sri(nh.trim()),
        "against nix-hash --type sha256"
    );

    // The fixture firmware's pin in the test manifest came from the same tool.
    let fw = t.path("fw");
    std::fs::create_dir(&fw).unwrap();
    let mut a =
        zip::ZipArchive::new(std::fs::File::open(fixture_zip("rpi4", None)).unwrap()).unwrap();
    a.extract(&fw).unwrap();
    let dump = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("nix-store --dump '{}' | sha256sum", fw.display()))
        .output()
        .unwrap();
    let hex = stdout(&dump).split_whitespace().next().unwrap().to_string();
    let manifest_text = std::fs::read_to_string(MANIFEST).unwrap();
    assert!(
        manifest_text.contains(&hex_to_sri(&hex)),
        "fixtures/test-manifest.toml pins {}",
        hex_to_sri(&hex)
    );
}

// This module's tests, for the runner in main.rs.
crate::tests![nar_hash_matches_nix_store_dump_and_nix_hash,];
