//! The UEFI variable store inside an edk2 firmware file (`RPI_EFI.fd`): found by its signatures,
//! read, and changed the way edk2 itself changes it (the old record marked deleted, a new one
//! appended), so the firmware boots with the settings a headless node needs.
//!
//! Layout: a firmware volume (header with `_FVH` and the NV-data file-system GUID) whose header is
//! followed by a VARIABLE_STORE_HEADER (authenticated-variables GUID, format 0x5A, state 0xFE),
//! then variables, each a 60-byte authenticated header, its UTF-16LE name with NUL, its data,
//! the next header 4-byte aligned; free space is 0xFF.

pub mod settings;

use crate::util::le;
use anyhow::{bail, Context, Result};
pub use settings::{Setting, Value};
use uuid::Uuid;

/// EFI_SYSTEM_NV_DATA_FV_GUID.
pub const NV_DATA_FV: Uuid = uuid::uuid!("FFF12B8D-7696-4C8B-A985-2747075B4F50");
/// gEfiAuthenticatedVariableGuid: the store format edk2 uses here.
pub const AUTH_VARIABLES: Uuid = uuid::uuid!("AAF32C78-947B-439A-A180-2E144EC37792");
/// gEfiVariableGuid: the older, unauthenticated format.
pub const PLAIN_VARIABLES: Uuid = uuid::uuid!("DDCF3616-3275-4164-98B6-FE85707FFE7D");

const HDR: usize = 60;
const START_ID: u16 = 0x55AA;
pub const VAR_ADDED: u8 = 0x3F;
const VAR_DELETED: u8 = 0xFD;
const VAR_IN_DELETED_TRANSITION: u8 = 0xFE;
/// NV | BS | RT.
pub const ATTRS_NV_BS_RT: u32 = 0x7;

/// A field of the file at `o`, or an error naming where the file is cut short.
fn field<T>(v: Option<T>, origin: &str, o: usize) -> Result<T> {
    v.with_context(|| format!("{origin}: cut short at 0x{o:x} (corrupt)"))
}

/// Where the store is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Store {
    pub fv_offset: usize,
    pub fv_length: usize,
    /// The VARIABLE_STORE_HEADER.
    pub store_offset: usize,
    /// Bytes of the store, its header included.
    pub store_size: usize,
}

impl Store {
    fn vars_start(&self) -> usize {
        self.store_offset + 28
    }
    fn end(&self) -> usize {
        self.store_offset + self.store_size
    }
}

/// One variable record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Var {
    pub offset: usize,
    pub state: u8,
    pub attributes: u32,
    pub name: String,
    pub guid: Uuid,
    pub data: Vec<u8>,
    /// Neither deleted nor half-written.
    pub live: bool,
}

