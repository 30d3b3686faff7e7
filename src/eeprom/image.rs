//! The bootloader's EEPROM image (`pieeprom.bin`): a chain of sections from offset 0, read and
//! edited as rpi-eeprom-config does (shared/FACTS.md 8), never at a fixed offset.
//!
//! A section is a big-endian magic and length (the bytes after the 8-byte header); the next
//! starts at the following 8-byte boundary; the chain ends at a magic of 0 or 0xFFFFFFFF. A
//! modifiable file (magic 0x55AAF11F) holds a 12-byte NUL-padded name, 4 reserved bytes and
//! its data. Files are looked up in the first partition, [64 KiB, 64 KiB + 988 KiB): on the
//! 2712's A/B images the read-only part before it and the second partition after it stay as
//! they are. The last 4 KiB belong to the bootloader and are never written.

use anyhow::{bail, Result};

/// The two image sizes: BCM2711 (Pi 4) and BCM2712 (Pi 5).
pub const SIZE_2711: usize = 512 << 10;
pub const SIZE_2712: usize = 2 << 20;
const MAGIC: u32 = 0x55AA_F00F;
const MAGIC_MASK: u32 = 0xFFFF_F00F;
const PAD_MAGIC: u32 = 0x55AA_FEEF;
const FILE_MAGIC: u32 = 0x55AA_F11F;
/// Section header (magic, length) then, in a file, the name and the reserved word.
const HEADER: usize = 8;
const NAME_LEN: usize = 12;
const FILE_HEADER: usize = HEADER + NAME_LEN + 4;
/// A modifiable file fits one 4 KiB erase sector with its 20-byte header.
pub const MAX_FILE: usize = 4096 - 20;
const RESERVED_TAIL: usize = 4096;
const PARTITION_START: usize = 64 << 10;
const PARTITION_LEN: usize = 988 << 10;

/// The chip an image is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Soc {
    #[serde(rename = "2711")]
    Bcm2711,
    #[serde(rename = "2712")]
    Bcm2712,
}

impl Soc {
    pub fn number(self) -> u32 {
        match self {
            Soc::Bcm2711 => 2711,
            Soc::Bcm2712 => 2712,
        }
    }
    /// The board name pi-burn uses for it.
    pub fn board(self) -> &'static str {
        match self {
            Soc::Bcm2711 => "rpi4",
            Soc::Bcm2712 => "rpi5",
        }
    }
    pub fn of_board(board: &str) -> Option<Soc> {
        match board {
            "rpi4" => Some(Soc::Bcm2711),
            "rpi5" => Some(Soc::Bcm2712),
            _ => None,
        }
    }
    fn size(self) -> usize {
        match self {
            Soc::Bcm2711 => SIZE_2711,
            Soc::Bcm2712 => SIZE_2712,
        }
    }
}

/// One section of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub magic: u32,
    pub offset: usize,
    /// Bytes after the 8-byte header.
    pub length: usize,
    /// A modifiable file's name.
    pub name: Option<String>,
}

impl Section {
    fn end(&self) -> usize {
        self.offset + HEADER + self.length
    }
}

