//! The layout shell: header with navigation, the page body, and the footer.

use leptos::prelude::*;
use leptos_router::components::A;

use super::theme::ThemeToggle;

/// Wraps every page in the header, main area and footer.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="site-header">
            <A href="/" attr:class="brand">
                <span class="brand-dot" aria-hidden="true"></span>
                "Onair"
            </A>
            <nav class="site-nav" aria-label="Main">
                <A href="/" exact=true>"Home"</A>
                <a href="/#live">"Live now"</a>
            </nav>
            <ThemeToggle />
        </header>
        <main id="main" class="site-main">{children()}</main>
        <footer class="site-footer">
            <p>"Onair · self-hosted live streaming from the browser"</p>
            <p class="footer-links">
                <a href="/healthz">"Health"</a>
                <a href="/metrics">"Metrics"</a>
            </p>
        </footer>
    }
}
