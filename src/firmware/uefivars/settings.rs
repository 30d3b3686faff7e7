//! Every setting the Raspberry Pi 4 UEFI firmware reads from its variable store, by name: which
//! vendor GUID, which width, which values the firmware's own setup form allows, and the default
//! it uses when the variable is absent (edk2-platforms RPi4.dsc and ConfigDxe's form).

use crate::error::usage;
use anyhow::{bail, Result};
use uuid::Uuid;

/// gConfigDxeFormSetGuid: most settings.
pub const CONFIG_DXE: Uuid = uuid::uuid!("CD7CC258-31DB-22E6-9F22-63B0B8EED6B5");
/// gRaspberryPiTokenSpaceGuid: the console size and the reset delay.
pub const RPI_TOKEN_SPACE: Uuid = uuid::uuid!("CD7CC258-31DB-11E6-9FD3-63B0B8EED6B5");
/// gEfiGlobalVariableGuid: `Timeout`.
pub const EFI_GLOBAL: Uuid = uuid::uuid!("8BE4DF61-93CA-11D2-AA0D-00E098032B8C");

/// How a setting is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    U8,
    U16,
    U32,
    /// A NUL-padded UTF-16LE buffer of `chars + 1` units (the setup form stores it whole).
    Utf16 {
        chars: usize,
    },
}

impl Width {
    pub fn bytes(self) -> usize {
        match self {
            Width::U8 => 1,
            Width::U16 => 2,
            Width::U32 => 4,
            Width::Utf16 { chars } => (chars + 1) * 2,
        }
    }
    pub fn name(self) -> String {
        match self {
            Width::U8 => "UINT8".into(),
            Width::U16 => "UINT16".into(),
            Width::U32 => "UINT32".into(),
            Width::Utf16 { chars } => format!("CHAR16[{}]", chars + 1),
        }
    }
}

/// The values the firmware accepts.
#[derive(Debug, Clone, Copy)]
pub enum Allowed {
    Range(u32, u32),
    OneOf(&'static [u32]),
    /// Printable ASCII, up to the width's characters.
    Text,
}

/// One known setting.
#[derive(Debug)]
pub struct Def {
    pub name: &'static str,
    pub guid: Uuid,
    pub width: Width,
    pub allowed: Allowed,
    /// The value the firmware uses when the variable is absent (text: empty).
    pub default: u32,
    pub meaning: &'static str,
}

const fn num(
    name: &'static str,
    guid: Uuid,
    width: Width,
    allowed: Allowed,
    default: u32,
    meaning: &'static str,
) -> Def {
    Def {
        name,
        guid,
        width,
        allowed,
        default,
        meaning,
    }
}

const A: Uuid = CONFIG_DXE;
const B: Uuid = RPI_TOKEN_SPACE;
const OFF_ON: Allowed = Allowed::Range(0, 1);

/// Every setting, in the order of the firmware's setup pages.
#[rustfmt::skip]
pub static SETTINGS: &[Def] = &[
    num("CpuClock", A, Width::U32, Allowed::Range(0, 3), 1, "CPU clock: 0 low (800 MHz), 1 default (1500 MHz), 2 max (2200 MHz), 3 custom"),
    num("CustomCpuClock", A, Width::U32, Allowed::Range(100, 2200), 1500, "CPU clock in MHz when CpuClock = 3"),
    num("RamLimitTo3GB", A, Width::U32, OFF_ON, 1, "limit RAM to 3 GB: 0 off, 1 on"),
    num("SystemTableMode", A, Width::U32, Allowed::Range(0, 2), 0, "system tables: 0 ACPI, 1 ACPI + Devicetree, 2 Devicetree"),
    num("FanOnGpio", A, Width::U32, Allowed::OneOf(&[0, 14, 18, 19]), 0, "fan on GPIO 14, 18 or 19 (0 none; ACPI tables only)"),
    num("FanTemp", A, Width::U32, Allowed::Range(50, 80), 60, "fan switch-on temperature in degrees C"),
    num("XhciPci", A, Width::U32, Allowed::Range(0, 2), 0, "USB: 0 XHCI, 1 PCIe, 2 PCIe (CM4 default)"),
    num("SdIsArasan", A, Width::U32, OFF_ON, 0, "uSD slot routing: 1 Arasan, 0 SDHost"),
    num("MmcDisableMulti", A, Width::U32, OFF_ON, 0, "disable multi-block transfers"),
    num("MmcForce1Bit", A, Width::U32, OFF_ON, 0, "force 1-bit mode"),
    num("MmcForceDefaultSpeed", A, Width::U32, OFF_ON, 0, "force default speed"),
    num("MmcSdDefaultSpeedMHz", A, Width::U32, Allowed::Range(25, 100), 25, "SD default speed in MHz"),
    num("MmcSdHighSpeedMHz", A, Width::U32, Allowed::Range(50, 100), 50, "SD high speed in MHz"),
    num("MmcEnableDma", A, Width::U32, OFF_ON, 1, "SD DMA"),
    num("DebugEnableJTAG", A, Width::U32, OFF_ON, 0, "JTAG debugging"),
    num("DisplayEnableScaledVModes", A, Width::U8, Allowed::Range(0, 0x3F), 0x20, "scaled video modes, bits: 0 800x600, 1 640x480, 2 1024x768, 3 720p, 4 1080p, 5 native"),
    num("DisplayEnableSShot", A, Width::U32, OFF_ON, 1, "screenshot support"),
    num("AssetTag", A, Width::Utf16 { chars: 32 }, Allowed::Text, 0, "SMBIOS asset tag, up to 32 characters"),
    num("ResetDelay", B, Width::U32, Allowed::Range(0, u32::MAX), 0, "seconds to wait before a reset"),
    num("Columns", B, Width::U32, Allowed::Range(1, u32::MAX), 80, "text console columns"),
    num("Rows", B, Width::U32, Allowed::Range(1, u32::MAX), 25, "text console rows"),
    num("Timeout", EFI_GLOBAL, Width::U16, Allowed::Range(0, 0xFFFF), 5, "boot menu timeout in seconds"),
];

/// A value to store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    Num(u32),
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{n}"),
            Value::Text(s) => write!(f, "\"{s}\""),
        }
    }
}

