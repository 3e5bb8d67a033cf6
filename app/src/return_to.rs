//! Where to go back to after signing in: the `next` query parameter of
//! `/login` and `/register`, kept to this site's own paths so a link cannot
//! send a person elsewhere (an open redirect).

/// Where sign-in goes when there is no (acceptable) `next`.
pub const DEFAULT_AFTER_SIGN_IN: &str = "/streams";

/// `next` if it is a path on this site: it starts with one `/`, and has no
/// backslash, whitespace or control character (browsers drop tabs and
/// newlines and read `\` as `/`, so `/\evil` or `/\t/evil` would leave the
/// site). At most 512 bytes.
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.len() <= 512
        && next.starts_with('/')
        && !next.starts_with("//")
        && !next
            .chars()
            .any(|c| c == '\\' || c.is_whitespace() || c.is_control());
    ok.then_some(next)
}

/// Where to go after signing in with `next` from the query.
pub fn after_sign_in(next: Option<&str>) -> &str {
    next.and_then(safe_next).unwrap_or(DEFAULT_AFTER_SIGN_IN)
}

/// `/login?next=…` (or `/register?next=…`) coming back to `here` (a path
/// with its query). Pages that are themselves sign-in pages come back to
/// the default instead.
pub fn sign_in_href(page: &str, here: &str) -> String {
    let Some(here) = safe_next(here) else {
        return page.to_string();
    };
    if here == "/" || here.starts_with("/login") || here.starts_with("/register") {
        return page.to_string();
    }
    format!("{page}?next={}", encode(here))
}

/// A `/login` link back to the page being shown, following navigation.
pub fn sign_in_here() -> leptos::prelude::Memo<String> {
    use leptos::prelude::*;
    let location = leptos_router::hooks::use_location();
    Memo::new(move |_| {
        let search = location.search.get();
        let here = if search.is_empty() {
            location.pathname.get()
        } else {
            format!("{}?{search}", location.pathname.get())
        };
        sign_in_href("/login", &here)
    })
}

/// Percent-encodes a query value (unreserved characters and `/` stay).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_sites_paths_are_followed() {
        for good in ["/watch/abc", "/watch/abc?t=40", "/streams", "/u/x#y"] {
            assert_eq!(safe_next(good), Some(good), "{good}");
        }
        for bad in [
            "",
            "watch/abc",
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            " /watch",
            &"/a".repeat(300),
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
            assert_eq!(after_sign_in(Some(bad)), DEFAULT_AFTER_SIGN_IN);
        }
        assert_eq!(after_sign_in(None), DEFAULT_AFTER_SIGN_IN);
    }

    #[test]
    fn sign_in_links_come_back_here() {
        assert_eq!(
            sign_in_href("/login", "/watch/abc?t=40&x=y%20z"),
            "/login?next=/watch/abc%3Ft%3D40%26x%3Dy%2520z"
        );
        assert_eq!(sign_in_href("/login", "/"), "/login");
        assert_eq!(sign_in_href("/login", "/login?next=/x"), "/login");
        assert_eq!(sign_in_href("/register", "//evil"), "/register");
    }
}
