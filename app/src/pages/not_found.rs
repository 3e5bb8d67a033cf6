//! The friendly 404 page; it also sets the HTTP status on the server.

use leptos::prelude::*;
use leptos_router::components::A;

/// Shown for any path no route matches.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="page-error" data-testid="not-found">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. The stream may have been deleted, or the link is mistyped."</p>
            <A href="/">"Back to the home page"</A>
        </section>
    }
}
