//! The module rule: within each crate, no module imports a module that imports it (directly or
//! through others).
//!
//! A module's imports are its `use` declarations and the `crate::`, `super::` and `self::` paths
//! in its code, outside comments, string and character literals and its `#[cfg(test)]` modules
//! (a test module, inline or in a file of its own, may use what it tests from anywhere). Each is
//! resolved to the module that defines what it names: down through the modules its segments
//! name, then through the `use` declarations of the module it reached (so `crate::Thing`,
//! re-exported by the crate root from `thing.rs`, is an import of `thing`). A path into the
//! module's own ancestors or descendants is not an import. A crate's `main.rs` beside a `lib.rs`
//! is another crate (it uses the library by name). Not followed: `super::`/`self::` inside an
//! inline `mod x { .. }` of a file (resolved as if written in the file's module) and glob imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path inside its crate (`["cache", "slot"]`; the crate root is empty).
type Module = Vec<String>;

/// A path as written (`["crate", "cache", "Entry"]`).
type Segments = Vec<String>;

/// The import cycles of the crate whose `src` folder is `src`: each as its modules, sorted.
pub(crate) fn cycles(src: &Path) -> Result<Vec<Vec<String>>, String> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    let has_lib = src.join("lib.rs").is_file();
    let mut code: BTreeMap<Module, String> = BTreeMap::new();
    let mut test_files = BTreeSet::new();
    for file in &files {
        if has_lib && file == &src.join("main.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let module = module_of(src, file);
        let (kept, tests) = without_tests(&blank_comments_and_literals(&text));
        for name in tests {
            let mut test = module.clone();
            test.push(name);
            test_files.insert(test);
        }
        code.insert(module, kept);
    }
    // A test module's file, and the modules inside it, are test code.
    code.retain(|module, _| !test_files.iter().any(|t| module.starts_with(t)));

    let crate_ = Crate {
        known: code.keys().cloned().collect(),
        uses: code
            .iter()
            .map(|(module, text)| (module.clone(), use_paths(text)))
            .collect(),
    };
    let graph: BTreeMap<Module, BTreeSet<Module>> = code
        .iter()
        .map(|(module, text)| {
            let paths = crate_.uses[module]
                .iter()
                .map(|(path, _)| path.clone())
                .chain(inline_paths(text));
            let imports = paths
                .filter_map(|path| crate_.resolve(module, &path, 0))
                .filter(|target| !module.starts_with(target) && !target.starts_with(module))
                .collect();
            (module.clone(), imports)
        })
        .collect();
    Ok(strongly_connected(&graph)
        .into_iter()
        .filter(|component| component.len() > 1)
        .map(|component| {
            let mut names: Vec<String> = component.iter().map(|m| m.join("::")).collect();
            names.sort();
            names
        })
        .collect())
}

/// What resolving a path needs: the crate's modules and each one's `use` declarations (each
/// path with the name it binds).
struct Crate {
    known: BTreeSet<Module>,
    uses: BTreeMap<Module, Vec<(Segments, String)>>,
}

impl Crate {
    /// The module that defines what `path`, written in `module`, names; `None` for a path that
    /// leaves the crate.
    fn resolve(&self, module: &Module, path: &[String], depth: usize) -> Option<Module> {
        let mut rest = path;
        let mut at: Module = module.clone();
        match rest.first().map(String::as_str) {
            Some("crate") => {
                at.clear();
                rest = &rest[1..];
            }
            Some("self" | "super") => {
                while let Some(head @ ("self" | "super")) = rest.first().map(String::as_str) {
                    if head == "super" {
                        at.pop();
                    }
                    rest = &rest[1..];
                }
            }
            // A path from a child module (`mod a; use a::Thing;`), written without `self::`.
            Some(first) if self.known.contains(&child(module, first)) => {}
            _ => return None,
        }
        while let Some(segment) = rest.first() {
            let deeper = child(&at, segment);
            if !self.known.contains(&deeper) {
                break;
            }
            at = deeper;
            rest = &rest[1..];
        }
        // A name the module reached brings in with a `use` of its own: where that one leads.
        if let Some(name) = rest.first()
            && depth < 8
            && let Some((target, _)) = self
                .uses
                .get(&at)
                .and_then(|uses| uses.iter().find(|(_, bound)| bound == name))
            && let Some(defined) = self.resolve(&at, target, depth + 1)
        {
            return Some(defined);
        }
        Some(at)
    }
}

