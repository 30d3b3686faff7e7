//! disko's rules, one test per rule or refusal.

use super::*;
use serde_json::json;

fn disk(parts: Value) -> Result<DiskoDisk> {
    let devices = json!({"disk": {"d": {"type": "disk", "device": "/dev/x", "content": {"type": "gpt", "partitions": parts}}}});
    DiskoDisk::from_devices(&devices, "d", "t.nix")
}

#[test]
fn priority_checks_size_first_then_exact_ef02() {
    let d = disk(json!({
        "a": {"size": "100%", "type": "EF02"},
        "b": {"size": "1M", "type": "ef02"},
        "c": {"size": "1M", "type": "EF02"},
    }))
    .unwrap();
    let order: Vec<(&str, i64)> = d
        .partitions
        .iter()
        .map(|p| (p.attr.as_str(), p.priority))
        .collect();
    assert_eq!(order, [("c", 100), ("b", 1000), ("a", 9001)]);
}

#[test]
fn labels_count_bytes_and_explicit_ones_are_cut() {
    // 16 x "ä" is 16 characters but 32 bytes: with the prefix, over 36 bytes, so hashed.
    let long = "ä".repeat(16);
    let l = disko_label("d", &long);
    assert_eq!(l.len(), 36);
    assert!(l.chars().all(|c| c.is_ascii_hexdigit()));
    let d = disk(json!({"p": {"size": "1M", "label": "x".repeat(40)}})).unwrap();
    assert_eq!(d.partitions[0].label, "x".repeat(36));
    // The disk's name option labels, not its attribute name.
    let devices = json!({"disk": {"a/b": {"name": "other", "content": {"type": "gpt", "partitions": {"p": {"size": "1M"}}}}}});
    let d = DiskoDisk::from_devices(&devices, "a/b", "t").unwrap();
    assert_eq!(d.partitions[0].label, "disk-other-p");
    let devices =
        json!({"disk": {"a/b": {"content": {"type": "gpt", "partitions": {"p": {"size": "1M"}}}}}});
    let d = DiskoDisk::from_devices(&devices, "a/b", "t").unwrap();
    assert_eq!(d.partitions[0].label, "disk-a_b-p");
}

#[test]
fn attributes_hybrid_and_alignment_are_read() {
    let d = disk(
        json!({"p": {"size": "1M", "attributes": [0, 2, 63], "start": "34s",
        "hybrid": {"mbrPartitionType": "0x0c", "mbrBootableFlag": true}}}),
    )
    .unwrap();
    let p = &d.partitions[0];
    assert_eq!(p.attributes, 1 | 4 | (1 << 63));
    assert_eq!(
        p.alignment, 1,
        "a start in sectors makes disko pass alignment 1"
    );
    assert_eq!(
        p.hybrid,
        Some(Hybrid {
            mbr_type: Some(0x0c),
            bootable: true
        })
    );
}

#[test]
fn what_disko_rejects_or_pi_burn_cannot_reproduce_is_refused_by_name() {
    let cases = [
        (
            json!({"a": {"size": "1M", "name": "x"}, "b": {"size": "1M", "name": "x"}}),
            "share the name",
        ),
        (
            json!({"a": {"size": "1M", "label": "L"}, "b": {"size": "1M", "label": "L"}}),
            "both be labelled",
        ),
        (
            json!({"a": {"size": "1M", "uuid": "11111111-2222-3333-4444-555555555555"}, "b": {"size": "1M", "uuid": "11111111-2222-3333-4444-555555555555"}}),
            "same uuid",
        ),
        (
            json!({"a": {"size": "1M", "type": "00000000-0000-0000-0000-000000000000"}}),
            "all-zero GUID",
        ),
        (
            json!({"a": {"size": "1M", "priority": "x"}}),
            "'priority' must be an integer",
        ),
        (
            json!({"a": {"size": "1M", "frobnicate": true}}),
            "option 'frobnicate'",
        ),
        (json!({"a": {"size": "50%"}}), "size '50%'"),
        (json!({"a": {"size": "1GiB"}}), "size '1GiB'"),
        (json!({"a": {"size": 100}}), "must be a string"),
        (
            json!({"a": {"size": "1M", "type": "EF0"}}),
            "neither 4 hex digits",
        ),
        (
            json!({"a": {"size": "1M", "type": "ABCD"}}),
            "unknown partition type",
        ),
        (json!({"a": {"size": "1M", "label": "a:b"}}), "contains ':'"),
        (
            json!({"a": {"size": "1M", "label": "x😀"}}),
            "Basic Multilingual Plane",
        ),
        (
            json!({"a": {"size": "1M", "attributes": [64]}}),
            "attribute bit 64",
        ),
        (json!({"a": {"size": "1M", "alignment": 3}}), "power of two"),
        (
            json!({"a": {"size": "1M", "hybrid": {"mbrPartitionType": "zz"}}}),
            "not an MBR type",
        ),
        (
            json!({"a": {"size": "1M", "content": {"type": "frob"}}}),
            "content type 'frob'",
        ),
    ];
    for (parts, want) in cases {
        let e = format!("{:#}", disk(parts.clone()).unwrap_err());
        assert!(e.contains(want), "{parts}: {e}");
    }
    let many: Map<String, Value> = (0..129)
        .map(|i| (format!("p{i:03}"), json!({"size": "1M"})))
        .collect();
    let e = disk(Value::Object(many)).unwrap_err().to_string();
    assert!(e.contains("at most 128"), "{e}");
    let hooked = json!({"disk": {"d": {"content": {"type": "gpt", "postCreateHook": "sgdisk -t 1:8300 /dev/x", "partitions": {}}}}});
    let e = DiskoDisk::from_devices(&hooked, "d", "t")
        .unwrap_err()
        .to_string();
    assert!(e.contains("postCreateHook"), "{e}");
}

#[test]
fn a_long_label_is_shortened_in_errors() {
    let l = "y".repeat(5000);
    let e = disk(json!({"a": {"size": "1M", "label": format!("{l}:")}}))
        .unwrap_err()
        .to_string();
    assert!(e.len() < 400, "{e}");
}
