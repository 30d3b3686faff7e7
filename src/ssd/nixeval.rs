//! A Nix evaluator for the literal subset that disko configurations are written in: attribute
//! sets (dotted paths, nested merges), strings without interpolation, numbers, lists, booleans,
//! null, `lib.mkDefault x` / `lib.mkForce x` / `lib.mkOverride n x` (unwrapped), and a function
//! header `{ lib, config, ... }:`. Anything else is an error naming the construct and its line.

use anyhow::{anyhow, bail, Context, Result};
use rnix::ast::{self, AstToken, HasEntry, InterpolPart};
use rowan::ast::AstNode;
use serde_json::{Map, Value};

/// Something the built-in evaluator does not do.
/// At most 40 characters of `node`'s text, for messages (a 250 KB expression is not quoted).
fn excerpt(node: &rnix::SyntaxNode) -> String {
    let mut out: String = node
        .text()
        .to_string()
        .chars()
        .take(41)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.chars().count() > 40 {
        out = out.chars().take(40).collect::<String>() + "...";
    }
    out
}

#[derive(Debug)]
pub struct Unsupported {
    pub origin: String,
    pub line: usize,
    pub what: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} is beyond the built-in evaluator (literal attribute sets only); use --eval flake (needs nix and flake.nix), --eval nix or --disko-json FILE",
            self.origin, self.line, self.what
        )
    }
}

impl std::error::Error for Unsupported {}

