//! bootconf.txt, the bootloader's settings inside pieeprom.bin: the properties pi-burn knows
//! (the bootloader documentation's, each found in the 2026 bootloader binaries), checked by
//! type before anything is read or written, and applied the way config.txt edits are (the
//! release's own lines kept, a key replaced where the file sets it, added otherwise).

use crate::error::usage;
use crate::firmware::configtxt::Edit;
use anyhow::{bail, Result};

/// What a property's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One of these integers.
    OneOf(&'static [i64]),
    /// An integer in `min..=max`.
    Int { min: i64, max: i64 },
    /// BOOT_ORDER: hex nibbles of known boot modes.
    BootOrder,
    /// A hex number (0x...), at most 32 bits.
    Hex,
    /// A dotted IPv4 address.
    Ipv4,
    /// A MAC address (aa:bb:cc:dd:ee:ff).
    Mac,
    /// Printable text without spaces of at most this many characters.
    Text(usize),
    /// A host name: lower-case letters, digits, '-' and '.'.
    Host,
    /// Up to 4 comma-separated 8-digit hex VID/PID pairs.
    VidPids,
    /// Two customer OTP rows, "a,b" (0..7).
    OtpRows,
}

/// A property, the boards it applies to, its kind.
struct Prop {
    name: &'static str,
    kind: Kind,
    /// Only on this board (None: both).
    only: Option<&'static str>,
}

const BOOL: Kind = Kind::OneOf(&[0, 1]);
const RETRIES: Kind = Kind::Int {
    min: -1,
    max: 1_000_000,
};
const fn ms(min: i64, max: i64) -> Kind {
    Kind::Int { min, max }
}
const MAX_MS: i64 = 3_600_000;

const PROPS: &[Prop] = &[
    p("BOOT_UART", BOOL),
    p("WAKE_ON_GPIO", Kind::OneOf(&[0, 1, 2])),
    p("POWER_OFF_ON_HALT", BOOL),
    p("BOOT_ORDER", Kind::BootOrder),
    p("MAX_RESTARTS", RETRIES),
    p("SD_BOOT_MAX_RETRIES", RETRIES),
    p("NET_BOOT_MAX_RETRIES", RETRIES),
    p("DHCP_TIMEOUT", ms(5000, MAX_MS)),
    p("DHCP_REQ_TIMEOUT", ms(500, MAX_MS)),
    p("TFTP_FILE_TIMEOUT", ms(5000, MAX_MS)),
    p("TFTP_IP", Kind::Ipv4),
    p("TFTP_PREFIX", Kind::OneOf(&[0, 1, 2])),
    p("TFTP_PREFIX_STR", Kind::Text(32)),
    p("PXE_OPTION43", Kind::Text(64)),
    p("DHCP_OPTION97", Kind::Hex),
    p("MAC_ADDRESS", Kind::Mac),
    p("MAC_ADDRESS_OTP", Kind::OtpRows),
    p("CLIENT_IP", Kind::Ipv4),
    p("SUBNET", Kind::Ipv4),
    p("GATEWAY", Kind::Ipv4),
    p("DISABLE_HDMI", BOOL),
    p("HDMI_DELAY", ms(0, 60)),
    p("ENABLE_SELF_UPDATE", BOOL),
    p("FREEZE_VERSION", BOOL),
    p("HTTP_HOST", Kind::Host),
    p("HTTP_PORT", ms(1, 65535)),
    p("HTTP_PATH", Kind::Text(64)),
    p("NET_INSTALL_ENABLED", BOOL),
    p("NET_INSTALL_AT_POWER_ON", BOOL),
    p("NET_INSTALL_KEYBOARD_WAIT", ms(0, 60_000)),
    p("NETCONSOLE", Kind::Text(32)),
    p("PARTITION", ms(0, 127)),
    p("PARTITION_WALK", BOOL),
    p("USB_MSD_EXCLUDE_VID_PID", Kind::VidPids),
    p("USB_MSD_DISCOVER_TIMEOUT", ms(5000, MAX_MS)),
    p("USB_MSD_LUN_TIMEOUT", ms(100, MAX_MS)),
    p("USB_MSD_PWR_OFF_TIME", ms(0, 5000)),
    p("USB_MSD_STARTUP_DELAY", ms(0, 30_000)),
    p("XHCI_DEBUG", Kind::Hex),
    p("PSU_MAX_CURRENT", ms(0, 10_000)),
    p("USE_IPV6", BOOL),
    Prop {
        name: "VL805",
        kind: BOOL,
        only: Some("rpi4"),
    },
    Prop {
        name: "PCIE_PROBE",
        kind: BOOL,
        only: Some("rpi5"),
    },
];

