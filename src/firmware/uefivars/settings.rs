//! Every setting the Raspberry Pi UEFI firmwares read from their variable stores, by name, per
//! board: which vendor GUID, which width (which the firmware checks exactly: Pi 5's
//! RpiPlatformDxe reads each with `sizeof` and rewrites a wrong-sized one with its default),
//! which values its setup form allows, its attributes, and the default it uses when the
//! variable is absent (edk2-platforms RPi4.dsc and ConfigDxe's form; rpi5-uefi v0.3's
//! RpiPlatformDxe).

use crate::error::usage;
use anyhow::{bail, Result};
use uuid::Uuid;

/// gConfigDxeFormSetGuid: most Pi 4 settings (and Pi 5's display ones).
pub const CONFIG_DXE: Uuid = uuid::uuid!("CD7CC258-31DB-22E6-9F22-63B0B8EED6B5");
/// gRaspberryPiTokenSpaceGuid: the console size and the reset delay.
pub const RPI_TOKEN_SPACE: Uuid = uuid::uuid!("CD7CC258-31DB-11E6-9FD3-63B0B8EED6B5");
/// gEfiGlobalVariableGuid: `Timeout`.
pub const EFI_GLOBAL: Uuid = uuid::uuid!("8BE4DF61-93CA-11D2-AA0D-00E098032B8C");
/// BootDiscoveryPolicy's vendor (edk2's BootDiscoveryPolicyUiLib).
pub const BOOT_DISCOVERY: Uuid = uuid::uuid!("5B6F7107-BB3C-4660-92CD-542690280BBD");
/// Pi 5's RpiPlatformDxe.
pub const RPI5_PLATFORM: Uuid = uuid::uuid!("677A7AC5-7D92-4288-8BF0-97048102D11C");
/// edk2's MemoryAttributeManagerDxe.
pub const MEMORY_ATTRIBUTE: Uuid = uuid::uuid!("EFAB3427-4793-4E9E-AA29-880C9A775B5F");

/// NV | BS | RT.
pub const NV_BS_RT: u32 = 0x7;
/// NV | BS.
pub const NV_BS: u32 = 0x3;

/// One field of a packed structure setting (`Pcie1Settings.MaxLinkSpeed`).
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    /// 1 or 4 bytes, little-endian.
    pub bytes: usize,
    pub lo: u32,
    pub hi: u32,
    pub default: u32,
}

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
    /// A packed structure of fields, stored whole.
    Struct(&'static [Field]),
}

impl PartialEq for Field {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name
    }
}
impl Eq for Field {}

