//! The crate's layers import only downwards: `abi` ← `ring` ← `protocol` ← `pump` ← `backend` (the proactor
//! stands alone: it imports none of them and none of them imports it), and no two files import each other in
//! a loop (outside the proactor, whose files are restructured on their own). A `pub mod`/`pub use` re-export
//! is structure, not an import; every other `crate::`, `$crate::`, `super::` or `self::` path in code is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layer rank of a top-level module; `None` for modules outside the stack.
fn rank(top: &str) -> Option<u32> {
    ["abi", "ring", "protocol", "pump", "backend"]
        .iter()
        .position(|m| *m == top)
        .map(|p| p as u32)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file: `ring/mod.rs` → `[ring]`, `ring/layout.rs` → `[ring, layout]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

/// Code lines of a file: comments and `#[cfg(test)]` modules at the end are left out, as are re-exports and
/// module declarations.
fn code_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") || t.starts_with("#![cfg(test)]") {
            break;
        }
        if t.starts_with("//")
            || t.starts_with("pub use")
            || t.starts_with("pub(crate) use")
            || t.starts_with("pub(super) use")
        {
            continue;
        }
        if t.starts_with("mod ") || t.starts_with("pub mod ") || t.starts_with("pub(crate) mod ") {
            continue;
        }
        let code = match t.find("//") {
            Some(i) => &t[..i],
            None => t,
        };
        out.push(code.to_owned());
    }
    out
}

/// Paths the code names, as module paths relative to the crate root: `crate::ring::layout::X` →
/// `[ring, layout, X]`; `super::x` and `self::x` resolved against `module`; `use super::{a, b}` gives both.
fn referenced_paths(lines: &[String], module: &[String], children: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let joined = lines.join("\n");
    let bytes = joined.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        let (prefix, base): (&str, Vec<String>) = if rest.starts_with(b"$crate::") {
            ("$crate::", Vec::new())
        } else if rest.starts_with(b"crate::") && (i == 0 || !ident(bytes[i - 1])) {
            ("crate::", Vec::new())
        } else if rest.starts_with(b"super::") && (i == 0 || !ident(bytes[i - 1])) {
            // `super` of `ring::layout` (ring/layout.rs) is `ring`; of `ring` (ring/mod.rs), the crate root.
            let mut b = module.to_vec();
            b.pop();
            ("super::", b)
        } else if rest.starts_with(b"self::") && (i == 0 || !ident(bytes[i - 1])) {
            ("self::", module.to_vec())
        } else if let Some(child) = children.iter().find(|c| {
            rest.starts_with(c.as_bytes())
                && rest[c.len()..].starts_with(b"::")
                && (i == 0 || !(ident(bytes[i - 1]) || bytes[i - 1] == b':'))
        }) {
            // A path relative to this module through one of its child modules: `layout::X` in ring/mod.rs.
            let mut b = module.to_vec();
            b.push(child.clone());
            (&joined[i..i + child.len() + 2], b)
        } else {
            i += 1;
            continue;
        };
        let mut j = i + prefix.len();
        let mut path = base;
        // Follow `a::b::c` and one level of `{a, b::c}`.
        let mut seg = String::new();
        while j < bytes.len() {
            let c = bytes[j];
            if ident(c) {
                seg.push(c as char);
                j += 1;
            } else if bytes[j..].starts_with(b"::") {
                if !seg.is_empty() {
                    path.push(std::mem::take(&mut seg));
                }
                j += 2;
            } else if c == b'{' {
                let end = bytes[j..]
                    .iter()
                    .position(|&b| b == b'}')
                    .map_or(bytes.len(), |e| j + e);
                for item in joined[j + 1..end].split(',') {
                    let item = item.trim();
                    if item.is_empty() {
                        continue;
                    }
                    let mut p = path.clone();
                    p.extend(
                        item.split("::")
                            .map(|s| s.split_whitespace().next().unwrap_or("").to_owned()),
                    );
                    out.push(p);
                }
                j = end;
                seg.clear();
                path.clear();
                break;
            } else {
                break;
            }
        }
        if !seg.is_empty() {
            path.push(seg);
        }
        if !path.is_empty() {
            out.push(path);
        }
        i = j.max(i + 1);
    }
    out
}

struct Crate {
    /// module path → file
    files: BTreeMap<Vec<String>, PathBuf>,
    /// module path → referenced paths
    refs: BTreeMap<Vec<String>, Vec<Vec<String>>>,
    /// (module path, name) → the path a `pub use` in that module re-exports under that name
    reexports: BTreeMap<(Vec<String>, String), Vec<String>>,
}