fn child(module: &Module, name: &str) -> Module {
    let mut child = module.clone();
    child.push(name.to_owned());
    child
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `src/cache/slot.rs` is `cache::slot`; `src/cache/mod.rs`, `src/lib.rs` and `src/main.rs`
/// name their folder's module.
fn module_of(src: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Module = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// `text` with comments (nested block comments included) and the contents of string and
/// character literals made blanks, line breaks kept: what is left is code.
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, from: &[char]| {
        out.extend(from.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
    };
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        let before = i.checked_sub(1).map(|j| chars[j]);
        let end = if rest.starts_with(&['/', '/']) {
            rest.iter().position(|&c| c == '\n').unwrap_or(rest.len())
        } else if rest.starts_with(&['/', '*']) {
            let mut depth = 0;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with(&['/', '*']) {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(&['*', '/']) {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            j
        } else if let Some(end) = (rest[0] == 'r' && !before.is_some_and(ident))
            .then(|| raw_string(rest))
            .flatten()
        {
            end
        } else if rest[0] == '"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != '"' {
                j += if rest[j] == '\\' { 2 } else { 1 };
            }
            (j + 1).min(rest.len())
        } else if rest[0] == '\'' && rest.get(1) == Some(&'\\') {
            // An escape (`'\n'`, `'\''`, `'\u{..}'`): up to the quote after it.
            let after = rest.get(3..).unwrap_or(&[]);
            after.iter().position(|&c| c == '\'').map_or(1, |j| j + 4)
        } else if rest[0] == '\'' && rest.get(2) == Some(&'\'') {
            3
        } else {
            out.push(rest[0]);
            i += 1;
            continue;
        };
        blank(&mut out, &rest[..end]);
        i += end;
    }
    out
}

/// The length of the raw string literal `text` starts with (`r"..."`, `r#"..."#`), if it does.
fn raw_string(text: &[char]) -> Option<usize> {
    let hashes = text[1..].iter().take_while(|&&c| c == '#').count();
    if text.get(1 + hashes) != Some(&'"') {
        return None;
    }
    let body = 2 + hashes;
    (body..text.len())
        .find(|&j| {
            text[j] == '"'
                && text[j + 1..]
                    .iter()
                    .take(hashes)
                    .filter(|&&c| c == '#')
                    .count()
                    == hashes
        })
        .map(|j| j + 1 + hashes)
}

/// `code` with its `#[cfg(test)]` modules blanked (`#[cfg(all(test, ..))]` and `any` too,
/// other attributes and a visibility between), and the names of those that are files.
fn without_tests(code: &str) -> (String, Vec<String>) {
    let mut kept = code.to_owned();
    let mut files = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("#[cfg(") {
        let start = from + found;
        from = start + 1;
        let condition = &code[start + "#[cfg(".len()..];
        if !["test)", "all(test", "any(test"]
            .iter()
            .any(|c| condition.starts_with(c))
        {
            continue;
        }
        let mut at = start;
        // This attribute and any after it.
        while code[at..].starts_with("#[") {
            let Some(close) = matching(code, at + 1, '[', ']') else {
                break;
            };
            at = skip_blanks(code, close + 1);
        }
        for visibility in ["pub(crate)", "pub(super)", "pub"] {
            if code[at..].starts_with(visibility) {
                at = skip_blanks(code, at + visibility.len());
            }
        }
        let Some(after_mod) = code[at..].strip_prefix("mod ") else {
            continue;
        };
        let name: String = after_mod
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after_name = skip_blanks(code, code.len() - after_mod.trim_start().len() + name.len());
        let end = match code[after_name..].chars().next() {
            Some(';') => {
                files.push(name);
                after_name + 1
            }
            Some('{') => match matching(code, after_name, '{', '}') {
                Some(close) => close + 1,
                None => continue,
            },
            _ => continue,
        };
        let blanked: String = code[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        kept.replace_range(start..end, &blanked);
        from = end;
    }
    (kept, files)
}

/// The byte index of the `close` that matches the `open` at `at`.
fn matching(code: &str, at: usize, open: char, close: char) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in code[at..].char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some(at + i);
            }
        }
    }
    None
}

fn skip_blanks(code: &str, at: usize) -> usize {
    at + (code[at..].len() - code[at..].trim_start().len())
}

fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == ':' || c == '#'
}

/// A path's segments, raw identifiers unwrapped (`r#type` is `type`).
fn segments(path: &str) -> Segments {
    path.split("::")
        .filter(|s| !s.is_empty())
        .map(|s| s.strip_prefix("r#").unwrap_or(s).to_owned())
        .collect()
}

/// Every path of every `use` declaration in `code`, groups expanded, each with the name it
/// binds (its last segment, or its `as` name).
fn use_paths(code: &str) -> Vec<(Segments, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find("use") {
        let start = from + found;
        from = start + 3;
        let before = code[..start].chars().next_back();
        let after = code[start + 3..].chars().next();
        if before.is_some_and(is_path_char) || !after.is_some_and(char::is_whitespace) {
            continue;
        }
        let Some(end) = code[start..].find(';') else {
            break;
        };
        use_tree(&code[start + 3..start + end], &[], &mut out);
        from = start + end;
    }
    out
}

