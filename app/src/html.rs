//! HTML text rules, stated once: how user text becomes markup-safe.
//!
//! Leptos escapes text it renders as element content and attribute values.
//! These helpers are for the places where text reaches HTML some other way:
//! the server-rendered `<title>` (see [`crate::components::head`]) and
//! highlighted search fragments rendered as HTML.

/// Text safe inside HTML elements (including `<title>`, which the HTML
/// parser reads up to the first `</title`) and quoted attributes.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_html;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            escape_html("</title><script>alert(1)</script>"),
            "&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(
            escape_html("\"><svg onload='x'>&"),
            "&quot;&gt;&lt;svg onload=&#39;x&#39;&gt;&amp;"
        );
        assert_eq!(escape_html("plain · text ✓"), "plain · text ✓");
    }
}