/// The `pub use` lines of a file, as (name, full path) pairs; `pub use a::b::{X, Y as Z}` gives X and Z.
fn reexports_of(text: &str, module: &[String], children: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut stmt = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if stmt.is_empty()
            && !(t.starts_with("pub use ")
                || t.starts_with("pub(crate) use ")
                || t.starts_with("pub(super) use "))
        {
            continue;
        }
        stmt.push_str(t);
        stmt.push(' ');
        if !t.contains(';') {
            continue;
        }
        let body = stmt
            .trim()
            .trim_start_matches("pub(crate) use ")
            .trim_start_matches("pub(super) use ")
            .trim_start_matches("pub use ")
            .trim_end_matches(';')
            .to_owned();
        stmt.clear();
        let resolved = referenced_paths(std::slice::from_ref(&body), module, children);
        for p in resolved {
            if let Some(last) = p.last() {
                let (name, path) = match last.split_once(" as ") {
                    Some((a, b)) => (b.trim().to_owned(), {
                        let mut q = p.clone();
                        q.pop();
                        q.push(a.trim().to_owned());
                        q
                    }),
                    None => (last.clone(), p.clone()),
                };
                if name != "*" && name != "self" {
                    out.push((name, path));
                }
            }
        }
    }
    out
}

fn scan() -> Crate {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let mut files = BTreeMap::new();
    for f in paths {
        let m = module_of(&src, &f);
        if m.first().is_some_and(|t| t == "bin") {
            continue;
        }
        files.insert(m, f);
    }
    let mut refs = BTreeMap::new();
    let mut reexports = BTreeMap::new();
    for (m, f) in &files {
        let children: Vec<String> = files
            .keys()
            .filter(|k| k.len() == m.len() + 1 && k.starts_with(m))
            .filter_map(|k| k.last().cloned())
            .collect();
        let text = std::fs::read_to_string(f).unwrap();
        refs.insert(
            m.clone(),
            referenced_paths(&code_lines(&text), m, &children),
        );
        for (name, path) in reexports_of(&text, m, &children) {
            reexports.insert((m.clone(), name), path);
        }
    }
    Crate {
        files,
        refs,
        reexports,
    }
}

/// The file module a path lands in: the longest prefix that is a file, following `pub use` re-exports (naming
/// a re-exported item is importing the file that defines it, not the one that re-exports it).
fn target(c: &Crate, path: &[String]) -> Option<Vec<String>> {
    let mut path = path.to_vec();
    for _ in 0..8 {
        let file = (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| c.files.contains_key(p))?;
        let Some(next) = path.get(file.len()) else {
            return Some(file);
        };
        match c.reexports.get(&(file.clone(), next.clone())) {
            Some(real) if real.as_slice() != &path[..file.len() + 1] => {
                let mut p = real.clone();
                p.extend_from_slice(&path[file.len() + 1..]);
                path = p;
            }
            _ => return Some(file),
        }
    }
    None
}

#[test]
fn layers_import_only_downwards() {
    let c = scan();
    let mut bad = BTreeSet::new();
    for (m, refs) in &c.refs {
        let Some(from) = m.first() else { continue };
        for p in refs {
            let Some(to) = p.first() else { continue };
            if to == from {
                continue;
            }
            let ok = match (rank(from), rank(to)) {
                (Some(a), Some(b)) => b <= a,
                // The proactor stands alone; crate-root macros are fine.
                (None, None) => false,
                _ => {
                    from != "proactor"
                        && to != "proactor"
                        && !c.files.contains_key(&vec![to.clone()])
                }
            };
            if !ok {
                bad.insert(format!(
                    "{} → crate::{}",
                    c.files[m].display(),
                    p.join("::")
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports against the layer order abi ← ring ← protocol ← pump ← backend (proactor alone):\n{}",
        bad.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn no_files_import_each_other_in_a_loop() {
    let c = scan();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (m, refs) in &c.refs {
        if m.first().is_some_and(|t| t == "proactor") || m.is_empty() {
            continue;
        }
        for p in refs {
            if let Some(t) = target(&c, p) {
                if &t != m && !t.is_empty() {
                    edges.entry(m.clone()).or_default().insert(t);
                }
            }
        }
    }
    // Depth-first search for a cycle.
    fn visit(
        n: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
        cycles: &mut Vec<String>,
    ) {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for t in edges.get(n).into_iter().flatten() {
            match state.get(t).copied().unwrap_or(0) {
                0 => visit(t, edges, state, stack, cycles),
                1 => {
                    let from = stack.iter().position(|s| s == t).unwrap_or(0);
                    let cyc: Vec<String> = stack[from..]
                        .iter()
                        .chain(std::iter::once(t))
                        .map(|s| s.join("::"))
                        .collect();
                    cycles.push(cyc.join(" → "));
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
    }
    let mut state = BTreeMap::new();
    let mut cycles = Vec::new();
    for n in edges.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            visit(n, &edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(
        cycles.is_empty(),
        "files importing each other in a loop:\n{}",
        cycles.join("\n")
    );
}