/// The paths of a use tree (`a::{b, c::{d as e}}`) under `prefix`.
fn use_tree(tree: &str, prefix: &[String], out: &mut Vec<(Segments, String)>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let mut head = prefix.to_vec();
        head.extend(segments(&tree[..open]));
        let Some(close) = matching(tree, open, '{', '}') else {
            return;
        };
        let inner = &tree[open + 1..close];
        let mut depth = 0;
        let mut item = 0;
        for (i, c) in inner
            .char_indices()
            .chain(std::iter::once((inner.len(), ',')))
        {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    use_tree(&inner[item..i], &head, out);
                    item = i + 1;
                }
                _ => {}
            }
        }
        return;
    }
    let mut words = tree.split_whitespace();
    let Some(path) = words.next() else {
        return;
    };
    let mut full = prefix.to_vec();
    full.extend(segments(path));
    let bound = match (words.next(), words.next()) {
        (Some("as"), Some(name)) => name.to_owned(),
        _ => full.last().cloned().unwrap_or_default(),
    };
    if bound != "self" && bound != "*" && !full.is_empty() {
        out.push((full, bound));
    } else if bound == "self" {
        // `use a::{self}` binds `a`.
        full.pop();
        if let Some(last) = full.last().cloned() {
            out.push((full, last));
        }
    }
}

/// The `crate::`, `super::` and `self::` paths written in `code` outside `use` declarations
/// (those are read by [`use_paths`]; reading them again changes nothing).
fn inline_paths(code: &str) -> Vec<Segments> {
    let mut out = Vec::new();
    for (at, _) in code.char_indices() {
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .any(|head| code[at..].starts_with(head));
        let joined = code[..at].chars().next_back().is_some_and(is_path_char);
        if starts && !joined {
            let path = code[at..].split(|c| !is_path_char(c)).next().unwrap_or("");
            out.push(segments(path));
        }
    }
    out
}

/// Tarjan's strongly connected components of `graph`.
fn strongly_connected(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        components: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let Some((w, _)) = s.graph.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            s.components.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.components
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-modules-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn cycles_of(name: &str, files: &[(&str, &str)]) -> Vec<Vec<String>> {
        let src = tree(name, files);
        let found = cycles(&src).unwrap();
        std::fs::remove_dir_all(src).unwrap();
        found
    }

    #[test]
    fn a_module_importing_one_that_imports_it_is_a_cycle() {
        let found = cycles_of(
            "cycle",
            &[
                ("lib.rs", "mod a;\nmod b;\nmod c;\n"),
                ("a.rs", "use crate::b::Thing;\n"),
                ("b.rs", "pub struct Thing;\nfn f() { super::c::g(); }\n"),
                ("c/mod.rs", "use crate::{a, b::Thing as _};\nmod d;\n"),
                (
                    "c/d.rs",
                    "use super::super::a::X; // crate::b in a comment\n",
                ),
            ],
        );
        assert_eq!(found, vec![vec!["a", "b", "c"]]);
    }

    #[test]
    fn a_cycle_through_the_roots_re_exports_and_nested_groups_is_found() {
        let found = cycles_of(
            "reexport",
            &[
                (
                    "lib.rs",
                    "mod builder;\nmod provider;\nmod other;\n\
                     pub use crate::builder::Builder;\npub use provider::{Provider as P};\n",
                ),
                ("provider.rs", "use crate::Builder;\npub struct Provider;\n"),
                (
                    "builder.rs",
                    "use crate::{other::{Thing, r#Other}, P};\npub struct Builder;\n",
                ),
                ("other.rs", "pub struct Thing;\n"),
            ],
        );
        assert_eq!(found, vec![vec!["builder", "provider"]]);
    }

    #[test]
    fn layers_tests_comments_literals_and_ancestors_are_not_cycles() {
        let found = cycles_of(
            "layers",
            &[
                ("lib.rs", "mod a;\nmod b;\npub use crate::a::X;\n"),
                (
                    "a.rs",
                    "pub struct X;\nuse crate::b::Y; // crate::a\n\
                     #[cfg(test)]\nmod tests;\nfn after() { crate::b::f(); }\n",
                ),
                ("a/tests.rs", "use crate::b::Y;\nuse crate::a::X;\n"),
                (
                    "b/mod.rs",
                    "pub struct Y;\nmod inner;\n/// [`crate::a::X`]\n\
                     #[cfg(all(test, feature = \"x\"))]\n#[allow(unused)]\nmod tests {\n    \
                     use crate::a::X;\n    fn t() { let _ = '{'; }\n}\n\
                     /* crate::a::X /* nested */ crate::a::X */\n\
                     const S: &str = \"crate::a::X\";\nconst R: &str = r#\"crate::a\"#;\n\
                     fn g<'a>(_: &'a str) -> char { '\"' }\nconst Q: char = '\\'';\n\
                     pub fn f() {}\n",
                ),
                ("b/inner.rs", "use super::Y;\nuse crate::b::Y as Z;\n"),
            ],
        );
        assert!(found.is_empty(), "{found:?}");
    }
}