/// Finds the variable store by its signatures; `origin` names the file in errors.
pub fn find_store(fd: &[u8], origin: &str) -> Result<Store> {
    let mut found_other = None;
    let mut at = 0;
    while let Some(i) = crate::util::find(&fd[at..], b"_FVH") {
        let sig = at + i;
        at = sig + 4;
        let Some(base) = sig.checked_sub(0x28) else {
            continue;
        };
        if base + 0x48 > fd.len() || le::guid_at(fd, base + 0x10) != Some(NV_DATA_FV) {
            continue;
        }
        let fv_length = usize::try_from(field(le::u64_at(fd, base + 0x20), origin, base)?)
            .unwrap_or(usize::MAX);
        let hlen = field(le::u16_at(fd, base + 0x30), origin, base)? as usize;
        let fits = |len: usize| base.checked_add(len).is_some_and(|end| end <= fd.len());
        if hlen < 0x38 || !hlen.is_multiple_of(2) || !fits(hlen + 28) || !fits(fv_length) {
            bail!("{origin}: the variable firmware volume at 0x{base:x} is corrupt (header length {hlen}, length {fv_length})");
        }
        let sum = (0..hlen).step_by(2).fold(0u16, |s, o| {
            s.wrapping_add(le::u16_at(fd, base + o).unwrap_or(0))
        });
        if sum != 0 {
            bail!("{origin}: the variable firmware volume at 0x{base:x} fails its header checksum");
        }
        let vs = base + hlen;
        let sig_guid = field(le::guid_at(fd, vs), origin, vs)?;
        if sig_guid == PLAIN_VARIABLES {
            found_other = Some(format!("{origin}: the variable store at 0x{vs:x} holds unauthenticated variables (gEfiVariableGuid), not the authenticated format this firmware uses"));
            continue;
        }
        if sig_guid != AUTH_VARIABLES {
            found_other = Some(format!(
                "{origin}: the variable store at 0x{vs:x} has an unknown format ({sig_guid})"
            ));
            continue;
        }
        let size = field(le::u32_at(fd, vs + 16), origin, vs)? as usize;
        let (format, state) = (
            field(le::u8_at(fd, vs + 20), origin, vs)?,
            field(le::u8_at(fd, vs + 21), origin, vs)?,
        );
        if format != 0x5A || state != 0xFE {
            bail!("{origin}: the variable store at 0x{vs:x} is not formatted and healthy (format 0x{format:02x}, state 0x{state:02x})");
        }
        if size < 28 || vs + size > base + fv_length {
            // (base + fv_length fits: checked above; vs + size cannot overflow a usize.)
            bail!("{origin}: the variable store at 0x{vs:x} claims {size} bytes, more than its volume holds");
        }
        return Ok(Store {
            fv_offset: base,
            fv_length,
            store_offset: vs,
            store_size: size,
        });
    }
    match found_other {
        Some(e) => bail!(e),
        None => bail!("{origin} has no UEFI variable store (no firmware volume with the NV-data GUID): is it an edk2 RPI_EFI.fd?"),
    }
}

/// Every record of the store, in order, and where free space begins.
pub fn read_vars(fd: &[u8], s: &Store, origin: &str) -> Result<(Vec<Var>, usize)> {
    let mut out = vec![];
    let mut at = s.vars_start();
    while at + HDR <= s.end() && le::u16_at(fd, at) == Some(START_ID) {
        let state = field(le::u8_at(fd, at + 2), origin, at)?;
        let attributes = field(le::u32_at(fd, at + 4), origin, at)?;
        let name_size = field(le::u32_at(fd, at + 36), origin, at)? as usize;
        let data_size = field(le::u32_at(fd, at + 40), origin, at)? as usize;
        let guid = field(le::guid_at(fd, at + 44), origin, at)?;
        let name_end = at + HDR + name_size;
        let data_end = name_end
            .checked_add(data_size)
            .filter(|e| *e <= s.end())
            .with_context(|| {
                format!(
                    "{origin}: the variable at 0x{at:x} runs past the end of the store (corrupt)"
                )
            })?;
        if !name_size.is_multiple_of(2) || name_size < 2 {
            bail!("{origin}: the variable at 0x{at:x} has a malformed name (corrupt)");
        }
        let units: Vec<u16> = fd[at + HDR..name_end]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|u| *u != 0)
            .collect();
        let name = String::from_utf16_lossy(&units);
        out.push(Var {
            offset: at,
            state,
            attributes,
            name,
            guid,
            data: fd[name_end..data_end].to_vec(),
            live: state == VAR_ADDED || state == VAR_ADDED & VAR_IN_DELETED_TRANSITION,
        });
        at = (data_end + 3) & !3;
    }
    // Past the last record the store must be free (0xFF).
    if let Some(i) = fd[at.min(s.end())..s.end()].iter().position(|b| *b != 0xFF) {
        bail!("{origin}: the variable store has data after its last record at 0x{:x} (corrupt, or a format pi-burn does not know)", at + i);
    }
    Ok((out, at))
}

/// Bytes from the variable volume's start that edk2 on the Pi writes back into the card's
/// RPI_EFI.fd (variables, event log, fault-tolerant-write spare): the firmware changes them at
/// its first boot and in its setup UI; every byte outside is the firmware's code.
pub const REGION: usize = 0x20000;

/// A variable as edk2 reads it: the effective record of one name and vendor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub name: String,
    pub guid: Uuid,
    pub attributes: u32,
    pub data: Vec<u8>,
}

