//! The home page: what Onair is, and who is live now.

use leptos::prelude::*;

use crate::streams::{live_streams, StreamCard};

/// The landing page.
#[component]
pub fn HomePage() -> impl IntoView {
    view! {
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
        <LiveNow />
    }
}

/// The list of live streams, loaded through a server function.
#[component]
fn LiveNow() -> impl IntoView {
    let streams = Resource::new(|| (), |_| live_streams());
    view! {
        <section id="live" class="live-now" aria-labelledby="live-heading">
            <div class="section-head">
                <h2 id="live-heading">"Live now"</h2>
                <button
                    type="button"
                    class="button-secondary"
                    data-testid="refresh-live"
                    on:click=move |_| streams.refetch()
                >
                    "Refresh"
                </button>
            </div>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match streams.await {
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

#[component]
fn StreamItem(stream: StreamCard) -> impl IntoView {
    view! {
        <li class="stream-item">
            <span class="live-badge">"LIVE"</span>
            <a href=format!("/watch/{}", stream.id)><strong>{stream.title}</strong></a>
            <span class="muted">{format!(" by {}", stream.owner)}</span>
        </li>
    }
}
