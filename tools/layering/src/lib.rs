//! The dependency rule of Onair's crates, as a check.
//!
//! Every source file belongs to a top-level module of its crate (the first
//! path component under `src/`). Each module sits in one layer of a table
//! ([`rules`]), listed top first. A module may import modules of its own
//! layer or of layers below it; an import of a module in a layer above is an
//! **upward import**, refused unless the table lists it with a reason. Over
//! all imports, the modules must form no **cycle**.
//!
//! Imports are read from the text: every `crate::<module>` path outside
//! comments, including `use crate::{a::X, b::Y}` groups, in every `.rs` file
//! except tests (`tests.rs`, `*_tests.rs`, and whatever follows a
//! `#[cfg(test)]` line).

pub mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One `crate::<module>` reference from one module to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The file, relative to `src/`.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The importing module.
    pub from: String,
    /// The imported module.
    pub to: String,
}

/// A crate's table: layers top first, and the upward imports it allows.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The crate, for messages.
    pub name: &'static str,
    /// Layers, top first: (layer name, its modules).
    pub layers: &'static [(&'static str, &'static [&'static str])],
    /// Upward imports allowed anyway: (from, to, why).
    pub exceptions: &'static [(&'static str, &'static str, &'static str)],
}

/// What breaks the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A module the table does not place.
    Unplaced { module: String, file: String },
    /// An import of a module in a higher layer, not listed as an exception.
    Upward {
        import: Import,
        from_layer: String,
        to_layer: String,
    },
    /// Modules that import each other, directly or around a loop, without a
    /// listed exception on the way.
    Cycle(Vec<String>),
    /// An exception that no import needs any more (the table must stay true).
    StaleException { from: String, to: String },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Unplaced { module, file } => write!(
                f,
                "{file}: module `{module}` is in no layer of the table (tools/layering/src/rules.rs)"
            ),
            Violation::Upward {
                import,
                from_layer,
                to_layer,
            } => write!(
                f,
                "{}:{}: `{}` ({from_layer}) imports `{}` ({to_layer}), a layer above it",
                import.file, import.line, import.from, import.to
            ),
            Violation::Cycle(mods) => write!(f, "import cycle: {}", mods.join(" -> ")),
            Violation::StaleException { from, to } => write!(
                f,
                "the exception `{from}` -> `{to}` is no longer needed: remove it from the table"
            ),
        }
    }
}

impl Rule {
    fn layer_of(&self, module: &str) -> Option<(usize, &'static str)> {
        self.layers
            .iter()
            .enumerate()
            .find(|(_, (_, mods))| mods.contains(&module))
            .map(|(i, (name, _))| (i, *name))
    }

    fn excepted(&self, from: &str, to: &str) -> bool {
        self.exceptions
            .iter()
            .any(|(f, t, _)| *f == from && *t == to)
    }
}

/// The top-level module a file under `src/` belongs to (`None` for the
/// crate roots `lib.rs` and `main.rs`).
pub fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let module = first.strip_suffix(".rs").unwrap_or(first);
    (module != "lib" && module != "main").then(|| module.to_string())
}

/// Whether a file is a test file, left out of the rule.
fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "tests.rs" || n.ends_with("_tests.rs"))
}

/// The `crate::` imports in one file's text.
pub fn imports_in_text(file: &str, module: &str, text: &str) -> Vec<Import> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        if raw.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = raw.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            // Not part of a longer name such as `my_crate::`.
            let before = &rest[..at];
            let joined = before
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[at + "crate::".len()..];
            if joined {
                continue;
            }
            let targets: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                let group = group.split('}').next().unwrap_or("");
                group
                    .split(',')
                    .filter_map(|item| item.trim().split("::").next())
                    .filter(|m| !m.is_empty())
                    .collect()
            } else {
                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .into_iter()
                    .collect()
            };
            for to in targets {
                let to = to.trim();
                let is_module = to.chars().next().is_some_and(|c| c.is_ascii_lowercase());
                if is_module && to != module && to != "self" {
                    out.push(Import {
                        file: file.to_string(),
                        line: n + 1,
                        from: module.to_string(),
                        to: to.to_string(),
                    });
                }
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every non-test `.rs` file under `src`, relative to it, with its text.
pub fn sources(src: &Path) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    rust_files(src, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for path in files {
        if is_test_file(&path) {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let rel = path.strip_prefix(src).unwrap_or(&path).to_path_buf();
        out.push((rel, text));
    }
    Ok(out)
}

/// Every (module, one of its files) pair of a crate.
pub type Modules = BTreeSet<(String, String)>;

/// Every import of the crate whose sources are under `src`, and its modules.
pub fn imports_in(src: &Path) -> std::io::Result<(Vec<Import>, Modules)> {
    let mut imports = Vec::new();
    let mut modules = BTreeSet::new();
    for (rel, text) in sources(src)? {
        let Some(module) = module_of(&rel) else {
            continue;
        };
        let file = rel.display().to_string();
        modules.insert((module.clone(), file.clone()));
        imports.extend(imports_in_text(&file, &module, &text));
    }
    Ok((imports, modules))
}

/// Checks imports against the rule. `modules` are (module, one of its
/// files) pairs, so modules that import nothing are placed too.
pub fn check(rule: &Rule, imports: &[Import], modules: &Modules) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (module, file) in modules {
        if rule.layer_of(module).is_none() && seen.insert(module.clone()) {
            out.push(Violation::Unplaced {
                module: module.clone(),
                file: file.clone(),
            });
        }
    }
    let mut used_exceptions = BTreeSet::new();
    for import in imports {
        let (Some((from, from_name)), Some((to, to_name))) =
            (rule.layer_of(&import.from), rule.layer_of(&import.to))
        else {
            continue;
        };
        if to < from {
            if rule.excepted(&import.from, &import.to) {
                used_exceptions.insert((import.from.clone(), import.to.clone()));
            } else {
                out.push(Violation::Upward {
                    import: import.clone(),
                    from_layer: from_name.to_string(),
                    to_layer: to_name.to_string(),
                });
            }
        }
    }
    for (from, to, _) in rule.exceptions {
        if !used_exceptions.contains(&(from.to_string(), to.to_string())) {
            out.push(Violation::StaleException {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
    }
    // Listed exceptions are allowed to close a loop (they are the debts the
    // table names); any other loop is a violation.
    let plain: Vec<Import> = imports
        .iter()
        .filter(|i| !rule.excepted(&i.from, &i.to))
        .cloned()
        .collect();
    out.extend(cycles(&plain).into_iter().map(Violation::Cycle));
    out
}

/// The module graph's cycles: each strongly connected component of more
/// than one module, as one loop through it.
pub fn cycles(imports: &[Import]) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for i in imports {
        graph.entry(&i.from).or_default().insert(&i.to);
        graph.entry(&i.to).or_default();
    }
    // Tarjan's algorithm, iterative so deep graphs cannot overflow the stack.
    let nodes: Vec<&str> = graph.keys().copied().collect();
    let index_of: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let n = nodes.len();
    let (mut index, mut low) = (vec![usize::MAX; n], vec![0; n]);
    let (mut on_stack, mut stack, mut next, mut comps) =
        (vec![false; n], Vec::new(), 0, Vec::new());
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(start, 0)];
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            let succ: Vec<usize> = graph[nodes[v]].iter().map(|w| index_of[w]).collect();
            if *child < succ.len() {
                let w = succ[*child];
                *child += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    comp.push(nodes[w].to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    comps.push(comp);
                }
            }
        }
    }
    comps
}