/// A firmware file seen as edk2 on the Pi sees it: the region it rewrites, the SHA-256 of
/// every byte outside it, and the variables inside.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub offset: usize,
    pub len: usize,
    /// The SHA-256 of the file outside the region, and of the whole file (one pass over the
    /// bytes before the region serves both).
    pub outside: crate::firmware::digest::Sha256Digest,
    pub whole: crate::firmware::digest::Sha256Digest,
    pub vars: Vec<Effective>,
}

/// The SHA-256 of `fd` without the region `[offset, offset + len)`.
pub fn outside_digest(
    fd: &[u8],
    offset: usize,
    len: usize,
) -> crate::firmware::digest::Sha256Digest {
    use sha2::Digest;
    let end = offset.saturating_add(len).min(fd.len());
    let mut h = sha2::Sha256::new();
    h.update(&fd[..offset.min(fd.len())]);
    h.update(&fd[end..]);
    crate::firmware::digest::Sha256Digest::from_hasher(h)
}

/// [`outside_digest`] and the SHA-256 of all of `fd`, sharing the hash of the bytes before the
/// region.
pub fn digests(
    fd: &[u8],
    offset: usize,
    len: usize,
) -> (
    crate::firmware::digest::Sha256Digest,
    crate::firmware::digest::Sha256Digest,
) {
    use crate::firmware::digest::Sha256Digest;
    use sha2::Digest;
    let start = offset.min(fd.len());
    let end = offset.saturating_add(len).min(fd.len());
    let mut before = sha2::Sha256::new();
    before.update(&fd[..start]);
    let mut whole = before.clone();
    before.update(&fd[end..]);
    whole.update(&fd[start..]);
    (
        Sha256Digest::from_hasher(before),
        Sha256Digest::from_hasher(whole),
    )
}

/// The snapshot of `fd`: its store found and read (a corrupt store is an error), each live
/// variable's effective record (the one edk2 reads), in store order.
pub fn snapshot(fd: &[u8], origin: &str) -> Result<Snapshot> {
    let s = find_store(fd, origin)?;
    let (vars, _) = read_vars(fd, &s, origin)?;
    let mut out: Vec<Effective> = vec![];
    for v in vars.iter().filter(|v| v.live) {
        if out.iter().any(|o| o.name == v.name && o.guid == v.guid) {
            continue;
        }
        if let (Some(e), _) = effective(&vars, &v.name, v.guid) {
            out.push(Effective {
                name: e.name.clone(),
                guid: e.guid,
                attributes: e.attributes,
                data: e.data.clone(),
            });
        }
    }
    let len = REGION.min(fd.len() - s.fv_offset);
    let (outside, whole) = digests(fd, s.fv_offset, len);
    Ok(Snapshot {
        offset: s.fv_offset,
        len,
        outside,
        whole,
        vars: out,
    })
}

/// What a `set` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Unchanged,
    Replaced,
    Added,
}

/// Sets variable `name` of vendor `guid` to `data` with `attributes`, as edk2 would: an equal
/// live record is left alone; otherwise the old record is marked deleted and a new one appended.
pub fn set(
    fd: &mut [u8],
    s: &Store,
    name: &str,
    guid: Uuid,
    attributes: u32,
    data: &[u8],
    origin: &str,
) -> Result<Change> {
    let (vars, free) = read_vars(fd, s, origin)?;
    let live: Vec<&Var> = vars
        .iter()
        .filter(|v| v.live && v.name == name && v.guid == guid)
        .collect();
    if live.len() == 1 && live[0].data == data && live[0].attributes == attributes {
        return Ok(Change::Unchanged);
    }
    let mut name16: Vec<u8> = name
        .encode_utf16()
        .chain([0])
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let mut rec = vec![0u8; HDR];
    rec[0..2].copy_from_slice(&START_ID.to_le_bytes());
    rec[2] = VAR_ADDED;
    rec[4..8].copy_from_slice(&attributes.to_le_bytes());
    rec[36..40].copy_from_slice(&(name16.len() as u32).to_le_bytes());
    rec[40..44].copy_from_slice(&(data.len() as u32).to_le_bytes());
    rec[44..60].copy_from_slice(&guid.to_bytes_le());
    rec.append(&mut name16);
    rec.extend_from_slice(data);
    if free + rec.len() > s.end() {
        bail!(
            "{origin}: the variable store is full ({} bytes free, {} needed); boot the firmware once to let it reclaim space",
            s.end() - free,
            rec.len()
        );
    }
    // edk2's order: the new record first, then the old one marked deleted.
    fd[free..free + rec.len()].copy_from_slice(&rec);
    for v in &live {
        fd[v.offset + 2] &= VAR_DELETED;
    }
    Ok(if live.is_empty() {
        Change::Added
    } else {
        Change::Replaced
    })
}

