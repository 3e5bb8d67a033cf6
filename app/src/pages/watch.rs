//! The watch page (`/watch/:id`): the stream's title, broadcaster and
//! description, and the live player. Rendered on the server with the title
//! and Open Graph tags, so shared links preview.
//!
//! A private stream's link carries `?token=…` (a signed playback token); the
//! page plays `/live/{id}/t/{token}/master.m3u8`, so every relative playlist
//! and media URI below it carries the token too.
//!
//! Once in the browser, the page joins the stream's room (the events socket,
//! [`crate::realtime`], with the same token): the viewer count, the chat, and
//! the stream's state, so the LIVE badge and "This stream has ended" follow
//! the broadcaster without a reload.

use leptos::prelude::*;
use leptos_meta::Meta;

use crate::components::head::PageTitle;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::chapters::Chapter;
use crate::components::chat::{Chat, ViewerCount};
use crate::components::clipboard::copy;
use crate::components::player::Player;
use crate::protocol::events::ClientRole;
use crate::protocol::StreamState;
use crate::realtime::{use_room, RoomHandle};
use crate::streams::{
    create_share_link, get_stream, watch_stream, Stream, Visibility, SHARE_LINK_CHOICES,
};

/// The master playlist URL for a stream, with its playback token if any.
pub fn master_url(stream: &str, token: Option<&str>) -> String {
    match token.filter(|t| !t.is_empty()) {
        Some(t) => format!("/live/{stream}/t/{t}/master.m3u8"),
        None => format!("/live/{stream}/master.m3u8"),
    }
}

/// Plays one live stream.
#[component]
pub fn WatchPage() -> impl IntoView {
    watch_page(false)
}

/// `/embed/{id}`: the player alone, for an `<iframe>` on another site (its
/// pages may frame it; see `server/src/http/headers.rs`), with the title
/// linking to the full watch page.
#[component]
pub fn EmbedPage() -> impl IntoView {
    watch_page(true)
}

/// The watch page, or with `embed` its player-only form.
fn watch_page(embed: bool) -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let info = Resource::new(id, |id| async move {
        if !crate::ids::valid_stream_id(&id) {
            return None;
        }
        let stream = get_stream(id.clone()).await.ok();
        let watch = match &stream {
            Some(_) => watch_stream(id.clone()).await.ok(),
            None => None,
        };
        Some((id, stream, watch))
    });
    view! {
        <section class="watch" class:embed=embed data-testid="watch">
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let token = query.read_untracked().get("token");
                    let start_at = query.read_untracked().get("t").and_then(|t| parse_start(&t));
                    match info.await {
                        None => view! {
                            <PageTitle text="Not found · Onair" />
                            <p class="error" data-testid="watch-invalid">"This is not a valid stream link."</p>
                        }.into_any(),
                        // No such stream, or a private one without access (the
                        // server does not say which) and no token link: say so,
                        // rather than wait for it to go live.
                        Some((_, None, _)) if token.as_deref().is_none_or(str::is_empty) => {
                            #[cfg(feature = "ssr")]
                            if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
                                res.set_status(http::StatusCode::NOT_FOUND);
                            }
                            view! {
                                <PageTitle text="Stream not found · Onair" />
                                <div class="page-error" data-testid="watch-missing" role="status">
                                    <h1>"Stream not found"</h1>
                                    <p class="muted">"There is no stream at this link, or it is private. A private stream plays from the link its broadcaster shares."</p>
                                    <p><a href="/">"See who is live"</a></p>
                                </div>
                            }.into_any()
                        }
                        Some((id, stream, watch)) => {
                            // Found: a stream the caller may see, or a private
                            // one opened from a link whose token plays it (the
                            // lookup refused, but the token is what counts).
                            #[cfg(feature = "ssr")]
                            if let Some(res) = use_context::<leptos_axum::ResponseOptions>() {
                                res.set_status(http::StatusCode::OK);
                            }
                            let path = watch.as_ref().map(|w| w.path.clone());
                            // A private stream opened from a shared link plays with the link's token.
                            let src = match (token.as_deref(), path) {
                                (Some(t), _) if !t.is_empty() => master_url(&id, Some(t)),
                                (_, Some(p)) => p,
                                _ => master_url(&id, None),
                            };
                            let captions = watch.as_ref().is_some_and(|w| w.captions);
                            let image = watch.as_ref().and_then(|w| w.thumbnail.clone());
                            let vod_captions = watch.as_ref().is_some_and(|w| w.vod_captions.is_some());
                            let vod = match (token.as_deref(), watch.and_then(|w| w.vod)) {
                                (Some(t), Some(_)) if !t.is_empty() => Some(format!("/vod/{id}/t/{t}/master.m3u8")),
                                (_, v) => v,
                            };
                            view! { <Watching id=id token=token stream=stream image=image src=src vod=vod start_at=start_at captions=captions vod_captions=vod_captions embed=embed /> }.into_any()
                        }
                    }
                })}
            </Suspense>
        </section>
    }
}

