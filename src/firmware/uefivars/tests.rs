//! The variable store against synthetic RPI_EFI.fd files with the store at both known offsets.

use super::*;

/// A firmware file of `size` bytes with an NV firmware volume (0x20000 bytes, a 0x10000-byte
/// authenticated store) at `fv_offset`, holding `vars` (name, state, data).
pub fn synthetic_fd(size: usize, fv_offset: usize, vars: &[(&str, u8, &[u8])]) -> Vec<u8> {
    let mut fd: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    let fv = &mut fd[fv_offset..fv_offset + 0x20000];
    fv.fill(0xFF);
    fv[..0x10].fill(0);
    fv[0x10..0x20].copy_from_slice(&NV_DATA_FV.to_bytes_le());
    fv[0x20..0x28].copy_from_slice(&0x20000u64.to_le_bytes());
    fv[0x28..0x2C].copy_from_slice(b"_FVH");
    fv[0x2C..0x30].copy_from_slice(&0x0004_FEFFu32.to_le_bytes());
    fv[0x30..0x32].copy_from_slice(&0x48u16.to_le_bytes());
    fv[0x32..0x34].fill(0);
    fv[0x34..0x36].fill(0);
    fv[0x36] = 0;
    fv[0x37] = 2;
    fv[0x38..0x3C].copy_from_slice(&0x20u32.to_le_bytes());
    fv[0x3C..0x40].copy_from_slice(&0x1000u32.to_le_bytes());
    fv[0x40..0x48].fill(0);
    let sum = (0..0x48).step_by(2).fold(0u16, |s, o| {
        s.wrapping_add(u16::from_le_bytes([fv[o], fv[o + 1]]))
    });
    fv[0x32..0x34].copy_from_slice(&(0u16.wrapping_sub(sum)).to_le_bytes());
    let vs = 0x48;
    fv[vs..vs + 16].copy_from_slice(&AUTH_VARIABLES.to_bytes_le());
    fv[vs + 16..vs + 20].copy_from_slice(&(0x10000u32 - 0x48).to_le_bytes());
    fv[vs + 20] = 0x5A;
    fv[vs + 21] = 0xFE;
    fv[vs + 22..vs + 28].fill(0);
    let mut at = vs + 28;
    for (name, state, data) in vars {
        let name16: Vec<u8> = name
            .encode_utf16()
            .chain([0])
            .flat_map(|u| u.to_le_bytes())
            .collect();
        let mut rec = vec![0u8; HDR];
        rec[0..2].copy_from_slice(&START_ID.to_le_bytes());
        rec[2] = *state;
        rec[4..8].copy_from_slice(&ATTRS_NV_BS_RT.to_le_bytes());
        rec[36..40].copy_from_slice(&(name16.len() as u32).to_le_bytes());
        rec[40..44].copy_from_slice(&(data.len() as u32).to_le_bytes());
        rec[44..60].copy_from_slice(&settings::CONFIG_DXE.to_bytes_le());
        rec.extend_from_slice(&name16);
        rec.extend_from_slice(data);
        fv[at..at + rec.len()].copy_from_slice(&rec);
        at = (at + rec.len() + 3) & !3;
    }
    fd
}

fn sets(list: &[&str]) -> Vec<Setting> {
    list.iter()
        .map(|a| settings::parse_assignment(a, "--set").unwrap())
        .collect()
}

fn live(fd: &[u8], name: &str) -> Vec<Var> {
    let s = find_store(fd, "t").unwrap();
    read_vars(fd, &s, "t")
        .unwrap()
        .0
        .into_iter()
        .filter(|v| v.live && v.name == name)
        .collect()
}

#[test]
fn finds_the_store_at_both_known_offsets() {
    for (size, off) in [(0x1F0000, 0x1D0000), (0x3E0000, 0x3B0000)] {
        let fd = synthetic_fd(
            size,
            off,
            &[("RamLimitTo3GB", VAR_ADDED, &1u32.to_le_bytes())],
        );
        let s = find_store(&fd, "t").unwrap();
        assert_eq!(s.fv_offset, off);
        assert_eq!(s.store_offset, off + 0x48);
        let v = live(&fd, "RamLimitTo3GB");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].data, 1u32.to_le_bytes());
        assert_eq!(v[0].guid, settings::CONFIG_DXE);
        assert_eq!(v[0].attributes, 7);
    }
}

