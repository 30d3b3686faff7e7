//! UEFI settings baked into RPI_EFI.fd, read back by pi-burn and by virt-fw-vars (virt-firmware),
//! and edits of a real edk2 store: Debian ovmf's OVMF_VARS_4M.ms.fd (with the Microsoft keys enrolled).

use crate::harness::*;
use pi_burn::firmware::uefivars::settings::CONFIG_DXE as RPI_VENDOR;
use pi_burn::firmware::uefivars::{self, Change};
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

fn settings_are_refused_where_the_firmware_has_none_or_no_store() {
    let t = TestDir::new();
    let o = t.sdcard_with("rpi5", None, "5.img", &["--ram-limit-3gb", "off"]);
    // Pi 5's firmware has no ConfigDxe: RamLimitTo3GB is refused as no Pi 5 setting, before
    // anything is read.
    assert_fails_with(
        &o,
        2,
        &["--ram-limit-3gb", "the Pi 5 firmware has no such setting"],
    );
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

/// `dmpstore -all` as edk2's own shell prints it: (guid or name space, name) -> bytes.
/// The variables the UEFI shell's dmpstore printed: (vendor, name) -> (attributes, data).
fn dmpstore(text: &str) -> std::collections::BTreeMap<(String, String), (String, Vec<u8>)> {
    // Without the terminal's colour codes.
    let mut plain = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let mut out = std::collections::BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in plain.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("Variable ") {
            // Variable NV+RT+BS 'GUID:Name' DataSize = 0xNN
            let attrs = rest.split_whitespace().next().unwrap_or("").to_string();
            current = rest.split('\'').nth(1).and_then(|q| {
                let (ns, name) = q.split_once(':')?;
                Some((ns.to_lowercase(), name.to_string()))
            });
            if let Some(k) = &current {
                out.insert(k.clone(), (attrs, vec![]));
            }
        } else if let (Some(k), Some(hex)) = (&current, line.trim_start().split_once(": ")) {
            let bytes = hex.1.split('*').next().unwrap_or("").replace('-', " ");
            let data = &mut out.get_mut(k).unwrap().1;
            for b in bytes.split_whitespace() {
                data.push(u8::from_str_radix(b, 16).unwrap());
            }
        } else {
            current = None;
        }
    }
    out
}

/// Pi 5's settings (rpi5-uefi's RpiPlatformDxe GUID and exact widths), for edk2's variable
/// driver: a UINT8, a packed 9-byte structure, NV+BS attributes.
fn pi5_settings() -> Vec<pi_burn::firmware::uefivars::Setting> {
    use pi_burn::firmware::uefivars::settings::{merge, parse_for};
    merge(
        [
            "SystemTableMode=1",
            "AcpiSdLimitUhs=0",
            "Pcie1Settings.MaxLinkSpeed=3",
            "Pcie1Settings.AspmSupportL1=1",
            "MemoryAttributeManagerData=0",
        ]
        .iter()
        .map(|a| parse_for("rpi5", a, "--set").unwrap())
        .collect(),
    )
}

/// The Pi 5 settings as edk2 read them back: vendor, attributes and bytes.
fn pi5_read_back(
    vars: &std::collections::BTreeMap<(String, String), (String, Vec<u8>)>,
    pi5: &[pi_burn::firmware::uefivars::Setting],
    text: &str,
) {
    let pi5_want: [(&str, &[u8], &str); 4] = [
        ("SystemTableMode", &[1, 0, 0, 0], "NV+RT+BS"),
        ("AcpiSdLimitUhs", &[0], "NV+RT+BS"),
        ("Pcie1Settings", &[1, 3, 0, 1, 0, 0, 0, 0, 0], "NV+RT+BS"),
        ("MemoryAttributeManagerData", &[0], "NV+BS"),
    ];
    for (name, data, attrs) in pi5_want {
        let s = pi5.iter().find(|s| s.def.name == name).unwrap();
        let got = vars.get(&(s.def.guid.to_string().to_lowercase(), name.to_string()));
        assert_eq!(
            got.map(|v| (v.0.as_str(), v.1.as_slice())),
            Some((attrs, data)),
            "{name} as edk2 reads it:\n{text}"
        );
    }
}