struct Eval<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Eval<'_> {
    fn line(&self, node: &rnix::SyntaxNode) -> usize {
        let off: usize = node.text_range().start().into();
        self.text[..off.min(self.text.len())].matches('\n').count() + 1
    }

    fn unsupported(&self, node: &rnix::SyntaxNode, what: impl Into<String>) -> anyhow::Error {
        Unsupported {
            origin: self.origin.to_string(),
            line: self.line(node),
            what: what.into(),
        }
        .into()
    }

    fn attr_set(&self, set: &ast::AttrSet) -> Result<Value> {
        let node = set.syntax();
        if set.rec_token().is_some() {
            return Err(self.unsupported(node, "'rec'"));
        }
        if let Some(i) = set.inherits().next() {
            return Err(self.unsupported(i.syntax(), "'inherit'"));
        }
        let mut out = Map::new();
        for apv in set.attrpath_values() {
            let path = apv
                .attrpath()
                .ok_or_else(|| self.unsupported(apv.syntax(), "an attribute without a name"))?;
            let mut names = vec![];
            for a in path.attrs() {
                names.push(self.attr_name(&a)?);
            }
            let value =
                self.expr(&apv.value().ok_or_else(|| {
                    self.unsupported(apv.syntax(), "an attribute without a value")
                })?)?;
            self.insert(&mut out, &names, value, apv.syntax())?;
        }
        Ok(Value::Object(out))
    }

    fn literal(&self, l: &ast::Literal) -> Result<Value> {
        let node = l.syntax();
        match l.kind() {
            ast::LiteralKind::Integer(i) => {
                Ok(Value::from(i.value().map_err(|_| {
                    self.unsupported(node, "an integer out of range")
                })?))
            }
            ast::LiteralKind::Float(f) => {
                let v = f
                    .value()
                    .map_err(|_| self.unsupported(node, "a malformed float"))?;
                serde_json::Number::from_f64(v)
                    .map(Value::Number)
                    .ok_or_else(|| self.unsupported(node, "a non-finite float"))
            }
            ast::LiteralKind::Uri(u) => Ok(Value::String(u.syntax().text().to_string())),
        }
    }

    fn negate(&self, u: &ast::UnaryOp) -> Result<Value> {
        let node = u.syntax();
        let operand = u
            .expr()
            .ok_or_else(|| self.unsupported(node, "'-' without an operand"))?;
        match self.expr(&operand)? {
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => i
                    .checked_neg()
                    .map(Value::from)
                    .ok_or_else(|| self.unsupported(node, "an integer out of range")),
                (None, Some(f)) => Ok(serde_json::Number::from_f64(-f)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)),
                _ => Err(self.unsupported(node, "an integer out of range")),
            },
            _ => Err(self.unsupported(node, "'-' on something other than a number")),
        }
    }

    fn expr(&self, e: &ast::Expr) -> Result<Value> {
        use ast::Expr::*;
        let node = e.syntax();
        match e {
            Root(r) => self.expr(
                &r.expr()
                    .ok_or_else(|| anyhow!("{}: empty file", self.origin))?,
            ),
            Paren(p) => self.expr(
                &p.expr()
                    .ok_or_else(|| self.unsupported(node, "an empty parenthesis"))?,
            ),
            Lambda(l) => match l.param() {
                Some(ast::Param::Pattern(_)) => self.expr(
                    &l.body()
                        .ok_or_else(|| self.unsupported(node, "a function without a body"))?,
                ),
                _ => Err(self.unsupported(node, "a function with a plain parameter")),
            },
            AttrSet(set) => self.attr_set(set),
            Str(s) => self.string(s),
            Literal(l) => self.literal(l),
            List(l) => l
                .items()
                .map(|i| self.expr(&i))
                .collect::<Result<Vec<_>>>()
                .map(Value::Array),
            Ident(i) => {
                let name = i.syntax().text().to_string();
                match name.as_str() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    "null" => Ok(Value::Null),
                    _ => Err(self.unsupported(node, format!("the variable '{name}'"))),
                }
            }
            UnaryOp(u) if u.operator() == Some(ast::UnaryOpKind::Negate) => self.negate(u),
            Apply(a) => self.apply(a),
            LetIn(_) | LegacyLet(_) => Err(self.unsupported(node, "'let'")),
            With(_) => Err(self.unsupported(node, "'with'")),
            IfElse(_) => Err(self.unsupported(node, "'if'")),
            Assert(_) => Err(self.unsupported(node, "'assert'")),
            BinOp(b) => {
                Err(self.unsupported(node, format!("the operator in '{}'", excerpt(b.syntax()))))
            }
            Select(_) => {
                Err(self.unsupported(node, format!("the attribute selection '{}'", excerpt(node))))
            }
            PathAbs(_) | PathRel(_) | PathHome(_) | PathSearch(_) => {
                Err(self.unsupported(node, format!("the path '{}'", excerpt(node))))
            }
            HasAttr(_) => Err(self.unsupported(node, "the '?' operator")),
            _ => Err(self.unsupported(node, format!("'{}'", excerpt(node)))),
        }
    }

    /// `lib.mkDefault x`, `lib.mkForce x`, `lib.mkOverride n x`: the value itself.
    fn apply(&self, a: &ast::Apply) -> Result<Value> {
        let node = a.syntax();
        let f = a
            .lambda()
            .ok_or_else(|| self.unsupported(node, "an application"))?;
        let arg = a
            .argument()
            .ok_or_else(|| self.unsupported(node, "an application"))?;
        let fname = f.syntax().text().to_string();
        match fname.as_str() {
            "lib.mkDefault" | "lib.mkForce" | "mkDefault" | "mkForce" => self.expr(&arg),
            _ if fname.starts_with("lib.mkOverride ") || fname.starts_with("mkOverride ") => {
                self.expr(&arg)
            }
            _ if fname == "import" => Err(self.unsupported(node, "'import'")),
            _ => Err(self.unsupported(
                node,
                format!(
                    "the function call '{}'",
                    fname.chars().take(40).collect::<String>()
                ),
            )),
        }
    }

    fn attr_name(&self, a: &ast::Attr) -> Result<String> {
        match a {
            ast::Attr::Ident(i) => Ok(i.syntax().text().to_string()),
            ast::Attr::Str(s) => match self.string(s)? {
                Value::String(s) => Ok(s),
                _ => unreachable!(),
            },
            ast::Attr::Dynamic(d) => Err(self.unsupported(d.syntax(), "a dynamic attribute name")),
        }
    }

    fn string(&self, s: &ast::Str) -> Result<Value> {
        let mut out = String::new();
        for part in s.normalized_parts() {
            match part {
                InterpolPart::Literal(t) => out.push_str(&t),
                InterpolPart::Interpolation(i) => {
                    return Err(self.unsupported(i.syntax(), "string interpolation"))
                }
            }
        }
        Ok(Value::String(out))
    }

    /// Sets `names` in `obj`, merging attribute sets as Nix does for `a.b = ..; a.c = ..;`.
    fn insert(
        &self,
        obj: &mut Map<String, Value>,
        names: &[String],
        value: Value,
        node: &rnix::SyntaxNode,
    ) -> Result<()> {
        let (first, rest) = names.split_first().expect("an attribute path has a name");
        if rest.is_empty() {
            match (obj.get_mut(first), value) {
                (None, v) => {
                    obj.insert(first.clone(), v);
                }
                (Some(Value::Object(existing)), Value::Object(new)) => {
                    for (k, v) in new {
                        self.insert(existing, std::slice::from_ref(&k), v, node)?;
                    }
                }
                (Some(_), _) => bail!(
                    "{}:{}: attribute '{first}' is defined twice",
                    self.origin,
                    self.line(node)
                ),
            }
            return Ok(());
        }
        let entry = obj
            .entry(first.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        match entry {
            Value::Object(inner) => self.insert(inner, rest, value, node),
            _ => bail!(
                "{}:{}: attribute '{first}' is not an attribute set",
                self.origin,
                self.line(node)
            ),
        }
    }
}

