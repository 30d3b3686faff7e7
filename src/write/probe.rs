//! The capacity probe: whether a device holds what it claims, tested before any of the card
//! is written to it (f3's model; shared/FACTS.md 9).
//!
//! Every probe block carries its own byte offset and a pattern drawn from a per-run seed, so a
//! block read back names where (and in which run) it was written. The *wrap test* writes one
//! block just past the first MiB and reads at every power of two above it: a device whose
//! address lines alias gives that block back there. The *limbo test* writes 64 blocks at
//! random places, then 4 MiB elsewhere so that a device cache has to let them go, flushes,
//! and reads them back with O_DIRECT: a device that drops writes past its real end gives
//! something else. Where blocks are lost past some offset, up to three rounds of 64 blocks
//! between the last good and the first bad one find the real end to the block. The first MiB
//! (the tables) and the last MiB are never written.
//!
//! Every block is read before it is overwritten and put back afterwards, newest first (so that
//! blocks which alias on a fake come back right too): `pi-burn probe` leaves the device as it
//! was, and a burn writes the same card with or without the probe.

use super::sink::{Sink, TargetError};
use crate::util::units::human;
use std::io;

const MIB: u64 = 1 << 20;
/// The wrap test's block: just past the first MiB.
const WRAP_BLOCK: u64 = MIB;
/// The cache flush: 4 MiB written after the samples (a larger sequential cache than this
/// would hide a limbo fake, as it does from f3probe).
const FLUSH_AT: u64 = 2 * MIB;
const FLUSH_LEN: u64 = 4 * MIB;
/// Samples are drawn from here to the last MiB.
const SAMPLES_FROM: u64 = 8 * MIB;
/// 64 samples find a fake with 5 % or more bad blocks with 96 % probability (FACTS 9).
pub const SAMPLES: usize = 64;
/// Rounds of the boundary search: each narrows the gap between good and bad by 65.
const ROUNDS: usize = 3;
/// Smaller devices are not probed (the fixed regions above would fill them).
pub const MIN_SIZE: u64 = 32 * MIB;
/// Larger blocks than this are not probed (no real card has such sectors).
const MAX_BLOCK: u64 = 64 << 10;

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Every block read back as written, and nothing wrapped.
    Honest,
    /// Under [`MIN_SIZE`], or with sectors larger than 64 KiB: not probed.
    NotProbed { why: String },
    /// The block written past the first MiB came back this many bytes higher.
    Wraps { every: u64 },
    /// Blocks written at or past `holds` were lost; below it they were kept. `exact` when the
    /// boundary was found to the block.
    Limbo { holds: u64, exact: bool },
    /// Lost blocks in no single region: a device that loses data.
    Loses { bad: usize, of: usize },
}

impl Verdict {
    /// A device that does not hold what it claims.
    pub fn is_fake(&self) -> bool {
        matches!(
            self,
            Verdict::Wraps { .. } | Verdict::Limbo { .. } | Verdict::Loses { .. }
        )
    }

    /// What the device really holds, where the probe could tell.
    pub fn real(&self) -> Option<u64> {
        match self {
            Verdict::Wraps { every } => Some(*every),
            Verdict::Limbo { holds, .. } => Some(*holds),
            _ => None,
        }
    }
}

/// The probe's result and cost.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Probed {
    /// The size the device claims.
    pub claimed: u64,
    /// The probe block (the device's sector size, at least 4 KiB).
    pub block: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl Probed {
    /// One line for the user.
    pub fn describe(&self) -> String {
        let claimed = human(self.claimed);
        match &self.verdict {
            Verdict::Honest => format!("holds the {claimed} it claims"),
            Verdict::NotProbed { why } => format!("not probed: {why}"),
            Verdict::Wraps { every } => format!(
                "this device holds about {}, not {claimed}: a counterfeit (its addresses wrap around every {}: what is written past that lands over its start)",
                human(*every),
                human(*every)
            ),
            Verdict::Limbo { holds, exact } => format!(
                "this device holds {}{}, not {claimed}: a counterfeit (what is written past that is lost)",
                if *exact { "" } else { "about " },
                human(*holds)
            ),
            Verdict::Loses { bad, of } => format!(
                "{bad} of {of} blocks written at random places across its {claimed} read back as something else: the device loses data (counterfeit or failing)"
            ),
        }
    }
}

