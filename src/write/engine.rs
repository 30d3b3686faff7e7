//! One target of a write, as a type: its table areas wiped first, the data, the table last,
//! then everything read back. Each step returns a typed error; a target that failed after it
//! was touched has its table areas wiped again, so that it never looks bootable.

use super::probe;
use super::sink::{Sink, TargetError, DIFFERS_SHOWN};
use crate::progress::{Progress, TargetPhase, TargetStep};
use std::io;

/// Bytes at each end of a target wiped before anything else is written and again on any
/// failure: the MBR and a whole GPT (header and 128 entries) at 512- and 4096-byte sectors,
/// primary and backup.
pub const TABLE_AREA: u64 = 32 << 10;

/// The table areas of a target of `size` bytes: (offset, len).
pub fn table_areas(size: u64) -> Vec<(u64, u64)> {
    if size <= 2 * TABLE_AREA {
        vec![(0, size)]
    } else {
        vec![(0, TABLE_AREA), (size - TABLE_AREA, TABLE_AREA)]
    }
}

/// Bytes the table areas of a target of `size` bytes take.
pub fn table_area_bytes(size: u64) -> u64 {
    table_areas(size).iter().map(|a| a.1).sum()
}

/// The state of a failed target's table areas.
#[derive(Debug)]
pub enum Wipe {
    /// Nothing was written to the target.
    Untouched,
    /// The table areas were wiped again.
    Wiped,
    /// Wiping them failed too.
    Failed(io::Error),
}

/// A failed target: the error and what became of its table areas.
#[derive(Debug, thiserror::Error)]
#[error("{error}{}", wipe_text(.error, .wipe))]
pub struct Failed {
    pub error: TargetError,
    pub wipe: Wipe,
    /// What the target took before it failed.
    pub done: Stats,
}

fn wipe_text(error: &TargetError, wipe: &Wipe) -> String {
    match (error, wipe) {
        (_, Wipe::Untouched) => "; nothing was written".to_string(),
        // A counterfeit is not burned again: its table areas are all the probe left behind, or
        // (found behind the card's data) what makes the card unbootable.
        (
            TargetError::Counterfeit {
                after_data: false, ..
            },
            Wipe::Wiped,
        ) => "; nothing else was written (its table areas are wiped)".to_string(),
        (
            TargetError::Counterfeit {
                after_data: true, ..
            },
            Wipe::Wiped,
        ) => "; found behind the card's data, which was written: its partition table is wiped again, the probe's blocks put back".to_string(),
        (_, Wipe::Wiped) => "; its partition table was wiped: burn it again".to_string(),
        (_, Wipe::Failed(w)) => format!(
            "; wiping its partition table again failed too ({w}): do not boot from it, burn it again"
        ),
    }
}

/// What a target took.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub bytes_written: u64,
    pub bytes_read_back: u64,
    pub gpt_relocated: bool,
    /// The disk was laid out anew on the larger target: what grew.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grown: Option<String>,
    /// The capacity probe, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::write::probe::Probed>,
}

/// One target's result.
#[derive(Debug)]
pub struct TargetOutcome {
    pub name: String,
    pub result: Result<Stats, Failed>,
}

impl TargetOutcome {
    pub fn ok(&self) -> bool {
        self.result.is_ok()
    }
    /// The failure as one line, if any.
    pub fn error_text(&self) -> Option<String> {
        self.result.as_ref().err().map(|f| f.to_string())
    }
    /// What the target took, whether it failed or not.
    pub fn stats(&self) -> Stats {
        match &self.result {
            Ok(s) => s.clone(),
            Err(f) => f.done.clone(),
        }
    }
}

/// The head of the image and its backup GPT, once the whole image has been read.
pub struct Final {
    pub head: Vec<u8>,
    /// The parts of the head the plan maps (a block map may leave gaps).
    pub head_mapped: Vec<(u64, u64)>,
    pub table: crate::disk::gpt::HeadTable,
    /// The image's own backup GPT, held back (written at its place unless relocated).
    pub tail: Vec<(u64, std::sync::Arc<Vec<u8>>)>,
    pub image_size: Option<u64>,
}