impl Width {
    pub fn bytes(self) -> usize {
        match self {
            Width::U8 => 1,
            Width::U16 => 2,
            Width::U32 => 4,
            Width::Utf16 { chars } => (chars + 1) * 2,
            Width::Struct(f) => f.iter().map(|f| f.bytes).sum(),
        }
    }
    pub fn name(self) -> String {
        match self {
            Width::U8 => "UINT8".into(),
            Width::U16 => "UINT16".into(),
            Width::U32 => "UINT32".into(),
            Width::Utf16 { chars } => format!("CHAR16[{}]", chars + 1),
            Width::Struct(_) => format!("struct ({} bytes)", self.bytes()),
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
    /// Each field in its own range.
    Fields,
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
    pub attributes: u32,
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
        attributes: NV_BS_RT,
        meaning,
    }
}

const A: Uuid = CONFIG_DXE;
const B: Uuid = RPI_TOKEN_SPACE;
const P: Uuid = RPI5_PLATFORM;
const OFF_ON: Allowed = Allowed::Range(0, 1);

/// Every setting of the Raspberry Pi 4 firmware, in the order of its setup pages.
#[rustfmt::skip]
pub static RPI4: &[Def] = &[
    num("CpuClock", A, Width::U32, Allowed::Range(0, 3), 1, "CPU clock: 0 low (800 MHz), 1 default (1500 MHz), 2 max (2200 MHz), 3 custom"),
    num("CustomCpuClock", A, Width::U32, Allowed::Range(100, 2200), 1500, "CPU clock in MHz when CpuClock = 3"),
    num("RamLimitTo3GB", A, Width::U32, OFF_ON, 1, "limit RAM to 3 GB: 0 off, 1 on"),
    num("SystemTableMode", A, Width::U32, Allowed::Range(0, 2), 0, "system tables: 0 ACPI, 1 ACPI + Devicetree, 2 Devicetree"),
    num("FanOnGpio", A, Width::U32, Allowed::OneOf(&[0, 14, 18, 19]), 0, "fan on GPIO 14, 18 or 19 (0 none; ACPI tables only)"),
    num("FanTemp", A, Width::U32, Allowed::Range(50, 80), 60, "fan switch-on temperature in degrees C"),
    num("XhciPci", A, Width::U32, Allowed::Range(0, 2), 0, "USB: 0 XHCI, 1 PCIe, 2 PCIe (CM4 default)"),
    num("XhciReload", A, Width::U32, OFF_ON, 0, "reload the VL805 USB firmware at boot (Devicetree only)"),
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
    num("BootDiscoveryPolicy", BOOT_DISCOVERY, Width::U32, Allowed::Range(0, 2), 0, "boot devices connected: 0 minimal, 1 network too (netboot), 2 all"),
];

/// Pcie1Settings: RpiPlatformDxe's packed PCIE_SETTINGS, 9 bytes.
#[rustfmt::skip]
pub static PCIE_FIELDS: &[Field] = &[
    Field { name: "Enabled", bytes: 1, lo: 0, hi: 1, default: 1 },
    Field { name: "MaxLinkSpeed", bytes: 1, lo: 1, hi: 3, default: 2 },
    Field { name: "AspmSupportL0s", bytes: 1, lo: 0, hi: 1, default: 0 },
    Field { name: "AspmSupportL1", bytes: 1, lo: 0, hi: 1, default: 0 },
    Field { name: "RcbMatchMps", bytes: 1, lo: 0, hi: 1, default: 0 },
    Field { name: "VdmToQosMap", bytes: 4, lo: 0, hi: u32::MAX, default: 0 },
];

/// Every setting of the Raspberry Pi 5 firmware (rpi5-uefi v0.3): no ConfigDxe, so none of
/// the Pi 4's CPU, RAM, fan, USB or SD settings.
#[rustfmt::skip]
pub static RPI5: &[Def] = &[
    num("SystemTableMode", P, Width::U32, Allowed::Range(0, 2), 0, "system tables: 0 ACPI, 1 ACPI + Devicetree, 2 Devicetree"),
    num("AcpiSdCompatMode", P, Width::U8, OFF_ON, 0, "ACPI SD: 0 BRCMSTB Bay Trail, 1 full Bay Trail"),
    num("AcpiSdLimitUhs", P, Width::U8, OFF_ON, 1, "ACPI SD: limit to UHS-I speeds"),
    num("AcpiPcieEcamCompatMode", P, Width::U32, Allowed::OneOf(&[1, 2, 3, 4, 6]), 3, "ACPI PCIe ECAM: 1 DEN0115, 2 NXPMX6, 3 NXPMX6+DEN0115, 4 GRAVITON, 6 NXPMX6+GRAVITON"),
    num("AcpiPcie32BitBarSpaceSizeMB", P, Width::U32, Allowed::Range(0, 1024), 0, "ACPI PCIe 32-bit BAR space in MB"),
    num("Pcie1Settings", P, Width::Struct(PCIE_FIELDS), Allowed::Fields, 0, "PCIe 1 (the external connector): Enabled, MaxLinkSpeed 1..3, AspmSupportL0s, AspmSupportL1, RcbMatchMps, VdmToQosMap"),
    Def { name: "MemoryAttributeManagerData", guid: MEMORY_ATTRIBUTE, width: Width::U8, allowed: OFF_ON, default: 1, attributes: NV_BS, meaning: "memory attribute protocol: 1 on, 0 for distributions that hit a Synchronous Exception" },
    num("DisplayEnableScaledVModes", A, Width::U8, Allowed::Range(0, 0x3F), 0x20, "scaled video modes, bits: 0 800x600, 1 640x480, 2 1024x768, 3 720p, 4 1080p, 5 native"),
    num("DisplayEnableSShot", A, Width::U32, OFF_ON, 1, "screenshot support"),
    num("ResetDelay", B, Width::U32, Allowed::Range(0, u32::MAX), 0, "seconds to wait before a reset"),
    num("Columns", B, Width::U32, Allowed::Range(1, u32::MAX), 80, "text console columns"),
    num("Rows", B, Width::U32, Allowed::Range(1, u32::MAX), 25, "text console rows"),
    num("Timeout", EFI_GLOBAL, Width::U16, Allowed::Range(0, 0xFFFF), 5, "boot menu timeout in seconds"),
    num("BootDiscoveryPolicy", BOOT_DISCOVERY, Width::U32, Allowed::Range(0, 2), 0, "boot devices connected: 0 minimal, 1 network too (netboot), 2 all"),
];

/// The settings of `board`'s firmware.
pub fn table(board: &str) -> Result<&'static [Def]> {
    match board {
        "rpi4" => Ok(RPI4),
        "rpi5" => Ok(RPI5),
        other => bail!(usage(format!(
            "pi-burn knows no UEFI settings of board {other} (it knows rpi4 and rpi5)"
        ))),
    }
}

/// Every known setting of every board, Pi 4's first.
pub fn all() -> impl Iterator<Item = &'static Def> {
    RPI4.iter().chain(RPI5.iter())
}

