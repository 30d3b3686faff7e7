//! The layers of the code point down: no module imports one that imports it back, at the top
//! level or inside a folder (issue 28). `.ci/imports.py` prints the graph and its cycles.

use crate::harness::*;

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/imports.py");

fn no_module_imports_form_a_cycle() {
    if !have_tool("python3") {
        return;
    }
    let o = std::process::Command::new("python3")
        .args([SCRIPT, SRC])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(
        o.status.success() && out.contains("no cycles"),
        "{out}{}",
        stderr(&o)
    );
    // The graph names the layers it checks (a script that read nothing would pass).
    for edge in ["commands -> ", "job -> ", "write/engine -> "] {
        assert!(out.contains(edge), "{out}");
    }
}

/// The checker finds a cycle where there is one.
fn the_checker_finds_a_planted_cycle() {
    if !have_tool("python3") {
        return;
    }
    let t = TestDir::new();
    let src = t.path("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(
        src.join("a/mod.rs"),
        "pub mod x;\npub mod y;\nuse crate::b::f;\n",
    )
    .unwrap();
    std::fs::write(src.join("a/x.rs"), "use super::y::g;\n").unwrap();
    std::fs::write(src.join("a/y.rs"), "use crate::a::x::h;\n").unwrap();
    std::fs::write(
        src.join("b.rs"),
        "// crate::a is only named in a comment\nuse crate::a::z;\n",
    )
    .unwrap();
    let o = std::process::Command::new("python3")
        .args([SCRIPT])
        .arg(&src)
        .output()
        .unwrap();
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("cycle: a <-> b"), "{out}");
    assert!(out.contains("cycle: a/x <-> a/y"), "{out}");
}

crate::tests![
    no_module_imports_form_a_cycle,
    the_checker_finds_a_planted_cycle
];