/// A `?t=` deep link: whole or fractional seconds, `90`, `90.5`, or `1m30s`.
pub fn parse_start(t: &str) -> Option<f64> {
    let t = t.trim();
    if let Ok(v) = t.parse::<f64>() {
        return (v.is_finite() && v >= 0.0).then_some(v);
    }
    let (mut total, mut num) = (0u64, String::new());
    for c in t.chars() {
        match c {
            '0'..='9' => num.push(c),
            'h' | 'm' | 's' => {
                let n: u64 = num.parse().ok()?;
                num.clear();
                total += n * match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
            }
            _ => return None,
        }
    }
    num.is_empty().then_some(total as f64)
}

/// Whether a state means the stream is over.
fn is_over(state: Option<StreamState>) -> bool {
    matches!(state, Some(StreamState::Ended | StreamState::Interrupted))
}

/// The page for a known stream id: header, player, viewer count and chat,
/// following the stream's room.
#[component]
fn Watching(
    id: String,
    token: Option<String>,
    stream: Option<Stream>,
    image: Option<String>,
    src: String,
    vod: Option<String>,
    start_at: Option<f64>,
    captions: bool,
    vod_captions: bool,
    embed: bool,
) -> impl IntoView {
    let recording_id = id.clone();
    let share_id = id.clone();
    // A private stream's page without a link token: its owner (or an admin)
    // is here, and may make links for others.
    let private = token.as_deref().is_none_or(str::is_empty)
        && stream
            .as_ref()
            .is_some_and(|s| s.visibility == Visibility::Private);
    let room = use_room(id.clone(), ClientRole::Viewer, token);
    // Heartbeats with playback quality for the broadcaster's analytics.
    let _meter = crate::analytics::use_beacons(id, room);
    let initial = stream.as_ref().map(|s| s.state);
    // The room's word once it is connected, the server-rendered state before.
    let state = Signal::derive(move || room.state().or(initial));
    let is_vod = vod.is_some() && is_over(initial);
    if embed {
        let title = stream
            .as_ref()
            .map_or_else(|| "Live stream".to_string(), |s| s.title.clone());
        // LIVE is said once, by the player's live-edge button.
        return view! {
            <PageTitle text=format!("{title} · Onair") />
            <p class="embed-bar">
                <a href=format!("/watch/{share_id}") target="_blank" rel="noopener" data-testid="embed-title">{title}</a>
            </p>
            <Body initial=initial state=state src=src vod=vod start_at=start_at id=recording_id room=room captions=captions vod_captions=vod_captions />
        }
        .into_any();
    }
    view! {
        <Header stream=stream image=image room=room />
        <div class="watch-layout">
            <div class="watch-main">
                <Body initial=initial state=state src=src vod=vod start_at=start_at id=recording_id room=room captions=captions vod_captions=vod_captions />
                <Share id=share_id vod=is_vod private=private />
            </div>
            <Chat room=room />
        </div>
    }
    .into_any()
}

/// The code that embeds stream `id` from `origin` in another page.
pub fn embed_code(origin: &str, id: &str) -> String {
    format!(
        "<iframe src=\"{origin}/embed/{id}\" width=\"640\" height=\"400\" \
         allow=\"autoplay; fullscreen; picture-in-picture\"></iframe>"
    )
}

