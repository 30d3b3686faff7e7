//! UEFI settings baked into RPI_EFI.fd, read back by pi-burn and by virt-fw-vars (virt-firmware),
//! and edits of a real edk2 store: Debian ovmf's OVMF_VARS_4M.ms.fd (with the Microsoft keys enrolled).

use crate::harness::*;
use pi_burn::firmware::uefivars::{self, Change, RPI_VENDOR};
use std::path::Path;

const MIB: u64 = 1 << 20;
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";

fn settings_of(t: &TestDir, fd: &Path) -> serde_json::Value {
    let out = run_ok(t.pi_burn().args(["--json", "firmware", "settings"]).arg(fd));
    serde_json::from_str(&out).unwrap()
}

fn live_value(j: &serde_json::Value, name: &str) -> Vec<Vec<u8>> {
    j["variables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["name"] == name && v["live"] == true)
        .map(|v| {
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b.as_u64().unwrap() as u8)
                .collect()
        })
        .collect()
}

fn settings_are_baked_into_the_card_and_verify_expects_them() {
    let t = TestDir::new();
    let flags = [
        "--ram-limit-3gb",
        "off",
        "--system-table",
        "acpi+devicetree",
    ];
    let o = t.sdcard("sd.img", &[&["--json"][..], &flags].concat());
    assert_success(&o);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let applied = j["uefi_settings"].as_array().unwrap();
    assert_eq!(applied.len(), 2);
    assert_eq!(applied[0]["name"], "RamLimitTo3GB");
    assert_eq!(applied[0]["value"], 0);
    assert_eq!(
        applied[0]["change"], "added",
        "the fixture's RamLimitTo3GB record is a deleted one"
    );
    assert_eq!(applied[1]["name"], "SystemTableMode");
    assert_eq!(applied[1]["value"], 1);

    if have_tool("mtype") {
        let out = tool("mtype")
            .args([
                "-i",
                &format!("{}@@{}", t.path("sd.img").display(), MIB),
                "::/RPI_EFI.fd",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        let fd = t.path("RPI_EFI.fd");
        std::fs::write(&fd, &out.stdout).unwrap();
        let s = settings_of(&t, &fd);
        assert_eq!(
            live_value(&s, "RamLimitTo3GB"),
            [0u32.to_le_bytes().to_vec()]
        );
        assert_eq!(
            live_value(&s, "SystemTableMode"),
            [1u32.to_le_bytes().to_vec()]
        );
        assert_eq!(
            live_value(&s, "CpuClock"),
            [1u32.to_le_bytes().to_vec()],
            "other variables stay"
        );
        if have_tool("virt-fw-vars") {
            let p = run_ok(tool("virt-fw-vars").arg("--input").arg(&fd).arg("--print"));
            assert!(
                p.lines()
                    .any(|l| l.starts_with("RamLimitTo3GB") && l.contains("dword: 0x00000000")),
                "{p}"
            );
            assert!(
                p.lines()
                    .any(|l| l.starts_with("SystemTableMode") && l.contains("dword: 0x00000001")),
                "{p}"
            );
            let v = run_ok(
                tool("virt-fw-vars")
                    .arg("--input")
                    .arg(&fd)
                    .arg("--print")
                    .arg("--verbose"),
            );
            assert!(
                v.contains("cd7cc258-31db-22e6-9f22-63b0b8eed6b5") || v.contains("CD7CC258"),
                "{v}"
            );
        }
    }
    let verify = |extra: &[&str]| {
        t.pi_burn()
            .args(["verify", "--image"])
            .arg(t.path("sd.img"))
            .arg("--firmware-zip")
            .arg(fixture_zip("rpi4", None))
            .args(["--manifest", MANIFEST])
            .args(extra)
            .output()
            .unwrap()
    };
    assert_success(&verify(&flags));
    let o = verify(&[]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("/RPI_EFI.fd"), "{}", stdout(&o));
    // The same settings twice give the same card.
    assert_success(&t.sdcard("again.img", &flags));
    assert_eq!(
        sha256_file(&t.path("sd.img")),
        sha256_file(&t.path("again.img"))
    );
}

fn settings_are_refused_where_no_store_or_variables_are_known() {
    let t = TestDir::new();
    let o = t
        .pi_burn()
        .args([
            "sdcard",
            "--board",
            "rpi5",
            "--manifest",
            MANIFEST,
            "--ram-limit-3gb",
            "off",
            "--image",
        ])
        .arg(t.path("5.img"))
        .arg("--firmware-zip")
        .arg(fixture_zip("rpi5", None))
        .output()
        .unwrap();
    assert_fails_with(&o, 2, &["Raspberry Pi 4", "rpi5"]);
    assert!(!t.path("5.img").exists());
    let junk = t.path("junk.fd");
    std::fs::write(&junk, vec![0u8; 65536]).unwrap();
    let o = t
        .pi_burn()
        .args(["firmware", "settings"])
        .arg(&junk)
        .output()
        .unwrap();
    assert_fails_with(&o, 1, &["junk.fd", "no UEFI variable store"]);
}

fn edits_a_real_edk2_store_ovmf_vars() {
    if !Path::new(OVMF_VARS).exists() {
        skip("Debian's ovmf is not installed (/usr/share/OVMF/OVMF_VARS_4M.ms.fd)");
        return;
    }
    let t = TestDir::new();
    let mut fd = std::fs::read(OVMF_VARS).unwrap();
    let store = uefivars::find_store(&fd, "ovmf").unwrap();
    let (before, _) = uefivars::read_vars(&fd, &store, "ovmf").unwrap();
    assert!(before.iter().any(|v| v.live), "OVMF ships live variables");
    assert_eq!(
        uefivars::set(
            &mut fd,
            &store,
            "RamLimitTo3GB",
            RPI_VENDOR,
            7,
            &0u32.to_le_bytes(),
            "ovmf"
        )
        .unwrap(),
        Change::Added
    );
    assert_eq!(
        uefivars::set(
            &mut fd,
            &store,
            "RamLimitTo3GB",
            RPI_VENDOR,
            7,
            &1u32.to_le_bytes(),
            "ovmf"
        )
        .unwrap(),
        Change::Replaced
    );
    assert_eq!(
        uefivars::set(
            &mut fd,
            &store,
            "RamLimitTo3GB",
            RPI_VENDOR,
            7,
            &1u32.to_le_bytes(),
            "ovmf"
        )
        .unwrap(),
        Change::Unchanged
    );
    let path = t.path("OVMF_VARS_4M.fd");
    std::fs::write(&path, &fd).unwrap();
    let s = settings_of(&t, &path);
    assert_eq!(
        live_value(&s, "RamLimitTo3GB"),
        [1u32.to_le_bytes().to_vec()]
    );
    let after = s["variables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["live"] == true)
        .count();
    assert_eq!(
        after,
        before.iter().filter(|v| v.live).count() + 1,
        "every earlier live variable is still live"
    );
    if have_tool("virt-fw-vars") {
        let p = run_ok(
            tool("virt-fw-vars")
                .arg("--input")
                .arg(&path)
                .arg("--print"),
        );
        assert!(
            p.lines()
                .any(|l| l.starts_with("RamLimitTo3GB") && l.contains("dword: 0x00000001")),
            "{p}"
        );
        assert_eq!(
            p.lines().filter(|l| l.starts_with("RamLimitTo3GB")).count(),
            1,
            "one live record: {p}"
        );
    }
}

/// This module's tests, for the runner in main.rs.
pub const TESTS: &[(&str, fn())] = &[
    (
        "settings_are_baked_into_the_card_and_verify_expects_them",
        settings_are_baked_into_the_card_and_verify_expects_them,
    ),
    (
        "settings_are_refused_where_no_store_or_variables_are_known",
        settings_are_refused_where_no_store_or_variables_are_known,
    ),
    (
        "edits_a_real_edk2_store_ovmf_vars",
        edits_a_real_edk2_store_ovmf_vars,
    ),
];