#[test]
fn replaces_appends_and_is_idempotent() {
    let fd = synthetic_fd(
        0x3E0000,
        0x3B0000,
        &[
            ("RamLimitTo3GB", VAR_ADDED, &1u32.to_le_bytes()),
            ("Other", VAR_ADDED & VAR_DELETED, b"x"),
        ],
    );
    let (fd2, applied) = apply(&fd, &sets(&["RamLimitTo3GB=0", "SystemTableMode=1"]), "t").unwrap();
    assert_eq!(
        applied.iter().map(|a| a.change).collect::<Vec<_>>(),
        [Change::Replaced, Change::Added]
    );
    let ram = live(&fd2, "RamLimitTo3GB");
    assert_eq!(ram.len(), 1);
    assert_eq!(ram[0].data, 0u32.to_le_bytes());
    assert_eq!(live(&fd2, "SystemTableMode")[0].data, 1u32.to_le_bytes());
    let s = find_store(&fd2, "t").unwrap();
    let all = read_vars(&fd2, &s, "t").unwrap().0;
    let old = all
        .iter()
        .find(|v| v.name == "RamLimitTo3GB" && !v.live)
        .unwrap();
    assert_eq!(old.state, 0x3D, "the old record is marked deleted");
    // The same values again: nothing changes.
    let (fd3, again) = apply(&fd2, &sets(&["RamLimitTo3GB=0", "SystemTableMode=1"]), "t").unwrap();
    assert!(again.iter().all(|a| a.change == Change::Unchanged));
    assert_eq!(fd3, fd2);
    // Only the store changed.
    assert_eq!(fd[..0x3B0000], fd2[..0x3B0000]);
    assert_eq!(fd[0x3C0000..], fd2[0x3C0000..]);
}

#[test]
fn missing_other_format_corrupt_and_full_stores_are_errors() {
    let plain: Vec<u8> = vec![0u8; 0x10000];
    assert!(find_store(&plain, "x.fd")
        .unwrap_err()
        .to_string()
        .contains("no UEFI variable store"));

    let mut other = synthetic_fd(0x40000, 0x10000, &[]);
    other[0x10048..0x10058].copy_from_slice(&PLAIN_VARIABLES.to_bytes_le());
    assert!(find_store(&other, "x.fd")
        .unwrap_err()
        .to_string()
        .contains("unauthenticated"));

    let mut bad = synthetic_fd(0x40000, 0x10000, &[]);
    bad[0x10020] ^= 1;
    assert!(find_store(&bad, "x.fd")
        .unwrap_err()
        .to_string()
        .contains("checksum"));

    let mut junk = synthetic_fd(0x40000, 0x10000, &[("A", VAR_ADDED, b"1234")]);
    junk[0x10000 + 0x48 + 28 + 200] = 0;
    let e = apply(&junk, &sets(&["SystemTableMode=2"]), "x.fd")
        .unwrap_err()
        .to_string();
    assert!(e.contains("corrupt"), "{e}");

    let big = vec![0xABu8; 0xFF00];
    let full = synthetic_fd(0x40000, 0x10000, &[("Big", VAR_ADDED, &big)]);
    let e = apply(&full, &sets(&["SystemTableMode=2"]), "x.fd")
        .unwrap_err()
        .to_string();
    assert!(e.contains("full"), "{e}");
}

#[test]
fn every_setting_has_its_guid_width_and_range() {
    use settings::*;
    let exit = |r: anyhow::Result<Setting>| crate::error::exit_code(&r.unwrap_err());
    // Three vendors.
    for (name, guid) in [
        ("RamLimitTo3GB", CONFIG_DXE),
        ("Columns", RPI_TOKEN_SPACE),
        ("Timeout", EFI_GLOBAL),
    ] {
        assert_eq!(def(name).unwrap().guid, guid, "{name}");
    }
    // Widths as the firmware reads them.
    let enc = |a: &str| {
        let s = parse_assignment(a, "--set").unwrap();
        s.def.encode(&s.value).unwrap()
    };
    assert_eq!(enc("Timeout=0x0102"), [2, 1]);
    assert_eq!(enc("DisplayEnableScaledVModes=63"), [63]);
    assert_eq!(enc("FanTemp=55"), 55u32.to_le_bytes());
    let tag = enc("AssetTag=pi-beta");
    assert_eq!(tag.len(), 66, "CHAR16[33]");
    assert_eq!(&tag[..4], &[b'p', 0, b'i', 0]);
    assert!(tag[14..].iter().all(|b| *b == 0));
    // Names are matched without case and stored in the firmware's spelling.
    assert_eq!(
        parse_assignment("ramlimitto3gb=0", "--set")
            .unwrap()
            .def
            .name,
        "RamLimitTo3GB"
    );
    // Out of range, not one of, malformed, unknown, computed: usage errors (exit 2) naming it.
    for bad in [
        "CpuClock=4",
        "CustomCpuClock=99",
        "CustomCpuClock=2201",
        "FanOnGpio=15",
        "FanTemp=81",
        "Timeout=65536",
        "DisplayEnableScaledVModes=64",
        "RamLimitTo3GB=yes",
        "RamLimitTo3GB=-1",
        "SystemTableMode=4294967296",
        "AssetTag=123456789012345678901234567890123",
        "AssetTag=caf\u{e9}",
        "NoSuchThing=1",
        "RamMoreThan3GB=1",
        "RamLimitTo3GB",
    ] {
        let r = parse_assignment(bad, "--set");
        let msg = format!("{:#}", r.as_ref().unwrap_err());
        assert_eq!(exit(r), 2, "{bad}: {msg}");
    }
    let e = format!("{:#}", parse_assignment("FanTemp=90", "--set").unwrap_err());
    assert!(e.contains("FanTemp=90") && e.contains("50..80"), "{e}");
    let e = format!(
        "{:#}",
        parse_assignment("RamMoreThan3GB=1", "--set").unwrap_err()
    );
    assert!(e.contains("computes it"), "{e}");
    // Every default is itself an allowed value.
    for d in all() {
        match d.default_value() {
            Value::Num(n) => assert!(d.value(&n.to_string()).is_ok(), "{}", d.name),
            Value::Text(t) => assert!(d.value(&t).is_ok(), "{}", d.name),
            Value::Fields(m) => {
                for (f, v) in m {
                    assert!(d.field_value(&f, &v.to_string()).is_ok(), "{}.{f}", d.name);
                }
            }
        }
    }
}