fn edk2_boots_the_edited_store_and_its_shell_lists_every_setting() {
    // OVMF (edk2 itself) boots with a variable store pi-burn edited, and its UEFI shell's
    // dmpstore prints every setting back: the records are ones edk2's variable driver accepts.
    if !have_ovmf() {
        return;
    }
    use pi_burn::firmware::uefivars::settings::parse_assignment;
    let t = TestDir::new();
    let sets = [
        ("CpuClock=3", "CpuClock", &3u32.to_le_bytes()[..]),
        ("RamLimitTo3GB=0", "RamLimitTo3GB", &0u32.to_le_bytes()),
        ("SystemTableMode=2", "SystemTableMode", &2u32.to_le_bytes()),
        ("FanTemp=70", "FanTemp", &70u32.to_le_bytes()),
        (
            "DisplayEnableScaledVModes=0x3f",
            "DisplayEnableScaledVModes",
            &[0x3f],
        ),
        ("Rows=43", "Rows", &43u32.to_le_bytes()),
    ];
    let mut tag: Vec<u8> = "pi-beta"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    tag.resize(66, 0);
    let mut settings: Vec<_> = sets
        .iter()
        .map(|(a, ..)| parse_assignment(a, "--set").unwrap())
        .collect();
    settings.push(parse_assignment("AssetTag=pi-beta", "--set").unwrap());
    let pi5 = pi5_settings();
    settings.extend(pi5.iter().cloned());
    let fd = std::fs::read(OVMF_VARS_PLAIN).unwrap();
    let (edited, _) = uefivars::apply(&fd, &settings, "OVMF_VARS_4M.fd").unwrap();
    std::fs::write(t.path("vars.fd"), &edited).unwrap();
    std::fs::create_dir(t.path("esp")).unwrap();
    std::fs::write(t.path("esp/startup.nsh"), "dmpstore -all\r\nreset -s\r\n").unwrap();
    let text = ovmf_shell(&t.path("vars.fd"), &[], &t.path("esp"));
    let vars = dmpstore(&text);
    for ((_, name, data), s) in sets.iter().zip(&settings) {
        let guid = s.def.guid.to_string().to_lowercase();
        assert_eq!(
            vars.get(&(guid, name.to_string())).map(|v| v.1.as_slice()),
            Some(*data),
            "{name} as edk2 reads it:\n{text}"
        );
    }
    let guid = RPI_VENDOR.to_string().to_lowercase();
    assert_eq!(
        vars.get(&(guid, "AssetTag".into())).map(|v| &v.1),
        Some(&tag)
    );
    pi5_read_back(&vars, &pi5, &text);
    // OVMF's own variables are still there (the store was not reinitialised).
    assert!(
        vars.contains_key(&("efiglobalvariable".into(), "BootOrder".into())),
        "{text}"
    );
}

/// Pi 5 settings (issue 19): a synthetic rpi5-uefi store (0x1d0000 in a 0x1f0000-byte file)
/// read back by virt-fw-vars with RpiPlatformDxe's GUIDs, exact byte widths and attributes;
/// `firmware settings` lists the Pi 5 table for a Pi 5 card.
fn pi_5_settings_are_read_back_with_their_guids_and_widths() {
    let t = TestDir::new();
    let o = t.sdcard_with(
        "rpi5",
        None,
        "5.img",
        &[
            "--system-table",
            "acpi+devicetree",
            "--set",
            "Pcie1Settings.MaxLinkSpeed=3",
            "--set",
            "AcpiSdLimitUhs=0",
            "--set",
            "MemoryAttributeManagerData=0",
        ],
    );
    assert_success(&o);
    let j: serde_json::Value = serde_json::from_str(&run_ok(
        t.pi_burn()
            .args(["--json", "firmware", "settings", "--image"])
            .arg(t.path("5.img")),
    ))
    .unwrap();
    assert_eq!(j["board"], "rpi5", "the card's record names its board");
    let names: Vec<&str> = strs(&j["settings"], "name");
    assert!(
        names.contains(&"Pcie1Settings") && !names.contains(&"RamLimitTo3GB"),
        "{names:?}"
    );
    if !(have_tool("virt-fw-vars") && have_tool("mcopy")) {
        return;
    }
    let spec = format!("{}@@{}", t.path("5.img").display(), 1 << 20);
    run_ok(
        tool("mcopy")
            .args(["-i", &spec, "::/RPI_EFI.fd"])
            .arg(t.path("RPI_EFI.fd")),
    );
    assert_eq!(
        std::fs::metadata(t.path("RPI_EFI.fd")).unwrap().len(),
        0x1f0000
    );
    run_ok(
        tool("virt-fw-vars")
            .arg("--input")
            .arg(t.path("RPI_EFI.fd"))
            .arg("--output-json")
            .arg(t.path("vars.json")),
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path("vars.json")).unwrap()).unwrap();
    let get = |name: &str| {
        v["variables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not read back: {v}"))
    };
    let p = "677a7ac5-7d92-4288-8bf0-97048102d11c";
    for (name, guid, attr, data) in [
        ("SystemTableMode", p, 7, "01000000"),
        ("Pcie1Settings", p, 7, "010300000000000000"),
        ("AcpiSdLimitUhs", p, 7, "00"),
        (
            "MemoryAttributeManagerData",
            "efab3427-4793-4e9e-aa29-880c9a775b5f",
            3,
            "00",
        ),
    ] {
        let x = get(name);
        assert_eq!(
            (x["guid"].as_str(), x["attr"].as_u64(), x["data"].as_str()),
            (Some(guid), Some(attr), Some(data)),
            "{name}"
        );
    }
}

// This module's tests, for the runner in main.rs.
crate::tests![
    pi_5_settings_are_read_back_with_their_guids_and_widths,
    edk2_boots_the_edited_store_and_its_shell_lists_every_setting,
    settings_are_baked_into_the_card_and_verify_expects_them,
    settings_are_refused_where_the_firmware_has_none_or_no_store,
    edits_a_real_edk2_store_ovmf_vars,
];