/// A value to store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    Num(u32),
    Text(String),
    /// Fields of a structure setting; the ones not named take their defaults.
    Fields(std::collections::BTreeMap<String, u32>),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{n}"),
            Value::Text(s) => write!(f, "\"{s}\""),
            Value::Fields(m) => write!(
                f,
                "{{{}}}",
                m.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
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

fn board_name(board: &str) -> &str {
    match board {
        "rpi5" => "Pi 5",
        _ => "Pi 4",
    }
}

/// The definition of `name` in `board`'s firmware (case-insensitive; the firmware's spelling
/// is used from then on). A name of the other board's firmware is refused as such.
pub fn def_of(board: &str, name: &str) -> Result<&'static Def> {
    if name.eq_ignore_ascii_case("RamMoreThan3GB") {
        bail!(usage(
            "RamMoreThan3GB is not a setting: the firmware computes it from the board's memory at every boot (set RamLimitTo3GB instead)"
        ));
    }
    let defs = table(board)?;
    if let Some(d) = defs.iter().find(|d| d.name.eq_ignore_ascii_case(name)) {
        return Ok(d);
    }
    if all().any(|d| d.name.eq_ignore_ascii_case(name)) {
        bail!(usage(format!(
            "UEFI setting '{name}': the {} firmware has no such setting (its settings: {})",
            board_name(board),
            defs.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
        )));
    }
    bail!(usage(format!(
        "unknown UEFI setting '{name}'; the {} firmware reads: {}",
        board_name(board),
        defs.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
    )))
}

/// The Pi 4 definition of `name` (see [`def_of`]).
pub fn def(name: &str) -> Result<&'static Def> {
    def_of("rpi4", name)
}

fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.starts_with("0x") || s.starts_with("0X") {
        crate::util::text::hex(s, true, 16)
    } else {
        s.parse().ok()
    }
}

impl Def {
    /// Checks `text` against the firmware's allowed values (a structure's value is set field
    /// by field: [`Def::field_value`]).
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
            Allowed::Fields => bail!(bad(format!(
                "a structure: set its fields one by one, e.g. {}.{}=...",
                self.name,
                self.fields().first().map_or("Field", |f| f.name)
            ))),
        }
    }

    /// The fields of a structure setting (none for the others).
    pub fn fields(&self) -> &'static [Field] {
        match self.width {
            Width::Struct(f) => f,
            _ => &[],
        }
    }

    /// `field` (case-insensitive) of a structure setting set to `text`, checked.
    pub fn field_value(&'static self, field: &str, text: &str) -> Result<Value> {
        let Some(f) = self
            .fields()
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(field))
        else {
            bail!(usage(format!(
                "{}.{field}: {}",
                self.name,
                if self.fields().is_empty() {
                    format!(
                        "{} is not a structure (give {}=VALUE)",
                        self.name, self.name
                    )
                } else {
                    format!(
                        "no such field (its fields: {})",
                        self.fields()
                            .iter()
                            .map(|f| f.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            )));
        };
        match parse_number(text) {
            Some(n) if (f.lo as u64..=f.hi as u64).contains(&n) => Ok(Value::Fields(
                [(f.name.to_string(), n as u32)].into_iter().collect(),
            )),
            _ => bail!(usage(format!(
                "{}.{}={text}: the firmware accepts {}..{}",
                self.name, f.name, f.lo, f.hi
            ))),
        }
    }

    /// Whether `value` is one this setting's firmware accepts: of its kind (a number, a text or
    /// a structure's fields) and within its range, as [`Def::value`] and [`Def::field_value`]
    /// check a flag's. For values read from elsewhere (a card's record): why not, if not.
    pub fn check(&self, value: &Value) -> std::result::Result<(), String> {
        let name = self.name;
        match (self.allowed, value) {
            (Allowed::Text, Value::Text(t)) => {
                let Width::Utf16 { chars } = self.width else {
                    return Err(format!("{name} is no text setting"));
                };
                if t.chars().any(|c| !(' '..='~').contains(&c)) || t.len() > chars {
                    return Err(format!(
                        "{name}: \"{}\" is not printable ASCII of at most {chars} characters",
                        crate::util::text::printable(t)
                    ));
                }
                Ok(())
            }
            (Allowed::Range(lo, hi), Value::Num(n)) if (lo..=hi).contains(n) => Ok(()),
            (Allowed::OneOf(set), Value::Num(n)) if set.contains(n) => Ok(()),
            (Allowed::Range(..) | Allowed::OneOf(_), Value::Num(n)) => {
                Err(format!("{name} = {n}: outside what the firmware accepts"))
            }
            (Allowed::Fields, Value::Fields(m)) => {
                for (k, v) in m {
                    match self.fields().iter().find(|f| f.name == k.as_str()) {
                        Some(f) if (f.lo..=f.hi).contains(v) => {}
                        Some(f) => {
                            return Err(format!(
                                "{name}.{} = {v}: the firmware accepts {}..{}",
                                f.name, f.lo, f.hi
                            ))
                        }
                        None => {
                            return Err(format!(
                                "{name} has no field '{}'",
                                crate::util::text::printable(k)
                            ))
                        }
                    }
                }
                Ok(())
            }
            _ => Err(format!(
                "{name} = {}: not the kind of value {name} holds ({})",
                crate::util::text::printable(&value.to_string()),
                self.width.name()
            )),
        }
    }

    /// The bytes stored for `value`; a value of another kind, or out of the setting's range
    /// (from a record, say), is an error rather than bytes of another meaning.
    pub fn encode(&self, value: &Value) -> Result<Vec<u8>> {
        self.check(value).map_err(anyhow::Error::msg)?;
        Ok(match (self.width, value) {
            (Width::U8, Value::Num(n)) => vec![*n as u8],
            (Width::U16, Value::Num(n)) => (*n as u16).to_le_bytes().to_vec(),
            (Width::U32, Value::Num(n)) => n.to_le_bytes().to_vec(),
            (Width::Utf16 { chars }, Value::Text(s)) => {
                let mut units: Vec<u16> = s.encode_utf16().collect();
                units.resize(chars + 1, 0);
                units.iter().flat_map(|u| u.to_le_bytes()).collect()
            }
            (Width::Struct(fields), Value::Fields(m)) => fields
                .iter()
                .flat_map(|f| {
                    let v = m.get(f.name).copied().unwrap_or(f.default);
                    v.to_le_bytes()[..f.bytes].to_vec()
                })
                .collect(),
            _ => bail!(
                "{} = {}: not the kind of value it holds",
                self.name,
                crate::util::text::printable(&value.to_string())
            ),
        })
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
                Some(Value::Text(crate::util::le::utf16z(data)))
            }
            Width::Struct(fields) => {
                if data.len() != self.width.bytes() {
                    return None;
                }
                let mut at = 0;
                let mut m = std::collections::BTreeMap::new();
                for f in fields {
                    let mut b = [0u8; 4];
                    b[..f.bytes].copy_from_slice(&data[at..at + f.bytes]);
                    m.insert(f.name.to_string(), u32::from_le_bytes(b));
                    at += f.bytes;
                }
                Some(Value::Fields(m))
            }
        }
    }

    /// The default, as a value.
    pub fn default_value(&self) -> Value {
        match self.allowed {
            Allowed::Text => Value::Text(String::new()),
            Allowed::Fields => Value::Fields(
                self.fields()
                    .iter()
                    .map(|f| (f.name.to_string(), f.default))
                    .collect(),
            ),
            _ => Value::Num(self.default),
        }
    }
}