/// A fresh seed for one run: never the same pattern twice, so that blocks of an earlier run
/// (or an earlier round) cannot pass as this one's.
pub fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// splitmix64: a small, good pseudo-random sequence.
fn next(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The stamp of the block at `off`: its offset, the seed, then a pattern of both.
fn stamp(seed: u64, off: u64, block: u64, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&off.to_le_bytes());
    out.extend_from_slice(&seed.to_le_bytes());
    let mut x = seed ^ off.rotate_left(17);
    while out.len() - start < block as usize {
        out.extend_from_slice(&next(&mut x).to_le_bytes());
    }
    out.truncate(start + block as usize);
}

/// The probe block for a device with sectors of `sector_size` bytes.
fn block_for(sector_size: u64) -> u64 {
    sector_size.max(4096)
}

/// Why a device of this geometry is not probed, if it is not.
fn not_probed(size: u64, sector_size: u64) -> Option<String> {
    let block = block_for(sector_size);
    if size < MIN_SIZE {
        Some(format!("{} is under {}", human(size), human(MIN_SIZE)))
    } else if block > MAX_BLOCK || !block.is_power_of_two() {
        Some(format!("{sector_size}-byte sectors"))
    } else {
        None
    }
}

/// The offsets the wrap test reads: the wrap block plus every power of two from 1 MiB that
/// stays inside the device.
fn wrap_reads(size: u64, block: u64) -> impl Iterator<Item = u64> {
    (20..63u32)
        .map(|k| 1u64 << k)
        .take_while(move |d| WRAP_BLOCK + d + block <= size)
}

/// What the probe writes and reads on an honest device, putting back included (nothing when
/// it is not probed).
pub fn honest_cost(size: u64, sector_size: u64) -> (u64, u64) {
    if not_probed(size, sector_size).is_some() {
        return (0, 0);
    }
    let block = block_for(sector_size);
    let stamped = block + SAMPLES as u64 * block + FLUSH_LEN;
    let tests = (wrap_reads(size, block).count() as u64 + SAMPLES as u64) * block;
    // Each stamped block is read first, then written, then written back.
    (2 * stamped, tests + stamped)
}

struct Prober<'a> {
    sink: &'a mut dyn Sink,
    block: u64,
    seed: u64,
    size: u64,
    /// What was there before each write (Keep), in order.
    saved: Vec<(u64, Vec<u8>)>,
    written: u64,
    read: u64,
    advance: &'a mut dyn FnMut(u64),
}

fn io_err(what: String) -> impl FnOnce(io::Error) -> TargetError {
    move |source| TargetError::Io { what, source }
}