const fn p(name: &'static str, kind: Kind) -> Prop {
    Prop {
        name,
        kind,
        only: None,
    }
}

/// The boot modes of BOOT_ORDER's nibbles, with the names `--boot-order` takes.
const MODES: &[(u8, &[&str], &str)] = &[
    (0x1, &["sd"], "SD card"),
    (0x2, &["net", "network"], "network"),
    (0x3, &["rpiboot"], "RPIBOOT"),
    (0x4, &["usb"], "USB mass storage"),
    (
        0x5,
        &["usb-c", "bcm-usb-msd"],
        "USB 2.0 from the USB-C socket",
    ),
    (0x6, &["nvme"], "NVMe"),
    (0x7, &["http"], "HTTP"),
    (0xe, &["stop"], "stop"),
    (0xf, &["restart"], "restart"),
];

/// The closest known name to `name` (edit distance), for the error.
fn closest(name: &str) -> &'static str {
    let upper = name.to_ascii_uppercase();
    PROPS
        .iter()
        .map(|p| p.name)
        .min_by_key(|n| crate::util::text::edit_distance(&upper, n))
        .unwrap_or("BOOT_ORDER")
}

fn int(v: &str) -> Option<i64> {
    v.trim().parse().ok()
}

fn check_value(prop: &Prop, v: &str, what: &str) -> Result<String> {
    let bad = |why: String| usage(format!("{what}: {why}"));
    let ok = match prop.kind {
        Kind::OneOf(set) => {
            if !int(v).is_some_and(|n| set.contains(&n)) {
                return Err(bad(format!(
                    "expected one of {}",
                    set.iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            v.trim().to_string()
        }
        Kind::Int { min, max } => {
            if !int(v).is_some_and(|n| (min..=max).contains(&n)) {
                return Err(bad(format!("expected an integer in {min}..{max}")));
            }
            v.trim().to_string()
        }
        Kind::BootOrder => boot_order(v).map_err(|e| bad(e.to_string()))?,
        Kind::Hex => {
            if crate::util::text::hex(v, true, 8).is_none() {
                return Err(bad(
                    "expected a hex number of at most 8 digits, e.g. 0x3".into()
                ));
            }
            v.trim().to_string()
        }
        Kind::Ipv4 => {
            if v.trim().parse::<std::net::Ipv4Addr>().is_err() {
                return Err(bad(
                    "expected a dotted IPv4 address, e.g. 192.168.1.10".into()
                ));
            }
            v.trim().to_string()
        }
        Kind::Mac => {
            let parts: Vec<&str> = v.trim().split(':').collect();
            if parts.len() != 6
                || !parts
                    .iter()
                    .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
            {
                return Err(bad("expected a MAC address, e.g. dc:a6:32:01:36:c2".into()));
            }
            v.trim().to_string()
        }
        Kind::Text(max) => {
            if v.is_empty() || v.len() > max || !v.chars().all(|c| c.is_ascii_graphic()) {
                return Err(bad(format!(
                    "expected up to {max} printable characters without spaces"
                )));
            }
            v.to_string()
        }
        Kind::Host => {
            if v.is_empty()
                || v.len() > 253
                || !v
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            {
                return Err(bad(
                    "expected a host name or address (lower-case letters, digits, '-' and '.', no scheme or '/')".into(),
                ));
            }
            v.to_string()
        }
        Kind::VidPids => {
            let parts: Vec<&str> = v.split(',').collect();
            if parts.len() > 4
                || !parts
                    .iter()
                    .all(|p| p.len() == 8 && p.chars().all(|c| c.is_ascii_hexdigit()))
            {
                return Err(bad(
                    "expected up to 4 comma-separated VID/PID pairs of 8 hex digits, e.g. 034700a0,a4231234".into(),
                ));
            }
            v.to_string()
        }
        Kind::OtpRows => {
            let rows: Vec<Option<i64>> = v.split(',').map(int).collect();
            if rows.len() != 2 || !rows.iter().all(|r| r.is_some_and(|n| (0..=7).contains(&n))) {
                return Err(bad("expected two customer OTP rows 0..7, e.g. 0,1".into()));
            }
            v.to_string()
        }
    };
    Ok(ok)
}

/// Checks `KEY=VALUE` for `board` (`from` names where it came from); the value as it goes
/// into bootconf.txt. An unknown or misspelt property is a usage error naming the closest.
pub fn edit(key: &str, value: &str, board: &str, from: &str) -> Result<Edit> {
    let Some(prop) = PROPS.iter().find(|p| p.name == key) else {
        let near = closest(key);
        bail!(usage(format!(
            "{from} {}: no bootloader property pi-burn knows; did you mean {near}?",
            crate::util::text::printable(key)
        )));
    };
    if let Some(only) = prop.only {
        if only != board {
            bail!(usage(format!(
                "{from} {key}: a property of the {} bootloader only, not the {}'s",
                board_title(only),
                board_title(board)
            )));
        }
    }
    let value = check_value(
        prop,
        value,
        &format!("{from} {key}={}", crate::util::text::printable(value)),
    )?;
    Ok(Edit {
        key: key.to_string(),
        value,
        from: from.to_string(),
    })
}

fn board_title(b: &str) -> &'static str {
    match b {
        "rpi5" => "Pi 5",
        _ => "Pi 4",
    }
}

/// An integer of pi-burn.toml as the property's text: hex for BOOT_ORDER and the hex
/// properties (TOML reads `0xf41` as the integer 3905), decimal otherwise.
pub fn int_text(key: &str, n: i64) -> String {
    match PROPS.iter().find(|p| p.name == key).map(|p| p.kind) {
        Some(Kind::BootOrder | Kind::Hex) => format!("0x{n:x}"),
        _ => n.to_string(),
    }
}

/// Parses `KEY=VALUE`.
pub fn parse_edit(text: &str, board: &str, from: &str) -> Result<Edit> {
    let Some((k, v)) = text.split_once('=') else {
        bail!(usage(format!(
            "{from} {}: expected KEY=VALUE (e.g. BOOT_ORDER=0xf41)",
            crate::util::text::printable(text)
        )));
    };
    edit(k.trim(), v.trim(), board, from)
}

/// A BOOT_ORDER value: `0x` and 1 to 8 hex nibbles, each a known boot mode.
pub fn boot_order(v: &str) -> Result<String> {
    let t = v.trim();
    let Some(h) = t.strip_prefix("0x").or(t.strip_prefix("0X")) else {
        bail!(
            "BOOT_ORDER is hex nibbles read right to left, e.g. 0xf41 (SD, then USB, then restart)"
        );
    };
    if crate::util::text::hex(t, true, 8).is_none() {
        bail!("BOOT_ORDER is 1 to 8 hex nibbles, e.g. 0xf41");
    }
    for c in h.chars() {
        let n = c.to_digit(16).unwrap_or(0) as u8;
        if !MODES.iter().any(|m| m.0 == n) && n != 0 {
            bail!("BOOT_ORDER nibble {c:?} is no boot mode (known: 1 SD, 2 network, 3 RPIBOOT, 4 USB, 5 USB-C, 6 NVMe, 7 HTTP, e stop, f restart)");
        }
    }
    Ok(format!("0x{}", h.to_ascii_lowercase()))
}

/// `--boot-order sd,usb`: the modes in order, first tried first; a restart (f) is added at
/// the end unless the list ends in stop or restart. `sd,usb` is 0xf41.
pub fn boot_order_from_names(list: &str) -> Result<String> {
    let mut nibbles = vec![];
    for name in list.split(',').map(str::trim) {
        let Some(m) = MODES
            .iter()
            .find(|m| m.1.contains(&name.to_ascii_lowercase().as_str()))
        else {
            bail!(usage(format!(
                "--boot-order {}: '{}' is no boot mode (known: {})",
                crate::util::text::printable(list),
                crate::util::text::printable(name),
                MODES.iter().map(|m| m.1[0]).collect::<Vec<_>>().join(", ")
            )));
        };
        nibbles.push(m.0);
    }
    if !matches!(nibbles.last(), Some(0xe | 0xf)) {
        nibbles.push(0xf);
    }
    if nibbles.len() > 8 {
        bail!(usage(format!(
            "--boot-order {list}: at most 8 boot modes (with the restart pi-burn adds)"
        )));
    }
    Ok(format!(
        "0x{}",
        nibbles
            .iter()
            .rev()
            .map(|n| format!("{n:x}"))
            .collect::<String>()
    ))
}

/// The boot modes of a BOOT_ORDER value in the order tried, for the plan.
pub fn describe_boot_order(v: &str) -> String {
    let h = v.trim().trim_start_matches("0x").trim_start_matches("0X");
    h.chars()
        .rev()
        .map(|c| {
            let n = c.to_digit(16).unwrap_or(0) as u8;
            MODES
                .iter()
                .find(|m| m.0 == n)
                .map_or("SD (card detect)", |m| m.2)
        })
        .collect::<Vec<_>>()
        .join(", then ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_order_names_and_nibbles() {
        assert_eq!(boot_order_from_names("sd,usb").unwrap(), "0xf41");
        assert_eq!(boot_order_from_names("sd,nvme,usb").unwrap(), "0xf461");
        assert_eq!(boot_order_from_names("usb,stop").unwrap(), "0xe4");
        assert_eq!(boot_order("0XF41").unwrap(), "0xf41");
        assert!(boot_order("f41").is_err());
        assert!(boot_order("0xf91").unwrap_err().to_string().contains("'9'"));
        assert!(boot_order_from_names("sd,floppy").is_err());
        assert_eq!(
            describe_boot_order("0xf41"),
            "SD card, then USB mass storage, then restart"
        );
    }

    #[test]
    fn properties_are_checked_by_type_and_board() {
        assert_eq!(edit("BOOT_UART", "1", "rpi4", "t").unwrap().value, "1");
        for (k, v, board, want) in [
            ("BOOT_UART", "2", "rpi4", "one of 0, 1"),
            ("DHCP_TIMEOUT", "100", "rpi4", "5000.."),
            ("TFTP_IP", "10.0.0", "rpi4", "IPv4"),
            ("MAC_ADDRESS", "dc:a6:32", "rpi4", "MAC address"),
            ("HTTP_HOST", "http://x", "rpi4", "host name"),
            ("TFTP_PREFIX_STR", &"x".repeat(33), "rpi4", "up to 32"),
            ("PCIE_PROBE", "1", "rpi4", "Pi 5 bootloader only"),
            ("VL805", "1", "rpi5", "Pi 4 bootloader only"),
            ("BOOT_ODER", "0xf41", "rpi4", "did you mean BOOT_ORDER"),
            ("boot_uart", "1", "rpi4", "did you mean BOOT_UART"),
        ] {
            let e = edit(k, v, board, "--bootconf").unwrap_err();
            assert_eq!(crate::error::exit_code(&e), 2);
            assert!(e.to_string().contains(want), "{k}={v}: {e}");
        }
    }
}
