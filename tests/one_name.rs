//! One name for asking for a token: every README, doc example and example calls `get()`.
//! `token()` is the method a provider implements; nothing tells a user to call it.

use std::path::{Path, PathBuf};

/// The workspace's root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` whose name ends with `suffix`.
fn files(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                files(&path, suffix, out);
            }
        } else if name.ends_with(suffix) {
            out.push(path);
        }
    }
}

/// Whether `line` calls or names `token()` (as `.token()` or `` `token()` ``), which is not
/// the name users are given.
fn names_token(line: &str) -> bool {
    line.match_indices("token()")
        .any(|(at, _)| matches!(line[..at].chars().last(), Some('.' | '`')))
}

#[test]
fn readmes_doc_examples_and_examples_ask_with_get() {
    let root = root();
    // READMEs and examples: every line. Sources: their doc comments (`///`, `//!`), which hold
    // the doc examples.
    let mut whole = vec![root.join("README.md")];
    files(&root.join("crates"), "README.md", &mut whole);
    files(&root.join("examples"), ".rs", &mut whole);
    let mut sources = Vec::new();
    files(&root.join("src"), ".rs", &mut sources);
    let crates = std::fs::read_dir(root.join("crates")).expect("the crates folder");
    for krate in crates.flatten() {
        files(&krate.path().join("src"), ".rs", &mut sources);
    }
    assert!(whole.len() >= 8 && sources.len() >= 20, "{whole:?}");

    let mut found = Vec::new();
    for (paths, docs_only) in [(&whole, false), (&sources, true)] {
        for path in paths.iter() {
            let text = std::fs::read_to_string(path).expect("a text file");
            for (n, line) in text.lines().enumerate() {
                let trimmed = line.trim_start();
                let doc = trimmed.starts_with("///") || trimmed.starts_with("//!");
                if (doc || !docs_only) && names_token(line) {
                    let shown = path.strip_prefix(&root).unwrap_or(path).display();
                    found.push(format!("{shown}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "call `get()` for a token; `token()` is what a provider implements:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_both_spellings() {
    assert!(names_token("let t = provider.token().await?;"));
    assert!(names_token("call `token()` before every request"));
    assert!(!names_token("let t = provider.get().await?;"));
    assert!(!names_token("state.refresh_token().is_some()"));
    assert!(!names_token(
        "async fn token(&self) -> Result<AccessToken, Error>"
    ));
}
