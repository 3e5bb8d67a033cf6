//! The watch page (`/watch/:id`): the stream's title, broadcaster and
//! description, and the live player. Rendered on the server with the title
//! and Open Graph tags, so shared links preview.
//!
//! A private stream's link carries `?token=…` (a signed playback token); the
//! page plays `/live/{id}/t/{token}/master.m3u8`, so every relative playlist
//! and media URI below it carries the token too.

use leptos::prelude::*;
use leptos_meta::{Meta, Title};
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::components::player::Player;
use crate::streams::{get_stream, watch_stream, Stream, StreamState};

/// The master playlist URL for a stream, with its playback token if any.
pub fn master_url(stream: &str, token: Option<&str>) -> String {
    match token.filter(|t| !t.is_empty()) {
        Some(t) => format!("/live/{stream}/t/{t}/master.m3u8"),
        None => format!("/live/{stream}/master.m3u8"),
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Plays one live stream.
#[component]
pub fn WatchPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let info = Resource::new(id, |id| async move {
        if !valid_id(&id) {
            return None;
        }
        let stream = get_stream(id.clone()).await.ok();
        let path = match &stream {
            Some(_) => watch_stream(id.clone()).await.ok().map(|w| w.path),
            None => None,
        };
        Some((id, stream, path))
    });
    view! {
        <section class="watch" data-testid="watch">
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let token = query.read_untracked().get("token");
                    match info.await {
                        None => view! {
                            <Title text="Not found · Onair" />
                            <p class="error" data-testid="watch-invalid">"This is not a valid stream link."</p>
                        }.into_any(),
                        Some((id, stream, path)) => {
                            // A private stream opened from a shared link plays with the link's token.
                            let src = match (token.as_deref(), path) {
                                (Some(t), _) if !t.is_empty() => master_url(&id, Some(t)),
                                (_, Some(p)) => p,
                                _ => master_url(&id, None),
                            };
                            view! { <Header stream=stream.clone() /> <Body stream=stream src=src /> }.into_any()
                        }
                    }
                })}
            </Suspense>
        </section>
    }
}

/// Title, broadcaster and description, with the page title and link previews.
#[component]
fn Header(stream: Option<Stream>) -> impl IntoView {
    let Some(s) = stream else {
        return view! { <Title text="Watch · Onair" /> <h1 data-testid="watch-title">"Live stream"</h1> }.into_any();
    };
    let page_title = format!("{} · Onair", s.title);
    let summary = if s.description.is_empty() {
        format!("{} on Onair", s.owner.username)
    } else {
        s.description.chars().take(200).collect()
    };
    let live = s.state == StreamState::Live;
    view! {
        <Title text=page_title.clone() />
        <Meta property="og:title" content=s.title.clone() />
        <Meta property="og:description" content=summary.clone() />
        <Meta property="og:type" content="video.other" />
        <Meta name="description" content=summary />
        <header class="watch-head">
            <h1 data-testid="watch-title">
                {live.then(|| view! { <span class="live-badge">"LIVE"</span> " " })}
                {s.title.clone()}
            </h1>
            <p class="muted" data-testid="watch-owner">"by " <a href=format!("/u/{}", s.owner.username)>{s.owner.username.clone()}</a></p>
            {(!s.description.is_empty()).then(|| view! { <p class="watch-description" data-testid="watch-description">{s.description.clone()}</p> })}
        </header>
    }
    .into_any()
}

/// The player, or what to say instead.
#[component]
fn Body(stream: Option<Stream>, src: String) -> impl IntoView {
    match stream.map(|s| s.state) {
        Some(StreamState::Ended) | Some(StreamState::Interrupted) => view! {
            <p class="muted" data-testid="watch-ended">"This stream has ended."</p>
        }
        .into_any(),
        Some(StreamState::Idle) => view! {
            <p class="muted" data-testid="watch-not-started">"The stream starts when the broadcaster goes live. This page starts it by itself."</p>
            <Player src=src />
        }
        .into_any(),
        _ => view! { <Player src=src /> }.into_any(),
    }
}

#[cfg(test)]
mod tests {
    use super::{master_url, valid_id};

    #[test]
    fn the_playback_token_is_passed_on() {
        assert_eq!(master_url("abc", None), "/live/abc/master.m3u8");
        assert_eq!(master_url("abc", Some("")), "/live/abc/master.m3u8");
        assert_eq!(
            master_url("abc", Some("9.sig")),
            "/live/abc/t/9.sig/master.m3u8"
        );
        assert!(valid_id("abc123") && !valid_id("bad id") && !valid_id(""));
    }
}
