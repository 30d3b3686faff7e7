//! Where a node's `disko.devices` comes from: the flake itself (`nix eval`, exact: disko's
//! module system, `imports`, `lib.mkIf` and disko's computed values), the single file through
//! the built-in evaluator or `nix-instantiate` (refused whenever the file needs more than they
//! give), a JSON file, or — only when asked for by name — the cluster's documented layout.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The cluster's documented layout (the primer's disk-config.nix without device paths), used
/// only with an explicit `--layout default`.
pub const DEFAULT_CONFIG: &str = r#"{
  disko.devices.disk = {
    sdcard = {
      type = "disk";
      content = {
        type = "gpt";
        partitions.firmware = {
          name = "FIRMWARE";
          size = "512M";
          type = "EF00";
          content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot/firmware"; };
        };
      };
    };
    usb-ssd = {
      type = "disk";
      content = {
        type = "gpt";
        partitions = {
          boot = {
            name = "BOOT";
            size = "1G";
            type = "EF00";
            content = { type = "filesystem"; format = "vfat"; mountpoint = "/boot"; };
          };
          zfs = {
            size = "100%";
            content = { type = "zfs"; pool = "rpool"; };
          };
        };
      };
    };
  };
}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalMode {
    /// Built-in when the file is within its subset; else the flake (flake.nix and nix); else
    /// nix-instantiate; else a refusal naming the command that makes `--disko-json`.
    Auto,
    Builtin,
    /// `nix-instantiate` on the single file, with a stub `lib`.
    Nix,
    /// `nix eval` on the flake's nixosConfigurations.NODE.config.disko.devices.
    Flake,
}

/// Where the devices came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// The single file, by the built-in evaluator or nix-instantiate.
    File(PathBuf, &'static str),
    /// The flake, through `nix eval`.
    Flake(PathBuf),
    Json(PathBuf),
    /// `images --eval-json`: the flake as Nix evaluated it (nix/eval.nix), exact.
    Eval(PathBuf),
    /// `--layout default`.
    BuiltinDefault,
}

impl ConfigSource {
    /// For errors and reports.
    pub fn describe(&self) -> String {
        match self {
            ConfigSource::File(p, how) => format!("{} ({how})", p.display()),
            ConfigSource::Flake(p) => format!("the flake {} (nix eval)", p.display()),
            ConfigSource::Json(p) => p.display().to_string(),
            ConfigSource::Eval(p) => format!("{} (the flake as Nix evaluated it)", p.display()),
            ConfigSource::BuiltinDefault => "the built-in default layout".into(),
        }
    }
}

/// `disko.devices` of a node, and its NixOS options when the flake was evaluated.
pub struct NodeConfig {
    pub node: String,
    pub source: ConfigSource,
    pub devices: Value,
    /// What the user should hear about the node's NixOS config.
    pub notices: Vec<String>,
    /// The options the doctor reads ([`super::options`]): `None` when the flake was not
    /// evaluated (then the node's config is not checked against its media).
    pub options: Option<super::options::Options>,
    /// Why the options are missing, for the message that says the config was not checked.
    pub unchecked: Option<String>,
}

/// What `--apply` keeps of `disko.devices`: plain values only (disko's `_create`, `_pkgs` and
/// `_config` hold scripts, functions and derivations), and the option names of each partition
/// and table, so that an option pi-burn does not know is refused rather than dropped.
/// The largest disk-config.nix read (the cluster's are about 4 KB).
const MAX_CONFIG: u64 = 1 << 20;
/// The largest `--disko-json` file read.
const MAX_JSON: u64 = 16 << 20;

const APPLY_NIX: &str = include_str!("apply.nix");

