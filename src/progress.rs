//! Progress as a stream of events. The core reports; a sink decides what a person sees:
//! a bar on a terminal, one line per phase otherwise, nothing with `--quiet`, or a record (tests).

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

impl Progress for Lines {
    fn event(&self, e: Event) {
        match e {
            Event::Phase(s) => match self.timed {
                Some(t0) => eprintln!("pi-burn: [{:.3}s] {s}", t0.elapsed().as_secs_f64()),
                None => eprintln!("pi-burn: {s}"),
            },
            Event::Notice(s) => eprintln!("pi-burn: {s}"),
            Event::Start { label, total } => {
                eprintln!("pi-burn: {label} ({})", crate::util::units::human(total))
            }
            Event::Advance(_) | Event::Finish => {}
        }
    }
}

/// An indicatif bar on a terminal.
pub struct Bar {
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Bar {
    pub fn new() -> Self {
        Bar {
            bar: Mutex::new(None),
        }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Bar {
    fn event(&self, e: Event) {
        let mut bar = self.bar.lock().unwrap();
        match e {
            Event::Phase(s) | Event::Notice(s) => match bar.as_ref() {
                Some(b) => b.println(format!("pi-burn: {s}")),
                None => eprintln!("pi-burn: {s}"),
            },
            Event::Start { label, total } => {
                let b = indicatif::ProgressBar::new(total);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                b.set_message(label);
                *bar = Some(b);
            }
            Event::Advance(n) => {
                if let Some(b) = bar.as_ref() {
                    b.inc(n);
                }
            }
            Event::Finish => {
                if let Some(b) = bar.take() {
                    b.finish_and_clear();
                }
            }
        }
    }
}

/// Keeps every event, for tests.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Event>>,
}

impl Progress for Recorder {
    fn event(&self, e: Event) {
        self.events.lock().unwrap().push(e);
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
