//! The Nix archive (NAR) hash of a file set: what Nix's `fetchzip` pins.
//!
//! Format: every string is its length as u64 little-endian, its bytes, then zero padding to a
//! multiple of 8. A node is `( type regular [executable ""] contents <bytes> )` or
//! `( type directory entry ( name <n> node <node> ) ... )` with entries sorted by name bytes.

use crate::firmware::digest::Sha256Digest;
use crate::firmware::fileset::{FileSet, Node};
use sha2::{Digest, Sha256};

struct NarWriter {
    h: Sha256,
}

impl NarWriter {
    fn bytes(&mut self, b: &[u8]) {
        self.h.update((b.len() as u64).to_le_bytes());
        self.h.update(b);
        let pad = (8 - b.len() % 8) % 8;
        self.h.update(&[0u8; 8][..pad]);
    }

    fn node(&mut self, set: &FileSet, path: &str, node: &Node) {
        self.bytes(b"(");
        self.bytes(b"type");
        match node {
            Node::File { data, executable } => {
                self.bytes(b"regular");
                if *executable {
                    self.bytes(b"executable");
                    self.bytes(b"");
                }
                self.bytes(b"contents");
                self.bytes(data);
            }
            Node::Dir => {
                self.bytes(b"directory");
                let mut kids: Vec<(&str, &Node)> = set.children(path).collect();
                kids.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                for (name, kid) in kids {
                    let child = if path.is_empty() {
                        name.to_string()
                    } else {
                        format!("{path}/{name}")
                    };
                    self.bytes(b"entry");
                    self.bytes(b"(");
                    self.bytes(b"name");
                    self.bytes(name.as_bytes());
                    self.bytes(b"node");
                    self.node(set, &child, kid);
                    self.bytes(b")");
                }
            }
        }
        self.bytes(b")");
    }
}

/// SHA-256 of the NAR serialisation of `set` as a directory (fetchzip with `stripRoot = false`).
pub fn nar_sha256(set: &FileSet) -> Sha256Digest {
    let mut w = NarWriter { h: Sha256::new() };
    w.bytes(b"nix-archive-1");
    w.node(set, "", &Node::Dir);
    Sha256Digest::from_hasher(w.h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_directory_has_nix_s_hash() {
        // `mkdir e && nix-store --dump e | sha256sum` (nix 2.x): a fixed, well-known value.
        let d = nar_sha256(&FileSet::new());
        let mut expect = Sha256::new();
        for s in [&b"nix-archive-1"[..], b"(", b"type", b"directory", b")"] {
            expect.update((s.len() as u64).to_le_bytes());
            expect.update(s);
            expect.update(&[0u8; 8][..(8 - s.len() % 8) % 8]);
        }
        assert_eq!(d, Sha256Digest::from_hasher(expect));
    }

    #[test]
    fn entries_sort_by_bytes_not_case_insensitively() {
        let mut a = FileSet::new();
        a.add_file("B", vec![1], false).unwrap();
        a.add_file("a", vec![2], false).unwrap();
        let mut b = FileSet::new();
        b.add_file("a", vec![2], false).unwrap();
        b.add_file("B", vec![1], false).unwrap();
        assert_eq!(nar_sha256(&a), nar_sha256(&b));
        let mut c = FileSet::new();
        c.add_file("a", vec![2], true).unwrap();
        c.add_file("B", vec![1], false).unwrap();
        assert_ne!(
            nar_sha256(&a),
            nar_sha256(&c),
            "the executable bit is part of the hash"
        );
    }
}
