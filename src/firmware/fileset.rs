//! The firmware as a set of files and directories held in memory, with FAT's naming rules.

use anyhow::{bail, Result};
use std::collections::BTreeMap;

/// One entry of a [`FileSet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { data: Vec<u8>, executable: bool },
}

/// Files and directories keyed by their `/`-separated path relative to the root (no leading `/`).
/// Every parent directory of an entry is itself an entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileSet {
    entries: BTreeMap<String, Node>,
}

impl FileSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory (and its parents).
    pub fn add_dir(&mut self, path: &str) -> Result<()> {
        check_path(path)?;
        self.add_parents(path)?;
        match self.entries.get(path) {
            Some(Node::File { .. }) => bail!("'{path}' is both a file and a directory"),
            _ => {
                self.entries.insert(path.to_string(), Node::Dir);
            }
        }
        Ok(())
    }

    /// Adds a file (and its parent directories).
    pub fn add_file(&mut self, path: &str, data: Vec<u8>, executable: bool) -> Result<()> {
        check_path(path)?;
        self.add_parents(path)?;
        match self.entries.get(path) {
            Some(Node::Dir) => bail!("'{path}' is both a file and a directory"),
            Some(Node::File { .. }) => bail!("'{path}' appears twice"),
            None => {
                self.entries
                    .insert(path.to_string(), Node::File { data, executable });
            }
        }
        Ok(())
    }

    fn add_parents(&mut self, path: &str) -> Result<()> {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let parent = &path[..end + i];
            if let Some(Node::File { .. }) = self.entries.get(parent) {
                bail!("'{parent}' is both a file and a directory");
            }
            self.entries.insert(parent.to_string(), Node::Dir);
            end += i + 1;
        }
        Ok(())
    }

    /// Replaces the contents of an existing file.
    pub fn replace(&mut self, path: &str, new: Vec<u8>) -> Result<()> {
        match self.entries.get_mut(path) {
            Some(Node::File { data, .. }) => {
                *data = new;
                Ok(())
            }
            _ => bail!("'{path}' is not a file of the firmware"),
        }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.entries.get(path)
    }

    pub fn file(&self, path: &str) -> Option<&[u8]> {
        match self.entries.get(path) {
            Some(Node::File { data, .. }) => Some(data),
            _ => None,
        }
    }

    /// All entries in path order (a parent always before its children).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().filter_map(|(k, v)| match v {
            Node::File { data, .. } => Some((k.as_str(), data.as_slice())),
            Node::Dir => None,
        })
    }

    /// Direct children of `dir` ("" for the root): (name, node).
    pub fn children<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = (&'a str, &'a Node)> + 'a {
        self.entries.iter().filter_map(move |(k, v)| {
            let rest = if dir.is_empty() {
                k.as_str()
            } else {
                k.strip_prefix(dir)?.strip_prefix('/')?
            };
            (!rest.contains('/')).then_some((rest, v))
        })
    }

    pub fn file_count(&self) -> usize {
        self.files().count()
    }

    /// Sum of the file sizes.
    pub fn payload_bytes(&self) -> u64 {
        self.files().map(|(_, d)| d.len() as u64).sum()
    }

    /// Refuses two paths that FAT would treat as the same name (it compares case-insensitively).
    pub fn check_fat_collisions(&self) -> Result<()> {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for path in self.entries.keys() {
            let folded = fat_fold(path);
            if let Some(other) = seen.insert(folded, path) {
                bail!("'{other}' and '{path}' would be the same name on FAT (it ignores case)");
            }
        }
        Ok(())
    }
}