/// The `--apply` function for `nix eval` (ssd/apply.nix without its comments, on one line).
pub fn nix_apply() -> String {
    APPLY_NIX
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `nix/eval.nix`: the whole evaluation pi-burn asks of a node's NixOS config (`config:
/// { devices; options; }`, what `--eval flake` applies and `images --eval-json` reads), as a
/// file for Nix to import (lib.images). Generated from ssd/apply.nix and ssd/options.rs; a test
/// checks the committed file is this.
pub fn eval_nix() -> String {
    let indent = |text: &str, by: &str| -> String {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{by}{l}\n"))
            .collect()
    };
    let picks: String = super::options::PICKS
        .iter()
        .map(|(name, expr)| format!("      \"{name}\" = {expr};\n"))
        .collect();
    format!(
        "# What pi-burn reads of a node's NixOS config: the plain values of disko.devices and the\n\
         # options `pi-burn doctor` checks, as `pi-burn ... --eval flake` asks `nix eval --apply` for\n\
         # them. lib.images (nix/images.nix) hands this, for every node, to `pi-burn images\n\
         # --eval-json`. Generated from src/ssd/apply.nix and src/ssd/options.rs: `cargo test` fails\n\
         # when it is stale, and `PI_BURN_WRITE_NIX=1 cargo test --lib eval_nix` writes it again.\n\
         config: {{\n  devices = (\n{}  ) config.disko.devices;\n  options = (\n    c:\n    let\n      s = {};\n    in {{\n{picks}    }}\n  ) config;\n}}\n",
        indent(APPLY_NIX, "    "),
        super::options::TO_STRINGS
    )
}

/// Options of a disko partition and table that hold no layout (scripts, derived device paths,
/// module plumbing): the flake evaluation lists them and they are fine to leave.
const INTERNAL_OPTIONS: &[&str] = &[
    "_create",
    "_mount",
    "_unmount",
    "_config",
    "_pkgs",
    "_meta",
    "_parent",
    "_module",
    "_name",
    "device",
    "preMountHook",
    "postMountHook",
    "preUnmountHook",
    "postUnmountHook",
    "preCreateHook",
    "postCreateHook",
];

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// The first lines of a tool's error output, on one line.
fn stderr_summary(err: &[u8]) -> String {
    let text = String::from_utf8_lossy(err);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("warning:"))
        .collect();
    let mut s = lines
        .iter()
        .take(6)
        .copied()
        .collect::<Vec<_>>()
        .join(" / ");
    if s.len() > 600 {
        s = format!("{}...", s.chars().take(600).collect::<String>());
    }
    s
}

