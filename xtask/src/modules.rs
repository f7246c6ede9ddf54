//! The module rule: within each crate, no module imports a module that imports it (directly or
//! through others). A module's imports are the `crate::`, `super::` and `self::` paths in its
//! code outside comments and its `#[cfg(test)] mod tests`, each resolved to the deepest module
//! of the crate it names; a path into a module's own ancestors or descendants is not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path inside its crate (`["cache", "slot"]`; the crate root is empty).
type Module = Vec<String>;

/// The import cycles of the crate whose `src` folder is `src`: each as its modules, sorted.
pub(crate) fn cycles(src: &Path) -> Result<Vec<Vec<String>>, String> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    let mut modules = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        modules.insert(module_of(src, file), text);
    }
    let known: BTreeSet<Module> = modules.keys().cloned().collect();
    let graph: BTreeMap<Module, BTreeSet<Module>> = modules
        .iter()
        .map(|(module, text)| (module.clone(), imports(module, text, &known)))
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

/// The modules `text` (the file of `module`) imports.
fn imports(module: &Module, text: &str, known: &BTreeSet<Module>) -> BTreeSet<Module> {
    let code = without_comments(text);
    let code = without_tests(&code);
    let mut found = BTreeSet::new();
    for (at, _) in code.char_indices() {
        let starts_path = ["crate::", "super::", "self::"]
            .iter()
            .any(|head| code[at..].starts_with(head));
        let joined = code[..at].chars().next_back().is_some_and(is_path_char);
        if !starts_path || joined {
            continue;
        }
        let path = code[at..].split(|c| !is_path_char(c)).next().unwrap_or("");
        let mut segments: Vec<&str> = path.split("::").collect();
        let mut base = module.clone();
        while let Some(&head @ ("crate" | "self" | "super")) = segments.first() {
            match head {
                "crate" => base.clear(),
                "super" => {
                    base.pop();
                }
                _ => {}
            }
            segments.remove(0);
        }
        let mut names = vec![segments.clone()];
        // `use crate::{a, b::c}`: each path of the group.
        if segments.last() == Some(&"") && code[at + path.len()..].starts_with('{') {
            segments.pop();
            names = group_paths(&code[at + path.len() + 1..])
                .into_iter()
                .map(|item| segments.iter().copied().chain(item).collect())
                .collect();
        }
        for name in names {
            let mut target = base.clone();
            for segment in name {
                let mut deeper = target.clone();
                deeper.push(segment.to_owned());
                if !known.contains(&deeper) {
                    break;
                }
                target = deeper;
            }
            if !module.starts_with(&target) && !target.starts_with(module) {
                found.insert(target);
            }
        }
    }
    found
}

fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == ':'
}

/// The leading path of each item of a `use` group, from just after its `{`: `a, b::c as d,
/// e::{f}}` gives `a`, `b::c` and `e`.
fn group_paths(text: &str) -> Vec<Vec<&str>> {
    let mut paths = Vec::new();
    let mut depth = 0;
    let mut from = 0;
    for (i, c) in text.char_indices() {
        let end = match c {
            '{' => {
                depth += 1;
                false
            }
            '}' if depth == 0 => true,
            '}' => {
                depth -= 1;
                false
            }
            ',' => depth == 0,
            _ => false,
        };
        if end {
            let item = text[from..i].trim_start();
            let path = item.split(|c| !is_path_char(c)).next().unwrap_or("");
            let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            if !segments.is_empty() {
                paths.push(segments);
            }
            from = i + 1;
            if c == '}' {
                break;
            }
        }
    }
    paths
}

/// `text` with its `//` comments (doc comments included) blanked; string literals are left as
/// they are, which is enough for import paths.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `code` up to its `#[cfg(test)] mod tests` (a test module may use what it tests from anywhere).
fn without_tests(code: &str) -> &str {
    let mut from = 0;
    while let Some(at) = code[from..].find("#[cfg(") {
        let at = from + at;
        let Some(close) = code[at..].find(")]") else {
            break;
        };
        let attribute = &code[at..at + close];
        let after = code[at + close + 2..].trim_start();
        if attribute.contains("test") && after.starts_with("mod tests") {
            return &code[..at];
        }
        from = at + close;
    }
    code
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

    #[test]
    fn a_module_importing_one_that_imports_it_is_a_cycle() {
        let src = tree(
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
        assert_eq!(cycles(&src).unwrap(), vec![vec!["a", "b", "c"]]);
        std::fs::remove_dir_all(src).unwrap();
    }

    #[test]
    fn layers_tests_comments_and_ancestors_are_not_cycles() {
        let src = tree(
            "layers",
            &[
                ("lib.rs", "mod a;\nmod b;\npub use crate::a::X;\n"),
                ("a.rs", "pub struct X;\nuse crate::b::Y; // crate::a\n"),
                (
                    "b/mod.rs",
                    "pub struct Y;\nmod inner;\n/// [`crate::a::X`]\n\
                     #[cfg(all(test, feature = \"x\"))]\nmod tests {\n    use crate::a::X;\n}\n",
                ),
                ("b/inner.rs", "use super::Y;\nuse crate::b::Y as Z;\n"),
            ],
        );
        assert!(cycles(&src).unwrap().is_empty());
        std::fs::remove_dir_all(src).unwrap();
    }
}
