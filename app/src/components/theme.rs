//! The light/dark theme toggle. The choice is saved in `localStorage` and applied
//! before first paint by the script in the document head.

use leptos::prelude::*;

/// A colour theme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Theme {
    /// Dark background (the default).
    Dark,
    /// Light background.
    Light,
}

impl Theme {
    /// The value of `data-theme` on `<html>` and in `localStorage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::Dark => "dark",
            Theme::Light => "light",
        }
    }

    /// The other theme.
    pub fn toggled(self) -> Self {
        match self {
            Theme::Dark => Theme::Light,
            Theme::Light => Theme::Dark,
        }
    }
}

/// Reads the theme the page currently shows (browser only; the server assumes dark).
fn current_theme() -> Theme {
    #[cfg(feature = "hydrate")]
    {
        let shown = document()
            .document_element()
            .and_then(|el| el.get_attribute("data-theme"));
        if shown.as_deref() == Some("light") {
            return Theme::Light;
        }
    }
    Theme::Dark
}

/// Applies and saves a theme (browser only).
fn apply_theme(theme: Theme) {
    #[cfg(feature = "hydrate")]
    {
        if let Some(el) = document().document_element() {
            let _ = el.set_attribute("data-theme", theme.as_str());
        }
        if let Ok(Some(storage)) = window().local_storage() {
            // Saving can fail (private mode, quota); the toggle still works for this page.
            let _ = storage.set_item("onair-theme", theme.as_str());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = theme;
}

/// A button that switches between the light and dark theme.
#[component]
pub fn ThemeToggle() -> impl IntoView {
    let theme = RwSignal::new(Theme::Dark);
    // Pick up what the head script applied from localStorage once we run in the browser.
    Effect::new(move |_| theme.set(current_theme()));

    let label = move || match theme.get() {
        Theme::Dark => "Light theme",
        Theme::Light => "Dark theme",
    };
    view! {
        <button
            type="button"
            class="theme-toggle"
            data-testid="theme-toggle"
            aria-pressed=move || (theme.get() == Theme::Light).to_string()
            on:click=move |_| {
                let next = theme.get_untracked().toggled();
                theme.set(next);
                apply_theme(next);
            }
        >
            {label}
        </button>
    }
}

#[cfg(test)]
mod tests {
    use super::Theme;

    #[test]
    fn toggling_twice_returns_to_the_start() {
        assert_eq!(Theme::Dark.toggled(), Theme::Light);
        assert_eq!(Theme::Dark.toggled().toggled(), Theme::Dark);
        assert_eq!(Theme::Light.as_str(), "light");
    }
}
