//! Tidy checks of the source tree (rust-analyzer's `tidy.rs`): the layering rules of
//! ARCHITECTURE.md, read from the code itself rather than trusted.
//!
//! - no import cycle between modules, except inside one context folder (a context with its own
//!   submodules may refer back and forth);
//! - only the binary's entry points (`main.rs`, `cli/`) import the composition root `app`;
//! - `redb` is named only in `store/`;
//! - `axum` is named only in `http/`, `console/`, the contexts' `api.rs` and `views.rs`, and the
//!   composition root.
//!
//! The import graph has one node per module file. Its edges come from every `crate::…` and
//! `super::…` path in the code (in `use` lines and inline), and from paths through the names
//! that `use` lines bring in, each resolved to the deepest module it names. Comments and string
//! literals are skipped, and so are unit-test modules (`mod tests`), which are not part of the
//! layering.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module: its path (`crate::tenants::api`) and its source with comments and strings blanked.
struct Module {
    file: PathBuf,
    code: String,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` → `crate::a::b`; `src/lib.rs` → `crate`; `src/main.rs` →
/// `main` (the binary, outside the library's module tree).
fn module_path(file: &Path) -> String {
    let rel = file.strip_prefix(src_dir()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if parts.is_empty() && stem == "main" {
        return "main".into();
    }
    if !(stem == "mod" || (parts.is_empty() && stem == "lib")) {
        parts.push(stem.to_string());
    }
    std::iter::once("crate".to_string())
        .chain(parts)
        .collect::<Vec<_>>()
        .join("::")
}

/// The source with comments, string literals and char literals replaced by spaces (so that
/// paths named in docs or messages are not mistaken for imports). `#[cfg(test)]` code counts.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &rest[..j]);
            i += j;
        } else if rest.starts_with(b"r\"") || rest.starts_with(b"r#") {
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            if rest.get(1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let start = 2 + hashes;
            let end = rest[start..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(rest.len(), |p| start + p + close.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            let len = if rest.get(1) == Some(&b'\\') {
                rest[2..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map_or(1, |p| p + 3)
            } else {
                let ch = std::str::from_utf8(&rest[1..rest.len().min(6)])
                    .ok()
                    .or_else(|| {
                        (2..6)
                            .rev()
                            .find_map(|n| std::str::from_utf8(&rest[1..rest.len().min(n)]).ok())
                    })
                    .and_then(|s| s.chars().next());
                match ch {
                    Some(c) if rest.get(1 + c.len_utf8()) == Some(&b'\'') => 2 + c.len_utf8(),
                    _ => 1,
                }
            };
            if len == 1 {
                out.push('\'');
            } else {
                blank(&mut out, &rest[..len]);
            }
            i += len;
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn load() -> BTreeMap<String, Module> {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files
        .into_iter()
        .map(|f| {
            let code = strip(&std::fs::read_to_string(&f).unwrap());
            (module_path(&f), Module { file: f, code })
        })
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Expands one `use` tree (`a::{b, c::d as e, self}`) into `(alias, full path)` pairs.
fn expand_use(prefix: &str, tree: &str, out: &mut Vec<(String, String)>) {
    let tree = tree.trim();
    if tree.is_empty() {
        return;
    }
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base = join(prefix, head);
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_use(&base, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand_use(&base, &inner[start..], out);
        return;
    }
    let (path, alias) = match tree.split_once(" as ") {
        Some((p, a)) => (p.trim(), Some(a.trim())),
        None => (tree, None),
    };
    if path == "*" || path.ends_with("::*") {
        // A glob: the module is imported, its names are not tracked.
        out.push((
            "*".into(),
            join(prefix, path.trim_end_matches('*').trim_end_matches("::")),
        ));
        return;
    }
    let full = if path == "self" {
        prefix.to_string()
    } else {
        join(prefix, path)
    };
    let name = alias.unwrap_or_else(|| full.rsplit("::").next().unwrap_or(&full));
    if name != "_" {
        out.push((name.to_string(), full));
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}::{b}"),
    }
}

/// Replaces a leading `crate`/`super`/`self` of `path` (as written in module `me`) by the
/// absolute module path; `None` for paths that leave the crate (`std::…`, `serde::…`).
fn absolute(me: &str, path: &str) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").map(str::trim).collect();
    let mut base: Vec<String> = me.split("::").map(str::to_string).collect();
    match segs.first().copied() {
        Some("crate") => {
            segs.remove(0);
            base = vec!["crate".into()];
        }
        Some("super") | Some("self") => {
            while let Some(&s) = segs.first() {
                match s {
                    "super" => {
                        base.pop();
                        segs.remove(0);
                    }
                    "self" => {
                        segs.remove(0);
                    }
                    _ => break,
                }
            }
        }
        _ => return None,
    }
    Some(
        base.into_iter()
            .chain(segs.into_iter().map(str::to_string))
            .collect::<Vec<_>>()
            .join("::"),
    )
}

/// The deepest module of `modules` that `path` goes through.
fn resolve<'a>(modules: &'a BTreeMap<String, Module>, path: &str) -> Option<&'a str> {
    let mut p = path.to_string();
    loop {
        if let Some((k, _)) = modules.get_key_value(&p) {
            return Some(k.as_str());
        }
        let cut = p.rfind("::")?;
        p.truncate(cut);
    }
}

/// Every `a::b::c` path in `code` (identifiers joined by `::`), as written.
fn paths(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if is_ident(chars[i]) && (i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':')) {
            let start = i;
            let mut end;
            let mut j = i;
            loop {
                while j < chars.len() && is_ident(chars[j]) {
                    j += 1;
                }
                end = j;
                if j + 2 < chars.len()
                    && chars[j] == ':'
                    && chars[j + 1] == ':'
                    && is_ident(chars[j + 2])
                {
                    j += 2;
                } else {
                    break;
                }
            }
            let p: String = chars[start..end].iter().collect();
            if p.contains("::") {
                out.push(p);
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// `code` with its `use` statements blanked (their paths are read by [`uses`]).
fn without_uses(code: &str) -> String {
    let mut out = code.to_string();
    let mut from = 0;
    while let Some(pos) = code[from..].find("use ") {
        let at = from + pos;
        from = at + 4;
        if code[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let Some(end) = code[at..].find(';') else {
            break;
        };
        let blank: String = code[at..at + end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(at..at + end, &blank);
        from = at + end;
    }
    out
}

/// The `use` statements of `code`: `(alias, path as written)`.
fn uses(code: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(pos) = rest.find("use ") {
        let before = rest[..pos].chars().next_back();
        let stmt_start = pos + 4;
        if before.is_some_and(is_ident) {
            rest = &rest[stmt_start..];
            continue;
        }
        let Some(end) = rest[stmt_start..].find(';') else {
            break;
        };
        let tree: String = rest[stmt_start..stmt_start + end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        expand_use("", &tree, &mut out);
        rest = &rest[stmt_start + end..];
    }
    out
}

/// The file's code split into scopes: `(module path, code)` for the file's own module and for
/// each inline `mod name { ... }` in it (so `super::` inside `mod tests` means the file's module).
fn scopes(here: &str, code: &str) -> Vec<(String, String)> {
    let mut outer = code.to_string();
    let mut inner = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while let Some(pos) = code[i..].find("mod ") {
        let at = i + pos;
        i = at + 4;
        if code[..at].chars().next_back().is_some_and(is_ident) {
            continue;
        }
        let rest = &code[at + 4..];
        let name: String = rest
            .trim_start()
            .chars()
            .take_while(|c| is_ident(*c))
            .collect();
        let after = rest.trim_start()[name.len()..].trim_start();
        if name.is_empty() || !after.starts_with('{') {
            continue;
        }
        let open = code.len() - after.len();
        let mut depth = 0;
        let mut close = code.len();
        for (j, &b) in bytes.iter().enumerate().skip(open) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let body = &code[open + 1..close];
        // Unit tests (`mod tests`) are not part of the layering: a test may reach anything.
        if name != "tests" {
            inner.extend(scopes(&format!("{here}::{name}"), body));
        }
        let blank: String = body
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        outer.replace_range(open + 1..close, &blank);
        i = close;
    }
    let mut out = vec![(here.to_string(), outer)];
    out.extend(inner);
    out
}

/// The import graph: module → modules it names.
fn graph(modules: &BTreeMap<String, Module>) -> BTreeMap<String, BTreeSet<String>> {
    let mut g = BTreeMap::new();
    for (me, m) in modules {
        let root = if me == "main" { "crate" } else { me.as_str() };
        let mut deps = BTreeSet::new();
        let mut add = |abs: &str| {
            if let Some(target) = resolve(modules, abs)
                && target != me
                && target != "crate"
            {
                deps.insert(target.to_string());
            }
        };
        for (here, code) in scopes(root, &m.code) {
            // A path may also start with a child module's name (`api::router` in a mod.rs).
            let child = |first: &str, p: &str| {
                let candidate = format!("{here}::{first}");
                modules
                    .contains_key(&candidate)
                    .then(|| format!("{here}::{p}"))
            };
            let mut aliases: BTreeMap<String, String> = BTreeMap::new();
            for (alias, path) in uses(&code) {
                let first = path.split("::").next().unwrap_or("");
                if let Some(abs) = absolute(&here, &path).or_else(|| child(first, &path)) {
                    // `use crate::pools;` only names a module: the paths through the name
                    // (`pools::service::assign`) say what is used. Importing an item, or a glob,
                    // depends on the module that holds it.
                    if alias == "*" || !modules.contains_key(&abs) {
                        add(&abs);
                    }
                    if alias != "*" {
                        aliases.insert(alias, abs);
                    }
                }
            }
            for p in paths(&without_uses(&code)) {
                let first = p.split("::").next().unwrap_or("");
                let abs = match first {
                    "crate" | "super" | "self" => absolute(&here, &p),
                    "tenantry" => Some(p.replacen("tenantry", "crate", 1)),
                    _ => aliases
                        .get(first)
                        .map(|a| format!("{a}{}", &p[first.len()..]))
                        .or_else(|| child(first, &p)),
                };
                if let Some(abs) = abs {
                    add(&abs);
                }
            }
        }
        g.insert(me.clone(), deps);
    }
    g
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        n: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.n);
        t.low.insert(v, t.n);
        t.n += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        n: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// The shortest cycle inside `scc` that crosses a module boundary: for each crossing import
/// `a → b`, the shortest way from `b` back to `a`.
fn shortest_cycle(g: &BTreeMap<String, BTreeSet<String>>, scc: &[String]) -> Vec<String> {
    let mut best: Vec<String> = Vec::new();
    for a in scc {
        for b in g[a].iter().filter(|b| scc.contains(b) && top(a) != top(b)) {
            let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([b.as_str()]);
            while let Some(v) = queue.pop_front() {
                if v == a {
                    break;
                }
                for w in g[v].iter().filter(|w| scc.contains(w)) {
                    if w != b && !prev.contains_key(w.as_str()) {
                        prev.insert(w.as_str(), v);
                        queue.push_back(w.as_str());
                    }
                }
            }
            if !prev.contains_key(a.as_str()) {
                continue;
            }
            let mut path = vec![a.clone()];
            let mut v = a.as_str();
            while v != b {
                v = prev[v];
                path.push(v.to_string());
            }
            path.push(a.clone());
            path.reverse();
            if best.is_empty() || path.len() < best.len() {
                best = path;
            }
        }
    }
    best
}

/// `crate::tenants::api` → `tenants`.
fn top(m: &str) -> &str {
    m.split("::").nth(1).unwrap_or(m)
}

#[test]
fn no_import_cycle_crosses_a_context_boundary() {
    let modules = load();
    let g = graph(&modules);
    let bad: Vec<String> = cycles(&g)
        .into_iter()
        .filter(|scc| {
            let t = top(&scc[0]);
            scc.iter().any(|m| top(m) != t)
        })
        .map(|scc| {
            // The imports inside the set that cross a module boundary: cut one to break it.
            let crossing: Vec<String> = scc
                .iter()
                .flat_map(|a| {
                    g[a].iter()
                        .filter(|b| scc.contains(b) && top(a) != top(b))
                        .map(move |b| format!("  {a} uses {b}"))
                })
                .collect();
            format!(
                "{}\n  shortest cycle: {}\n{}",
                scc.join(", "),
                shortest_cycle(&g, &scc).join(" → "),
                crossing.join("\n")
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "import cycles across modules (each block is one strongly connected set, then its imports that cross a module boundary):\n{}",
        bad.join("\n")
    );
}

#[test]
fn only_the_entry_points_import_the_composition_root() {
    let modules = load();
    let g = graph(&modules);
    let bad: Vec<&String> = g
        .iter()
        .filter(|(m, deps)| {
            deps.contains("crate::app")
                && !(m.as_str() == "main" || top(m) == "cli" || m.as_str() == "crate::app")
        })
        .map(|(m, _)| m)
        .collect();
    assert!(
        bad.is_empty(),
        "only main.rs and cli/ may import crate::app (the composition root): {bad:?}"
    );
}

/// Files (relative to `src/`) whose code names `needle` outside the places `allowed` says.
fn named_outside(needle: &str, allowed: impl Fn(&str) -> bool) -> Vec<String> {
    load()
        .values()
        .filter_map(|m| {
            let rel = m
                .file
                .strip_prefix(src_dir())
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let named = m
                .code
                .match_indices(needle)
                .any(|(i, _)| !m.code[..i].chars().next_back().is_some_and(is_ident));
            (named && !allowed(&rel)).then_some(rel)
        })
        .collect()
}

#[test]
fn redb_is_named_only_in_the_store() {
    let bad = named_outside("redb::", |f| f.starts_with("store/"));
    assert!(bad.is_empty(), "redb named outside store/: {bad:?}");
}

#[test]
fn axum_is_named_only_at_the_edge() {
    let edge = |f: &str| {
        f.starts_with("http/")
            || f.starts_with("console/")
            || f.ends_with("/api.rs")
            || f.ends_with("/views.rs")
            || f == "app.rs"
    };
    let bad = named_outside("axum::", edge);
    assert!(
        bad.is_empty(),
        "axum named outside http/, console/, api.rs, views.rs and app.rs: {bad:?}"
    );
}

#[test]
fn the_checker_reads_paths_and_cycles() {
    let code = strip(
        "use crate::a::{b, c::d as e, self};\n// use crate::x;\nlet s = \"crate::y\"; let c = '\"'; fn f<'a>() { e::g(); crate::z::w(); }",
    );
    let u = uses(&code);
    assert_eq!(
        u,
        vec![
            ("b".to_string(), "crate::a::b".to_string()),
            ("e".to_string(), "crate::a::c::d".to_string()),
            ("a".to_string(), "crate::a".to_string()),
        ]
    );
    assert!(!code.contains("crate::x") && !code.contains("crate::y"));
    assert!(paths(&code).contains(&"crate::z::w".to_string()));
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(str::to_string).collect()))
    .collect();
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
}

#[test]
fn the_shared_state_reaches_no_service_api_or_view() {
    let modules = load();
    let g = graph(&modules);
    let mut seen = BTreeSet::new();
    let mut stack = vec!["crate::state".to_string()];
    while let Some(m) = stack.pop() {
        if seen.insert(m.clone()) {
            stack.extend(g.get(&m).into_iter().flatten().cloned());
        }
    }
    let bad: Vec<&String> = seen
        .iter()
        .filter(|m| {
            let last = m.rsplit("::").next().unwrap_or("");
            matches!(last, "service" | "api" | "views" | "app")
                || m.as_str() == "crate::http"
                || m.as_str() == "crate::console"
        })
        .collect();
    assert!(
        bad.is_empty(),
        "crate::state must stay a leaf of the layering; it reaches {bad:?}"
    );
}