/// A target being written, step by step.
pub struct Writer<'p> {
    id: usize,
    name: String,
    sink: Box<dyn Sink>,
    size: u64,
    verify: bool,
    touched: bool,
    /// What went where, as CRC-32 (hardware-assisted): enough to catch a bad read-back.
    written: Vec<(u64, u64, u32)>,
    /// The image's disk laid out anew for this target, when it is larger.
    relaid: Option<crate::write::plan::Relaid>,
    /// The probe's samples, stamped before the data (and the bytes written by then).
    stamped: Option<(probe::Stamped, u64)>,
    pub stats: Stats,
    progress: &'p dyn Progress,
}

impl<'p> Writer<'p> {
    pub fn new(id: usize, sink: Box<dyn Sink>, verify: bool, progress: &'p dyn Progress) -> Self {
        Writer {
            id,
            name: sink.name(),
            size: sink.size(),
            sink,
            verify,
            touched: false,
            written: vec![],
            relaid: None,
            stamped: None,
            stats: Stats::default(),
            progress,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tells a watched run's parent what is being done to this target (crate::watch).
    fn tell(&self, state: &str) {
        crate::blockdev::sys::tell(&format!("state\t{}\t{state}", self.name));
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn sink(&mut self) -> &mut dyn Sink {
        self.sink.as_mut()
    }

    /// The table this target gets instead of the image's (written in [`Writer::finish`]).
    pub fn relay(&mut self, relaid: crate::write::plan::Relaid) {
        self.relaid = Some(relaid);
    }

    /// Marks the target as written to (a failure from now on wipes its table areas).
    pub fn touch(&mut self) {
        self.touched = true;
    }

    pub fn step(&self, phase: TargetPhase, total: u64) {
        self.progress.target(
            self.id,
            TargetStep::Begin {
                name: self.name.clone(),
                phase,
                total,
            },
        );
    }

    /// Counts `n` bytes done in the current step.
    pub fn advance(&self, n: u64) {
        self.progress.target(self.id, TargetStep::Advance(n));
    }

    /// The ranges this target's data covers beyond the image's (a larger target's new table
    /// and the zeroed ends of the partitions that grew).
    pub fn relaid_ranges(&self) -> Vec<(u64, u64)> {
        let Some(r) = &self.relaid else {
            return vec![];
        };
        let blocks = r.blocks.iter().map(|(o, d)| (*o, o + d.len() as u64));
        let zero = r.zero.iter().map(|(o, l)| (*o, o + l));
        blocks.chain(zero).collect()
    }

    /// What the probe writes and reads on an honest device, before the data and after it:
    /// the full test before, when `avoid` leaves no room for samples beside the data.
    pub fn probe_costs(&self, beside: bool) -> [u64; 2] {
        let ss = self.sink.sector_size();
        if !beside {
            let (w, r) = probe::honest_cost(self.size, ss);
            return [w + r, 0];
        }
        probe::burn_cost(self.size, ss).map(|(w, r)| w + r)
    }

    fn found(&mut self, found: probe::Probed, after_data: bool) -> Result<(), TargetError> {
        let fake = found.verdict.is_fake();
        let text = found.describe();
        self.stats.probe = Some(found);
        if fake {
            return Err(TargetError::Counterfeit { text, after_data });
        }
        Ok(())
    }

    /// The capacity probe's first half (after the wipe, before the data): the wrap test, and
    /// its samples stamped outside `avoid` (sorted, disjoint: every range the data writes), to
    /// be read back after the data ([`Writer::probe_end`]). Without `avoid`, or without room
    /// beside the data, the full test runs here. A device found fake fails here, with nothing
    /// of the image written.
    pub fn probe_begin(&mut self, avoid: Option<&[(u64, u64)]>) -> Result<(), TargetError> {
        self.touched = true;
        self.tell("probing");
        let (progress, id) = (self.progress, self.id);
        let mut advance = |n| progress.target(id, TargetStep::Advance(n));
        let seed = probe::fresh_seed();
        let begun = match avoid {
            Some(avoid) => probe::Stamped::begin(self.sink.as_mut(), seed, avoid, &mut advance)?,
            None => probe::Begun::Done(probe::run(self.sink.as_mut(), seed, &mut advance)?),
        };
        match begun {
            probe::Begun::Done(found) => self.found(found, false),
            probe::Begun::Stamped(s) => {
                self.stamped = Some((s, self.stats.bytes_written));
                Ok(())
            }
        }
    }

    /// The probe's second half, after the data and the table (before the read-back): the
    /// samples read back behind everything the data wrote, and put back.
    pub fn probe_end(&mut self) -> Result<(), TargetError> {
        let Some((s, at)) = self.stamped.take() else {
            return Ok(());
        };
        self.tell("probing");
        self.step(TargetPhase::Probe, self.probe_costs(true)[1]);
        let (progress, id) = (self.progress, self.id);
        let written = self.stats.bytes_written - at;
        let found = s.end(self.sink.as_mut(), written, &mut |n| {
            progress.target(id, TargetStep::Advance(n))
        })?;
        self.found(found, true)
    }

    /// Zeros over the table areas: the first write to the target.
    pub fn wipe(&mut self) -> Result<(), TargetError> {
        self.touched = true;
        self.tell("wiping");
        for (o, l) in table_areas(self.size) {
            self.sink
                .write_at(o, &vec![0u8; l as usize])
                .map_err(|source| TargetError::Io {
                    what: format!("wiping the table area at byte {o}"),
                    source,
                })?;
            self.stats.bytes_written += l;
            self.advance(l);
        }
        self.tell("data");
        Ok(())
    }

    /// Writes `data` at `off`, remembering its CRC for the read-back.
    pub fn write(&mut self, off: u64, data: &[u8]) -> Result<(), TargetError> {
        let end = off + data.len() as u64;
        if end > self.size {
            return Err(TargetError::PastEnd {
                end,
                size: self.size,
            });
        }
        self.touched = true;
        self.sink
            .write_at(off, data)
            .map_err(|source| TargetError::Io {
                what: format!("writing at byte {off}"),
                source,
            })?;
        self.stats.bytes_written += data.len() as u64;
        self.advance(data.len() as u64);
        if self.verify {
            self.written
                .push((off, data.len() as u64, crc32fast::hash(data)));
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), TargetError> {
        self.sink.sync().map_err(|source| TargetError::Io {
            what: "flushing".into(),
            source,
        })
    }

    /// Everything but the head is written: flush, the backup GPT (at the image's place, or
    /// at the target's end when the target is larger), the head's mapped parts, flush.
    pub fn finish(&mut self, f: &Final) -> Result<(), TargetError> {
        self.step(TargetPhase::Flush, 0);
        self.sync()?;
        self.tell("table");
        if let Some(r) = self.relaid.take() {
            return self.finish_relaid(f, r);
        }
        let relocate = match (&f.table, f.image_size) {
            (crate::disk::gpt::HeadTable::Gpt(g), Some(s)) => {
                s < self.size && (self.size / g.sector_size) > g.alternate_lba + 1
            }
            _ => false,
        };
        let head = match &f.table {
            crate::disk::gpt::HeadTable::Gpt(g) if relocate => {
                let (head, (boff, backup)) =
                    crate::disk::gpt::relocate_gpt(&f.head, g, self.size / g.sector_size);
                self.write(boff, &backup)?;
                self.stats.gpt_relocated = true;
                head
            }
            _ => {
                for (off, data) in &f.tail {
                    self.write(*off, data)?;
                }
                f.head.clone()
            }
        };
        for (o, l) in &f.head_mapped {
            self.write(*o, &head[*o as usize..(o + l) as usize])?;
        }
        self.sync()
    }

    /// [`Writer::finish`] with the disk laid out anew: the grown partitions' ends zeroed, the
    /// new backup table, then the head with the new primary table, flushed.
    fn finish_relaid(
        &mut self,
        f: &Final,
        r: crate::write::plan::Relaid,
    ) -> Result<(), TargetError> {
        use crate::disk::geometry::HEAD;
        let zeros = vec![0u8; 4 << 20];
        for &(o, l) in &r.zero {
            let mut at = o;
            while at < o + l {
                let n = (o + l - at).min(zeros.len() as u64);
                self.write(at, &zeros[..n as usize])?;
                at += n;
            }
        }
        let mut head = f.head.clone();
        let mut mapped = f.head_mapped.clone();
        for (off, data) in &r.blocks {
            if *off < HEAD {
                let end = (*off as usize + data.len()).min(head.len());
                head[*off as usize..end].copy_from_slice(&data[..end - *off as usize]);
                mapped.push((*off, (end - *off as usize) as u64));
            } else {
                self.write(*off, data)?;
            }
        }
        for (o, l) in coalesce(mapped) {
            self.write(o, &head[o as usize..(o + l) as usize])?;
        }
        self.stats.gpt_relocated = true;
        self.stats.grown = Some(r.note);
        self.sync()
    }

    /// Reads back every written range and compares it with what was written.
    pub fn read_back(&mut self) -> Result<(), TargetError> {
        if !self.verify {
            return Ok(());
        }
        let total = self.written.iter().map(|w| w.1).sum();
        self.tell("verifying");
        self.step(TargetPhase::ReadBack, total);
        let mut buf = vec![];
        let written = std::mem::take(&mut self.written);
        let (mut differ, mut more, mut wrap) = (Vec::<(u64, u64)>::new(), 0usize, None);
        let mut last_end = None;
        for &(off, len, sum) in &written {
            if crate::blockdev::sys::interrupted() {
                return Err(TargetError::Interrupted(
                    crate::blockdev::sys::interrupt_name(),
                ));
            }
            buf.resize(len as usize, 0);
            self.sink
                .read_back(off, &mut buf)
                .map_err(|source| TargetError::Io {
                    what: format!("reading back at byte {off}"),
                    source,
                })?;
            self.stats.bytes_read_back += len;
            self.advance(len);
            if crc32fast::hash(&buf) == sum {
                continue;
            }
            if differ.is_empty() {
                wrap = wrap_distance(self.sink.as_mut(), off, &buf, self.size);
            }
            // Touching ranges are one range.
            if last_end == Some(off) {
                if more == 0 {
                    if let Some(last) = differ.last_mut() {
                        last.1 = off + len;
                    }
                }
            } else if differ.len() < DIFFERS_SHOWN {
                differ.push((off, off + len));
            } else {
                more += 1;
            }
            last_end = Some(off + len);
        }
        if differ.is_empty() {
            self.tell("done");
            return Ok(());
        }
        Err(TargetError::Differs {
            ranges: differ,
            more,
            wrap,
        })
    }

    /// The target failed with `error`: its table areas wiped again when it was touched.
    pub fn fail(&mut self, error: TargetError) -> Failed {
        if !self.touched {
            return Failed {
                error,
                wipe: Wipe::Untouched,
                done: self.stats.clone(),
            };
        }
        self.tell("failed");
        if let Some((s, _)) = self.stamped.take() {
            s.abandon(self.sink.as_mut());
        }
        let mut wiped = Ok(());
        for (o, l) in table_areas(self.size) {
            wiped = wiped.and_then(|()| self.sink.write_at(o, &vec![0u8; l as usize]));
        }
        let wiped = wiped.and_then(|()| self.sink.sync());
        self.sink.reread();
        Failed {
            error,
            wipe: match wiped {
                Ok(()) => Wipe::Wiped,
                Err(e) => Wipe::Failed(e),
            },
            done: self.stats.clone(),
        }
    }

    pub fn end(&self) {
        self.progress.target(self.id, TargetStep::End);
    }
}

/// Ranges merged where they overlap or touch, in order.
fn coalesce(mut r: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    r.sort();
    let mut out: Vec<(u64, u64)> = vec![];
    for (o, l) in r {
        match out.last_mut() {
            Some((lo, ll)) if o <= *lo + *ll => *ll = (*ll).max(o + l - *lo),
            _ => out.push((o, l)),
        }
    }
    out
}

/// Where the target gives back `found` (read at `off`) also a power of two higher or lower,
/// the distance: the mark of a counterfeit whose address lines wrap around. Compares up to
/// 64 KiB, and only data that is not one byte repeated (zeros, 0xFF) can tell.
fn wrap_distance(sink: &mut dyn Sink, off: u64, found: &[u8], size: u64) -> Option<u64> {
    // The first 64 KiB window of what was found that can tell (a bounded number of them).
    const WINDOW: usize = 64 << 10;
    let (at, sample) = found
        .chunks(WINDOW)
        .enumerate()
        .take(256)
        .find(|(_, w)| w.iter().any(|b| *b != w[0]))?;
    let off = off + (at * WINDOW) as u64;
    let mut other = vec![0u8; sample.len()];
    let mut same_at = |at: u64| sink.read_back(at, &mut other).is_ok() && other == sample;
    (20..64u32)
        .map(|k| 1u64 << k)
        .take_while(|d| *d < size)
        .find(|&d| {
            let up = off
                .checked_add(d)
                .filter(|e| e + sample.len() as u64 <= size);
            up.is_some_and(&mut same_at) || (d <= off && same_at(off - d))
        })
}