/// Parses `NAME=VALUE` or `NAME.FIELD=VALUE` (from `--set`, or a pi-burn.toml table) into a
/// setting of `board`'s firmware, checked.
pub fn parse_for(board: &str, text: &str, from: &str) -> Result<Setting> {
    let Some((name, value)) = text.split_once('=') else {
        bail!(usage(format!(
            "{from} {text}: expected NAME=VALUE (e.g. RamLimitTo3GB=0)"
        )));
    };
    let name = name.trim();
    let (name, field) = match name.split_once('.') {
        Some((n, f)) => (n, Some(f)),
        None => (name, None),
    };
    let def = def_of(board, name)?;
    let value = match field {
        Some(f) => def.field_value(f, value)?,
        None => def.value(value)?,
    };
    Ok(Setting {
        def,
        value,
        from: from.to_string(),
    })
}

/// Parses `NAME=VALUE` into a Pi 4 setting (see [`parse_for`]).
pub fn parse_assignment(text: &str, from: &str) -> Result<Setting> {
    parse_for("rpi4", text, from)
}

/// Keeps the last value given for each setting, in the order of first mention; the fields of a
/// structure setting add up, field by field.
pub fn merge(settings: Vec<Setting>) -> Vec<Setting> {
    let mut out: Vec<Setting> = vec![];
    for s in settings {
        match out.iter_mut().find(|o| std::ptr::eq(o.def, s.def)) {
            Some(o) => match (&mut o.value, s.value) {
                (Value::Fields(old), Value::Fields(new)) => {
                    old.extend(new);
                    o.from = s.from;
                }
                (_, v) => {
                    o.value = v;
                    o.from = s.from;
                }
            },
            None => out.push(s),
        }
    }
    out
}

/// The known setting of `name` under vendor `guid` (as text), in any board's table.
pub fn lookup(name: &str, guid: &str) -> Option<&'static Def> {
    all().find(|d| d.name == name && d.guid.to_string().eq_ignore_ascii_case(guid))
}
