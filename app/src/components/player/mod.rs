//! The player: hls.js (in low-latency mode for live streams), driven from
//! Rust through wasm-bindgen. Recordings play with the same player, with a
//! time display, a speed menu and a start position (`?t=`). Safari, which
//! plays HLS natively, gets the URL directly.
//!
//! The page shows what is happening instead of a black box: waiting for the
//! stream to start (the master playlist is not there yet), buffering, playing,
//! or a playback error, and it retries by itself (or at once, on "Retry").
//!
//! Under the video: a LIVE badge that turns into "Go live" when the viewer is
//! behind the live edge (a click jumps back), and a quality menu with Auto and
//! each rendition. Volume and fullscreen are the video element's own controls.
//! When the component goes away (client-side navigation), hls.js is destroyed
//! and no retry stays scheduled.
//!
//! Here: the component and the state its controls share; `captions.rs`: the
//! CC button's lines, live or from a recording's WebVTT; `hls.rs` (browser
//! only): the glue to hls.js and the video element.

use leptos::prelude::*;

use crate::chapters::Chapter;
use crate::components::chapters::ChapterList;
use crate::format::clock;
use crate::protocol::events::Caption;

mod captions;
#[cfg(feature = "hydrate")]
mod hls;

use captions::CaptionState;
pub use captions::{live_caption, TimedCaption};

/// What the player is doing, for the status line under the video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayerStatus {
    /// Loading the player or the playlist.
    Connecting,
    /// The stream is not live (yet): retrying.
    Waiting,
    /// Playing.
    Playing,
    /// The broadcaster ended the stream (the playlist says `EXT-X-ENDLIST`, or
    /// playback reached the end).
    Ended,
    /// Something failed: the message, and whether a retry is scheduled.
    Error(String),
}

impl PlayerStatus {
    fn text(&self, vod: bool) -> String {
        match self {
            PlayerStatus::Connecting => "Connecting…".into(),
            PlayerStatus::Waiting if vod => "The recording is not ready yet. Retrying…".into(),
            PlayerStatus::Waiting => "The stream is not live yet. Waiting for it to start…".into(),
            PlayerStatus::Playing if vod => "Recording".into(),
            // The live-edge button says LIVE; saying it here too would be twice.
            PlayerStatus::Playing => "Playing".into(),
            PlayerStatus::Ended if vod => "End of the recording.".into(),
            PlayerStatus::Ended => "The stream has ended.".into(),
            PlayerStatus::Error(m) => format!("{m} Retrying…"),
        }
    }
}

/// What a key does on the watch page's player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    /// `k` or space.
    PlayPause,
    /// `m`.
    Mute,
    /// `f`.
    Fullscreen,
    /// `c`.
    Captions,
    /// `←` / `→`: seconds back or forward (within what can be played).
    Seek(i32),
}

/// The player's keys, as its tooltip says them.
pub const SHORTCUTS_HELP: &str =
    "Keys: k or space play/pause · m mute · f fullscreen · c captions · ← → 5 s";

/// The shortcut for `key` (a `KeyboardEvent.key`), unless a modifier is held
/// or the focus is somewhere keys mean something else: a field being typed
/// in (`INPUT`, `TEXTAREA`, `SELECT`, content-editable), or, for space, a
/// button or link (space presses those).
pub fn shortcut(key: &str, modifiers: bool, focus_tag: &str, editable: bool) -> Option<Shortcut> {
    let typing = editable || matches!(focus_tag, "INPUT" | "TEXTAREA" | "SELECT");
    if modifiers || typing {
        return None;
    }
    Some(match key {
        " " if matches!(focus_tag, "BUTTON" | "A") => return None,
        "k" | "K" | " " => Shortcut::PlayPause,
        "m" | "M" => Shortcut::Mute,
        "f" | "F" => Shortcut::Fullscreen,
        "c" | "C" => Shortcut::Captions,
        "ArrowLeft" => Shortcut::Seek(-5),
        "ArrowRight" => Shortcut::Seek(5),
        _ => return None,
    })
}