impl Prober<'_> {
    fn check_interrupt() -> Result<(), TargetError> {
        if crate::blockdev::sys::interrupted() {
            return Err(TargetError::Interrupted(
                crate::blockdev::sys::interrupt_name(),
            ));
        }
        Ok(())
    }

    fn read(&mut self, off: u64, buf: &mut [u8]) -> Result<(), TargetError> {
        Self::check_interrupt()?;
        self.sink
            .read_back(off, buf)
            .map_err(io_err(format!("probe: reading at byte {off}")))?;
        self.read += buf.len() as u64;
        (self.advance)(buf.len() as u64);
        Ok(())
    }

    /// Stamps every block of every run (offset, blocks); all of them are read and saved
    /// before the first is written.
    fn put(&mut self, runs: &[(u64, u64)]) -> Result<(), TargetError> {
        for &(off, n) in runs {
            let mut old = vec![0u8; (n * self.block) as usize];
            self.read(off, &mut old)?;
            self.saved.push((off, old));
        }
        let mut data = Vec::new();
        for &(off, n) in runs {
            Self::check_interrupt()?;
            data.clear();
            for i in 0..n {
                stamp(self.seed, off + i * self.block, self.block, &mut data);
            }
            self.sink
                .write_at(off, &data)
                .map_err(io_err(format!("probe: writing at byte {off}")))?;
            self.written += data.len() as u64;
            (self.advance)(data.len() as u64);
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), TargetError> {
        self.sink
            .sync()
            .map_err(io_err("probe: flushing".to_string()))
    }

    /// Whether the block read at `at` is the stamp of the block written at `of`.
    fn finds(&mut self, at: u64, of: u64) -> Result<bool, TargetError> {
        let mut got = vec![0u8; self.block as usize];
        self.read(at, &mut got)?;
        let mut want = Vec::with_capacity(self.block as usize);
        stamp(self.seed, of, self.block, &mut want);
        Ok(got == want)
    }

    /// The flush: other writes to push the samples out of any cache, then fdatasync.
    fn flush(&mut self) -> Result<(), TargetError> {
        self.put(&[(FLUSH_AT, FLUSH_LEN / self.block)])?;
        self.sync()
    }

    /// Offsets of `n` distinct random blocks in [from, to).
    fn samples(&self, from: u64, to: u64, n: usize) -> Vec<u64> {
        let blocks = (to - from) / self.block;
        let mut x = self.seed ^ 0x5151_5151;
        let mut out: Vec<u64> = Vec::with_capacity(n);
        // Bounded: with at least 5,000 candidate blocks a repeat is rare.
        for _ in 0..n * 64 {
            if out.len() == n {
                break;
            }
            let off = from + next(&mut x) % blocks * self.block;
            if !out.contains(&off) {
                out.push(off);
            }
        }
        out
    }

    fn tests(&mut self) -> Result<Verdict, TargetError> {
        // The wrap test: no flush needed, a cache does not alias addresses.
        self.put(&[(WRAP_BLOCK, 1)])?;
        self.sync()?;
        for d in wrap_reads(self.size, self.block).collect::<Vec<_>>() {
            if self.finds(WRAP_BLOCK + d, WRAP_BLOCK)? {
                return Ok(Verdict::Wraps { every: d });
            }
        }
        // The limbo test.
        let end = self.size - MIB;
        let samples = self.samples(SAMPLES_FROM, end, SAMPLES);
        let (good, bad) = self.round(&samples)?;
        if bad.is_empty() {
            return Ok(Verdict::Honest);
        }
        let mut hi = *bad.iter().min().expect("a bad block");
        if good.iter().any(|g| *g > hi) {
            return Ok(Verdict::Loses {
                bad: bad.len(),
                of: samples.len(),
            });
        }
        let mut lo = good
            .iter()
            .copied()
            .max()
            .unwrap_or(FLUSH_AT + FLUSH_LEN - self.block);
        for _ in 0..ROUNDS {
            if hi - lo <= self.block {
                break;
            }
            let step = ((hi - lo) / (SAMPLES as u64 + 1) / self.block * self.block).max(self.block);
            let points: Vec<u64> = (1..=SAMPLES as u64)
                .map(|j| lo + j * step)
                .take_while(|p| *p < hi)
                .collect();
            let (good, bad) = self.round(&points)?;
            let new_hi = bad.iter().copied().min().unwrap_or(hi);
            if good.iter().any(|g| *g > new_hi) {
                return Ok(Verdict::Loses {
                    bad: bad.len(),
                    of: points.len(),
                });
            }
            lo = good.iter().copied().max().unwrap_or(lo);
            hi = new_hi;
        }
        Ok(Verdict::Limbo {
            holds: hi,
            exact: hi - lo <= self.block,
        })
    }

    /// Stamps `points`, flushes, reads them back: (kept, lost).
    fn round(&mut self, points: &[u64]) -> Result<(Vec<u64>, Vec<u64>), TargetError> {
        let runs: Vec<(u64, u64)> = points.iter().map(|p| (*p, 1)).collect();
        self.put(&runs)?;
        // Flushed before the cache flush's writes: else the kernel may send those first (in
        // offset order) and the samples last, into the device's cache.
        self.sync()?;
        self.flush()?;
        let (mut good, mut bad) = (vec![], vec![]);
        for &p in points {
            if self.finds(p, p)? {
                good.push(p);
            } else {
                bad.push(p);
            }
        }
        Ok((good, bad))
    }

    /// Puts back every saved block, newest first, and flushes.
    fn restore(&mut self) -> io::Result<()> {
        for (off, old) in std::mem::take(&mut self.saved).iter().rev() {
            self.sink.write_at(*off, old)?;
            self.written += old.len() as u64;
        }
        self.sink.sync()
    }
}

