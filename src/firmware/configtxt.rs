//! Edits of the firmware's `config.txt` (the Pi boot loader's settings): set or replace one key,
//! keep every other line and the file's line endings.
//!
//! The boot loader reads the file top to bottom; `[filter]` lines start conditional sections
//! (`[pi4]`, `[cm4]`, `[gpio4=1]` ...) and `[all]` ends them. A key that the file sets inside a
//! conditional section is refused: which line wins then depends on the board, and pi-burn does
//! not guess. `dtoverlay` and `dtparam` lines add up rather than replace, so they are appended.

use crate::error::usage;
use anyhow::{bail, Result};

/// One requested edit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Edit {
    pub key: String,
    pub value: String,
    /// Where it came from: `--config-txt`, `pi-burn.toml [defaults]` ...
    pub from: String,
}

/// What an edit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EditChange {
    Unchanged,
    Replaced,
    Added,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EditApplied {
    pub key: String,
    pub value: String,
    pub change: EditChange,
    pub from: String,
}

/// The longest config.txt line the boot loader reads (it ignores what follows).
pub const MAX_LINE: usize = 98;

/// Keys whose lines accumulate.
const ADDITIVE: &[&str] = &["dtoverlay", "dtparam"];

/// Parses `KEY=VALUE`.
pub fn parse_edit(text: &str, from: &str) -> Result<Edit> {
    let Some((key, value)) = text.split_once('=') else {
        bail!(usage(format!(
            "{from} {text}: expected KEY=VALUE (e.g. hdmi_force_hotplug=1)"
        )));
    };
    edit(key, value, from)
}

/// Checks a key and a value.
pub fn edit(key: &str, value: &str, from: &str) -> Result<Edit> {
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        bail!(usage(format!(
            "{from} '{key}': a config.txt key is letters, digits, '_' and ':' (e.g. hdmi_force_hotplug:0)"
        )));
    }
    if key == "include" {
        bail!(usage(format!(
            "{from} include={value}: pi-burn does not add files that config.txt includes"
        )));
    }
    if value.is_empty() || value.chars().any(|c| c.is_control()) {
        bail!(usage(format!(
            "{from} {key}={}: the value must be non-empty and on one line",
            crate::util::text::printable(value)
        )));
    }
    let line = key.len() + 1 + value.len();
    if line > MAX_LINE {
        bail!(usage(format!(
            "{from} {key}=...: the line would be {line} characters; the boot loader reads config.txt lines of at most {MAX_LINE}"
        )));
    }
    Ok(Edit {
        key: key.to_string(),
        value: value.to_string(),
        from: from.to_string(),
    })
}

/// Keeps the last edit of each key (additive keys keep every distinct value).
pub fn merge(edits: Vec<Edit>) -> Vec<Edit> {
    // Linear: each edit's slot found by its key (and value, for additive keys).
    let mut out: Vec<Edit> = vec![];
    let mut slot: std::collections::HashMap<(String, Option<String>), usize> =
        std::collections::HashMap::new();
    for e in edits {
        let additive = ADDITIVE.contains(&e.key.as_str());
        let k = (e.key.clone(), additive.then(|| e.value.clone()));
        match slot.get(&k) {
            Some(&i) => out[i] = e,
            None => {
                slot.insert(k, out.len());
                out.push(e);
            }
        }
    }
    out
}

struct Line<'a> {
    text: &'a str,
    /// The line break after it ("" on a last line without one).
    eol: &'a str,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    let mut out = vec![];
    let mut rest = text;
    while !rest.is_empty() {
        let (line, eol, next) = match rest.find('\n') {
            Some(i) if i > 0 && rest.as_bytes()[i - 1] == b'\r' => {
                (&rest[..i - 1], &rest[i - 1..=i], &rest[i + 1..])
            }
            Some(i) => (&rest[..i], &rest[i..=i], &rest[i + 1..]),
            None => (rest, "", ""),
        };
        out.push(Line { text: line, eol });
        rest = next;
    }
    out
}

/// The key a line sets, if any.
fn key_of(line: &str) -> Option<(&str, &str)> {
    let t = line.trim_start();
    if t.starts_with('#') || t.starts_with('[') {
        return None;
    }
    let (k, v) = t.split_once('=')?;
    Some((k.trim_end(), v))
}