/// One applied setting, for reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    pub name: String,
    pub guid: String,
    pub width: String,
    pub value: Value,
    pub change: Change,
    /// Where the value came from: `--set`, `pi-burn.toml [nodes.X]`, ...
    pub from: String,
}

/// Applies `settings` to a copy of `fd`. Nothing is changed unless every setting fits.
pub fn apply(fd: &[u8], settings: &[Setting], origin: &str) -> Result<(Vec<u8>, Vec<Applied>)> {
    let s = find_store(fd, origin)?;
    let mut out = fd.to_vec();
    let mut applied = vec![];
    for st in settings {
        let change = set(
            &mut out,
            &s,
            st.def.name,
            st.def.guid,
            st.def.attributes,
            &st.def.encode(&st.value)?,
            origin,
        )?;
        applied.push(Applied {
            name: st.def.name.into(),
            guid: st.def.guid.to_string().to_uppercase(),
            width: st.def.width.name(),
            value: st.value.clone(),
            change,
            from: st.from.clone(),
        });
    }
    Ok((out, applied))
}

/// A known setting as a store holds it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub name: &'static str,
    pub guid: String,
    pub width: String,
    /// The live value, when the store has one of the right width.
    pub value: Option<Value>,
    pub default: Value,
    /// A live record of another width or attributes (the firmware would not use it as is).
    pub problem: Option<String>,
}

/// The record edk2 reads for `name` of `guid`: its variable driver (FindVariableEx) takes the
/// first record in the store that is added, else the first that is added but in transition to
/// deleted. Also how many live records there are.
pub fn effective<'v>(vars: &'v [Var], name: &str, guid: Uuid) -> (Option<&'v Var>, usize) {
    let mine = || {
        vars.iter()
            .filter(|v| v.live && v.name == name && v.guid == guid)
    };
    let added = mine().find(|v| v.state == VAR_ADDED);
    (added.or_else(|| mine().next()), mine().count())
}

/// Every setting of `defs` (a board's table) with its stored value or its default.
pub fn listing(vars: &[Var], defs: &'static [settings::Def]) -> Vec<Listed> {
    defs.iter()
        .map(|d| {
            let (live, count) = effective(vars, d.name, d.guid);
            let (value, mut problem) = match live {
                None => (None, None),
                Some(v) => match d.decode(&v.data) {
                    Some(val) if v.attributes == d.attributes => (Some(val), None),
                    Some(val) => (
                        Some(val),
                        Some(format!(
                            "attributes 0x{:x}, expected 0x{:x}",
                            v.attributes, d.attributes
                        )),
                    ),
                    None => (
                        None,
                        Some(format!(
                            "stored as {} bytes, the firmware reads {}",
                            v.data.len(),
                            d.width.name()
                        )),
                    ),
                },
            };
            if count > 1 {
                let at = live.map_or(0, |v| v.offset);
                let dup = format!("{count} live records; the firmware reads the one at 0x{at:x}");
                problem = Some(match problem {
                    Some(p) => format!("{p}; {dup}"),
                    None => dup,
                });
            }
            Listed {
                name: d.name,
                guid: d.guid.to_string().to_uppercase(),
                width: d.width.name(),
                value,
                default: d.default_value(),
                problem,
            }
        })
        .collect()
}

#[cfg(test)]
pub mod tests;
