//! `onair-layering [report]`: checks `server/src` and `app/src` against the
//! dependency rule and prints the counts the rule is judged by (run from the
//! workspace root, or pass it as the first argument).

use std::path::PathBuf;
use std::process::ExitCode;

use onair_layering::{check, cycles, imports_in, long_files, rules, Violation};

fn main() -> ExitCode {
    let root = std::env::args()
        .nth(1)
        .filter(|a| a != "report")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut failed = false;
    for (dir, rule) in [("server/src", rules::SERVER), ("app/src", rules::APP)] {
        let src = root.join(dir);
        let (imports, modules) = match imports_in(&src) {
            Ok(found) => found,
            Err(e) => {
                eprintln!("{}: {e}", src.display());
                return ExitCode::FAILURE;
            }
        };
        let violations = check(&rule, &imports, &modules);
        let loops = cycles(&imports);
        let upward = imports
            .iter()
            .filter(|i| {
                let layer = |m: &str| rule.layers.iter().position(|(_, ms)| ms.contains(&m));
                layer(&i.to) < layer(&i.from)
            })
            .count();
        let long = long_files(&src, 600).unwrap_or_default();
        println!(
            "{}: {} modules, {} imports, {} cycles, {} upward imports ({} allowed as listed exceptions), {} files over 600 lines",
            rule.name,
            modules.iter().map(|(m, _)| m).collect::<std::collections::BTreeSet<_>>().len(),
            imports.len(),
            loops.len(),
            upward,
            rule.exceptions.len(),
            long.len()
        );
        for (file, lines) in &long {
            println!("  long: {dir}/{file} ({lines} lines)");
        }
        for v in &violations {
            failed |= !matches!(v, Violation::StaleException { .. });
            println!("  {v}");
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
