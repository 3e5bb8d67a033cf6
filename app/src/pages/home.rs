//! The home page: what Onair is, who is live now, and what was live recently.

use leptos::prelude::*;

use crate::components::stream_meta::{StateBadge, StreamTime};
use crate::error::AppError;
use crate::streams::{live_streams, recent_streams, StreamCard};

/// The landing page.
#[component]
pub fn HomePage() -> impl IntoView {
    let live = Resource::new(|| (), |_| live_streams());
    let recent = Resource::new(|| (), |_| recent_streams());
    view! {
        // The site's description; pages with their own (a stream, a
        // profile) set theirs, so each page has exactly one.
        <leptos_meta::Meta name="description" content="Onair: go live from your browser with low-latency HLS." />
        <section class="hero">
            <h1>"Go live from a browser tab."</h1>
            <p class="lead">
                "Onair turns your camera, microphone or screen into low-latency HLS that plays "
                "everywhere, with live captions, chat and analytics, on a server you run yourself."
            </p>
        </section>
        <section class="features" aria-label="How it works">
            <article class="feature">
                <h2>"Studio"</h2>
                <p>"Pick a camera, microphone or screen, preview, and go live. Nothing to install."</p>
            </article>
            <article class="feature">
                <h2>"Low-latency HLS"</h2>
                <p>"An adaptive ladder with LL-HLS parts and blocking playlist reload, served from memory."</p>
            </article>
            <article class="feature">
                <h2>"Captions and insights"</h2>
                <p>"Live captions, searchable transcripts, and a dashboard of who watched and how well it played."</p>
            </article>
        </section>
        <LiveNow live recent />
        <RecentlyLive recent />
    }
}

/// How often the home page reloads its lists by itself, while it is visible.
pub const AUTO_REFRESH_SECS: u64 = 15;

/// The streams that are live now, loaded through a server function. Refresh
/// reloads this list and the recent one; so does a timer every
/// [`AUTO_REFRESH_SECS`] while the tab is visible.
#[component]
fn LiveNow(
    live: Resource<Result<Vec<StreamCard>, AppError>>,
    recent: Resource<Result<Vec<StreamCard>, AppError>>,
) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    {
        let timer = set_interval_with_handle(
            move || {
                let visible = document().visibility_state() == web_sys::VisibilityState::Visible;
                if visible {
                    live.refetch();
                    recent.refetch();
                }
            },
            std::time::Duration::from_secs(AUTO_REFRESH_SECS),
        );
        if let Ok(timer) = timer {
            on_cleanup(move || timer.clear());
        }
    }
    view! {
        <section id="live" class="live-now" aria-labelledby="live-heading">
            <div class="section-head">
                <h2 id="live-heading">"Live now"</h2>
                <div class="section-actions">
                    <span class="muted small" data-testid="auto-refresh">{format!("Updates every {AUTO_REFRESH_SECS} s")}</span>
                    <button
                        type="button"
                        class="button-secondary"
                        data-testid="refresh-live"
                        on:click=move |_| {
                            live.refetch();
                            recent.refetch();
                        }
                    >
                        "Refresh"
                    </button>
                </div>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match live.await {
                        Ok(list) if list.is_empty() => view! {
                            <p class="muted" data-testid="live-empty">"Nobody is live right now."</p>
                        }.into_any(),
                        Ok(list) => view! {
                            <ul class="stream-list" data-testid="live-list">
                                {list.into_iter().map(|s| view! { <StreamItem stream=s /> }).collect_view()}
                            </ul>
                        }.into_any(),
                        Err(err) => view! {
                            <p class="error" role="alert">{format!("Could not load live streams: {err}")}</p>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// Public streams that ended most recently, newest first.
#[component]
fn RecentlyLive(recent: Resource<Result<Vec<StreamCard>, AppError>>) -> impl IntoView {
    view! {
        <section id="recent" class="recent" aria-labelledby="recent-heading">
            <h2 id="recent-heading">"Recently live"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match recent.await {
                        Ok(list) if list.is_empty() => view! {
                            <p class="muted" data-testid="recent-empty">"No past broadcasts yet."</p>
                        }.into_any(),
                        Ok(list) => view! {
                            <ul class="stream-list" data-testid="recent-list">
                                {list.into_iter().map(|s| view! { <StreamItem stream=s /> }).collect_view()}
                            </ul>
                        }.into_any(),
                        Err(err) => view! {
                            <p class="error" role="alert">{format!("Could not load recent streams: {err}")}</p>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// One stream: state, title (to the watch page), broadcaster (to their
/// profile), time, and the viewer count once there is one.
#[component]
fn StreamItem(stream: StreamCard) -> impl IntoView {
    let StreamCard {
        id,
        title,
        owner,
        state,
        started_at,
        ended_at,
        viewers,
    } = stream;
    view! {
        <li class="stream-item" data-testid="stream-card" data-id=id.clone() data-state=state.as_str()>
            <StateBadge state />
            <a href=format!("/watch/{id}")><strong data-testid="card-title">{title}</strong></a>
            <span class="muted">" by "</span>
            <a href=format!("/u/{owner}") data-testid="card-owner">{owner.clone()}</a>
            " "
            <StreamTime state started_at ended_at />
            // Viewers on this node's realtime room (live streams only).
            {viewers.map(|n| view! {
                <span class="muted viewers" data-testid="card-viewers">
                    {format!(" · {n} watching")}
                </span>
            })}
        </li>
    }
}