#[test]
fn pi_5_settings_have_their_own_guids_widths_and_names() {
    use settings::*;
    let p5 = |a: &str| parse_for("rpi5", a, "--set");
    let enc = |a: &str| {
        let s = p5(a).unwrap();
        (
            s.def.guid,
            s.def.attributes,
            s.def.encode(&s.value).unwrap(),
        )
    };
    // SystemTableMode lives under RpiPlatformDxe's GUID on Pi 5, ConfigDxe's on Pi 4.
    assert_eq!(
        enc("SystemTableMode=1"),
        (RPI5_PLATFORM, NV_BS_RT, 1u32.to_le_bytes().to_vec())
    );
    assert_eq!(
        parse_for("rpi4", "SystemTableMode=1", "--set")
            .unwrap()
            .def
            .guid,
        CONFIG_DXE
    );
    // Exact widths: UINT8 where RpiPlatformDxe reads one byte.
    assert_eq!(enc("AcpiSdLimitUhs=0").2, [0]);
    assert_eq!(enc("AcpiSdCompatMode=1").2, [1]);
    assert_eq!(enc("AcpiPcieEcamCompatMode=6").2, 6u32.to_le_bytes());
    // MemoryAttributeManagerData: its own GUID, NV+BS.
    assert_eq!(
        enc("MemoryAttributeManagerData=0"),
        (MEMORY_ATTRIBUTE, NV_BS, vec![0])
    );
    // Pcie1Settings: named fields of the packed 9-byte structure, the others at their defaults.
    let s = merge(vec![
        p5("Pcie1Settings.MaxLinkSpeed=3").unwrap(),
        p5("pcie1settings.vdmtoqosmap=0x01020304").unwrap(),
    ]);
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].def.encode(&s[0].value).unwrap(),
        [1, 3, 0, 0, 0, 4, 3, 2, 1]
    );
    assert_eq!(
        s[0].def.decode(&[1, 3, 0, 0, 0, 4, 3, 2, 1]),
        Some(s[0].value.clone()).map(|_| {
            let mut m = std::collections::BTreeMap::new();
            for (k, v) in [
                ("Enabled", 1),
                ("MaxLinkSpeed", 3),
                ("AspmSupportL0s", 0),
                ("AspmSupportL1", 0),
                ("RcbMatchMps", 0),
                ("VdmToQosMap", 0x01020304),
            ] {
                m.insert(k.to_string(), v);
            }
            Value::Fields(m)
        })
    );
    // Refused: a Pi 4 name on Pi 5, a field out of range, no field, an unknown field.
    for (bad, want) in [
        ("RamLimitTo3GB=0", "the Pi 5 firmware has no such setting"),
        ("Pcie1Settings.MaxLinkSpeed=4", "1..3"),
        ("Pcie1Settings=3", "set its fields"),
        ("Pcie1Settings.Speed=3", "no such field"),
        ("Timeout.Field=1", "not a structure"),
        ("AcpiPcieEcamCompatMode=5", "one of 1, 2, 3, 4, 6"),
        ("AcpiPcie32BitBarSpaceSizeMB=1025", "0..1024"),
    ] {
        let e = p5(bad).unwrap_err();
        assert_eq!(crate::error::exit_code(&e), 2, "{bad}");
        assert!(format!("{e:#}").contains(want), "{bad}: {e:#}");
    }
    // Pi 4 gains XhciReload and BootDiscoveryPolicy.
    assert_eq!(
        parse_for("rpi4", "BootDiscoveryPolicy=1", "--set")
            .unwrap()
            .def
            .guid,
        BOOT_DISCOVERY
    );
    assert!(parse_for("rpi4", "XhciReload=1", "--set").is_ok());
    assert!(parse_for("rpi5", "XhciReload=1", "--set").is_err());
}