/// Playback speeds the recording player offers.
pub const SPEEDS: [f64; 6] = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0];

/// One quality level as the menu shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualityLevel {
    /// hls.js's level index.
    pub index: i32,
    /// "720p", or the bitrate when the height is unknown.
    pub label: String,
}

/// The label of a level: its height, or its bitrate.
pub fn level_label(height: u32, bitrate: u32) -> String {
    if height > 0 {
        format!("{height}p")
    } else {
        format!("{} kbit/s", bitrate / 1000)
    }
}

/// Whether the viewer is far enough behind the live edge to offer "Go live":
/// more than three seconds, or more than 1.5 target latencies, behind. Times
/// are in milliseconds.
pub fn behind_live(edge_ms: i64, position_ms: i64, target_latency_ms: i64) -> bool {
    let threshold = 3000.max(target_latency_ms.saturating_mul(3) / 2);
    edge_ms.saturating_sub(position_ms) > threshold
}

/// Everything the controls under the video show, shared with the hls.js glue.
#[derive(Clone, Copy)]
pub struct PlayerState {
    /// What is happening.
    pub status: RwSignal<PlayerStatus>,
    /// The renditions, lowest first (empty until the master playlist loads,
    /// and on Safari, which picks by itself).
    pub levels: RwSignal<Vec<QualityLevel>>,
    /// The chosen level: -1 is Auto.
    pub chosen: RwSignal<i32>,
    /// The level Auto plays now.
    pub playing_level: RwSignal<i32>,
    /// Behind the live edge.
    pub behind: RwSignal<bool>,
    /// Bumped by "Retry now" and "Go live".
    pub retry: RwSignal<u32>,
    /// Bumped by "Go live".
    pub go_live: RwSignal<u32>,
    /// Playback position, ms (recordings).
    pub position_ms: RwSignal<i64>,
    /// The picture's program time (Unix ms, from `EXT-X-PROGRAM-DATE-TIME`),
    /// live streams only.
    pub program_ms: RwSignal<Option<i64>>,
    /// Duration, ms, once known (recordings).
    pub duration_ms: RwSignal<i64>,
}

impl PlayerState {
    fn new() -> Self {
        Self {
            status: RwSignal::new(PlayerStatus::Connecting),
            levels: RwSignal::new(Vec::new()),
            chosen: RwSignal::new(-1),
            playing_level: RwSignal::new(-1),
            behind: RwSignal::new(false),
            retry: RwSignal::new(0),
            go_live: RwSignal::new(0),
            position_ms: RwSignal::new(0),
            program_ms: RwSignal::new(None),
            duration_ms: RwSignal::new(0),
        }
    }
}