/// The largest file the built-in evaluator reads (disko configs are a few KiB).
const MAX_SOURCE: usize = 256 << 10;
/// Nesting limits checked on the tokens before parsing, so that no input can exhaust the stack
/// of the recursive parser and evaluator.
const MAX_DEPTH: usize = 128;
const MAX_RUN: usize = 64;

/// Refuses sources whose nesting could exhaust the stack: brackets, unary minus runs, long
/// Operators a file may hold before the parser runs (see [`check_nesting`]).
const MAX_OPERATORS: usize = 256;

/// dotted paths, and chains of `:`/`with`/`let`/`if`/`assert`.
fn check_nesting(text: &str, origin: &str) -> Result<()> {
    use rnix::SyntaxKind::*;
    if text.len() > MAX_SOURCE {
        bail!("{origin}: {} bytes is more than the built-in evaluator reads ({MAX_SOURCE}); use --eval flake or --disko-json", text.len());
    }
    let (mut depth, mut subs, mut dots, mut chains) = (0usize, 0usize, 0usize, 0usize);
    let mut operators = 0usize;
    let mut line = 1usize;
    for (kind, token) in rnix::tokenize(text) {
        line += token.bytes().filter(|b| *b == b'\n').count();
        match kind {
            TOKEN_WHITESPACE | TOKEN_COMMENT => continue,
            TOKEN_L_BRACE | TOKEN_L_BRACK | TOKEN_L_PAREN | TOKEN_INTERPOL_START => depth += 1,
            TOKEN_R_BRACE | TOKEN_R_BRACK | TOKEN_R_PAREN | TOKEN_INTERPOL_END => {
                depth = depth.saturating_sub(1)
            }
            TOKEN_COLON | TOKEN_WITH | TOKEN_LET | TOKEN_IF | TOKEN_ASSERT => chains += 1,
            // The subset has no operators (but '-' before a number); the parser is slow on
            // long chains of them: a few hundred are refused before it runs.
            TOKEN_ADD | TOKEN_SUB | TOKEN_MUL | TOKEN_DIV | TOKEN_CONCAT | TOKEN_UPDATE
            | TOKEN_AND_AND | TOKEN_OR_OR | TOKEN_EQUAL | TOKEN_NOT_EQUAL | TOKEN_LESS
            | TOKEN_LESS_OR_EQ | TOKEN_MORE | TOKEN_MORE_OR_EQ | TOKEN_IMPLICATION
            | TOKEN_INVERT | TOKEN_QUESTION | TOKEN_OR | TOKEN_PIPE_LEFT | TOKEN_PIPE_RIGHT => {
                operators += 1
            }
            _ => {}
        }
        subs = if kind == TOKEN_SUB { subs + 1 } else { 0 };
        if kind == TOKEN_DOT {
            dots += 1;
        } else if kind != TOKEN_IDENT
            && kind != TOKEN_STRING_START
            && kind != TOKEN_STRING_CONTENT
            && kind != TOKEN_STRING_END
        {
            dots = 0;
        }
        let what = if depth > MAX_DEPTH {
            Some(format!("brackets nested more than {MAX_DEPTH} deep"))
        } else if subs > MAX_RUN {
            Some(format!("more than {MAX_RUN} '-' in a row"))
        } else if dots > MAX_DEPTH {
            Some(format!("an attribute path of more than {MAX_DEPTH} parts"))
        } else if operators > MAX_OPERATORS {
            Some(format!(
                "more than {MAX_OPERATORS} operators (the built-in evaluator takes none)"
            ))
        } else if chains > 4 * MAX_DEPTH {
            Some(format!(
                "more than {} functions, 'let', 'with', 'if' and 'assert'",
                4 * MAX_DEPTH
            ))
        } else {
            None
        };
        if let Some(what) = what {
            return Err(Unsupported {
                origin: origin.to_string(),
                line,
                what,
            }
            .into());
        }
    }
    Ok(())
}