#[test]
fn listing_shows_stored_values_defaults_and_wrong_widths() {
    let fd = synthetic_fd(
        0x40000,
        0x10000,
        &[
            ("RamLimitTo3GB", VAR_ADDED, &0u32.to_le_bytes()),
            ("SystemTableMode", VAR_ADDED, &[2u8]),
        ],
    );
    let (fd, _) = apply(&fd, &sets(&["Timeout=3", "AssetTag=node-7"]), "t").unwrap();
    let s = find_store(&fd, "t").unwrap();
    let (vars, _) = read_vars(&fd, &s, "t").unwrap();
    let l = listing(&vars, settings::RPI4);
    let get = |n: &str| l.iter().find(|x| x.name == n).unwrap();
    assert_eq!(get("RamLimitTo3GB").value, Some(Value::Num(0)));
    assert_eq!(get("Timeout").value, Some(Value::Num(3)));
    assert_eq!(get("AssetTag").value, Some(Value::Text("node-7".into())));
    assert_eq!(get("CpuClock").value, None);
    assert_eq!(get("CpuClock").default, Value::Num(1));
    let stm = get("SystemTableMode");
    assert_eq!(stm.value, None);
    assert!(
        stm.problem.as_ref().unwrap().contains("1 bytes"),
        "{:?}",
        stm.problem
    );
    assert_eq!(l.len(), settings::RPI4.len());
}

#[test]
fn hostile_volume_and_record_sizes_are_errors_not_panics() {
    // A volume claiming u64::MAX bytes, one claiming more than the file, a header length
    // past the end, a store claiming 4 GiB, a record whose name size is u32::MAX.
    let base = synthetic_fd(0x40000, 0x10000, &[("A", VAR_ADDED, b"1234")]);
    let fix_sum = |fd: &mut Vec<u8>| {
        let fv = 0x10000;
        fd[fv + 0x32..fv + 0x34].fill(0);
        let sum = (0..0x48).step_by(2).fold(0u16, |s, o| {
            s.wrapping_add(u16::from_le_bytes([fd[fv + o], fd[fv + o + 1]]))
        });
        fd[fv + 0x32..fv + 0x34].copy_from_slice(&0u16.wrapping_sub(sum).to_le_bytes());
    };
    let mut cases = vec![];
    for len in [u64::MAX, 0x40000] {
        let mut fd = base.clone();
        fd[0x10020..0x10028].copy_from_slice(&len.to_le_bytes());
        fix_sum(&mut fd);
        cases.push(fd);
    }
    let mut fd = base.clone();
    fd[0x10030..0x10032].copy_from_slice(&0xFFFEu16.to_le_bytes());
    fix_sum(&mut fd);
    cases.push(fd);
    let mut fd = base.clone();
    fd[0x10048 + 16..0x10048 + 20].copy_from_slice(&u32::MAX.to_le_bytes());
    cases.push(fd);
    let mut fd = base.clone();
    let rec = 0x10048 + 28;
    fd[rec + 36..rec + 40].copy_from_slice(&u32::MAX.to_le_bytes());
    cases.push(fd);
    for (i, fd) in cases.iter().enumerate() {
        let r = find_store(fd, "x.fd").and_then(|s| read_vars(fd, &s, "x.fd").map(|_| ()));
        assert!(r.is_err(), "case {i} was accepted");
    }
}

#[test]
fn of_two_live_records_the_listing_shows_the_one_edk2_reads_and_names_the_other() {
    // Regression (issue 24): the last of two live records was shown; edk2 reads the first
    // added one (a record in transition to deleted only when no added one is there).
    let in_transition = VAR_ADDED & VAR_IN_DELETED_TRANSITION;
    let fd = synthetic_fd(
        0x40000,
        0x10000,
        &[
            ("CpuClock", in_transition, &2u32.to_le_bytes()),
            ("CpuClock", VAR_ADDED, &0u32.to_le_bytes()),
            ("CpuClock", VAR_ADDED, &3u32.to_le_bytes()),
        ],
    );
    let s = find_store(&fd, "t").unwrap();
    let (vars, _) = read_vars(&fd, &s, "t").unwrap();
    let l = listing(&vars, settings::RPI4);
    let c = l.iter().find(|x| x.name == "CpuClock").unwrap();
    assert_eq!(c.value, Some(Value::Num(0)));
    assert!(
        c.problem.as_deref().unwrap().contains("3 live records"),
        "{:?}",
        c.problem
    );
}
