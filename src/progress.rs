//! Progress as a stream of events. The core reports; a sink decides what a person sees: bars on
//! a terminal (one per target of a write), one line per phase otherwise, nothing with
//! `--quiet`, or a record (tests). Only this module knows indicatif.

use crate::util::units::human;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new phase begins (e.g. "verifying firmware").
    Phase(String),
    /// A byte-counted step begins.
    Start { label: String, total: u64 },
    /// `n` more bytes of the current step are done.
    Advance(u64),
    /// The current byte-counted step is over.
    Finish,
    /// Something the user should know (printed even without a terminal, unless quiet).
    Notice(String),
    /// One target of a write (by its index in the run): a step begins, advances or it is done.
    Target { id: usize, step: TargetStep },
}

/// What a target of a write is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetPhase {
    /// Testing the medium's real capacity (stamped blocks, read back).
    Probe,
    /// Wiping the table areas, writing the data, the table last.
    Write,
    /// Waiting for the medium to take what was written (fdatasync).
    Flush,
    /// Reading back everything written, bypassing the page cache.
    ReadBack,
}

impl TargetPhase {
    pub fn verb(self) -> &'static str {
        match self {
            TargetPhase::Probe => "probing",
            TargetPhase::Write => "writing",
            TargetPhase::Flush => "flushing",
            TargetPhase::ReadBack => "reading back",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetStep {
    /// A step of `total` bytes (0: not counted) begins on target `name`.
    Begin {
        name: String,
        phase: TargetPhase,
        total: u64,
    },
    Advance(u64),
    /// The target is finished, well or not.
    End,
}

pub trait Progress: Send + Sync {
    fn event(&self, e: Event);

    fn phase(&self, s: &str) {
        self.event(Event::Phase(s.to_string()));
    }
    fn notice(&self, s: &str) {
        self.event(Event::Notice(s.to_string()));
    }
    fn start(&self, label: &str, total: u64) {
        self.event(Event::Start {
            label: label.to_string(),
            total,
        });
    }
    fn advance(&self, n: u64) {
        self.event(Event::Advance(n));
    }
    fn finish(&self) {
        self.event(Event::Finish);
    }
    fn target(&self, id: usize, step: TargetStep) {
        self.event(Event::Target { id, step });
    }
}

/// Prints nothing but notices (`--quiet` prints none).
pub struct Silent {
    pub notices: bool,
}

impl Progress for Silent {
    fn event(&self, e: Event) {
        if let (Event::Notice(s), true) = (e, self.notices) {
            eprintln!("pi-burn: {s}");
        }
    }
}

/// One line per phase on stderr: for logs and pipes. With `timed`, each line carries the
/// seconds since the run began (`-v`).
pub struct Lines {
    pub timed: Option<std::time::Instant>,
}

impl Lines {
    fn line(&self, s: &str) {
        match self.timed {
            Some(t0) => eprintln!("pi-burn: [{:.3}s] {s}", t0.elapsed().as_secs_f64()),
            None => eprintln!("pi-burn: {s}"),
        }
    }
}

/// "writing /dev/sdb (7.94 MiB)", "flushing card.img".
fn step_line(name: &str, phase: TargetPhase, total: u64) -> String {
    if total == 0 {
        format!("{} {name}", phase.verb())
    } else {
        format!("{} {name} ({})", phase.verb(), human(total))
    }
}

impl Progress for Lines {
    fn event(&self, e: Event) {
        match e {
            Event::Phase(s) => self.line(&s),
            Event::Notice(s) => eprintln!("pi-burn: {s}"),
            Event::Start { label, total } => self.line(&format!("{label} ({})", human(total))),
            Event::Target {
                step: TargetStep::Begin { name, phase, total },
                ..
            } => self.line(&step_line(&name, phase, total)),
            Event::Advance(_) | Event::Finish | Event::Target { .. } => {}
        }
    }
}

/// indicatif bars on a terminal: one for a step of the run, one per target of a write.
pub struct Bar {
    state: Mutex<BarState>,
}

#[derive(Default)]
struct BarState {
    multi: Option<indicatif::MultiProgress>,
    step: Option<indicatif::ProgressBar>,
    targets: std::collections::BTreeMap<usize, indicatif::ProgressBar>,
}

impl Bar {
    pub fn new() -> Self {
        Bar {
            state: Mutex::new(BarState::default()),
        }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

fn styled(total: u64, msg: String) -> indicatif::ProgressBar {
    let template = if total == 0 {
        "{msg:32} {bytes} {bytes_per_sec}"
    } else {
        "{msg:32} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
    };
    let b = indicatif::ProgressBar::new(total);
    b.set_style(
        indicatif::ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    b.set_message(msg);
    b
}

impl BarState {
    fn multi(&mut self) -> &indicatif::MultiProgress {
        self.multi.get_or_insert_with(indicatif::MultiProgress::new)
    }
    fn println(&mut self, s: &str) {
        if self.step.is_some() || !self.targets.is_empty() {
            let _ = self.multi().println(format!("pi-burn: {s}"));
        } else {
            eprintln!("pi-burn: {s}");
        }
    }
}

impl Progress for Bar {
    fn event(&self, e: Event) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match e {
            Event::Phase(s) | Event::Notice(s) => st.println(&s),
            Event::Start { label, total } => {
                let b = st.multi().add(styled(total, label));
                st.step = Some(b);
            }
            Event::Advance(n) => {
                if let Some(b) = &st.step {
                    b.inc(n);
                }
            }
            Event::Finish => {
                if let Some(b) = st.step.take() {
                    b.finish_and_clear();
                }
            }
            Event::Target { id, step } => match step {
                TargetStep::Begin { name, phase, total } => {
                    let msg = format!("{} {name}", phase.verb());
                    if let Some(old) = st.targets.remove(&id) {
                        old.finish_and_clear();
                    }
                    let b = st.multi().add(styled(total, msg));
                    st.targets.insert(id, b);
                }
                TargetStep::Advance(n) => {
                    if let Some(b) = st.targets.get(&id) {
                        b.inc(n);
                    }
                }
                TargetStep::End => {
                    if let Some(b) = st.targets.remove(&id) {
                        b.finish_and_clear();
                    }
                }
            },
        }
    }
}

/// Names what each line is about (`images` builds every node at once: "pi-beta: building ...").
pub struct Prefixed<'a> {
    pub inner: &'a dyn Progress,
    pub prefix: String,
}

impl Progress for Prefixed<'_> {
    fn event(&self, e: Event) {
        let p = &self.prefix;
        self.inner.event(match e {
            Event::Phase(s) => Event::Phase(format!("{p}{s}")),
            Event::Notice(s) => Event::Notice(format!("{p}{s}")),
            Event::Start { label, total } => Event::Start {
                label: format!("{p}{label}"),
                total,
            },
            e => e,
        });
    }
}

/// Keeps every event, for tests.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Event>>,
}

impl Progress for Recorder {
    fn event(&self, e: Event) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }
}

/// The sink for this run: quiet, a bar on a terminal, lines otherwise (timed with `-v`).
pub fn for_terminal(quiet: bool, verbose: bool) -> Box<dyn Progress> {
    use std::io::IsTerminal;
    if quiet {
        Box::new(Silent { notices: false })
    } else if verbose {
        Box::new(Lines {
            timed: Some(std::time::Instant::now()),
        })
    } else if std::io::stderr().is_terminal() {
        Box::new(Bar::new())
    } else {
        Box::new(Lines { timed: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_step_is_one_line_with_its_byte_count() {
        assert_eq!(
            step_line("card.img", TargetPhase::Write, 8 << 20),
            "writing card.img (8 MiB)"
        );
        assert_eq!(
            step_line("card.img", TargetPhase::Flush, 0),
            "flushing card.img"
        );
        assert_eq!(
            step_line("card.img", TargetPhase::ReadBack, 1 << 20),
            "reading back card.img (1 MiB)"
        );
    }
}