/// A video element playing the HLS stream at `src` (a master playlist URL).
#[component]
pub fn Player(
    /// The master playlist URL.
    src: String,
    /// Becomes true when the page learns that the stream ended (from the
    /// events socket), before the playlist says so: the status says "ended".
    #[prop(optional, into)]
    ended: Option<Signal<bool>>,
    /// Play a recording: no live edge; a time display and a speed menu.
    #[prop(optional)]
    vod: bool,
    /// Where a recording starts, seconds (`?t=` deep links).
    #[prop(optional)]
    start_at: Option<f64>,
    /// Live captions: the latest one from the events socket.
    #[prop(optional, into)]
    live_captions: Option<Signal<Option<Caption>>>,
    /// A recording's WebVTT captions file, shown against the position.
    #[prop(optional)]
    captions_url: Option<String>,
    /// Why there are no captions, for the CC button's tooltip.
    #[prop(optional)]
    captions_note: Option<&'static str>,
    /// A recording's chapters: listed under the video (a click seeks), and
    /// given to the video as a `chapters` track from `chapters_vtt`.
    #[prop(optional, into)]
    chapters: Option<Signal<Vec<Chapter>>>,
    /// The WebVTT chapters track of `chapters`.
    #[prop(optional)]
    chapters_vtt: Option<String>,
) -> impl IntoView {
    let video = NodeRef::<leptos::html::Video>::new();
    let state = PlayerState::new();
    let cc = CaptionState::new(
        live_captions,
        captions_url,
        state.position_ms,
        state.program_ms,
    );
    let status = state.status;
    if let Some(ended) = ended {
        Effect::new(move |_| {
            if ended.get() {
                status.set(PlayerStatus::Ended);
            }
        });
    }
    #[cfg(feature = "hydrate")]
    {
        let meter = use_context::<crate::analytics::Meter>();
        let session = hls::Session::new(src.clone(), state, meter, vod, start_at);
        let started = session.clone();
        Effect::new(move |_| {
            if let Some(el) = video.get() {
                started.start(el);
            }
        });
        // hls.js and any scheduled retry go with the page.
        let ended = send_wrapper::SendWrapper::new(session.clone());
        on_cleanup(move || ended.stop());
        let retried = send_wrapper::SendWrapper::new(session.clone());
        Effect::new(move |prev: Option<u32>| {
            let n = state.retry.get();
            if prev.is_some_and(|p| p != n) {
                retried.retry_now();
            }
            n
        });
        let live = send_wrapper::SendWrapper::new(session.clone());
        Effect::new(move |prev: Option<u32>| {
            let n = state.go_live.get();
            if prev.is_some_and(|p| p != n) {
                live.jump_to_live();
            }
            n
        });
        let chooser = send_wrapper::SendWrapper::new(session);
        Effect::new(move |prev: Option<i32>| {
            let level = state.chosen.get();
            if prev.is_some_and(|p| p != level) {
                chooser.choose_level(level);
            }
            level
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (&src, start_at);
    let playing = move || status.get() == PlayerStatus::Playing;
    let set_speed = move |ev: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        if let (Ok(rate), Some(el)) = (event_target_value(&ev).parse::<f64>(), video.get()) {
            el.set_playback_rate(rate);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    let cc_on = cc.on;
    let cc_available = cc.available;
    let cc_title = move || match (cc_available.get(), cc_on.get()) {
        (false, _) => captions_note
            .unwrap_or("No captions for this stream")
            .to_string(),
        (true, true) => "Hide captions".to_string(),
        (true, false) => "Show captions".to_string(),
    };
    let lines = cc.lines;
    let live_start = cc.live_start;
    // Browsers only autoplay muted: say so, and unmute with one click.
    let muted = RwSignal::new(true);
    let on_volume = move |_: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        if let Some(el) = video.get() {
            muted.set(el.muted() || el.volume() == 0.0);
        }
    };
    let unmute = move |_: leptos::ev::MouseEvent| {
        #[cfg(feature = "hydrate")]
        if let Some(el) = video.get() {
            el.set_muted(false);
            if el.volume() == 0.0 {
                el.set_volume(1.0);
            }
        }
        muted.set(false);
    };
    // A chapter's click: play from its start.
    let seek = Callback::new(move |ms: i64| {
        state.position_ms.set(ms);
        #[cfg(feature = "hydrate")]
        if let Some(el) = video.get_untracked() {
            el.set_current_time(ms as f64 / 1000.0);
            if el.paused() {
                let _ = el.play();
            }
        }
    });
    let track = chapters.zip(chapters_vtt).map(|(list, url)| {
        move || {
            list.with(|c| !c.is_empty()).then(|| {
                view! { <track kind="chapters" label="Chapters" src=url.clone() data-testid="chapters-track" /> }
            })
        }
    });
    let chapter_list = chapters.map(|list| {
        view! {
            <ChapterList chapters=list position_ms=state.position_ms.into()
                duration_ms=state.duration_ms.into() seek=seek />
        }
    });
    // Keyboard shortcuts, page-wide while the player is on it (not while
    // typing in the chat or another field).
    let screen = NodeRef::<leptos::html::Div>::new();
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let keys = window_event_listener(leptos::ev::keydown, move |e| {
            let target = e
                .target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok());
            let focus = target.map(|t| (t.tag_name(), t.is_content_editable()));
            let (tag, editable) = focus.unwrap_or_default();
            let modifiers = e.ctrl_key() || e.meta_key() || e.alt_key();
            let Some(action) = shortcut(&e.key(), modifiers, &tag, editable) else {
                return;
            };
            let Some(el) = video.get_untracked() else {
                return;
            };
            e.prevent_default();
            match action {
                Shortcut::PlayPause => {
                    if el.paused() {
                        let _ = el.play();
                    } else {
                        let _ = el.pause();
                    }
                }
                Shortcut::Mute => {
                    let mute = !el.muted();
                    el.set_muted(mute);
                    if !mute && el.volume() == 0.0 {
                        el.set_volume(1.0);
                    }
                    muted.set(mute);
                }
                Shortcut::Fullscreen => {
                    let document = window().document();
                    if document
                        .as_ref()
                        .and_then(|d| d.fullscreen_element())
                        .is_some()
                    {
                        if let Some(d) = document {
                            d.exit_fullscreen();
                        }
                    } else if let Some(s) = screen.get_untracked() {
                        let _ = s.request_fullscreen();
                    }
                }
                Shortcut::Captions => {
                    if cc.available.get_untracked() {
                        cc.toggle();
                    }
                }
                Shortcut::Seek(seconds) => {
                    let seekable = el.seekable();
                    let last = seekable.length().checked_sub(1);
                    let range =
                        last.and_then(|i| Some((seekable.start(0).ok()?, seekable.end(i).ok()?)));
                    if let Some((start, end)) = range {
                        let to = (el.current_time() + f64::from(seconds)).clamp(start, end);
                        el.set_current_time(to);
                    }
                }
            }
        });
        on_cleanup(move || keys.remove());
    }
    view! {
        <div class="player" aria-keyshortcuts="k m f c ArrowLeft ArrowRight" title=SHORTCUTS_HELP>
            <div class="player-screen" node_ref=screen>
                <video
                    node_ref=video
                    data-testid="player"
                    controls=true
                    muted=true
                    autoplay=true
                    playsinline=true
                    on:volumechange=on_volume
                >{track}</video>
                <button type="button" class="unmute" data-testid="unmute"
                    hidden=move || !muted.get() || !playing()
                    on:click=unmute>
                    <span aria-hidden="true">"🔇 "</span>"Muted · click to unmute"
                </button>
                <div class="captions" data-testid="captions" aria-live="polite" hidden=move || lines.with(Vec::is_empty)
                    data-start-ms=move || live_start.get().map(|ms| ms.to_string())>
                    {move || lines.get().into_iter().map(|l| view! { <span>{l}</span> }).collect_view()}
                </div>
            </div>
            <div class="player-bar">
                <button
                    type="button"
                    class="cc"
                    data-testid="cc"
                    aria-pressed=move || (cc_on.get() && cc_available.get()).to_string()
                    disabled=move || !cc_available.get()
                    title=cc_title
                    on:click=move |_| cc.toggle()
                >
                    "CC"
                </button>
                <button
                    type="button"
                    class="live-edge"
                    data-testid="live-edge"
                    data-behind=move || state.behind.get().to_string()
                    hidden=move || vod || !playing()
                    disabled=move || !state.behind.get()
                    title=move || if state.behind.get() { "Jump to the live edge" } else { "You are watching live" }
                    on:click=move |_| state.go_live.update(|n| *n += 1)
                >
                    {move || if state.behind.get() { "Go live" } else { "LIVE" }}
                </button>
                <p
                    class="player-status"
                    data-testid="player-status"
                    data-state=move || match status.get() {
                        PlayerStatus::Connecting => "connecting",
                        PlayerStatus::Waiting => "waiting",
                        PlayerStatus::Playing => "playing",
                        PlayerStatus::Ended => "ended",
                        PlayerStatus::Error(_) => "error",
                    }
                >
                    {move || status.get().text(vod)}
                </p>
                {vod.then(|| view! {
                    <span class="player-time" data-testid="player-time">
                        {move || format!("{} / {}", clock(state.position_ms.get()), clock(state.duration_ms.get()))}
                    </span>
                    <label class="speed">
                        "Speed "
                        <select data-testid="speed" on:change=set_speed>
                            {SPEEDS.iter().map(|s| view! {
                                <option value=s.to_string() selected=*s == 1.0>{format!("{s}×")}</option>
                            }).collect_view()}
                        </select>
                    </label>
                })}
                {move || matches!(status.get(), PlayerStatus::Error(_)).then(|| view! {
                    <button type="button" data-testid="player-retry" on:click=move |_| state.retry.update(|n| *n += 1)>
                        "Retry now"
                    </button>
                })}
                <label class="quality" hidden=move || state.levels.with(|l| l.len() < 2)>
                    "Quality "
                    <select
                        data-testid="quality"
                        prop:value=move || state.chosen.get().to_string()
                        on:change=move |ev| {
                            if let Ok(level) = event_target_value(&ev).parse::<i32>() {
                                state.chosen.set(level);
                            }
                        }
                    >
                        <option value="-1">
                            {move || {
                                let now = state.playing_level.get();
                                let label = state.levels.with(|l| l.iter().find(|q| q.index == now).map(|q| q.label.clone()));
                                match label {
                                    Some(l) if state.chosen.get() == -1 => format!("Auto ({l})"),
                                    _ => "Auto".to_string(),
                                }
                            }}
                        </option>
                        <For each=move || state.levels.get().into_iter().rev() key=|q| q.index let:q>
                            <option value=q.index.to_string()>{q.label.clone()}</option>
                        </For>
                    </select>
                </label>
            </div>
            {chapter_list}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::{behind_live, level_label, shortcut, Shortcut};

    #[test]
    fn keys_map_to_shortcuts_only_outside_fields() {
        assert_eq!(
            shortcut("k", false, "BODY", false),
            Some(Shortcut::PlayPause)
        );
        assert_eq!(
            shortcut(" ", false, "VIDEO", false),
            Some(Shortcut::PlayPause)
        );
        assert_eq!(shortcut("M", false, "BODY", false), Some(Shortcut::Mute));
        assert_eq!(
            shortcut("f", false, "DIV", false),
            Some(Shortcut::Fullscreen)
        );
        assert_eq!(
            shortcut("c", false, "BODY", false),
            Some(Shortcut::Captions)
        );
        assert_eq!(
            shortcut("ArrowLeft", false, "BODY", false),
            Some(Shortcut::Seek(-5))
        );
        assert_eq!(
            shortcut("ArrowRight", false, "BODY", false),
            Some(Shortcut::Seek(5))
        );
        // Typing in the chat, a select, or anything editable: the keys are text.
        assert_eq!(shortcut("m", false, "INPUT", false), None);
        assert_eq!(shortcut("k", false, "TEXTAREA", false), None);
        assert_eq!(shortcut("ArrowLeft", false, "SELECT", false), None);
        assert_eq!(shortcut("c", false, "DIV", true), None);
        // Space presses a focused button; k still works there.
        assert_eq!(shortcut(" ", false, "BUTTON", false), None);
        assert_eq!(
            shortcut("k", false, "BUTTON", false),
            Some(Shortcut::PlayPause)
        );
        // Browser and system shortcuts stay theirs.
        assert_eq!(shortcut("f", true, "BODY", false), None);
        assert_eq!(shortcut("x", false, "BODY", false), None);
    }

    #[test]
    fn levels_are_named_by_height_or_bitrate() {
        assert_eq!(level_label(720, 2_500_000), "720p");
        assert_eq!(level_label(0, 96_000), "96 kbit/s");
    }

    #[test]
    fn go_live_is_offered_only_well_behind_the_edge() {
        // Within three seconds of the edge: live.
        assert!(!behind_live(20_000, 17_500, 1_000));
        assert!(behind_live(20_000, 16_000, 1_000));
        // A long target latency widens the margin to 1.5 of it.
        assert!(!behind_live(20_000, 14_500, 4_000));
        assert!(behind_live(20_000, 13_500, 4_000));
        // Ahead of the computed edge (it moves in steps) is not behind.
        assert!(!behind_live(20_000, 21_000, 1_000));
    }
}