fn nix_instantiate(path: &Path) -> Result<Value> {
    let dir = path.parent().context("config path without a directory")?;
    let file = path
        .file_name()
        .context("config path without a name")?
        .to_string_lossy()
        .into_owned();
    // A stub lib: only the priority wrappers, which are the identity on a value. Anything else
    // (mkIf, genAttrs, ...) fails with "attribute '...' missing", named below.
    let expr = format!(
        "let f = import ./{file}; lib = {{ mkDefault = x: x; mkForce = x: x; mkOverride = _: x: x; }}; v = if builtins.isFunction f then f {{ inherit lib; config = {{}}; pkgs = {{}}; }} else f; in {{ imports = v ? imports; devices = if v ? disko && v.disko ? devices then v.disko.devices else null; }}"
    );
    let out = Command::new("nix-instantiate")
        .current_dir(dir)
        .args([
            "--store",
            "dummy://",
            "--readonly-mode",
            "--eval",
            "--strict",
            "--json",
            "-E",
            &expr,
        ])
        .output()
        .context("running nix-instantiate (install Nix, or use --disko-json FILE)")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if let Some(attr) = err
            .split("attribute '")
            .nth(1)
            .and_then(|r| r.split('\'').next())
        {
            bail!(
                "{}: needs '{attr}', which the single-file evaluation (nix-instantiate with a stub lib) does not give; evaluate the flake instead: --eval flake",
                path.display()
            );
        }
        bail!(
            "nix-instantiate failed on {}: {}",
            path.display(),
            stderr_summary(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading nix-instantiate's JSON for {}", path.display()))?;
    if v["imports"] == Value::Bool(true) {
        bail!(
            "{}: has 'imports', which the single-file evaluation would drop; evaluate the flake instead: --eval flake",
            path.display()
        );
    }
    if v["devices"].is_null() {
        bail!("{} defines no disko.devices", path.display());
    }
    Ok(serde_json::json!({ "disko": { "devices": v["devices"].clone() } }))
}

/// A node name that can go into a flake attribute path as it is.
fn check_node_name(node: &str) -> Result<()> {
    if node.is_empty()
        || !node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        bail!(crate::error::usage(format!(
            "node name '{}' has characters other than letters, digits, '-', '_' and '.'",
            super::model::short(node)
        )));
    }
    Ok(())
}

/// `nix eval` of the flake's `nixosConfigurations.NODE.config`: its `disko.devices` and the
/// NixOS options the doctor reads, in one evaluation.
pub fn eval_flake(flake: &Path, node: &str) -> Result<(Value, super::options::Options)> {
    check_node_name(node)?;
    if !flake.join("flake.nix").is_file() {
        bail!(
            "{} has no flake.nix: --eval flake needs a flake",
            flake.display()
        );
    }
    let dir =
        std::fs::canonicalize(flake).with_context(|| format!("reading {}", flake.display()))?;
    let installable = format!("{}#nixosConfigurations.\"{node}\".config", dir.display());
    let apply = format!(
        "config: {{ devices = ({}) config.disko.devices; options = ({}) config; }}",
        nix_apply(),
        super::options::apply()
    );
    let out = Command::new("nix")
        .args([
            "eval",
            "--json",
            "--extra-experimental-features",
            "nix-command flakes",
            &installable,
            "--apply",
            &apply,
        ])
        .output()
        .context("running nix (install Nix, or use --disko-json FILE)")?;
    if !out.status.success() {
        bail!(
            "nix eval of {installable}.disko.devices failed: {}; without what the flake needs here (its inputs, the network): --eval builtin for a config within the built-in evaluator's subset, or --disko-json FILE made where the flake evaluates: {}",
            stderr_summary(&out.stderr),
            json_command(flake, node)
        );
    }
    let mut v: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading nix eval's JSON for {installable}"))?;
    let options = super::options::Options::from_json(v["options"].take(), &installable)?;
    let devices = strip_option_lists(v["devices"].take(), &installable)?;
    Ok((devices, options))
}

/// Checks the `_options` lists the apply function added, then removes them.
fn strip_option_lists(mut v: Value, origin: &str) -> Result<Value> {
    use super::model::short;
    let (known_part, known_table) = (super::model::PART_KEYS, super::model::GPT_KEYS);
    let Some(disks) = v.get_mut("disk").and_then(Value::as_object_mut) else {
        return Ok(v);
    };
    for (dname, d) in disks.iter_mut() {
        let Some(c) = d.get_mut("content").and_then(Value::as_object_mut) else {
            continue;
        };
        if let Some(Value::Array(opts)) = c.remove("_options") {
            for o in opts.iter().filter_map(Value::as_str) {
                if !known_table.contains(&o) && !INTERNAL_OPTIONS.contains(&o) {
                    bail!("{origin}: disk '{}': the table's option '{}' is not one pi-burn reproduces", short(dname), short(o));
                }
            }
        }
        if let Some(parts) = c.get_mut("partitions").and_then(Value::as_object_mut) {
            for (pname, p) in parts.iter_mut() {
                let Some(p) = p.as_object_mut() else { continue };
                if let Some(Value::Array(opts)) = p.remove("_options") {
                    for o in opts.iter().filter_map(Value::as_str) {
                        if !known_part.contains(&o) && !INTERNAL_OPTIONS.contains(&o) {
                            bail!("{origin}: disk '{}', partition '{}': option '{}' is not one pi-burn reproduces", short(dname), short(pname), short(o));
                        }
                    }
                }
            }
        }
    }
    Ok(v)
}

/// Evaluates a disko config file with the built-in evaluator, refusing a module with `imports`.
pub fn eval_builtin(path: &Path) -> Result<Value> {
    let text = crate::util::read_text_limited(path, MAX_CONFIG, "a disko config")?;
    let v = super::nixeval::eval(&text, &path.display().to_string())?;
    if v.get("imports").is_some() {
        return Err(super::nixeval::Unsupported {
            origin: path.display().to_string(),
            line: 1,
            what: "'imports' (other modules)".into(),
        }
        .into());
    }
    Ok(v)
}

/// Evaluates a disko config file (for `--eval builtin|nix`).
pub fn eval_file(path: &Path, mode: EvalMode) -> Result<Value> {
    match mode {
        EvalMode::Nix => nix_instantiate(path),
        EvalMode::Builtin => eval_builtin(path),
        EvalMode::Auto | EvalMode::Flake => {
            bail!("eval_file evaluates a single file with --eval builtin or nix; use load() for {mode:?}")
        }
    }
}

/// `disko.devices` from an evaluated config (or from JSON that is already `disko.devices`).
fn devices_of(v: Value, origin: &str) -> Result<Value> {
    if let Some(d) = v.get("disko").and_then(|d| d.get("devices")) {
        return Ok(d.clone());
    }
    if v.get("disk").is_some() {
        return Ok(v);
    }
    bail!("{origin} defines no disko.devices.disk")
}

/// The nodes of a flake directory: `hosts/*/disk-config.nix`.
pub fn nodes(flake: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(flake.join("hosts"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("disk-config.nix").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// Refuses (a usage error) a `--node` that is not one of `nodes`, the flake's, naming the one
/// it most likely means.
pub fn check_node(flake: &Path, node: &str, nodes: &[String]) -> Result<()> {
    if nodes.iter().any(|n| n == node) {
        return Ok(());
    }
    let n = crate::util::text::printable(node);
    let hint = match crate::util::text::near(node, nodes) {
        Some(k) => format!("; did you mean {k}?"),
        None => String::new(),
    };
    bail!(crate::error::usage(format!(
        "--node {n}: {} has no hosts/{n}/disk-config.nix (its nodes: {}){hint}",
        flake.display(),
        if nodes.is_empty() {
            "none".to_string()
        } else {
            nodes.join(", ")
        }
    )))
}

/// The command that makes a `--disko-json` file on a machine with Nix.
pub fn json_command(flake: &Path, node: &str) -> String {
    format!(
        "nix eval --json --extra-experimental-features 'nix-command flakes' '{}#nixosConfigurations.\"{node}\".config.disko.devices' --apply '{}' > {node}-disko.json",
        flake.display(),
        nix_apply()
    )
}

/// `images --eval-json FILE`: every node's config as Nix evaluated it, `{ NODE: { devices,
/// options } }` (nix/eval.nix of `nixosConfigurations.NODE.config`): no nix runs here.
pub struct EvalJson {
    path: PathBuf,
    nodes: serde_json::Map<String, Value>,
}

impl EvalJson {
    pub fn read(path: &Path) -> Result<Self> {
        let text = crate::util::read_text_limited(path, MAX_JSON, "--eval-json")?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("--eval-json {}: not JSON", path.display()))?;
        let Value::Object(nodes) = v else {
            bail!(crate::error::usage(format!(
                "--eval-json {}: not an object of nodes (NODE: {{ devices, options }})",
                path.display()
            )));
        };
        for (node, v) in &nodes {
            check_node_name(node)?;
            if !(v.get("devices").is_some() && v.get("options").is_some()) {
                bail!(crate::error::usage(format!(
                    "--eval-json {}: node {node} has no devices and options (nix/eval.nix of its config gives both)",
                    path.display()
                )));
            }
        }
        Ok(EvalJson {
            path: path.into(),
            nodes,
        })
    }

    /// The nodes the file holds.
    pub fn names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// `node`'s config, when the file holds it.
    pub fn node(&self, node: &str) -> Option<Result<NodeConfig>> {
        let v = self.nodes.get(node)?;
        let origin = format!("--eval-json {} (node {node})", self.path.display());
        Some((|| {
            let devices = strip_option_lists(v["devices"].clone(), &origin)?;
            let options = super::options::Options::from_json(v["options"].clone(), &origin)?;
            Ok(NodeConfig {
                node: node.into(),
                devices: devices_of(devices, &origin)?,
                source: ConfigSource::Eval(self.path.clone()),
                notices: vec![],
                options: Some(options),
                unchecked: None,
            })
        })())
    }
}

/// Loads a node's devices: `--disko-json`, `--layout default`, or the flake's config.
pub fn load(
    flake: &Path,
    node: &str,
    mode: EvalMode,
    disko_json: Option<&Path>,
    default_layout: bool,
) -> Result<NodeConfig> {
    let node_cfg = |source, v: Value| -> Result<NodeConfig> {
        let origin = match &source {
            ConfigSource::BuiltinDefault => "the built-in default layout".to_string(),
            s => s.describe(),
        };
        Ok(NodeConfig {
            node: node.into(),
            devices: devices_of(v, &origin)?,
            source,
            notices: vec![],
            options: None,
            unchecked: None,
        })
    };
    if let Some(j) = disko_json {
        let text = crate::util::read_text_limited(j, MAX_JSON, "disko.devices as JSON")?;
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", j.display()))?;
        let v = strip_option_lists(v, &j.display().to_string())?;
        return node_cfg(ConfigSource::Json(j.into()), v);
    }
    if default_layout {
        // The documented layout for a node the flake does not have: never for a misspelling
        // of one it has (that card would carry the misspelt name).
        let known = nodes(flake);
        if let (false, Some(k)) = (
            known.iter().any(|n| n == node),
            crate::util::text::near(node, &known),
        ) {
            bail!(crate::error::usage(format!(
                "--node {} --layout default: {} has a node {k}; did you mean --node {k}? (--layout default is for a node the flake does not have)",
                crate::util::text::printable(node),
                flake.display()
            )));
        }
        let v = super::nixeval::eval(DEFAULT_CONFIG, "(built-in default)")?;
        return node_cfg(ConfigSource::BuiltinDefault, v);
    }
    if !flake.is_dir() {
        bail!(crate::error::usage(format!(
            "--flake {}: no such directory",
            flake.display()
        )));
    }
    check_node_name(node)?;
    let from_flake = |v, options| {
        node_cfg(ConfigSource::Flake(flake.into()), v).map(|mut c| {
            c.options = Some(options);
            c
        })
    };
    if mode == EvalMode::Flake {
        let (v, options) = eval_flake(flake, node)?;
        return from_flake(v, options);
    }
    let file = flake.join("hosts").join(node).join("disk-config.nix");
    if !file.is_file() {
        check_node(flake, node, &nodes(flake))?;
    }
    // Auto: through the flake whenever nix can (exact, and the node's NixOS config is there
    // to check); the one-file evaluators only when it cannot.
    let mut why_not = if !flake.join("flake.nix").is_file() {
        format!("{} has no flake.nix", flake.display())
    } else if !on_path("nix") {
        "nix is not installed here".to_string()
    } else {
        String::new()
    };
    if mode == EvalMode::Auto && why_not.is_empty() {
        match eval_flake(flake, node) {
            Ok((v, options)) => return from_flake(v, options),
            Err(e) => why_not = format!("the flake could not be evaluated ({e:#})"),
        }
    }
    match mode {
        EvalMode::Builtin => node_cfg(
            ConfigSource::File(file.clone(), "built-in evaluator"),
            eval_builtin(&file)?,
        ),
        EvalMode::Nix => node_cfg(
            ConfigSource::File(file.clone(), "nix-instantiate"),
            nix_instantiate(&file)?,
        ),
        EvalMode::Flake => unreachable!(),
        EvalMode::Auto => {
            let unchecked = |mut c: NodeConfig| {
                c.unchecked = Some(why_not.clone());
                c
            };
            match eval_builtin(&file) {
                Ok(v) => node_cfg(ConfigSource::File(file.clone(), "built-in evaluator"), v)
                    .map(unchecked),
                Err(e) if e.downcast_ref::<super::nixeval::Unsupported>().is_none() => Err(e),
                Err(e) if on_path("nix-instantiate") => {
                    let v = nix_instantiate(&file)
                        .with_context(|| format!("the built-in evaluator could not ({e}), and"))?;
                    node_cfg(ConfigSource::File(file.clone(), "nix-instantiate"), v).map(unchecked)
                }
                Err(e) => bail!(
                    "{e}; {why_not}: on a machine with Nix run {} and pass --disko-json {node}-disko.json",
                    json_command(flake, node)
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// nix/eval.nix is what pi-burn asks of a node's config; a stale copy would hand lib.images
    /// other options than the doctor reads.
    #[test]
    fn eval_nix_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/nix/eval.nix");
        let want = super::eval_nix();
        if std::env::var_os("PI_BURN_WRITE_NIX").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "{path} is stale: PI_BURN_WRITE_NIX=1 cargo test --lib eval_nix writes it again"
        );
    }
}
