//! Little-endian fields of on-disk structures, read with the bounds checked: a field that does
//! not lie within its buffer is `None`, never a panic. Every parser of untrusted bytes (GPT, FAT
//! boot sectors and directories, the UEFI variable store, zip headers) reads through these.

use uuid::Uuid;

fn array<const N: usize>(b: &[u8], o: usize) -> Option<[u8; N]> {
    b.get(o..o.checked_add(N)?)?.try_into().ok()
}

pub fn u8_at(b: &[u8], o: usize) -> Option<u8> {
    b.get(o).copied()
}

pub fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    array(b, o).map(u16::from_le_bytes)
}

pub fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    array(b, o).map(u32::from_le_bytes)
}

pub fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    array(b, o).map(u64::from_le_bytes)
}

/// A GUID as UEFI stores it (the first three fields little-endian).
pub fn guid_at(b: &[u8], o: usize) -> Option<Uuid> {
    array(b, o).map(Uuid::from_bytes_le)
}

/// UTF-16LE code units up to the first NUL (or the end), for names in GPT entries and UEFI
/// variables; unpaired surrogates become U+FFFD.
pub fn utf16z(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_past_the_end_are_none() {
        let b = [1u8, 2, 3, 4, 5];
        assert_eq!(u16_at(&b, 0), Some(0x0201));
        assert_eq!(u32_at(&b, 1), Some(0x05040302));
        assert_eq!(u32_at(&b, 2), None);
        assert_eq!(u64_at(&b, 0), None);
        assert_eq!(u16_at(&b, usize::MAX), None);
        assert_eq!(guid_at(&b, 0), None);
        assert_eq!(utf16z(&[b'a', 0, b'b', 0, 0, 0, b'c', 0]), "ab");
        assert_eq!(utf16z(&[b'a', 0, b'b']), "a");
    }
}
