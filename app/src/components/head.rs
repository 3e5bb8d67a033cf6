//! The document title, set the same safe way on every page.
//!
//! `leptos_meta` 0.8 writes a `<Title>`'s text into the server-rendered
//! `<title>` element as it is, without escaping, so a stream title such as
//! `</title><script>…` would close the element and run as script. Pages
//! therefore never use `leptos_meta::Title` directly: they use
//! [`PageTitle`], which escapes the text for the server's HTML. In the
//! browser the same text goes to `document.title`, a plain-text property, so
//! it is passed as it is there (escaping it would show `&lt;` in the tab).
//! A test below keeps `leptos_meta::Title` out of every other file.

use leptos::prelude::*;

/// Sets the page's `<title>` to `text` (plain text, never markup).
#[component]
pub fn PageTitle(#[prop(into)] text: String) -> impl IntoView {
    #[cfg(feature = "ssr")]
    let text = crate::html::escape_html(&text);
    view! { <leptos_meta::Title text=text /> }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read app/src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The rule of this module: only `PageTitle` renders a `<title>`.
    #[test]
    fn only_page_title_uses_leptos_meta_title() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        assert!(files.len() > 20, "found only {} files", files.len());
        let mut offenders = Vec::new();
        for file in files.iter().filter(|f| !f.ends_with("components/head.rs")) {
            let text = std::fs::read_to_string(file).expect("read source");
            for (n, line) in text.lines().enumerate() {
                let uses_title = line.contains("leptos_meta::") && line.contains("Title")
                    || line.contains("<Title ")
                    || line.contains("<leptos_meta::Title");
                if uses_title {
                    offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "use components::head::PageTitle, which escapes the text for the server's HTML:\n{}",
            offenders.join("\n")
        );
    }
}