/// A parsed image; every section within bounds.
#[derive(Debug, Clone)]
pub struct EepromImage {
    bytes: Vec<u8>,
    pub soc: Soc,
    pub sections: Vec<Section>,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl EepromImage {
    /// Parses `bytes` (from `origin`, for messages). The size names the chip; every section
    /// must lie within the image.
    pub fn parse(bytes: Vec<u8>, origin: &str) -> Result<Self> {
        let soc = match bytes.len() {
            SIZE_2711 => Soc::Bcm2711,
            SIZE_2712 => Soc::Bcm2712,
            n => bail!(
                "{origin}: {n} bytes is no EEPROM image (a Pi 4 image is {SIZE_2711} bytes, a Pi 5 image {SIZE_2712})"
            ),
        };
        let size = bytes.len();
        let mut sections = vec![];
        let mut at = 0usize;
        // Each section takes at least 8 bytes: the chain is bounded by the image.
        while at + HEADER <= size {
            let magic = be32(&bytes, at);
            if magic == 0 || magic == 0xFFFF_FFFF {
                break;
            }
            if magic & MAGIC_MASK != MAGIC {
                bail!("{origin}: no section header at byte {at:#x} (magic {magic:#010x}): the image is damaged or no EEPROM image");
            }
            let length = be32(&bytes, at + 4) as usize;
            if length > size - at - HEADER {
                bail!(
                    "{origin}: the section at byte {at:#x} says it is {length} bytes long, past the image's end ({size} bytes)"
                );
            }
            let name = if magic == FILE_MAGIC {
                if length < NAME_LEN + 4 {
                    bail!("{origin}: the file section at byte {at:#x} is {length} bytes, too short for its name");
                }
                let raw = &bytes[at + HEADER..at + HEADER + NAME_LEN];
                let end = raw.iter().position(|b| *b == 0).unwrap_or(NAME_LEN);
                match std::str::from_utf8(&raw[..end]) {
                    Ok(n) if n.chars().all(|c| c.is_ascii_graphic()) => Some(n.to_string()),
                    _ => bail!("{origin}: the file section at byte {at:#x} has no readable name"),
                }
            } else {
                None
            };
            sections.push(Section {
                magic,
                offset: at,
                length,
                name,
            });
            at = (at + HEADER + length).div_ceil(8) * 8;
        }
        if sections
            .first()
            .is_none_or(|s| s.magic != MAGIC || s.offset != 0)
        {
            bail!("{origin}: no bootcode section at byte 0: no EEPROM image");
        }
        Ok(EepromImage {
            bytes,
            soc,
            sections,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The partition files are looked up and edited in.
    fn partition(&self) -> (usize, usize) {
        let end = (PARTITION_START + PARTITION_LEN).min(self.bytes.len() - RESERVED_TAIL);
        (PARTITION_START, end)
    }

    /// The index of the file section named `name` in the first partition.
    fn find(&self, name: &str) -> Option<usize> {
        let (start, end) = self.partition();
        self.sections.iter().position(|s| {
            s.magic == FILE_MAGIC
                && s.offset >= start
                && s.offset < end
                && s.name.as_deref() == Some(name)
        })
    }

    /// A modifiable file's data.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        let s = &self.sections[self.find(name)?];
        Some(&self.bytes[s.offset + FILE_HEADER..s.end()])
    }

    /// The names of the modifiable files, in order.
    pub fn files(&self) -> Vec<&str> {
        self.sections
            .iter()
            .filter_map(|s| s.name.as_deref())
            .collect()
    }

    /// The build's time (`BUILD_TIMESTAMP=<unix seconds>` in the bootcode), when it has one.
    pub fn build_timestamp(&self) -> Option<u64> {
        const KEY: &[u8] = b"BUILD_TIMESTAMP=";
        let at = crate::util::find(&self.bytes, KEY)? + KEY.len();
        let digits: Vec<u8> = self.bytes[at..]
            .iter()
            .take(12)
            .take_while(|b| b.is_ascii_digit())
            .copied()
            .collect();
        std::str::from_utf8(&digits).ok()?.parse().ok()
    }

    /// The board-compatibility version the image carries (`MFG_VER: <n>`), read as
    /// rpi-eeprom-update reads it (86759b0, line 297: the first string that starts so). A board
    /// whose OTP minimum (`/proc/device-tree/chosen/rpi-min-boot-ver`) is higher does not boot
    /// it reliably (rpi-eeprom README, "Minimum bootloader version").
    pub fn mfg_ver(&self) -> Option<u32> {
        const KEY: &[u8] = b"MFG_VER: ";
        let mut from = 0;
        while let Some(i) = crate::util::find(&self.bytes[from..], KEY) {
            let at = from + i;
            // The start of a string, as `strings` cuts them: no printable byte before it.
            let starts = at == 0 || !(0x20..0x7f).contains(&self.bytes[at - 1]);
            if starts {
                let digits: Vec<u8> = self.bytes[at + KEY.len()..]
                    .iter()
                    .take(10)
                    .take_while(|b| b.is_ascii_digit())
                    .copied()
                    .collect();
                return std::str::from_utf8(&digits).ok()?.parse().ok();
            }
            from = at + 1;
        }
        None
    }

    /// Replaces the data of the file `name` (in the first partition) with `data`, as
    /// rpi-eeprom-config does: the new length, the data, 0xFF to the next 8-byte boundary,
    /// then a padding section over the gap to the next section, or 0xFF up to the reserved
    /// last 4 KiB when the file is the last section. Refused when it does not fit before the
    /// next section (rpi-eeprom-config checks 4 bytes too few and can overwrite its header).
    pub fn replace_file(&mut self, name: &str, data: &[u8]) -> Result<()> {
        if data.len() > MAX_FILE {
            bail!(
                "{name} would be {} bytes; the bootloader keeps at most {MAX_FILE}",
                data.len()
            );
        }
        let Some(i) = self.find(name) else {
            bail!("the image has no {name} in its first partition");
        };
        let (_, part_end) = self.partition();
        let hdr = self.sections[i].offset;
        let is_last = i + 1 == self.sections.len();
        // The next section that is not padding (padding after the file is taken over).
        let next = self.sections[i + 1..]
            .iter()
            .find(|s| s.magic != PAD_MAGIC)
            .map_or(part_end, |s| s.offset.min(part_end));
        let data_end = hdr + FILE_HEADER + data.len();
        let aligned = data_end.div_ceil(8) * 8;
        if aligned > next {
            bail!(
                "{name} of {} bytes does not fit: the section at byte {hdr:#x} has room for {} before the next one",
                data.len(),
                next.saturating_sub(hdr + FILE_HEADER)
            );
        }
        let b = &mut self.bytes;
        b[hdr + 4..hdr + 8].copy_from_slice(&((NAME_LEN + 4 + data.len()) as u32).to_be_bytes());
        b[hdr + FILE_HEADER..data_end].copy_from_slice(data);
        b[data_end..aligned].fill(0xFF);
        let gap = next - aligned;
        if gap >= HEADER && !is_last {
            b[aligned..aligned + 4].copy_from_slice(&PAD_MAGIC.to_be_bytes());
            b[aligned + 4..aligned + 8].copy_from_slice(&((gap - HEADER) as u32).to_be_bytes());
            b[aligned + HEADER..next].fill(0xFF);
        } else {
            b[aligned..next].fill(0xFF);
        }
        let bytes = std::mem::take(&mut self.bytes);
        *self = Self::parse(bytes, "the edited image")?;
        Ok(())
    }

    /// Whether this image is for `soc`.
    pub fn check_soc(&self, soc: Soc, origin: &str) -> Result<()> {
        if self.soc != soc {
            bail!(
                "{origin}: a {} image is a {} (BCM{}) EEPROM, not a {} (BCM{}) one; --board {}",
                crate::util::units::human(self.bytes.len() as u64),
                board_name(self.soc),
                self.soc.number(),
                board_name(soc),
                soc.number(),
                self.soc.board()
            );
        }
        debug_assert_eq!(self.bytes.len(), soc.size());
        Ok(())
    }
}

fn board_name(s: Soc) -> &'static str {
    match s {
        Soc::Bcm2711 => "Pi 4",
        Soc::Bcm2712 => "Pi 5",
    }
}

#[cfg(test)]
/// Builds an image the way the releases are laid out, for tests: a bootcode
/// section at 0, then each (name, data) file section from `files_at`, padding sections where
/// `pad_after` says, 0xFF to the end.
pub fn synthetic(soc: Soc, files_at: usize, files: &[(&str, &[u8], usize)]) -> Vec<u8> {
    let mut b = vec![0xFFu8; soc.size()];
    let boot = b"synthetic bootcode BUILD_TIMESTAMP=1747480000 for tests";
    b[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    b[4..8].copy_from_slice(&(boot.len() as u32).to_be_bytes());
    b[8..8 + boot.len()].copy_from_slice(boot);
    let mut at = (8 + boot.len()).div_ceil(8) * 8;
    // Padding up to where the files start.
    if files_at > at + HEADER {
        b[at..at + 4].copy_from_slice(&PAD_MAGIC.to_be_bytes());
        b[at + 4..at + 8].copy_from_slice(&((files_at - at - HEADER) as u32).to_be_bytes());
        at = files_at;
    }
    for (name, data, pad_after) in files {
        b[at..at + 4].copy_from_slice(&FILE_MAGIC.to_be_bytes());
        b[at + 4..at + 8].copy_from_slice(&((NAME_LEN + 4 + data.len()) as u32).to_be_bytes());
        let mut n = [0u8; NAME_LEN];
        n[..name.len()].copy_from_slice(name.as_bytes());
        b[at + 8..at + 8 + NAME_LEN].copy_from_slice(&n);
        b[at + 20..at + 24].fill(0);
        b[at + FILE_HEADER..at + FILE_HEADER + data.len()].copy_from_slice(data);
        at = (at + FILE_HEADER + data.len()).div_ceil(8) * 8;
        if *pad_after > 0 {
            b[at..at + 4].copy_from_slice(&PAD_MAGIC.to_be_bytes());
            b[at + 4..at + 8].copy_from_slice(&((*pad_after - HEADER) as u32).to_be_bytes());
            at += pad_after;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &[u8] = b"[all]\nBOOT_UART=0\nWAKE_ON_GPIO=1\nPOWER_OFF_ON_HALT=0\n";

    fn middle() -> Vec<u8> {
        synthetic(
            Soc::Bcm2711,
            0x70000,
            &[
                ("bootconf.txt", CONF, 4096 - 80),
                ("pubkey.bin", &[7u8; 264], 0),
            ],
        )
    }

    /// MFG_VER as rpi-eeprom-update reads it: the first string that starts with it (not one
    /// that only contains it); none when the image has none.
    #[test]
    fn mfg_ver_is_read_where_a_string_starts_with_it() {
        let mut b = middle();
        assert_eq!(EepromImage::parse(b.clone(), "t").unwrap().mfg_ver(), None);
        // Inside a longer string first (not counted), then at a string's start.
        let at = 2000;
        b[at..at + 21].copy_from_slice(b"XMFG_VER: 9\0MFG_VER: ");
        b[at + 21..at + 24].copy_from_slice(b"12\0");
        let img = EepromImage::parse(b, "t").unwrap();
        assert_eq!(img.mfg_ver(), Some(12));
    }

    #[test]
    fn the_chain_is_walked_and_the_files_found() {
        let img = EepromImage::parse(middle(), "t").unwrap();
        assert_eq!(img.soc, Soc::Bcm2711);
        assert_eq!(img.files(), vec!["bootconf.txt", "pubkey.bin"]);
        assert_eq!(img.file("bootconf.txt"), Some(CONF));
        assert_eq!(img.build_timestamp(), Some(1_747_480_000));
    }

    #[test]
    fn a_longer_bootconf_in_the_middle_takes_its_padding() {
        let mut img = EepromImage::parse(middle(), "t").unwrap();
        let before = img.bytes().to_vec();
        let conf = b"[all]\nBOOT_UART=1\nBOOT_ORDER=0xf41\nWAKE_ON_GPIO=1\nPOWER_OFF_ON_HALT=0\n";
        img.replace_file("bootconf.txt", conf).unwrap();
        assert_eq!(img.file("bootconf.txt"), Some(&conf[..]));
        assert_eq!(img.file("pubkey.bin"), Some(&[7u8; 264][..]));
        // Nothing moved: the next file is where it was, the bootcode untouched.
        let pk = img
            .sections
            .iter()
            .find(|s| s.name.as_deref() == Some("pubkey.bin"))
            .unwrap();
        assert!(pk.offset > 0x70000);
        assert_eq!(img.bytes()[..0x70000], before[..0x70000]);
        assert_eq!(img.bytes()[pk.offset..], before[pk.offset..]);
        // A padding section covers the gap.
        let i = img
            .sections
            .iter()
            .position(|s| s.name.as_deref() == Some("bootconf.txt"))
            .unwrap();
        assert_eq!(img.sections[i + 1].magic, PAD_MAGIC);
        assert_eq!(img.sections[i + 1].end(), pk.offset);
        // Back to the original: the same bytes.
        img.replace_file("bootconf.txt", CONF).unwrap();
        assert_eq!(img.bytes(), &before[..]);
    }

    #[test]
    fn a_bootconf_at_the_end_is_padded_with_ff_to_the_reserved_tail() {
        let raw = synthetic(Soc::Bcm2712, 0x10000 + 0x200, &[("bootconf.txt", CONF, 0)]);
        let mut img = EepromImage::parse(raw, "t").unwrap();
        img.replace_file("bootconf.txt", b"[all]\nBOOT_UART=1\n")
            .unwrap();
        let s = img.sections.last().unwrap();
        assert_eq!(s.name.as_deref(), Some("bootconf.txt"));
        assert!(img.bytes()[s.end()..].iter().all(|b| *b == 0xFF));
    }

    #[test]
    fn hostile_images_are_one_line_errors() {
        let mut past = middle();
        past[0x70004..0x70008].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        let mut notmagic = middle();
        notmagic[0x70000..0x70004].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        let mut short = middle();
        short[0x70004..0x70008].copy_from_slice(&3u32.to_be_bytes());
        for (bytes, want) in [
            (past, "past the image's end"),
            (notmagic, "no section header at byte 0x70000"),
            (short, "too short for its name"),
            (vec![0u8; 1000], "1000 bytes is no EEPROM image"),
            (vec![0u8; SIZE_2711], "no bootcode section"),
        ] {
            let e = EepromImage::parse(bytes, "x.bin").unwrap_err().to_string();
            assert!(e.contains(want) && !e.contains('\n'), "{e}");
        }
        let mut img = EepromImage::parse(
            synthetic(Soc::Bcm2711, 0x70000, &[("pubkey.bin", &[1u8; 8], 0)]),
            "t",
        )
        .unwrap();
        let e = img
            .replace_file("bootconf.txt", CONF)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no bootconf.txt"), "{e}");
        let mut img = EepromImage::parse(middle(), "t").unwrap();
        let e = img
            .replace_file("bootconf.txt", &[b'#'; MAX_FILE + 1])
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 4076"), "{e}");
        // Larger than the room before the next section.
        let tight = synthetic(
            Soc::Bcm2711,
            0x70000,
            &[("bootconf.txt", CONF, 0), ("pubkey.bin", &[7u8; 8], 0)],
        );
        let mut img = EepromImage::parse(tight, "t").unwrap();
        let e = img
            .replace_file("bootconf.txt", &[b'#'; 200])
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not fit"), "{e}");
    }

    #[test]
    fn a_pi_4_image_is_not_taken_for_a_pi_5() {
        let img = EepromImage::parse(middle(), "x.bin").unwrap();
        let e = img
            .check_soc(Soc::Bcm2712, "x.bin")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Pi 4 (BCM2711)") && e.contains("--board rpi4"),
            "{e}"
        );
    }
}