/// "Share": the link, the link at the current time (recordings), and the
/// code to embed the player in another site, each with a copy button.
#[component]
fn Share(id: String, vod: bool, private: bool) -> impl IntoView {
    let copied = RwSignal::new(None::<&'static str>);
    // The page's own origin, known in the browser.
    let origin = RwSignal::new(String::new());
    Effect::new(move |_| {
        if let Ok(o) = window().location().origin() {
            origin.set(o);
        }
    });
    let id = StoredValue::new(id);
    let link = move || format!("{}/watch/{}", origin.get(), id.get_value());
    let embed = move || embed_code(&origin.get(), &id.get_value());
    let at_time = move || {
        // The player's position, whole seconds.
        #[cfg(feature = "hydrate")]
        let t = document()
            .query_selector("[data-testid=player]")
            .ok()
            .flatten()
            .and_then(|e| {
                use wasm_bindgen::JsCast;
                e.dyn_into::<web_sys::HtmlMediaElement>().ok()
            })
            .map_or(0, |v| v.current_time().max(0.0) as u64);
        #[cfg(not(feature = "hydrate"))]
        let t = 0u64;
        format!("{}?t={t}", link())
    };
    view! {
        <details class="share" data-testid="share">
            <summary>"Share"</summary>
            <div class="field-row">
                <span class="field-label">"Link"</span>
                <code data-testid="share-link">{link}</code>
                <button type="button" class="button-secondary" data-testid="copy-link"
                    on:click=move |_| copy(link(), copied, "link")>"Copy"</button>
                {vod.then(|| view! {
                    <button type="button" class="button-secondary" data-testid="copy-link-time"
                        on:click=move |_| copy(at_time(), copied, "link at this time")>"Copy at current time"</button>
                })}
            </div>
            <div class="field-row">
                <span class="field-label">"Embed"</span>
                <code data-testid="share-embed">{embed}</code>
                <button type="button" class="button-secondary" data-testid="copy-embed"
                    on:click=move |_| copy(embed(), copied, "embed code")>"Copy"</button>
            </div>
            {private.then(|| view! { <PrivateLink id=id.get_value() copied=copied /> })}
            {move || copied.get().map(|what| view! {
                <p class="muted" role="status" data-testid="share-copied">{format!("Copied the {what}.")}</p>
            })}
        </details>
    }
}

/// For a private stream's owner: a link with a playback token that lasts
/// the chosen time, for people without an account.
#[component]
fn PrivateLink(id: String, copied: RwSignal<Option<&'static str>>) -> impl IntoView {
    let secs = RwSignal::new(SHARE_LINK_CHOICES[1].0);
    let made = Action::new(move |(id, secs): &(String, u64)| create_share_link(id.clone(), *secs));
    let result = made.value();
    view! {
        <div class="field-row" data-testid="private-link">
            <span class="field-label">"Private link"</span>
            <span class="muted">"This stream is private: the link above works only for you. Make one that plays for anyone who has it, for "</span>
            <select data-testid="private-link-expiry" aria-label="How long the link works"
                on:change=move |ev| {
                    if let Ok(v) = event_target_value(&ev).parse::<u64>() {
                        secs.set(v);
                    }
                }>
                {SHARE_LINK_CHOICES.iter().map(|(s, label)| view! {
                    <option value=s.to_string() selected=*s == SHARE_LINK_CHOICES[1].0>{*label}</option>
                }).collect_view()}
            </select>
            <button type="button" class="button-secondary" data-testid="private-link-create"
                disabled=move || made.pending().get()
                on:click=move |_| { made.dispatch((id.clone(), secs.get_untracked())); }>
                {move || if made.pending().get() { "Making…" } else { "Make link" }}
            </button>
        </div>
        {move || result.get().map(|r| match r {
            Ok(link) => {
                let url = link.url.clone();
                let until = crate::components::stream_meta::format_time(&link.expires_at);
                view! {
                    <div class="field-row">
                        <code data-testid="private-link-url">{link.url.clone()}</code>
                        <button type="button" class="button-secondary" data-testid="copy-private-link"
                            on:click=move |_| copy(url.clone(), copied, "private link")>"Copy"</button>
                        <span class="muted" data-testid="private-link-until">{format!("Works until {until}.")}</span>
                    </div>
                }.into_any()
            }
            Err(e) => view! { <p class="error" role="alert" data-testid="private-link-error">{e.to_string()}</p> }.into_any(),
        })}
    }
}

/// Title, broadcaster, viewers and description, with the page title and
/// link previews.
#[component]
fn Header(stream: Option<Stream>, image: Option<String>, room: RoomHandle) -> impl IntoView {
    // LIVE is said once, by the player's live-edge button (the header says
    // nothing of it; the state shows in the player and the notes).
    let Some(s) = stream else {
        return view! {
            <PageTitle text="Watch · Onair" />
            <header class="watch-head">
                <h1 data-testid="watch-title">"Live stream"</h1>
                <p class="watch-viewers"><ViewerCount room=room /></p>
            </header>
        }
        .into_any();
    };
    let page_title = format!("{} · Onair", s.title);
    let summary = if s.description.is_empty() {
        format!("{} on Onair", s.owner.username)
    } else {
        s.description.chars().take(200).collect()
    };
    view! {
        <PageTitle text=page_title.clone() />
        <Meta property="og:title" content=s.title.clone() />
        <Meta property="og:description" content=summary.clone() />
        <Meta property="og:type" content="video.other" />
        {image.map(|src| view! { <Meta property="og:image" content=src /> })}
        <Meta name="description" content=summary />
        <header class="watch-head">
            <h1 data-testid="watch-title">
                {s.title.clone()}
            </h1>
            <p class="muted" data-testid="watch-owner">"by " <a href=format!("/u/{}", s.owner.username)>{s.owner.username.clone()}</a></p>
            <p class="watch-viewers"><ViewerCount room=room /></p>
            {is_over(Some(s.state)).then(|| {
                let when = s.started_at.as_deref().map(crate::components::stream_meta::format_time);
                let length = crate::components::stream_meta::broadcast_length(s.started_at.as_deref(), s.ended_at.as_deref());
                view! {
                    <p class="muted" data-testid="watch-when">
                        {when.map(|w| format!("Streamed {w}"))}
                        {length.map(|l| view! { " · " <span data-testid="watch-length">{l}</span> })}
                    </p>
                }
            })}
            {(!s.description.is_empty()).then(|| view! { <p class="watch-description" data-testid="watch-description">{s.description.clone()}</p> })}
        </header>
    }
    .into_any()
}

/// The player, or what to say instead. `initial` is the state the page was
/// rendered with; `state` follows the room.
#[component]
fn Body(
    initial: Option<StreamState>,
    state: Signal<Option<StreamState>>,
    src: String,
    vod: Option<String>,
    start_at: Option<f64>,
    id: String,
    room: RoomHandle,
    captions: bool,
    vod_captions: bool,
) -> impl IntoView {
    let ended = Signal::derive(move || is_over(state.get()));
    let has_vod = vod.is_some() && is_over(initial);
    let was_over = is_over(initial);
    let reload_href = format!("/watch/{id}");
    // Once over, the player has stopped for good: a new live session needs
    // a reload.
    let saw_end = RwSignal::new(is_over(initial));
    Effect::new(move |_| {
        if ended.get() {
            saw_end.set(true);
        }
    });
    let live_again = move || saw_end.get() && state.get() == Some(StreamState::Live);
    let notes = move || {
        let reload_href = reload_href.clone();
        view! {
            {move || (ended.get() && !has_vod).then(|| view! {
                <p class="watch-ended" data-testid="watch-ended" role="status">
                    "This stream has ended. "
                    {(!was_over).then(|| view! {
                        <a href=reload_href.clone() data-testid="watch-recording-link">"Watch the recording"</a>
                        " (it is ready a few seconds after the end)."
                    })}
                </p>
            })}
            {move || (state.get() == Some(StreamState::Idle)).then(|| view! {
                <p class="muted" data-testid="watch-not-started">"The stream starts when the broadcaster goes live. This page starts it by itself."</p>
            })}
            {move || (state.get() == Some(StreamState::Live) && room.room.with(|r| r.broadcaster_away)).then(|| view! {
                <p class="watch-away" data-testid="watch-away" role="status">
                    "Waiting for the broadcaster… Their connection dropped; the stream continues here by itself when they are back."
                </p>
            })}
            {move || live_again().then(|| view! {
                <p class="watch-again" data-testid="watch-live-again" role="status">
                    "The broadcaster is live again. "
                    <button type="button" class="link-button" on:click=|_| { let _ = window().location().reload(); }>"Reload to watch"</button>
                </p>
            })}
        }
    };
    if is_over(initial) {
        if let Some(vod) = vod {
            // The recording's captions sit beside its master playlist.
            let captions_url =
                vod_captions.then(|| vod.replace("master.m3u8", "subs/captions.vtt"));
            let (chapters, chapters_vtt) = recording_chapters(&id);
            return view! {
                <p class="watch-recording" data-testid="watch-recording">"Recording of the stream. "</p>
                <Player src=vod vod=true start_at=start_at.unwrap_or(0.0) captions_url=captions_url.unwrap_or_default() captions_note="This recording has no captions"
                    chapters=chapters chapters_vtt=chapters_vtt />
                <RecordingDownload id=id.clone() />
                <TranscriptLink id=id />
            }
            .into_any();
        }
        return view! { {notes} <TranscriptLink id=id /> }.into_any();
    }
    view! {
        {notes}
        {if captions {
            let caption = Signal::derive(move || room.room.with(|r| r.caption.clone()));
            view! { <Player src=src ended=ended live_captions=caption /> }.into_any()
        } else {
            view! { <Player src=src ended=ended captions_note="Live captions are off on this server" /> }.into_any()
        }}
    }
    .into_any()
}

/// A recording's chapters, read in the browser (none until they answer, and
/// none on a refusal: the list stays hidden), and the URL of their WebVTT
/// track, both with the page's playback token for a private stream.
fn recording_chapters(id: &str) -> (Signal<Vec<Chapter>>, String) {
    let token = use_query_map()
        .read_untracked()
        .get("token")
        .filter(|t| !t.is_empty());
    let list = RwSignal::new(Vec::<Chapter>::new());
    let vtt = crate::chapters::vtt_url(id, token.as_deref());
    let id = id.to_string();
    Effect::new(move |_| {
        let (id, token) = (id.clone(), token.clone());
        leptos::task::spawn_local(async move {
            if let Ok(s) = crate::chapters::get_chapters(id, token).await {
                list.set(s.chapters.map(|c| c.chapters).unwrap_or_default());
            }
        });
    });
    (list.into(), vtt)
}

/// The link to a finished stream's transcript page (with the page's
/// playback token, for a private stream opened from a shared link).
#[component]
fn TranscriptLink(id: String) -> impl IntoView {
    let token = use_query_map().read_untracked().get("token");
    let href = match crate::transcripts::url_token(token.as_deref()) {
        Some(t) => format!("/watch/{id}/transcript?token={t}"),
        None => format!("/watch/{id}/transcript"),
    };
    view! {
        <p class="muted">
            <a href=href data-testid="watch-transcript-link">"Transcript"</a>
            " (what was said, with times; downloads)"
        </p>
    }
}

/// The MP4 download link (with its size), or how far its making has got.
#[component]
fn RecordingDownload(id: String) -> impl IntoView {
    use crate::format::human_bytes;
    use crate::recordings::{get_recording, Mp4State};
    let rec = Resource::new(
        move || id.clone(),
        |id| async move { get_recording(id).await.ok() },
    );
    view! {
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let Some(r) = rec.await else { return ().into_any() };
                match (r.mp4.state, r.mp4.url.clone()) {
                    (Mp4State::Ready, Some(url)) => view! {
                        <p class="muted" data-testid="recording-download">
                            <a href=url download="">"Download MP4"</a>
                            {r.mp4.bytes.map(|b| format!(" ({})", human_bytes(b)))}
                        </p>
                    }.into_any(),
                    (Mp4State::Failed, _) => view! {
                        <p class="muted" data-testid="recording-download">"The MP4 download could not be made."</p>
                    }.into_any(),
                    _ => view! {
                        <p class="muted" data-testid="recording-download">
                            {format!("The MP4 download is being made ({}%).", r.mp4.progress)}
                        </p>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[cfg(test)]
mod tests {
    use super::{master_url, parse_start};
    use crate::ids::valid_stream_id as valid_id;

    #[test]
    fn start_links_read_seconds_or_minutes() {
        assert_eq!(parse_start("10"), Some(10.0));
        assert_eq!(parse_start("12.5"), Some(12.5));
        assert_eq!(parse_start("1m30s"), Some(90.0));
        assert_eq!(parse_start("1h"), Some(3600.0));
        assert_eq!(parse_start("-3"), None);
        assert_eq!(parse_start("abc"), None);
        assert_eq!(parse_start("1m30"), None);
    }

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