/// FAT compares names through a one-to-one upper-case table (edk2, Linux vfat, Windows): each
/// character maps to one character, so ß stays ß. Rust's full mapping (ß -> SS) would call
/// `straße` and `STRASSE` the same name, which they are not on FAT.
fn fat_fold(path: &str) -> String {
    path.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

/// Checks that `path` is a safe relative path whose every component FAT can store as a long name.
pub fn check_path(path: &str) -> Result<()> {
    if path.is_empty() {
        bail!("an entry has an empty name");
    }
    if path.starts_with('/') || path.starts_with('\\') {
        bail!("'{path}' is an absolute path");
    }
    for comp in path.split('/') {
        if comp == ".." || comp == "." {
            bail!("'{path}' contains a '{comp}' component");
        }
        if comp.is_empty() {
            bail!("'{path}' contains an empty component");
        }
        if let Some(c) = comp
            .chars()
            .find(|c| (*c as u32) < 0x20 || *c == '\x7f' || "\"*:<>?\\|".contains(*c))
        {
            bail!(
                "'{}' cannot be stored on FAT: the character {:?} is not allowed",
                path.escape_debug(),
                c
            );
        }
        if comp.ends_with('.') || comp.ends_with(' ') {
            bail!("'{path}' cannot be stored on FAT: a name cannot end with '.' or a space");
        }
        if comp.encode_utf16().count() > 255 {
            bail!("'{path}' cannot be stored on FAT: a name is longer than 255 characters");
        }
        // The limits of pi-burn's FAT writer (fatfs 0.3.6), checked here so that the name is
        // named before anything is built.
        if comp.len() > 255 {
            bail!(
                "'{path}': the name is {} bytes of UTF-8; pi-burn's FAT writer stores at most 255",
                comp.len()
            );
        }
        if let Some(c) = comp.chars().find(|c| (*c as u32) > 0xFFFF) {
            bail!(
                "'{path}': the character U+{:04X} lies outside the Basic Multilingual Plane, which pi-burn's FAT writer cannot store",
                c as u32
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_added_and_children_listed() {
        let mut s = FileSet::new();
        s.add_file("firmware/brcm/a.bin", vec![1], false).unwrap();
        s.add_file("config.txt", vec![2, 3], false).unwrap();
        assert_eq!(s.get("firmware"), Some(&Node::Dir));
        assert_eq!(s.get("firmware/brcm"), Some(&Node::Dir));
        let root: Vec<_> = s.children("").map(|(n, _)| n).collect();
        assert_eq!(root, ["config.txt", "firmware"]);
        let sub: Vec<_> = s.children("firmware").map(|(n, _)| n).collect();
        assert_eq!(sub, ["brcm"]);
        assert_eq!(s.payload_bytes(), 3);
        assert_eq!(s.file_count(), 2);
    }

    #[test]
    fn unsafe_and_unstorable_names_are_refused() {
        for bad in [
            "../x",
            "/etc/passwd",
            "a/../b",
            "a//b",
            "a/./b",
            "a:b",
            "a*b",
            "a?",
            "trail.",
            "tab\tname",
            "back\\slash",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert!(check_path(&"x".repeat(256)).is_err());
        for good in [
            "Readme.md",
            "overlays/upstream-pi4.dtbo",
            "firmware/brcm/brcmfmac43455-sdio.Raspberry",
            "with space.txt",
        ] {
            check_path(good).unwrap();
        }
    }

    #[test]
    fn case_insensitive_collisions_are_refused() {
        let mut s = FileSet::new();
        s.add_file("Readme.md", vec![], false).unwrap();
        s.add_file("README.MD", vec![], false).unwrap();
        let e = s.check_fat_collisions().unwrap_err().to_string();
        assert!(e.contains("README.MD") && e.contains("Readme.md"), "{e}");
    }

    #[test]
    fn fat_folds_one_character_to_one() {
        // Regression (issue 14): ß and SS are different names on FAT.
        let mut s = FileSet::new();
        s.add_file("straße.txt", vec![], false).unwrap();
        s.add_file("STRASSE.txt", vec![], false).unwrap();
        s.check_fat_collisions().unwrap();
        s.add_file("STRAßE.TXT", vec![], false).unwrap();
        assert!(s.check_fat_collisions().is_err());
    }

    #[test]
    fn names_the_fat_writer_cannot_store_are_refused_up_front() {
        let long = "ä".repeat(130);
        let e = check_path(&format!("dir/{long}")).unwrap_err().to_string();
        assert!(e.contains("260 bytes") && e.contains("dir/"), "{e}");
        let e = check_path("smile-😀.txt").unwrap_err().to_string();
        assert!(e.contains("U+1F600"), "{e}");
        check_path(&"ä".repeat(127)).unwrap();
    }

    #[test]
    fn a_file_cannot_also_be_a_directory() {
        let mut s = FileSet::new();
        s.add_file("a", vec![], false).unwrap();
        assert!(s.add_file("a/b", vec![], false).is_err());
        assert!(s.add_file("a", vec![], false).is_err());
    }
}
