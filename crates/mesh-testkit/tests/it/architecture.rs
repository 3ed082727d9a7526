//! The "never" rules of docs/architecture.md, read off the crates' manifests and sources.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace's crates: name → folder.
fn crates() -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(crates_dir()).expect("crates/") {
        let dir = entry.expect("a crate folder").path();
        if dir.join("Cargo.toml").is_file() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            out.insert(name, dir);
        }
    }
    out
}

/// The names a manifest's `[dependencies]` table lists (not dev- or build-dependencies).
fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).expect("Cargo.toml");
    let mut out = BTreeSet::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if !inside || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line
            .split(['=', '.'])
            .next()
            .unwrap_or_default()
            .trim()
            .trim_matches('"');
        if !key.is_empty() {
            out.insert(key.to_owned());
        }
    }
    out
}

/// Which workspace crates each crate may depend on: the arrows point one way, from the pure
/// model up to the binary.
fn allowed(name: &str) -> &'static [&'static str] {
    match name {
        "mesh-model-derive" | "mesh-testkit" => &[],
        "mesh-model" => &["mesh-model-derive"],
        "mesh-policy" | "mesh-engine" | "mesh-interop" => &["mesh-model"],
        "mesh-catalog" => &["mesh-model", "mesh-policy"],
        "mesh-service" => &["mesh-model", "mesh-policy", "mesh-catalog", "mesh-engine"],
        "mesh-server" => &[
            "mesh-model",
            "mesh-policy",
            "mesh-catalog",
            "mesh-engine",
            "mesh-service",
        ],
        "mesh-cli" => &[
            "mesh-model",
            "mesh-policy",
            "mesh-catalog",
            "mesh-engine",
            "mesh-interop",
            "mesh-service",
            "mesh-server",
        ],
        other => panic!(
            "{other} is a new crate: say in allowed() (and docs/architecture.md) what it may depend on"
        ),
    }
}

/// The libraries: no HTTP, no CLI (they are called by the server and the binary, never the
/// other way round).
const LIBRARIES: [&str; 6] = [
    "mesh-model",
    "mesh-policy",
    "mesh-engine",
    "mesh-interop",
    "mesh-catalog",
    "mesh-service",
];

/// What a library may not depend on: HTTP servers and clients, gRPC, the CLI's parser.
const HTTP_AND_CLI: [&str; 10] = [
    "axum",
    "tower",
    "tower-http",
    "hyper",
    "reqwest",
    "tonic",
    "arrow-flight",
    "utoipa-axum",
    "clap",
    "minijinja",
];

/// The pure crates: no async runtime, no I/O, no database or query engine, so they build and
/// test in seconds.
const PURE: [&str; 2] = ["mesh-model", "mesh-policy"];

const HEAVY: [&str; 9] = [
    "tokio",
    "sqlx",
    "datafusion",
    "deltalake",
    "object_store",
    "arrow",
    "ballista",
    "reqwest",
    "axum",
];

/// What pure code may not call.
const IO: [&str; 6] = [
    "std::fs",
    "std::net",
    "std::process",
    "std::env",
    "tokio::",
    "std::io::stdin",
];

