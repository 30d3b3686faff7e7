//! The capacity probe: whether a device holds what it claims (f3's model; shared/FACTS.md 9,
//! 13), and what it cost.
//!
//! Every probe block carries its own byte offset and a pattern drawn from a per-run seed, so a
//! block read back names where (and in which run) it was written. Blocks are the device's
//! logical sectors, as f3probe's are.
//!
//! - *Wrap test*: one block stamped just past the first MiB, read at every power of two above
//!   it: a device whose address lines alias gives it back there.
//! - *Limbo test*: 64 blocks stamped at random places, read back with O_DIRECT after other
//!   writes have pushed them out of any cache the device has. A block that reads back
//!   otherwise is lost; one that reads back as another stamp of this run names the distance
//!   at which the device's addresses alias (a wrap-around of any size, measured).
//! - *Cache* (`pi-burn probe`): as f3probe's `find_cache_size`, the other writes double from
//!   one block until the samples are lost or the writes reach f3probe's own bound (the device's
//!   high half, at most 1 GiB). They rewrite what the device already holds (read first, the same
//!   bytes written back), so they change nothing and need no putting back. A last round stamps
//!   a few MiB low on the device, where a wrap-around of another size than a power of two lands
//!   what is written past its real end. When samples are lost, up to three rounds of samples
//!   between the last good and the first bad one find the real end, each behind as many other
//!   writes as found the cache.
//! - *In a burn*: the samples are stamped before the card's data, where the card writes
//!   nothing, and read back after it: the card's own bytes are the other writes. The burn costs
//!   the wrap test and the samples (about half a MiB each way on a card), and rules out a smaller
//!   device behind a cache no larger than what the card wrote; `pi-burn probe` is the full test.
//!
//! Every block the probe stamps is read first and put back afterwards, newest first, written
//! straight to the medium in that order (so blocks that alias on a fake come back right too):
//! the device is left as it was, and a burn writes the same card with or without the probe. The
//! first and last MiB are never written.

use super::sink::{Sink, TargetError};
use crate::util::units::human;
use std::io;

const MIB: u64 = 1 << 20;
/// The wrap test's block: just past the first MiB.
const WRAP_BLOCK: u64 = MIB;
/// The stamped region of the last cache round (for wrap-arounds of other sizes).
const STAMPED_AT: u64 = 2 * MIB;
const STAMPED_MAX: u64 = 4 * MIB;
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
/// f3probe's bound on the cache it looks for (libprobe.c MAX_CACHE_SIZE_BYTE).
const MAX_CACHE: u64 = 1 << 30;

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Every block read back as written, and nothing wrapped.
    Honest,
    /// Under [`MIN_SIZE`], or with sectors larger than 64 KiB: not probed.
    NotProbed { why: String },
    /// A block came back this many bytes from where it was written.
    Wraps { every: u64 },
    /// Blocks written at or past `holds` were lost; up to `at_least` they were kept (the
    /// boundary lies between). `exact` when the two are one block apart.
    Limbo {
        holds: u64,
        at_least: u64,
        exact: bool,
    },
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
    /// The probe block (the device's logical sector).
    pub block: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
    /// The most bytes written between stamping the samples and reading them back: a smaller
    /// device behind a cache no larger than this would have lost them.
    pub ruled_out_cache_up_to: u64,
    /// The cache the samples were lost behind: more than `more_than`, at most `at_most`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheBound>,
    /// The burn's probe (the card's data as the other writes), not the full test.
    pub in_burn: bool,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// A cache's size, as bounded by the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CacheBound {
    pub more_than: u64,
    pub at_most: u64,
}

