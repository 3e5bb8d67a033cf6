//! Shared by the benchmarks: each one owns a section of `docs/benchmarks.md`
//! between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`, and replaces
//! only that, so running one benchmark keeps the others' last tables.

use std::path::Path;

/// Replaces (or appends) the section `name` of `docs/benchmarks.md` with
/// `body`.
pub fn write_section(name: &str, body: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let open = format!("<!-- bench:{name} -->");
    let close = format!("<!-- /bench:{name} -->");
    let section = format!("{open}\n{}\n{close}", body.trim_end());
    let out = match (doc.find(&open), doc.find(&close)) {
        (Some(a), Some(b)) if b > a => format!("{}{section}{}", &doc[..a], &doc[b + close.len()..]),
        _ => format!("{}\n\n{section}\n", doc.trim_end()),
    };
    if let Err(e) = std::fs::write(&path, out) {
        eprintln!("could not write {}: {e}", path.display());
    }
}