/// A setting with its value, and where the value came from (for the plan and the report).
#[derive(Debug, Clone)]
pub struct Setting {
    pub def: &'static Def,
    pub value: Value,
    pub from: String,
}

/// The definition of `name` (case-insensitive; the firmware's spelling is used from then on).
pub fn def(name: &str) -> Result<&'static Def> {
    if name.eq_ignore_ascii_case("RamMoreThan3GB") {
        bail!(usage(
            "RamMoreThan3GB is not a setting: the firmware computes it from the board's memory at every boot (set RamLimitTo3GB instead)"
        ));
    }
    SETTINGS
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            usage(format!(
                "unknown UEFI setting '{name}'; the Pi 4 firmware reads: {}",
                SETTINGS
                    .iter()
                    .map(|d| d.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

impl Def {
    /// Checks `text` against the firmware's allowed values.
    pub fn value(&'static self, text: &str) -> Result<Value> {
        let bad = |why: String| usage(format!("{}={text}: {why}", self.name));
        match self.allowed {
            Allowed::Text => {
                let Width::Utf16 { chars } = self.width else {
                    unreachable!("text settings are UTF-16")
                };
                if let Some(c) = text.chars().find(|c| !(' '..='~').contains(c)) {
                    bail!(bad(format!(
                        "'{c}' is not printable ASCII (the firmware copies the tag into SMBIOS as ASCII)"
                    )));
                }
                if text.len() > chars {
                    bail!(bad(format!(
                        "{} characters, the firmware keeps at most {chars}",
                        text.len()
                    )));
                }
                Ok(Value::Text(text.to_string()))
            }
            Allowed::Range(lo, hi) => match parse_number(text) {
                Some(n) if (lo as u64..=hi as u64).contains(&n) => Ok(Value::Num(n as u32)),
                _ => bail!(bad(format!("the firmware accepts {lo}..{hi}"))),
            },
            Allowed::OneOf(set) => match parse_number(text) {
                Some(n) if set.iter().any(|v| *v as u64 == n) => Ok(Value::Num(n as u32)),
                _ => bail!(bad(format!(
                    "the firmware accepts one of {}",
                    set.iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            },
        }
    }

    /// The bytes stored for `value`.
    pub fn encode(&self, value: &Value) -> Vec<u8> {
        match (self.width, value) {
            (Width::U8, Value::Num(n)) => vec![*n as u8],
            (Width::U16, Value::Num(n)) => (*n as u16).to_le_bytes().to_vec(),
            (Width::U32, Value::Num(n)) => n.to_le_bytes().to_vec(),
            (Width::Utf16 { chars }, Value::Text(s)) => {
                let mut units: Vec<u16> = s.encode_utf16().collect();
                units.resize(chars + 1, 0);
                units.iter().flat_map(|u| u.to_le_bytes()).collect()
            }
            _ => unreachable!("values are made by Def::value"),
        }
    }

    /// Reads stored bytes back; `None` when they are not this setting's width.
    pub fn decode(&self, data: &[u8]) -> Option<Value> {
        match self.width {
            Width::U8 => (data.len() == 1).then(|| Value::Num(data[0] as u32)),
            Width::U16 => {
                (data.len() == 2).then(|| Value::Num(u16::from_le_bytes([data[0], data[1]]) as u32))
            }
            Width::U32 => data
                .try_into()
                .ok()
                .map(|b: [u8; 4]| Value::Num(u32::from_le_bytes(b))),
            Width::Utf16 { .. } => {
                if !data.len().is_multiple_of(2) || data.len() > self.width.bytes() {
                    return None;
                }
                let units: Vec<u16> = data
                    .chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .take_while(|u| *u != 0)
                    .collect();
                Some(Value::Text(String::from_utf16_lossy(&units)))
            }
        }
    }

    /// The default, as a value.
    pub fn default_value(&self) -> Value {
        match self.allowed {
            Allowed::Text => Value::Text(String::new()),
            _ => Value::Num(self.default),
        }
    }
}

/// Parses `NAME=VALUE` (from `--set`, or a pi-burn.toml table) into a checked setting.
pub fn parse_assignment(text: &str, from: &str) -> Result<Setting> {
    let Some((name, value)) = text.split_once('=') else {
        bail!(usage(format!(
            "{from} {text}: expected NAME=VALUE (e.g. RamLimitTo3GB=0)"
        )));
    };
    let def = def(name.trim())?;
    Ok(Setting {
        def,
        value: def.value(value)?,
        from: from.to_string(),
    })
}

/// Keeps the last value given for each setting, in the order of first mention.
pub fn merge(settings: Vec<Setting>) -> Vec<Setting> {
    let mut out: Vec<Setting> = vec![];
    for s in settings {
        match out.iter_mut().find(|o| o.def.name == s.def.name) {
            Some(o) => *o = s,
            None => out.push(s),
        }
    }
    out
}
