//! Sizes: binary units, parsing and printing.

use anyhow::{bail, Context, Result};

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;

/// Parses a size: a number of bytes, or a number with K, M, G or T (powers of 1024, as sgdisk
/// and disko read them; also KiB ... TiB), or KB, MB, GB, TB (powers of 1000, as disk makers
/// and `truncate` count: a "500 GB" SSD holds 500000000000 bytes).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    if num.is_empty() {
        bail!("'{s}' is not a size: expected a number with an optional K, M, G or T");
    }
    let n: u64 = num
        .parse()
        .with_context(|| format!("'{s}' is not a size"))?;
    let mult = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KIB" => KIB,
        "M" | "MIB" => MIB,
        "G" | "GIB" => GIB,
        "T" | "TIB" => 1024 * GIB,
        "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "TB" => 1000 * 1000 * 1000 * 1000,
        _ => bail!("'{s}' is not a size: unknown unit '{unit}' (K, M, G and T are powers of 1024; KB, MB, GB and TB powers of 1000)"),
    };
    n.checked_mul(mult)
        .with_context(|| format!("'{s}' is too large"))
}

/// Human-readable binary size, e.g. `512 MiB`, `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else if (v - v.round()).abs() < 0.005 {
        format!("{} {}", v.round() as u64, UNITS[u])
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}