/// Evaluates Nix source `text` (named `origin` in errors) to JSON.
pub fn eval(text: &str, origin: &str) -> Result<Value> {
    check_nesting(text, origin)?;
    // The parser and the evaluator recurse: give them a stack the limits above cannot exhaust.
    let text = text.to_string();
    let origin = origin.to_string();
    std::thread::Builder::new()
        .name("nixeval".into())
        .stack_size(64 << 20)
        .spawn(move || eval_here(&text, &origin))
        .context("starting the evaluator")?
        .join()
        .map_err(|_| anyhow!("the built-in evaluator failed"))?
}

fn eval_here(text: &str, origin: &str) -> Result<Value> {
    let parse = rnix::Root::parse(text);
    if let Some(e) = parse.errors().first() {
        bail!("{origin}: Nix syntax error: {e}");
    }
    let root = parse.tree();
    let ev = Eval { text, origin };
    ev.expr(&ast::Expr::Root(root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literals_dotted_paths_and_merges() {
        let v = eval(
            r#"{ lib, config, ... }: {
              a.b.c = 1;
              a.b.d = "x";
              a = { e = [ 1 "two" true null (-3) 1.5 ]; };
              "quoted name".x = lib.mkDefault ''
                indented
              '';
              f = lib.mkForce (lib.mkOverride 50 false);
            }"#,
            "t.nix",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"a": {"b": {"c": 1, "d": "x"}, "e": [1, "two", true, null, -3, 1.5]}, "quoted name": {"x": "indented\n"}, "f": false})
        );
    }

    #[test]
    fn unsupported_constructs_name_themselves_and_their_line() {
        let cases = [
            ("{\n  a = let x = 1; in x;\n}", 2, "'let'"),
            ("{\n\n  a = \"${b}\";\n}", 3, "string interpolation"),
            ("{ a = import ./x.nix; }", 1, "'import'"),
            ("{ a = if true then 1 else 2; }", 1, "'if'"),
            ("{ a = with lib; 1; }", 1, "'with'"),
            ("rec { a = 1; }", 1, "'rec'"),
            ("{ a = b; }", 1, "the variable 'b'"),
            ("{ a = { } // { }; }", 1, "operator"),
            ("{ inherit a; }", 1, "'inherit'"),
            ("{ ${x} = 1; }", 1, "dynamic attribute"),
            ("{ a = ./path; }", 1, "path"),
            ("{ a = builtins.toString 1; }", 1, "function call"),
        ];
        for (src, line, what) in cases {
            let e = eval(src, "disk-config.nix").unwrap_err();
            let u = e
                .downcast_ref::<Unsupported>()
                .unwrap_or_else(|| panic!("{src}: {e}"));
            assert_eq!(u.line, line, "{src}");
            let msg = e.to_string();
            assert!(
                msg.contains(what)
                    && msg.contains("--eval nix")
                    && msg.contains(&format!("disk-config.nix:{line}:")),
                "{src}: {msg}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let cases = [
            format!("{{ a = {}1{}; }}", "[".repeat(10000), "]".repeat(10000)),
            format!("{{ a = {}1; }}", "-".repeat(30000)),
            format!("{{ a{} = 1; }}", ".b".repeat(30000)),
            format!("{{ a = {}1; }}", "x: ".repeat(30000)),
            format!("{{ a = {}1{}; }}", "(".repeat(100000), ")".repeat(100000)),
        ];
        for src in cases {
            let e = eval(&src, "deep.nix").unwrap_err().to_string();
            assert!(e.contains("deep.nix"), "{e}");
        }
        // Within the limits, nesting still works.
        let ok = format!("{{ a = {}1{}; }}", "[".repeat(100), "]".repeat(100));
        assert!(eval(&ok, "t").is_ok());
    }

    #[test]
    fn duplicates_and_syntax_errors_are_errors() {
        assert!(eval("{ a = 1; a = 2; }", "t")
            .unwrap_err()
            .to_string()
            .contains("defined twice"));
        assert!(eval("{ a = 1; ", "t")
            .unwrap_err()
            .to_string()
            .contains("syntax error"));
    }
}