/// Source files over `limit` lines that do not say in their module doc why
/// they must stay whole (a `//!` line containing "stays whole").
pub fn long_files(src: &Path, limit: usize) -> std::io::Result<Vec<(String, usize)>> {
    let mut out = Vec::new();
    for (rel, text) in sources(src)? {
        let lines = text.lines().count();
        let excused = text
            .lines()
            .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
            .any(|l| l.contains("stays whole"));
        if lines > limit && !excused {
            out.push((rel.display().to_string(), lines));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: Rule = Rule {
        name: "demo",
        layers: &[
            ("edge", &["http"]),
            ("domain", &["ingest", "realtime"]),
            ("leaf", &["packager"]),
        ],
        exceptions: &[],
    };

    fn placed(mods: &[&str]) -> BTreeSet<(String, String)> {
        mods.iter()
            .map(|m| (m.to_string(), format!("{m}.rs")))
            .collect()
    }

    #[test]
    fn imports_are_read_from_use_lines_groups_and_paths() {
        let text = "//! [`crate::http`] in a doc is not an import\n\
                    use crate::packager::h264;\n\
                    use crate::{realtime::Rooms, http::error::ApiError};\n\
                    fn f() { let x = crate::http::router(); } // crate::nope\n\
                    use my_crate::thing;\n\
                    use crate::ingest::X; // own module\n\
                    #[cfg(test)]\n\
                    mod tests { use crate::http::X; }\n";
        let got: Vec<(usize, String)> = imports_in_text("ingest/x.rs", "ingest", text)
            .into_iter()
            .map(|i| (i.line, i.to))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, "packager".to_string()),
                (3, "realtime".to_string()),
                (3, "http".to_string()),
                (4, "http".to_string()),
            ]
        );
    }

    #[test]
    fn a_deliberate_upward_import_fails_and_names_file_and_line() {
        let down = imports_in_text("http/mod.rs", "http", "use crate::ingest::Hub;\n");
        assert_eq!(check(&RULE, &down, &placed(&["http", "ingest"])), vec![]);

        let text = "use crate::packager::x;\nuse crate::http::error::ApiError;\n";
        let up = imports_in_text("ingest/socket.rs", "ingest", text);
        let found = check(&RULE, &up, &placed(&["http", "ingest", "packager"]));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].to_string(),
            "ingest/socket.rs:2: `ingest` (domain) imports `http` (edge), a layer above it"
        );
    }

    #[test]
    fn cycles_within_a_layer_fail_and_exceptions_must_be_used() {
        let mut imports = imports_in_text("ingest/a.rs", "ingest", "use crate::realtime::X;\n");
        imports.extend(imports_in_text(
            "realtime/b.rs",
            "realtime",
            "use crate::ingest::Y;\n",
        ));
        let found = check(&RULE, &imports, &placed(&["ingest", "realtime"]));
        assert_eq!(
            found,
            vec![Violation::Cycle(vec!["ingest".into(), "realtime".into()])]
        );

        let with_exception = Rule {
            exceptions: &[("packager", "http", "demo")],
            ..RULE
        };
        let found = check(&with_exception, &[], &placed(&["http"]));
        assert_eq!(
            found,
            vec![Violation::StaleException {
                from: "packager".into(),
                to: "http".into()
            }]
        );
        let unplaced = check(&RULE, &[], &placed(&["mystery"]));
        assert!(matches!(&unplaced[0], Violation::Unplaced { module, .. } if module == "mystery"));
    }
}