/// Applies `edits` to `text`; `origin` names the file in errors.
pub fn apply(text: &str, edits: &[Edit], origin: &str) -> Result<(String, Vec<EditApplied>)> {
    let mut ls: Vec<(String, String)> = lines(text)
        .iter()
        .map(|l| (l.text.to_string(), l.eol.to_string()))
        .collect();
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut applied = vec![];
    for e in edits {
        // Which lines are unconditional, and where the key is.
        let mut conditional = false;
        let mut at = vec![];
        for (i, (line, _)) in ls.iter().enumerate() {
            let t = line.trim();
            if let Some(filter) = t.strip_prefix('[') {
                conditional = !filter.trim_end_matches(']').eq_ignore_ascii_case("all");
                continue;
            }
            if let Some((k, v)) = key_of(line) {
                if k == e.key {
                    if conditional {
                        bail!(usage(format!(
                            "{origin} line {}: '{}' is set under a conditional section, so which value the boot loader uses depends on the board; edit the file by hand instead of {} {}={}",
                            i + 1,
                            line.trim(),
                            e.from,
                            e.key,
                            e.value
                        )));
                    }
                    at.push((i, v.trim() == e.value));
                }
            }
        }
        let additive = ADDITIVE.contains(&e.key.as_str());
        let change = if additive {
            if at.iter().any(|(_, same)| *same) {
                EditChange::Unchanged
            } else {
                EditChange::Added
            }
        } else if at.is_empty() {
            EditChange::Added
        } else if at.iter().all(|(_, same)| *same) {
            EditChange::Unchanged
        } else {
            for (i, _) in &at {
                let indent = ls[*i].0.len() - ls[*i].0.trim_start().len();
                ls[*i].0 = format!("{}{}={}", &ls[*i].0[..indent], e.key, e.value);
            }
            EditChange::Replaced
        };
        if change == EditChange::Added {
            if let Some(last) = ls.last_mut() {
                if last.1.is_empty() {
                    last.1 = eol.to_string();
                }
            }
            if conditional {
                ls.push(("[all]".into(), eol.into()));
            }
            ls.push((format!("{}={}", e.key, e.value), eol.into()));
        }
        applied.push(EditApplied {
            key: e.key.clone(),
            value: e.value.clone(),
            change,
            from: e.from.clone(),
        });
    }
    let out = ls.iter().map(|(l, e)| format!("{l}{e}")).collect();
    Ok((out, applied))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(s: &str) -> Edit {
        parse_edit(s, "--config-txt").unwrap()
    }

    #[test]
    fn replaces_adds_and_keeps_every_other_line_and_the_line_endings() {
        let text =
            "arm_64bit=1\r\n# hdmi_force_hotplug=0\r\nenable_uart=0\r\ndtoverlay=miniuart-bt\r\n";
        let (out, a) = apply(
            text,
            &[
                e("enable_uart=1"),
                e("hdmi_force_hotplug=1"),
                e("dtoverlay=miniuart-bt"),
                e("dtoverlay=disable-wifi"),
                e("arm_64bit=1"),
            ],
            "config.txt",
        )
        .unwrap();
        assert_eq!(
            out,
            "arm_64bit=1\r\n# hdmi_force_hotplug=0\r\nenable_uart=1\r\ndtoverlay=miniuart-bt\r\nhdmi_force_hotplug=1\r\ndtoverlay=disable-wifi\r\n"
        );
        let changes: Vec<_> = a.iter().map(|x| x.change).collect();
        use EditChange::*;
        assert_eq!(changes, [Replaced, Added, Unchanged, Added, Unchanged]);
        // LF files stay LF; a missing last line break is added before the new line only.
        let (out, _) = apply("a=1\nb=2", &[e("c=3")], "config.txt").unwrap();
        assert_eq!(out, "a=1\nb=2\nc=3\n");
        let (out, _) = apply("a=1\nb=2", &[e("b=5")], "config.txt").unwrap();
        assert_eq!(out, "a=1\nb=5");
    }

    #[test]
    fn sections_are_respected_or_refused() {
        // After a conditional section a new key goes under [all].
        let (out, _) = apply("a=1\n[pi4]\nb=2\n", &[e("c=3")], "config.txt").unwrap();
        assert_eq!(out, "a=1\n[pi4]\nb=2\n[all]\nc=3\n");
        // A key set under [all] again is unconditional and replaced.
        let (out, _) = apply("[pi4]\nb=2\n[all]\nc=1\n", &[e("c=3")], "config.txt").unwrap();
        assert_eq!(out, "[pi4]\nb=2\n[all]\nc=3\n");
        // A key set under a filter is refused, naming the line.
        let err = apply("a=1\n[pi4]\nb=2\n", &[e("b=3")], "config.txt").unwrap_err();
        assert_eq!(crate::error::exit_code(&err), 2);
        assert!(format!("{err:#}").contains("config.txt line 3"), "{err:#}");
    }

    #[test]
    fn bad_edits_are_usage_errors() {
        for bad in [
            "novalue",
            "=1",
            "a b=1",
            "key=",
            "k=1\nx=2",
            "include=extra.txt",
        ] {
            let err = parse_edit(bad, "--config-txt").unwrap_err();
            assert_eq!(crate::error::exit_code(&err), 2, "{bad}");
        }
    }
}