impl Probed {
    /// One line for the user: what was found, and no more than what was compared.
    pub fn describe(&self) -> String {
        let claimed = human(self.claimed);
        let behind = human(self.ruled_out_cache_up_to);
        let cache = match self.cache {
            Some(c) if c.more_than == 0 => {
                format!(", behind a cache of at most {}", human(c.at_most))
            }
            Some(c) => format!(
                ", behind a cache of more than {} and at most {}",
                human(c.more_than),
                human(c.at_most)
            ),
            None => String::new(),
        };
        match &self.verdict {
            Verdict::Honest if self.in_burn => format!(
                "no wrap-around, and {SAMPLES} samples read back as written after the card's {behind}: no smaller card hides behind a cache of up to {behind}; a larger cache could hide one (`pi-burn probe` is the full test)"
            ),
            Verdict::Honest => format!(
                "no sign it holds less than its {claimed}: no wrap-around, and {SAMPLES} samples read back as written after {behind} of other writes (no smaller device hides behind a cache of up to {behind})"
            ),
            Verdict::NotProbed { why } => format!("not probed: {why}"),
            Verdict::Wraps { every } => format!(
                "this device holds {}, not {claimed}: a counterfeit (its addresses wrap around every {}, measured: what is written past that lands over its start)",
                human(*every),
                human(*every)
            ),
            Verdict::Limbo {
                holds,
                at_least,
                exact,
            } => {
                let holds = match exact {
                    true => human(*holds),
                    false => format!("between {} and {}", human(*at_least), human(*holds)),
                };
                format!(
                    "this device holds {holds}, not {claimed}: a counterfeit (what is written past that is lost{cache})"
                )
            }
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

/// The offset a block read back was stamped for, when it is a whole stamp of this run.
fn stamped_for(seed: u64, got: &[u8]) -> Option<u64> {
    let off = u64::from_le_bytes(got.get(..8)?.try_into().ok()?);
    let mut want = Vec::with_capacity(got.len());
    stamp(seed, off, got.len() as u64, &mut want);
    (want == got).then_some(off)
}

/// Why a device of this geometry is not probed, if it is not.
fn not_probed(size: u64, sector_size: u64) -> Option<String> {
    if size < MIN_SIZE {
        Some(format!("{} is under {}", human(size), human(MIN_SIZE)))
    } else if sector_size > MAX_BLOCK || !sector_size.is_power_of_two() || sector_size < 512 {
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

/// The full test's bound on the other writes: f3probe's (the drive's high half, from the power
/// of two at or above half of it; at most 1 GiB), without the last MiB.
fn flush_max(size: u64, block: u64) -> u64 {
    let blocks = size / block;
    let mid = (blocks / 2).next_power_of_two() * block;
    size.saturating_sub(mid).saturating_sub(MIB).min(MAX_CACHE) / block * block
}

/// The stamped region of the full test's last round: as large as keeps the whole test under
/// f3probe's writes on an honest device (it writes the high half twice: stamped, put back).
fn stamped_len(size: u64, block: u64) -> u64 {
    let room = flush_max(size, block).saturating_sub(256 << 10) / 2;
    room.min(STAMPED_MAX) / block * block
}

/// What `pi-burn probe` writes and reads on an honest device (nothing when it is not probed):
/// the wrap test, the samples, the other writes (read, then written back), the stamped region;
/// each stamped block read first and put back.
pub fn honest_cost(size: u64, sector_size: u64) -> (u64, u64) {
    if not_probed(size, sector_size).is_some() {
        return (0, 0);
    }
    let block = sector_size;
    let stamped = block + SAMPLES as u64 * block + stamped_len(size, block);
    let flush = flush_max(size, block);
    let rounds = flush_rounds(flush, block).count() as u64 + 2;
    let tests = (wrap_reads(size, block).count() as u64 + rounds * SAMPLES as u64) * block;
    (2 * stamped + flush, tests + stamped + flush)
}

/// What a burn's probe writes and reads on an honest device, before the card's data (the wrap
/// test, the samples stamped) and after it (the samples read back and put back).
pub fn burn_cost(size: u64, sector_size: u64) -> [(u64, u64); 2] {
    if not_probed(size, sector_size).is_some() {
        return [(0, 0); 2];
    }
    let block = sector_size;
    let samples = SAMPLES as u64 * block;
    let wraps = wrap_reads(size, block).count() as u64 * block;
    [
        (2 * block + samples, block + wraps + samples),
        (samples, samples),
    ]
}

/// The cumulative amounts of other writes of the full test's rounds: one block, doubling, up to
/// `max`.
fn flush_rounds(max: u64, block: u64) -> impl Iterator<Item = u64> {
    std::iter::successors(Some(block), |f| f.checked_mul(2))
        .take_while(move |f| *f < max)
        .chain((max >= block).then_some(max))
}

/// Points read back: those that held their stamp, those that did not, and the distance at
/// which a lost one held another stamp of this run.
struct Checked {
    good: Vec<u64>,
    bad: Vec<u64>,
    alias: Option<u64>,
}

/// A probe under way on one device.
pub struct Prober<'a> {
    sink: &'a mut dyn Sink,
    block: u64,
    seed: u64,
    size: u64,
    /// What was there before each stamped write, in order.
    saved: Vec<(u64, Vec<u8>)>,
    written: u64,
    read: u64,
    /// The samples (and their bound on the cache) once stamped.
    samples: Vec<u64>,
    /// Most other writes between stamping samples and reading them back.
    flushed: u64,
    cache: Option<CacheBound>,
    advance: &'a mut dyn FnMut(u64),
}

fn io_err(what: String) -> impl FnOnce(io::Error) -> TargetError {
    move |source| TargetError::Io { what, source }
}

impl<'a> Prober<'a> {
    fn new(
        sink: &'a mut dyn Sink,
        block: u64,
        seed: u64,
        size: u64,
        advance: &'a mut dyn FnMut(u64),
    ) -> Self {
        Prober {
            sink,
            block,
            seed,
            size,
            saved: vec![],
            written: 0,
            read: 0,
            samples: vec![],
            flushed: 0,
            cache: None,
            advance,
        }
    }

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

    fn write(&mut self, off: u64, data: &[u8]) -> Result<(), TargetError> {
        Self::check_interrupt()?;
        self.sink
            .write_direct(off, data)
            .map_err(io_err(format!("probe: writing at byte {off}")))?;
        self.written += data.len() as u64;
        (self.advance)(data.len() as u64);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), TargetError> {
        self.sink
            .sync()
            .map_err(io_err("probe: flushing".to_string()))
    }

    /// Stamps every block of every run (offset, blocks); all of them are read and saved
    /// before the first is written, then flushed.
    fn put(&mut self, runs: &[(u64, u64)]) -> Result<(), TargetError> {
        for &(off, n) in runs {
            let mut old = vec![0u8; (n * self.block) as usize];
            self.read(off, &mut old)?;
            self.saved.push((off, old));
        }
        let mut data = Vec::new();
        for &(off, n) in runs {
            data.clear();
            for i in 0..n {
                stamp(self.seed, off + i * self.block, self.block, &mut data);
            }
            self.write(off, &data)?;
        }
        self.sync()
    }

    /// Other writes that change nothing: `[from, to)` read and written back as it is, in
    /// pieces, flushed, around the stretches `keep` (sorted, disjoint: the blocks being tested,
    /// which a rewrite would only write again). They push what came before them out of a
    /// device's cache. Returns the bytes rewritten.
    fn rewrite(&mut self, from: u64, to: u64, keep: &[(u64, u64)]) -> Result<u64, TargetError> {
        let mut buf = vec![];
        let (mut at, mut done) = (from, 0);
        let mut k = keep.partition_point(|r| r.1 <= from);
        while at < to {
            let stop = match keep.get(k) {
                Some(r) if r.0 < to => r.0.max(at),
                _ => to,
            };
            while at < stop {
                let n = (stop - at).min(4 * MIB);
                buf.resize(n as usize, 0);
                self.read(at, &mut buf)?;
                let data = std::mem::take(&mut buf);
                self.write(at, &data)?;
                buf = data;
                at += n;
                done += n;
            }
            if let Some(r) = keep.get(k).filter(|r| r.0 < to) {
                at = at.max(r.1);
                k += 1;
            }
        }
        self.sync()?;
        Ok(done)
    }

    /// The stretches a device caches around `points`: the aligned 4 KiB (or block) each lies in.
    fn kept(&self, points: &[u64]) -> Vec<(u64, u64)> {
        let unit = self.block.max(4096);
        let mut v: Vec<(u64, u64)> = points
            .iter()
            .map(|p| (p / unit * unit, p / unit * unit + unit))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Reads `points` back: kept, lost, and the distance of an alias when a lost one holds
    /// another stamp of this run.
    fn check(&mut self, points: &[u64]) -> Result<Checked, TargetError> {
        let (mut good, mut bad, mut alias) = (vec![], vec![], None);
        let mut got = vec![0u8; self.block as usize];
        let mut want = Vec::with_capacity(self.block as usize);
        for &p in points {
            self.read(p, &mut got)?;
            want.clear();
            stamp(self.seed, p, self.block, &mut want);
            if got == want {
                good.push(p);
                continue;
            }
            bad.push(p);
            if let Some(o) = stamped_for(self.seed, &got) {
                let d = p.abs_diff(o);
                alias = Some(alias.map_or(d, |a: u64| a.min(d)));
            }
        }
        Ok(Checked { good, bad, alias })
    }

    /// The wrap test: a stamped block read at every power of two above it, then put back at
    /// once (a burn writes its card there).
    fn wrap_test(&mut self) -> Result<Option<Verdict>, TargetError> {
        self.put(&[(WRAP_BLOCK, 1)])?;
        let mut found = None;
        for d in wrap_reads(self.size, self.block).collect::<Vec<_>>() {
            let mut got = vec![0u8; self.block as usize];
            self.read(WRAP_BLOCK + d, &mut got)?;
            if stamped_for(self.seed, &got) == Some(WRAP_BLOCK) {
                found = Some(Verdict::Wraps { every: d });
                break;
            }
        }
        self.restore().map_err(io_err(
            "probe: putting back the wrap test's block".to_string(),
        ))?;
        Ok(found)
    }

    /// `n` distinct random blocks in [from, to) outside `avoid` (sorted ranges of bytes); fewer
    /// when there is no room.
    fn pick(&self, from: u64, to: u64, n: usize, avoid: &[(u64, u64)]) -> Vec<u64> {
        let blocks = to.saturating_sub(from) / self.block;
        let mut x = self.seed ^ 0x5151_5151 ^ from;
        let mut out: Vec<u64> = Vec::with_capacity(n);
        if blocks == 0 {
            return out;
        }
        // `avoid` is sorted and disjoint: the last range starting before the block's end is
        // the only one that can overlap it.
        let clear = |off: u64| {
            let end = off + self.block;
            let i = avoid.partition_point(|&(a, _)| a < end);
            i == 0 || avoid[i - 1].1 <= off
        };
        let take = |off: u64, out: &mut Vec<u64>| {
            let ok = clear(off) && !out.contains(&off);
            if ok {
                out.push(off);
            }
            ok
        };
        // One in each of `n` equal stretches (a few tries each), so that no stretch of the
        // device goes untested; then anywhere, for stretches the card fills. Bounded: with at
        // least 5,000 candidate blocks a repeat is rare.
        let per = (blocks / n as u64).max(1);
        for i in 0..(n as u64).min(blocks) {
            for _ in 0..16 {
                if take(from + (i * per + next(&mut x) % per) * self.block, &mut out) {
                    break;
                }
            }
        }
        for _ in 0..n * 64 {
            if out.len() >= n {
                break;
            }
            take(from + next(&mut x) % blocks * self.block, &mut out);
        }
        out.truncate(n);
        out
    }

    /// Stamps the samples (outside `avoid`): the first step of the limbo test.
    fn stamp_samples(&mut self, avoid: &[(u64, u64)]) -> Result<bool, TargetError> {
        let samples = self.pick(SAMPLES_FROM, self.size - MIB, SAMPLES, avoid);
        if samples.len() < SAMPLES {
            return Ok(false);
        }
        let runs: Vec<(u64, u64)> = samples.iter().map(|p| (*p, 1)).collect();
        self.put(&runs)?;
        self.samples = samples;
        Ok(true)
    }

    /// The region whose rewrite pushes a cache of up to `cache` bytes out (a cache smaller
    /// than a region read and written in order keeps none of what came before it), just below
    /// the last MiB: twice the size and half a MiB more, for the blocks skipped around those
    /// being tested. None when it does not fit above the samples' start.
    fn flush_region(&self, cache: u64) -> Option<(u64, u64)> {
        let top = self.size - MIB;
        let len = cache.checked_mul(2)?.checked_add(512 << 10)?;
        (top.checked_sub(len)? >= SAMPLES_FROM).then_some((top - len, top))
    }

    /// Lost samples (after `flush` bytes of other writes, `0` when read back at once): a
    /// verdict, after the boundary search between the highest kept and the lowest lost.
    fn lost(&mut self, good: Vec<u64>, bad: Vec<u64>, flush: u64) -> Result<Verdict, TargetError> {
        let of = good.len() + bad.len();
        let mut hi = *bad.iter().min().expect("a bad block");
        if good.iter().any(|g| *g > hi) {
            return Ok(Verdict::Loses { bad: bad.len(), of });
        }
        let mut lo = good
            .iter()
            .copied()
            .max()
            .unwrap_or(SAMPLES_FROM - self.block);
        let region = self.flush_region(flush);
        for _ in 0..ROUNDS {
            if hi - lo <= self.block || (flush > 0 && region.is_none()) {
                break;
            }
            let step = ((hi - lo) / (SAMPLES as u64 + 1) / self.block * self.block).max(self.block);
            let points: Vec<u64> = (1..=SAMPLES as u64)
                .map(|j| lo + j * step)
                .take_while(|p| *p < hi)
                .collect();
            let runs: Vec<(u64, u64)> = points.iter().map(|p| (*p, 1)).collect();
            self.put(&runs)?;
            // Behind more other writes than lost the samples.
            if let Some((from, to)) = region.filter(|_| flush > 0) {
                let keep = self.kept(&points);
                self.rewrite(from, to, &keep)?;
            }
            let Checked { good, bad, .. } = self.check(&points)?;
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
            at_least: lo + self.block,
            exact: hi - lo <= self.block,
        })
    }

    /// The samples read back after `flush` bytes of other writes (`prev` in the round before):
    /// a verdict when any is lost.
    fn samples_after(&mut self, flush: u64, prev: u64) -> Result<Option<Verdict>, TargetError> {
        let samples = self.samples.clone();
        let Checked {
            mut good,
            mut bad,
            mut alias,
        } = self.check(&samples)?;
        if bad.is_empty() {
            self.flushed = self.flushed.max(flush);
            return Ok(None);
        }
        // The round that first loses samples may push out only the older of them: behind
        // more other writes, every sample past a smaller device's end is lost.
        if let (None, Some((from, to))) = (alias, self.flush_region(flush).filter(|_| flush > 0)) {
            let keep = self.kept(&samples);
            self.rewrite(from, to, &keep)?;
            Checked { good, bad, alias } = self.check(&samples)?;
        }
        if let Some(every) = alias {
            return Ok(Some(Verdict::Wraps { every }));
        }
        // The samples' own writes came after the earliest of them too.
        let own: u64 = self.kept(&samples).iter().map(|r| r.1 - r.0).sum();
        // Lost when read back at once: no cache was in the way.
        self.cache = (flush > 0).then_some(CacheBound {
            more_than: prev,
            at_most: flush + own,
        });
        Ok(Some(self.lost(good, bad, flush)?))
    }

    /// The full test's rounds after the samples: other writes doubling from one block, then the
    /// stamped region.
    fn cache_rounds(&mut self) -> Result<Verdict, TargetError> {
        if let Some(v) = self.samples_after(0, 0)? {
            return Ok(v);
        }
        let top = self.size - MIB;
        let max = flush_max(self.size, self.block);
        let keep = self.kept(&self.samples);
        let (mut prev, mut done) = (0, 0);
        for f in flush_rounds(max, self.block).collect::<Vec<_>>() {
            let now = done + self.rewrite(top - f, top - prev, &keep)?;
            if let Some(v) = self.samples_after(now, done)? {
                return Ok(v);
            }
            (prev, done) = (f, now);
        }
        // Low on the device, where a wrap-around of another size lands what is written past its
        // real end: stamps there name the distance when a sample was overwritten.
        let len = stamped_len(self.size, self.block);
        if len > 0 {
            self.put(&[(STAMPED_AT, len / self.block)])?;
            // Its writes are other writes too: a cache just over the last round's empties here.
            if let Some(v) = self.samples_after(done + len, done)? {
                return Ok(v);
            }
        }
        Ok(Verdict::Honest)
    }

    /// Puts back every saved block, newest first, each written straight to the medium (which
    /// takes them in this order: blocks that alias on a fake end as they were), then flushed.
    fn restore(&mut self) -> io::Result<()> {
        for (off, old) in std::mem::take(&mut self.saved).iter().rev() {
            self.sink.write_direct(*off, old)?;
            self.written += old.len() as u64;
            (self.advance)(old.len() as u64);
        }
        self.sink.sync()
    }

    fn result(&self, verdict: Verdict, in_burn: bool) -> Probed {
        Probed {
            claimed: self.size,
            block: self.block,
            bytes_written: self.written,
            bytes_read: self.read,
            ruled_out_cache_up_to: self.flushed,
            cache: self.cache.filter(|_| verdict.is_fake()),
            in_burn,
            verdict,
        }
    }

    /// Puts back what was saved; its failure, after `found`, is the error.
    fn finish(
        mut self,
        found: Result<Verdict, TargetError>,
        in_burn: bool,
    ) -> Result<Probed, TargetError> {
        let places = self.saved.len();
        if let Err(source) = self.restore() {
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
        Ok(self.result(found?, in_burn))
    }
}

/// The geometry of a probe of `sink`, or why it is not probed.
fn geometry(sink: &dyn Sink) -> Result<(u64, u64), Probed> {
    let (size, ss) = (sink.size(), sink.sector_size());
    match not_probed(size, ss) {
        Some(why) => Err(Probed {
            claimed: size,
            block: ss,
            bytes_written: 0,
            bytes_read: 0,
            ruled_out_cache_up_to: 0,
            cache: None,
            in_burn: false,
            verdict: Verdict::NotProbed { why },
        }),
        None => Ok((size, ss)),
    }
}

/// `pi-burn probe`: the full test of `sink`. `advance` is told of every byte written or read.
/// The device's blocks are put back whether the probe finished or not; a failure to put them
/// back is the error.
pub fn run(
    sink: &mut dyn Sink,
    seed: u64,
    advance: &mut dyn FnMut(u64),
) -> Result<Probed, TargetError> {
    let (size, block) = match geometry(sink) {
        Ok(g) => g,
        Err(p) => return Ok(p),
    };
    let mut p = Prober::new(sink, block, seed, size, advance);
    let found = (|| {
        if let Some(v) = p.wrap_test()? {
            return Ok(v);
        }
        p.stamp_samples(&[])?;
        p.cache_rounds()
    })();
    p.finish(found, false)
}

/// A burn's probe between its two halves: the samples stamped where the card writes nothing,
/// to be read back after the card's data.
pub struct Stamped {
    block: u64,
    seed: u64,
    size: u64,
    saved: Vec<(u64, Vec<u8>)>,
    written: u64,
    read: u64,
    samples: Vec<u64>,
}

/// What the first half of a burn's probe gives.
pub enum Begun {
    /// A verdict already, every block put back: the wrap test found the device fake, or there
    /// was no room beside the card (an image as large as the device) and the full test ran
    /// before any of the card is written; or the device is not probed.
    Done(Probed),
    /// The samples are stamped: write the card, then [`Stamped::end`].
    Stamped(Stamped),
}

impl Stamped {
    /// The wrap test, and the samples stamped outside `avoid` (the ranges the card writes).
    pub fn begin(
        sink: &mut dyn Sink,
        seed: u64,
        avoid: &[(u64, u64)],
        advance: &mut dyn FnMut(u64),
    ) -> Result<Begun, TargetError> {
        let (size, block) = match geometry(sink) {
            Ok(g) => g,
            Err(p) => return Ok(Begun::Done(p)),
        };
        let mut p = Prober::new(sink, block, seed, size, advance);
        let first = (|| -> Result<Option<Verdict>, TargetError> {
            if let Some(v) = p.wrap_test()? {
                return Ok(Some(v));
            }
            if !p.stamp_samples(avoid)? {
                // No room beside the card: the samples go everywhere, behind the full test's
                // other writes, and are put back before any of the card is written.
                p.stamp_samples(&[])?;
                return p.cache_rounds().map(Some);
            }
            Ok(None)
        })();
        match first {
            Ok(None) => Ok(Begun::Stamped(Stamped {
                block: p.block,
                seed: p.seed,
                size: p.size,
                saved: std::mem::take(&mut p.saved),
                written: p.written,
                read: p.read,
                samples: std::mem::take(&mut p.samples),
            })),
            // A verdict here is the wrap test's or the full test's: not a burn's partial one.
            Ok(Some(v)) => p.finish(Ok(v), false).map(Begun::Done),
            Err(e) => p.finish(Err(e), false).map(Begun::Done),
        }
    }

    /// The burn failed before [`Stamped::end`]: the samples put back, as far as the device
    /// takes them (the failure already named is the error that counts).
    pub fn abandon(self, sink: &mut dyn Sink) {
        for (off, old) in self.saved.iter().rev() {
            if sink.write_direct(*off, old).is_err() {
                break;
            }
        }
        let _ = sink.sync();
    }

    /// After the card's data (`written` bytes since the samples were stamped): the samples read
    /// back, put back (before the card is read back: a fake's aliases cannot hide there), and
    /// the verdict.
    pub fn end(
        self,
        sink: &mut dyn Sink,
        written: u64,
        advance: &mut dyn FnMut(u64),
    ) -> Result<Probed, TargetError> {
        let mut p = Prober::new(sink, self.block, self.seed, self.size, advance);
        (p.saved, p.written, p.read, p.samples) =
            (self.saved, self.written, self.read, self.samples);
        let found = p
            .samples_after(written, 0)
            .map(|v| v.unwrap_or(Verdict::Honest));
        p.finish(found, true)
    }
}

#[cfg(test)]
mod tests;
