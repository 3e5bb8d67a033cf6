//! The layout shell: header with navigation and the search box (a plain GET
//! form to `/search`, so it works before hydration), the page body, and the
//! footer.

use leptos::prelude::*;
use leptos_router::components::A;

use super::theme::ThemeToggle;

/// Wraps every page in the header, main area and footer.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    // An embedded player (`/embed/{id}`, in another site's iframe) is the
    // page alone.
    let path = leptos_router::hooks::use_location()
        .pathname
        .get_untracked();
    if path.starts_with("/embed/") {
        return view! { <main id="main" class="embed-main">{children()}</main> }.into_any();
    }
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
                <AccountLinks />
            </nav>
            <form class="site-search" action="/search" method="get" role="search">
                <input type="search" name="q" maxlength="200" required=true
                    placeholder="Search streams and transcripts" aria-label="Search streams and transcripts"
                    data-testid="header-search" />
            </form>
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
    .into_any()
}

/// "My streams", "Dashboard" (broadcasters and admins) and "Sign out" for a
/// signed-in user, else "Sign in".
#[component]
fn AccountLinks() -> impl IntoView {
    let user = Resource::new(|| (), |_| crate::accounts::current_user());
    let logout = ServerAction::<crate::accounts::Logout>::new();
    // Signing in comes back to this page.
    let sign_in = crate::return_to::sign_in_here();
    Effect::new(move |_| {
        if logout.value().get().is_some_and(|r| r.is_ok()) {
            if let Some(w) = leptos::web_sys::window() {
                let _ = w.location().set_href("/");
            }
        }
    });
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(Some(u)) => view! {
                        <A href="/streams">"My streams"</A>
                        {(u.role != crate::accounts::Role::Viewer).then(|| view! {
                            <A href="/dashboard" attr:data-testid="dashboard-link">"Dashboard"</A>
                        })}
                        <button type="button" class="link-button" data-testid="sign-out"
                            title=format!("Signed in as {}", u.username)
                            on:click=move |_| { logout.dispatch(crate::accounts::Logout {}); }>
                            "Sign out"
                        </button>
                    }.into_any(),
                    _ => view! { <A href=move || sign_in.get()>"Sign in"</A> }.into_any(),
                }
            })}
        </Transition>
    }
}