/// Probes `sink`. `advance` is told of every byte written or read. The device's blocks are
/// put back whether the probe finished or not; a failure to put them back is the error.
pub fn run(
    sink: &mut dyn Sink,
    seed: u64,
    advance: &mut dyn FnMut(u64),
) -> Result<Probed, TargetError> {
    let size = sink.size();
    let ss = sink.sector_size();
    let block = block_for(ss);
    if let Some(why) = not_probed(size, ss) {
        return Ok(Probed {
            claimed: size,
            block,
            bytes_written: 0,
            bytes_read: 0,
            verdict: Verdict::NotProbed { why },
        });
    }
    let mut p = Prober {
        sink,
        block,
        seed,
        size,
        saved: vec![],
        written: 0,
        read: 0,
        advance,
    };
    let found = p.tests();
    let places = p.saved.len();
    if let Err(source) = p.restore() {
        let after = match &found {
            Ok(_) => String::new(),
            Err(e) => format!(" (after: {e})"),
        };
        return Err(TargetError::Io {
            what: format!(
                "probe: putting back the blocks it overwrote{after}: the device may hold probe blocks at up to {} places",
                places.max(1)
            ),
            source,
        });
    }
    let verdict = found?;
    Ok(Probed {
        claimed: size,
        block,
        bytes_written: p.written,
        bytes_read: p.read,
        verdict,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A device in memory, by 4 KiB block: honest, wrapping, or dropping writes past `real`,
    /// with an optional cache of the latest writes that serves reads (as fakes have).
    struct Fake {
        claimed: u64,
        real: u64,
        wrap: bool,
        /// Blocks lost anywhere (a failing medium): every n-th block.
        lose_every: Option<u64>,
        blocks: HashMap<u64, Vec<u8>>,
        cache: Vec<(u64, Vec<u8>)>,
        cache_blocks: usize,
        fail_reads: bool,
        /// Written, not yet sent to the medium: as a page cache, sent in offset order on a
        /// sync, or where a direct read covers them.
        pending: Vec<(u64, Vec<u8>)>,
    }

    const B: u64 = 4096;

    impl Fake {
        fn new(claimed: u64, real: u64, wrap: bool) -> Self {
            Fake {
                claimed,
                real,
                wrap,
                lose_every: None,
                blocks: HashMap::new(),
                cache: vec![],
                cache_blocks: 0,
                fail_reads: false,
                pending: vec![],
            }
        }
        fn honest(size: u64) -> Self {
            Fake::new(size, size, false)
        }
        /// Where a block lands, if it is kept.
        fn place(&self, off: u64) -> Option<u64> {
            if self.wrap {
                return Some(off % self.real);
            }
            if let Some(n) = self.lose_every {
                if (off / B) % n == n - 1 {
                    return None;
                }
            }
            (off < self.real).then_some(off)
        }
        /// Sends the pending blocks that `which` picks to the medium, in offset order (the
        /// latest write of a block winning).
        fn send(&mut self, which: impl Fn(u64) -> bool) {
            let (mut go, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
                .into_iter()
                .enumerate()
                .partition(|(_, (o, _))| which(*o));
            self.pending = keep.into_iter().map(|(_, w)| w).collect();
            go.sort_by_key(|(i, (o, _))| (*o, *i));
            for (_, (o, c)) in go {
                self.land(o, c);
            }
        }

        fn land(&mut self, o: u64, c: Vec<u8>) {
            if self.cache_blocks > 0 {
                self.cache.push((o, c.clone()));
                if self.cache.len() > self.cache_blocks {
                    self.cache.remove(0);
                }
            }
            if let Some(p) = self.place(o) {
                self.blocks.insert(p, c);
            }
        }

        /// The device's bytes, for comparing before and after.
        fn content(&self) -> Vec<(u64, Vec<u8>)> {
            let mut v: Vec<_> = self
                .blocks
                .iter()
                .filter(|(_, v)| v.iter().any(|b| *b != 0))
                .map(|(k, v)| (*k, v.clone()))
                .collect();
            v.sort();
            v
        }
    }

    impl Sink for Fake {
        fn name(&self) -> String {
            "fake".into()
        }
        fn size(&self) -> u64 {
            self.claimed
        }
        fn sector_size(&self) -> u64 {
            512
        }
        fn write_at(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
            assert!(off.is_multiple_of(B) && (data.len() as u64).is_multiple_of(B));
            for (i, c) in data.chunks(B as usize).enumerate() {
                self.pending.push((off + i as u64 * B, c.to_vec()));
            }
            Ok(())
        }
        fn sync(&mut self) -> io::Result<()> {
            self.send(|_| true);
            Ok(())
        }
        fn read_back(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
            if self.fail_reads {
                return Err(io::Error::other("input/output error"));
            }
            let end = off + buf.len() as u64;
            self.send(|o| o >= off && o < end);
            for (i, c) in buf.chunks_mut(B as usize).enumerate() {
                let o = off + i as u64 * B;
                if let Some((_, d)) = self.cache.iter().rev().find(|(k, _)| *k == o) {
                    c.copy_from_slice(d);
                    continue;
                }
                match self.place(o).and_then(|p| self.blocks.get(&p)) {
                    Some(d) => c.copy_from_slice(d),
                    None => c.fill(0),
                }
            }
            Ok(())
        }
    }

    const GIB: u64 = 1 << 30;

    fn probe(dev: &mut Fake) -> Probed {
        run(dev, 42, &mut |_| {}).unwrap()
    }

    #[test]
    fn an_honest_device_passes_at_the_documented_cost() {
        let mut d = Fake::honest(GIB);
        let p = probe(&mut d);
        assert_eq!(p.verdict, Verdict::Honest);
        assert_eq!((p.bytes_written, p.bytes_read), honest_cost(GIB, 512));
        assert!(p.bytes_written < 9 * MIB, "{}", p.bytes_written);
        // Never the first or the last MiB; a fresh device is all zeros again.
        assert!(d.blocks.keys().all(|k| *k >= MIB && *k < GIB - MIB));
        assert!(d.content().is_empty());
    }

    #[test]
    fn a_wrap_around_fake_is_found_with_its_real_size() {
        let mut d = Fake::new(GIB, 256 * MIB, true);
        let p = probe(&mut d);
        assert_eq!(p.verdict, Verdict::Wraps { every: 256 * MIB });
        assert!(p.describe().contains("holds about 256 MiB, not 1 GiB"));
    }

    #[test]
    fn a_limbo_fake_is_found_to_the_block_even_behind_a_cache() {
        for real in [256 * MIB, 300 * MIB + 12 * B] {
            let mut d = Fake::new(GIB, real, false);
            // 1 MiB of the latest writes served from a cache: the flush must push them out.
            d.cache_blocks = 256;
            let p = probe(&mut d);
            assert_eq!(
                p.verdict,
                Verdict::Limbo {
                    holds: real,
                    exact: true
                },
                "real {real}"
            );
            assert!(p.bytes_written < 40 * MIB);
        }
        let p = probe(&mut Fake::new(GIB, 256 * MIB, false));
        assert!(
            p.describe().contains("holds 256 MiB, not 1 GiB"),
            "{}",
            p.describe()
        );
    }

    #[test]
    fn a_device_losing_blocks_everywhere_is_not_called_honest() {
        let mut d = Fake::honest(GIB);
        d.lose_every = Some(7);
        let p = probe(&mut d);
        assert!(
            matches!(p.verdict, Verdict::Loses { .. }),
            "{:?}",
            p.verdict
        );
        assert!(p.verdict.is_fake());
    }

    #[test]
    fn every_block_is_put_back_on_honest_and_fake_devices() {
        for mut d in [
            Fake::honest(GIB),
            Fake::new(GIB, 256 * MIB, true),
            Fake::new(GIB, 256 * MIB, false),
        ] {
            // Some content where the probe writes: the start, and all over the real part.
            let mut x = 7u64;
            for _ in 0..4096 {
                let off = (next(&mut x) % (d.real / B)) * B;
                d.write_at(off, &vec![(off / B % 251) as u8; B as usize])
                    .unwrap();
            }
            d.write_at(MIB, &vec![9u8; (8 * MIB) as usize]).unwrap();
            d.sync().unwrap();
            let before = d.content();
            let p = probe(&mut d);
            assert_eq!(d.content(), before, "{:?}", p.verdict);
        }
    }

    #[test]
    fn blocks_are_put_back_when_the_probe_fails_midway() {
        struct Failing(Fake, u32);
        impl Sink for Failing {
            fn name(&self) -> String {
                "failing".into()
            }
            fn size(&self) -> u64 {
                self.0.size()
            }
            fn sector_size(&self) -> u64 {
                512
            }
            fn write_at(&mut self, off: u64, d: &[u8]) -> io::Result<()> {
                self.0.write_at(off, d)
            }
            fn sync(&mut self) -> io::Result<()> {
                self.0.sync()
            }
            fn read_back(&mut self, off: u64, buf: &mut [u8]) -> io::Result<()> {
                self.1 += 1;
                if self.1 == 40 {
                    return Err(io::Error::other("input/output error"));
                }
                self.0.read_back(off, buf)
            }
        }
        let mut d = Failing(Fake::honest(GIB), 0);
        d.0.write_at(MIB, &vec![3u8; (8 * MIB) as usize]).unwrap();
        d.0.sync().unwrap();
        let before = d.0.content();
        let e = run(&mut d, 1, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("input/output error"), "{e}");
        assert_eq!(d.0.content(), before);
    }

    #[test]
    fn small_devices_and_odd_sectors_are_not_probed() {
        let p = probe(&mut Fake::honest(16 * MIB));
        assert!(matches!(p.verdict, Verdict::NotProbed { .. }));
        assert_eq!((p.bytes_written, p.bytes_read), (0, 0));
        assert_eq!(honest_cost(16 * MIB, 512), (0, 0));
        assert!(not_probed(GIB, 1 << 20).is_some());
        assert!(not_probed(GIB, 4096).is_none());
    }

    #[test]
    fn a_stamp_names_its_offset_and_run() {
        let (mut a, mut b, mut c) = (vec![], vec![], vec![]);
        stamp(1, 4096, 4096, &mut a);
        stamp(2, 4096, 4096, &mut b);
        stamp(1, 8192, 4096, &mut c);
        assert_eq!(a.len(), 4096);
        assert!(a != b && a != c);
        assert_eq!(&a[..8], &4096u64.to_le_bytes());
    }
}