#[test]
fn crates_depend_on_each_other_one_way() {
    let all = crates();
    let mut wrong = Vec::new();
    for (name, dir) in &all {
        let allowed = allowed(name);
        for dep in dependencies(&dir.join("Cargo.toml")) {
            if all.contains_key(&dep) && !allowed.contains(&dep.as_str()) {
                wrong.push(format!("{name} depends on {dep}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the grain: {wrong:?}"
    );
}

#[test]
fn no_http_or_cli_in_the_libraries() {
    let all = crates();
    let mut wrong = Vec::new();
    for name in LIBRARIES {
        let deps = dependencies(&all[name].join("Cargo.toml"));
        for dep in HTTP_AND_CLI {
            if deps.contains(dep) {
                wrong.push(format!("{name} depends on {dep}"));
            }
        }
        for (file, text) in sources(&all[name]) {
            for dep in HTTP_AND_CLI {
                let path = format!("{}::", dep.replace('-', "_"));
                if text.contains(&path) {
                    wrong.push(format!("{} uses {path}", file.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "HTTP or CLI in a library: {wrong:?}");
}

#[test]
fn the_pure_crates_do_no_io_and_stay_light() {
    let all = crates();
    let mut wrong = Vec::new();
    for name in PURE {
        let deps = dependencies(&all[name].join("Cargo.toml"));
        for dep in HEAVY {
            if deps.contains(dep) {
                wrong.push(format!("{name} depends on {dep}"));
            }
        }
        for (file, text) in sources(&all[name]) {
            for io in IO {
                if text.contains(io) {
                    wrong.push(format!("{} uses {io}", file.display()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "I/O or a heavy dependency in a pure crate: {wrong:?}"
    );
}

#[test]
fn no_file_of_a_crate_imports_in_a_cycle() {
    let mut cycles = Vec::new();
    for (name, dir) in crates() {
        for cycle in file_cycles(&dir.join("src")) {
            cycles.push(format!("{name}: {}", cycle.join(" <-> ")));
        }
    }
    assert!(
        cycles.is_empty(),
        "files that import each other (move what both need into a third): {cycles:#?}"
    );
}

/// The cycle finder finds a cycle it is shown, and none where there is none.
#[test]
fn the_cycle_finder_sees_cycles() {
    let dir = std::env::temp_dir().join(format!("mesh-arch-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("store")).unwrap();
    let write = |path: &str, text: &str| std::fs::write(src.join(path), text).unwrap();
    write(
        "lib.rs",
        "mod a;\nmod b;\nmod c;\nmod store;\npub use a::A;\n",
    );
    write("a.rs", "use crate::b::B;\npub struct A;\n");
    write(
        "b.rs",
        "pub struct B;\nfn f() -> crate::A { todo!() }\n// use crate::c::C;\n",
    );
    write(
        "c.rs",
        "use crate::{a::A, store::{Tx}};\n#[cfg(test)]\nmod tests { use crate::c; }\n",
    );
    write(
        "store/mod.rs",
        "mod sql;\npub use sql::open;\npub trait Tx {}\n",
    );
    write("store/sql.rs", "use super::Tx;\npub fn open() {}\n");
    let found = file_cycles(&src);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found, vec![vec!["a.rs".to_owned(), "b.rs".to_owned()]]);
}

/// Every `.rs` file of a crate's `src`, with comments, strings and `#[cfg(test)]` tails removed.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("src")];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                out.push((p, code(&text)));
            }
        }
    }
    out.sort();
    out
}

/// `text` without comments, string and char literals' contents, and whatever follows the first
/// `#[cfg(test)]` (a crate's tests may use anything).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                out.push('"');
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    }
                }
                out.push('"');
            }
            _ => out.push(c),
        }
    }
    out
}

/// A module path: `[]` for the crate root, `["store"]`, `["store", "sql"]`.
type Module = Vec<String>;

/// The files of a `src` folder by the module each is.
fn modules(src: &Path) -> BTreeMap<Module, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match parts.last().map(String::as_str) {
                Some("lib" | "main") if parts.len() == 1 => parts.clear(),
                Some("mod") => {
                    parts.pop();
                }
                _ => {}
            }
            out.insert(parts, p);
        }
    }
    out
}

/// The paths a `use` tree names: `a::{b, c::{d, self}}` → `a::b`, `a::c::d`, `a::c`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        return vec![path.to_owned()];
    };
    let prefix = &tree[..open];
    let inner = tree[open + 1..].trim_end().trim_end_matches('}');
    let mut parts = Vec::new();
    let (mut depth, mut current) = (0, String::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    let mut out = Vec::new();
    for part in parts.iter().filter(|p| !p.trim().is_empty()) {
        for path in expand(part) {
            if path == "self" {
                out.push(prefix.trim_end_matches("::").to_owned());
            } else {
                out.push(format!("{prefix}{path}"));
            }
        }
    }
    out
}

/// `use` statements of a file: (is it a `pub use` re-export, the paths it names).
fn uses(text: &str) -> Vec<(bool, Vec<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("use ") {
        let before = &rest[..i];
        let at_word = before
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let lead = before[line_start..].trim();
        let Some(end) = rest[i..].find(';') else {
            break;
        };
        if at_word && (lead.is_empty() || lead.starts_with("pub")) {
            let tree = &rest[i + 4..i + end];
            out.push((lead.starts_with("pub"), expand(tree)));
        }
        rest = &rest[i + end + 1..];
    }
    out
}

/// An absolute module path for a path written in module `at` (`crate::`, `self::`, `super::`).
fn absolute(at: &Module, segments: &[&str]) -> Option<Vec<String>> {
    let (first, rest) = segments.split_first()?;
    let mut base: Vec<String> = match *first {
        "crate" => Vec::new(),
        "self" => at.clone(),
        "super" => {
            let mut base = at.clone();
            base.pop();
            let mut rest = rest;
            while rest.first() == Some(&"super") {
                base.pop();
                rest = &rest[1..];
            }
            base.extend(rest.iter().map(|s| (*s).to_owned()));
            return Some(base);
        }
        _ => return None,
    };
    base.extend(rest.iter().map(|s| (*s).to_owned()));
    Some(base)
}

/// The file an absolute path lands in: its longest prefix that is a file, following that file's
/// re-exports (`pub use x::Y` in `lib.rs` makes `crate::Y` land in `x.rs`).
fn resolve(
    path: &[String],
    files: &BTreeMap<Module, PathBuf>,
    reexports: &HashMap<Module, HashMap<String, Vec<String>>>,
    depth: usize,
) -> Option<Module> {
    for k in (0..=path.len()).rev() {
        let module = path[..k].to_vec();
        if !files.contains_key(&module) {
            continue;
        }
        let rest = &path[k..];
        if depth < 8
            && let Some(first) = rest.first()
            && let Some(target) = reexports.get(&module).and_then(|r| r.get(first))
        {
            let target: Vec<&str> = target.iter().map(String::as_str).collect();
            if let Some(mut abs) = absolute(&module, &target).or_else(|| {
                // `pub use sub::X;` names a child module relative to the re-exporting one.
                let mut m = module.clone();
                m.extend(target.iter().map(|s| (*s).to_owned()));
                Some(m)
            }) {
                abs.extend(rest[1..].iter().cloned());
                return resolve(&abs, files, reexports, depth + 1);
            }
        }
        return Some(module);
    }
    None
}

/// The sets of files (by path relative to `src`) that import each other, largest first.
fn file_cycles(src: &Path) -> Vec<Vec<String>> {
    let files = modules(src);
    let texts: BTreeMap<Module, String> = files
        .iter()
        .map(|(m, p)| {
            (
                m.clone(),
                code(&std::fs::read_to_string(p).unwrap_or_default()),
            )
        })
        .collect();
    // Re-exports: module → name → the path it re-exports.
    let mut reexports: HashMap<Module, HashMap<String, Vec<String>>> = HashMap::new();
    for (m, text) in &texts {
        for (public, paths) in uses(text) {
            if !public {
                continue;
            }
            for path in paths {
                let segments: Vec<String> = path.split("::").map(|s| s.trim().to_owned()).collect();
                if let Some(name) = segments.last() {
                    reexports
                        .entry(m.clone())
                        .or_default()
                        .insert(name.clone(), segments.clone());
                }
            }
        }
    }
    // Edges: a file's `use`s (not its re-exports) and the `crate::`/`super::` paths in its code.
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, text) in &texts {
        let mut paths: Vec<String> = uses(text)
            .into_iter()
            .filter(|(public, _)| !public)
            .flat_map(|(_, p)| p)
            .collect();
        for word in text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
            if word.starts_with("crate::")
                || word.starts_with("super::")
                || word.starts_with("self::")
            {
                paths.push(word.trim_end_matches(':').to_owned());
            }
        }
        let targets = edges.entry(m.clone()).or_default();
        for path in paths {
            let segments: Vec<&str> = path.split("::").map(str::trim).collect();
            let Some(abs) = absolute(m, &segments) else {
                continue;
            };
            if let Some(target) = resolve(&abs, &files, &reexports, 0)
                && target != *m
            {
                targets.insert(target);
            }
        }
    }
    let mut cycles: Vec<Vec<String>> = strongly_connected(&edges)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| {
            let mut names: Vec<String> = c
                .iter()
                .map(|m| files[m].strip_prefix(src).unwrap().display().to_string())
                .collect();
            names.sort();
            names
        })
        .collect();
    cycles.sort();
    cycles
}

/// Tarjan's strongly connected components.
fn strongly_connected(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: HashMap<&'a Module, usize>,
        low: HashMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on: BTreeSet<&'a Module>,
        next: usize,
        out: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let Some((w, _)) = s.edges.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        edges,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}
