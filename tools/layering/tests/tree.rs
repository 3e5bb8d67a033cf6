//! The rule holds on the real sources.

use std::path::Path;

use onair_layering::{check, imports_in, rules, Rule};

fn holds(dir: &str, rule: &Rule) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir);
    let (imports, modules) = imports_in(&src).expect("read the sources");
    assert!(
        modules.len() > 10,
        "{dir}: found only {} modules",
        modules.len()
    );
    let violations = check(rule, &imports, &modules);
    let text: Vec<String> = violations.iter().map(ToString::to_string).collect();
    assert!(
        violations.is_empty(),
        "{dir} breaks the dependency rule (docs/architecture.md):\n{}",
        text.join("\n")
    );
}

#[test]
fn the_server_follows_the_dependency_rule() {
    holds("server/src", &rules::SERVER);
}

#[test]
fn the_app_follows_the_dependency_rule() {
    holds("app/src", &rules::APP);
}
