//! Sign in (`/login`) and sign up (`/register`): forms over the accounts
//! server functions, which set the session cookie. Errors from the server
//! (wrong password, name taken, too many attempts) are shown as they come.

use crate::components::head::PageTitle;
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::accounts::{Credentials, Login, Register};

/// Which form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Login,
    Register,
}

/// `/login`.
#[component]
pub fn LoginPage() -> impl IntoView {
    view! { <AccountForm mode=Mode::Login /> }
}

/// `/register`.
#[component]
pub fn RegisterPage() -> impl IntoView {
    view! { <AccountForm mode=Mode::Register /> }
}

#[component]
fn AccountForm(mode: Mode) -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let register = ServerAction::<Register>::new();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let pending = move || login.pending().get() || register.pending().get();
    let error = move || {
        let result = match mode {
            Mode::Login => login.value().get(),
            Mode::Register => register.value().get(),
        };
        result.and_then(|r| r.err()).map(|e| e.to_string())
    };
    let done = move || match mode {
        Mode::Login => login.value().get().is_some_and(|r| r.is_ok()),
        Mode::Register => register.value().get().is_some_and(|r| r.is_ok()),
    };
    // Back to where the person was (`?next=`, this site's paths only).
    let query = use_query_map();
    let next = move || query.read_untracked().get("next");
    Effect::new(move |_| {
        if done() {
            let next = next();
            let to = crate::return_to::after_sign_in(next.as_deref());
            // A full load, so the header and every page see the new session.
            if let Some(w) = leptos::web_sys::window() {
                let _ = w.location().set_href(to);
            } else {
                use_navigate()(to, Default::default());
            }
        }
    });
    // The other form keeps the way back.
    let other_href = move |page: &str| match next().as_deref().and_then(crate::return_to::safe_next)
    {
        Some(n) => crate::return_to::sign_in_href(page, n),
        None => page.to_string(),
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let creds = Credentials {
            username: username.get_untracked().trim().to_string(),
            password: password.get_untracked(),
        };
        match mode {
            Mode::Login => {
                login.dispatch(Login { creds });
            }
            Mode::Register => {
                register.dispatch(Register { creds });
            }
        }
    };
    let (title, button, other) = match mode {
        Mode::Login => (
            "Sign in",
            "Sign in",
            view! { <p class="muted">"No account? " <a href=move || other_href("/register") data-testid="to-register">"Sign up"</a></p> }
                .into_any(),
        ),
        Mode::Register => (
            "Sign up",
            "Create account",
            view! { <p class="muted">"Have an account? " <a href=move || other_href("/login") data-testid="to-login">"Sign in"</a></p> }
                .into_any(),
        ),
    };
    view! {
        <PageTitle text=format!("{title} · Onair") />
        <section class="account">
            <h1>{title}</h1>
            <form class="account-form" data-testid="account-form" on:submit=submit>
                <label>
                    "Username"
                    <input name="username" autocomplete="username" required minlength="3" maxlength="32"
                        data-testid="username" on:input=move |e| username.set(event_target_value(&e)) />
                </label>
                <label>
                    "Password"
                    <input name="password" type="password" required minlength="8"
                        autocomplete=if mode == Mode::Login { "current-password" } else { "new-password" }
                        data-testid="password" on:input=move |e| password.set(event_target_value(&e)) />
                </label>
                {(mode == Mode::Register).then(|| view! {
                    <p class="muted">"3 to 32 characters: lower-case letters, digits, - and _. Passwords need at least 8 characters."</p>
                })}
                <button type="submit" class="button-primary" data-testid="submit" disabled=pending>
                    {move || if pending() { "Please wait…" } else { button }}
                </button>
                {move || error().map(|e| view! { <p class="error" role="alert" data-testid="account-error">{e}</p> })}
            </form>
            {other}
        </section>
    }
}
