//! `/u/:name`: a broadcaster's profile with their public streams, live ones
//! first. Rendered on the server with the title and Open Graph tags, so shared
//! links preview. An unknown user gets a friendly message and HTTP 404.
//!
//! Only public streams are listed, also when owners look at their own profile
//! (their unlisted and private streams are on My streams).

use leptos::prelude::*;
use leptos_meta::Meta;

use crate::components::head::PageTitle;
use leptos_router::hooks::use_params_map;

use crate::components::stream_meta::{StateBadge, StreamTime};
use crate::protocol::StreamState;
use crate::streams::{user_profile, Profile, Stream};

/// A broadcaster's public page.
#[component]
pub fn ProfilePage() -> impl IntoView {
    let params = use_params_map();
    let name = move || params.read().get("name").unwrap_or_default();
    let profile = Resource::new(name, user_profile);
    let asked = move || params.read_untracked().get("name").unwrap_or_default();
    view! {
        <section class="profile" data-testid="profile">
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match profile.await {
                        Ok(p) => view! { <ProfileView profile=p /> }.into_any(),
                        Err(e) if e.status_code() == 404 => {
                            set_not_found();
                            view! {
                                <PageTitle text="User not found · Onair" />
                                <div class="page-error" data-testid="profile-not-found">
                                    <h1>"No such broadcaster"</h1>
                                    <p>"Nobody here goes by " <strong>{asked()}</strong>
                                        ". The link may be mistyped, or the account was removed."</p>
                                    <a href="/">"Back to the home page"</a>
                                </div>
                            }.into_any()
                        }
                        Err(e) => view! {
                            <PageTitle text="Profile · Onair" />
                            <p class="error" role="alert" data-testid="profile-error">
                                {format!("Could not load this profile: {e}")}
                            </p>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// Answers HTTP 404 when rendered on the server (a no-op in the browser).
fn set_not_found() {
    #[cfg(feature = "ssr")]
    if let Some(r) = use_context::<leptos_axum::ResponseOptions>() {
        r.set_status(http::StatusCode::NOT_FOUND);
    }
}

/// The page title, link previews and the list.
#[component]
fn ProfileView(profile: Profile) -> impl IntoView {
    let Profile { user, streams } = profile;
    let name = user.username;
    let live = streams.iter().find(|s| s.state == StreamState::Live);
    let summary = match live {
        Some(s) => format!("{name} is live now: {}", s.title),
        None if streams.is_empty() => format!("{name} on Onair"),
        None => format!(
            "{} public stream{} by {name} on Onair",
            streams.len(),
            if streams.len() == 1 { "" } else { "s" }
        ),
    };
    let count = match streams.len() {
        0 => "No public streams yet.".to_string(),
        1 => "1 public stream".to_string(),
        n => format!("{n} public streams"),
    };
    view! {
        <PageTitle text=format!("{name} · Onair") />
        <Meta property="og:title" content=format!("{name} on Onair") />
        <Meta property="og:description" content=summary.clone() />
        <Meta property="og:type" content="profile" />
        <Meta property="profile:username" content=name.clone() />
        <Meta name="description" content=summary />
        <header class="profile-head">
            <h1 data-testid="profile-name">{name.clone()}</h1>
            <p class="muted" data-testid="profile-count">{count}</p>
        </header>
        {(!streams.is_empty()).then(|| view! {
            <ul class="stream-list" data-testid="profile-streams">
                {streams.into_iter().map(|s| view! { <ProfileStream stream=s /> }).collect_view()}
            </ul>
        })}
    }
}

/// One stream: thumbnail and duration of its recording (if any), state
/// badge, title (to the watch page), time and description.
#[component]
fn ProfileStream(stream: Stream) -> impl IntoView {
    let Stream {
        id,
        title,
        description,
        state,
        started_at,
        ended_at,
        recording,
        ..
    } = stream;
    let watch = format!("/watch/{id}");
    view! {
        <li class="stream-item" data-testid="profile-stream" data-id=id.clone() data-state=state.as_str()>
            {recording.map(|r| view! {
                <a class="thumb-link" href=watch.clone() data-testid="profile-recording">
                    {match r.thumbnail {
                        Some(src) => view! { <img class="thumb" src=src alt="" width="160" loading="lazy" /> }.into_any(),
                        None => view! { <span class="thumb thumb-empty" aria-hidden="true"></span> }.into_any(),
                    }}
                    <span class="thumb-duration" data-testid="profile-duration">
                        {crate::format::clock_secs(r.duration_ms / 1000)}
                    </span>
                </a>
            })}
            <StateBadge state />
            " "
            <a href=format!("/watch/{id}")><strong data-testid="profile-stream-title">{title}</strong></a>
            " "
            <StreamTime state started_at ended_at />
            {(!description.is_empty()).then(|| view! {
                <p class="muted stream-description">{description}</p>
            })}
        </li>
    }
}
