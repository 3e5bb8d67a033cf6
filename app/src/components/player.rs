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

use leptos::prelude::*;

use crate::format::clock;
use crate::protocol::events::Caption;
use crate::transcripts::{active_line, caption_lines, TranscriptLine};

/// Characters per caption line (two lines at most on screen).
const CAPTION_WIDTH: usize = 42;
/// `localStorage` key of the CC choice.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const CC_KEY: &str = "onair-cc";

/// How long a live caption stays after its own duration (which counts up
/// to 6 s), ms.
const CAPTION_HOLD_MS: i64 = 2000;
/// Live captions kept for a viewer who is behind the newest one.
#[cfg(feature = "hydrate")]
const CAPTION_QUEUE: usize = 32;

/// A live caption and when it is on screen, in program time (the stream's
/// `EXT-X-PROGRAM-DATE-TIME` clock, Unix ms): from its start, or from when it
/// arrived if the picture was already past its start (transcription takes a
/// few seconds, so a viewer at the live edge gets it late), for its duration
/// (at most 6 s) plus [`CAPTION_HOLD_MS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedCaption {
    /// The caption.
    pub caption: Caption,
    /// On screen from here (program ms).
    pub from_ms: i64,
    /// Until here (program ms).
    pub until_ms: i64,
}

impl TimedCaption {
    /// Times `caption`, which arrived while the picture showed `arrived_ms`.
    pub fn new(caption: Caption, arrived_ms: i64) -> Self {
        let from_ms = caption.start_ms.max(arrived_ms);
        let length = caption
            .end_ms
            .saturating_sub(caption.start_ms)
            .clamp(0, 6000);
        let until_ms = from_ms.saturating_add(length + CAPTION_HOLD_MS);
        TimedCaption {
            caption,
            from_ms,
            until_ms,
        }
    }
}

/// The caption for the picture at program time `now_ms`: the newest one
/// on screen at that moment. A caption the picture has not reached yet waits.
pub fn live_caption(
    queue: &std::collections::VecDeque<TimedCaption>,
    now_ms: i64,
) -> Option<&Caption> {
    queue
        .iter()
        .rev()
        .find(|c| c.from_ms <= now_ms && now_ms <= c.until_ms)
        .map(|c| &c.caption)
}

/// The captions: on or off (remembered per browser), and the two lines on
/// screen, from the live socket or from a recording's WebVTT against the
/// playback position.
#[derive(Clone, Copy)]
struct CaptionState {
    on: RwSignal<bool>,
    available: Signal<bool>,
    lines: Memo<Vec<String>>,
    /// The live caption's start (program ms) while one is timed on screen.
    live_start: Memo<Option<i64>>,
}

impl CaptionState {
    fn new(
        live: Option<Signal<Option<Caption>>>,
        url: Option<String>,
        position_ms: RwSignal<i64>,
        program_ms: RwSignal<Option<i64>>,
    ) -> Self {
        let on = RwSignal::new(false);
        // Live captions timed against the picture (when it has a program time).
        let queue = RwSignal::new(std::collections::VecDeque::<TimedCaption>::new());
        let cues = RwSignal::new(Vec::<TranscriptLine>::new());
        // The live caption on screen, cleared a moment after it ends.
        let live_text = RwSignal::new(None::<String>);
        #[cfg(feature = "hydrate")]
        {
            let stored = window()
                .local_storage()
                .ok()
                .flatten()
                .and_then(|s| s.get_item(CC_KEY).ok().flatten());
            on.set(stored.as_deref() == Some("on"));
            if let Some(url) = url.clone().filter(|u| !u.is_empty()) {
                leptos::task::spawn_local(async move {
                    if let Some(text) = fetch_text(&url).await {
                        cues.set(crate::transcripts::parse_vtt(&text));
                    }
                });
            }
            if let Some(live) = live {
                let shown = RwSignal::new(0u64);
                Effect::new(move |_| {
                    let Some(c) = live.get() else { return };
                    if let Some(now) = program_ms.get_untracked() {
                        queue.update(|q| {
                            q.push_back(TimedCaption::new(c.clone(), now));
                            while q.len() > CAPTION_QUEUE {
                                q.pop_front();
                            }
                        });
                    }
                    live_text.set(Some(c.text.clone()));
                    let n = shown.get_untracked() + 1;
                    shown.set(n);
                    let ms = (c.end_ms - c.start_ms).clamp(0, 6000) as u64 + 2000;
                    leptos::prelude::set_timeout(
                        move || {
                            if shown.get_untracked() == n {
                                live_text.set(None);
                            }
                        },
                        std::time::Duration::from_millis(ms),
                    );
                });
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (&url, position_ms, queue);
        let has_live = live.is_some();
        let available = Signal::derive(move || has_live || cues.with(|c| !c.is_empty()));
        let lines = Memo::new(move |_| {
            if !on.get() {
                return Vec::new();
            }
            let text = if has_live {
                // At the picture's time when the player knows it; as it
                // arrives otherwise.
                match program_ms.get() {
                    Some(now) => queue.with(|q| live_caption(q, now).map(|c| c.text.clone())),
                    None => live_text.get(),
                }
            } else {
                let at = position_ms.get();
                cues.with(|c| active_line(c, at).map(|l| l.text.clone()))
            };
            text.map(|t| caption_lines(&t, CAPTION_WIDTH))
                .unwrap_or_default()
        });
        let live_start = Memo::new(move |_| {
            let now = program_ms.get()?;
            queue.with(|q| live_caption(q, now).map(|c| c.start_ms))
        });
        CaptionState {
            live_start,
            on,
            available,
            lines,
        }
    }

    fn toggle(&self) {
        let on = !self.on.get_untracked();
        self.on.set(on);
        #[cfg(feature = "hydrate")]
        if let Ok(Some(storage)) = window().local_storage() {
            let _ = storage.set_item(CC_KEY, if on { "on" } else { "off" });
        }
    }
}

/// GETs a text file (same origin); `None` unless it answers 200.
#[cfg(feature = "hydrate")]
async fn fetch_text(url: &str) -> Option<String> {
    use wasm_bindgen::JsCast;
    let res = wasm_bindgen_futures::JsFuture::from(window().fetch_with_str(url))
        .await
        .ok()?
        .dyn_into::<web_sys::Response>()
        .ok()?;
    if !res.ok() {
        return None;
    }
    wasm_bindgen_futures::JsFuture::from(res.text().ok()?)
        .await
        .ok()?
        .as_string()
}

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
                ></video>
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
        </div>
    }
}

#[cfg(feature = "hydrate")]
mod hls {
    use std::cell::{Cell, RefCell};
    use std::rc::{Rc, Weak};

    use leptos::prelude::*;
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;
    use web_sys::HtmlVideoElement;

    use super::{behind_live, level_label, PlayerState, PlayerStatus, QualityLevel};
    use crate::browser::now_ms;

    /// Delay before retrying after the stream was not there or failed.
    const RETRY_MS: i32 = 3000;

    #[wasm_bindgen]
    extern "C" {
        /// The hls.js player class (a global from its script).
        type Hls;
        #[wasm_bindgen(static_method_of = Hls, js_name = isSupported)]
        fn is_supported() -> bool;
        #[wasm_bindgen(constructor)]
        fn new(config: &JsValue) -> Hls;
        #[wasm_bindgen(method, js_name = loadSource)]
        fn load_source(this: &Hls, url: &str);
        #[wasm_bindgen(method, js_name = attachMedia)]
        fn attach_media(this: &Hls, media: &HtmlVideoElement);
        #[wasm_bindgen(method)]
        fn on(this: &Hls, event: &str, callback: &JsValue);
        #[wasm_bindgen(method, js_name = recoverMediaError)]
        fn recover_media_error(this: &Hls);
        #[wasm_bindgen(method)]
        fn destroy(this: &Hls);
        #[wasm_bindgen(method, getter)]
        fn levels(this: &Hls) -> js_sys::Array;
        #[wasm_bindgen(method, setter = currentLevel)]
        fn set_current_level(this: &Hls, level: i32);
        #[wasm_bindgen(method, getter = liveSyncPosition)]
        fn live_sync_position(this: &Hls) -> Option<f64>;
        #[wasm_bindgen(method, getter = targetLatency)]
        fn target_latency(this: &Hls) -> Option<f64>;
        /// The wall-clock time of the playhead, from `EXT-X-PROGRAM-DATE-TIME`.
        #[wasm_bindgen(method, getter = playingDate)]
        fn playing_date(this: &Hls) -> Option<js_sys::Date>;
    }

    /// Reports to the page's quality meter, if it has one.
    fn measure(inner: &Inner, f: impl FnOnce(&mut crate::analytics::QualityMeter)) {
        if let Some(m) = inner.meter {
            m.update(f);
        }
    }

    fn global_has_hls() -> bool {
        js_sys::Reflect::has(&js_sys::global(), &JsValue::from_str("Hls")).unwrap_or(false)
    }

    /// Seconds from a browser API as integer milliseconds.
    fn ms(seconds: f64) -> i64 {
        (seconds * 1000.0).round() as i64
    }

    fn get(obj: &JsValue, key: &str) -> JsValue {
        js_sys::Reflect::get(obj, &key.into()).unwrap_or(JsValue::UNDEFINED)
    }

    /// The JS callbacks, made once per player and shared by every hls.js
    /// instance it creates, so retries do not pile up closures.
    struct Callbacks {
        on_error: Closure<dyn FnMut(JsValue, JsValue)>,
        on_level_updated: Closure<dyn FnMut(JsValue, JsValue)>,
        on_manifest: Closure<dyn FnMut(JsValue, JsValue)>,
        on_level_switched: Closure<dyn FnMut(JsValue, JsValue)>,
        on_playing: Closure<dyn FnMut()>,
        on_waiting: Closure<dyn FnMut()>,
        on_timeupdate: Closure<dyn FnMut()>,
        on_retry: Closure<dyn FnMut()>,
        on_script: Closure<dyn FnMut()>,
        on_script_error: Closure<dyn FnMut()>,
    }

    struct Inner {
        src: String,
        state: PlayerState,
        vod: bool,
        start_at: Option<f64>,
        video: RefCell<Option<HtmlVideoElement>>,
        hls: RefCell<Option<Hls>>,
        native: Cell<bool>,
        timer: Cell<Option<i32>>,
        stopped: Cell<bool>,
        callbacks: RefCell<Option<Callbacks>>,
        meter: Option<crate::analytics::Meter>,
    }

    /// One player on the page: its video element, its hls.js instance (or
    /// native playback) and its retry timer.
    #[derive(Clone)]
    pub struct Session(Rc<Inner>);

    impl Session {
        /// A player for `src` that reports into `state`.
        pub fn new(
            src: String,
            state: PlayerState,
            meter: Option<crate::analytics::Meter>,
            vod: bool,
            start_at: Option<f64>,
        ) -> Self {
            Session(Rc::new(Inner {
                src,
                state,
                vod,
                start_at,
                video: RefCell::new(None),
                hls: RefCell::new(None),
                native: Cell::new(false),
                timer: Cell::new(None),
                stopped: Cell::new(false),
                callbacks: RefCell::new(None),
                meter,
            }))
        }

        /// Plays in `video`: loads hls.js once, then the stream.
        pub fn start(&self, video: HtmlVideoElement) {
            if self.0.stopped.get() || self.0.video.borrow().is_some() {
                return;
            }
            let callbacks = callbacks(Rc::downgrade(&self.0));
            for (event, cb) in [
                ("playing", &callbacks.on_playing),
                ("waiting", &callbacks.on_waiting),
                ("timeupdate", &callbacks.on_timeupdate),
            ] {
                let _ = video.add_event_listener_with_callback(event, cb.as_ref().unchecked_ref());
            }
            *self.0.video.borrow_mut() = Some(video);
            let script_onload = callbacks.on_script.as_ref().clone();
            let script_onerror = callbacks.on_script_error.as_ref().clone();
            *self.0.callbacks.borrow_mut() = Some(callbacks);
            if global_has_hls() {
                play(&self.0);
                return;
            }
            let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
                return;
            };
            let Some(script) = doc
                .create_element("script")
                .ok()
                .and_then(|s| s.dyn_into::<web_sys::HtmlScriptElement>().ok())
            else {
                return;
            };
            // Where the shell says `make build` put hls.js (a content-hashed name).
            script.set_src(&crate::assets::hls_url());
            script.set_onload(Some(script_onload.unchecked_ref()));
            script.set_onerror(Some(script_onerror.unchecked_ref()));
            if let Some(head) = doc.head() {
                let _ = head.append_child(&script);
            }
        }

        /// The page is going away: destroys hls.js and cancels any retry.
        pub fn stop(&self) {
            let inner = &self.0;
            inner.stopped.set(true);
            cancel_timer(inner);
            if let Some(hls) = inner.hls.borrow_mut().take() {
                hls.destroy();
            }
            if let (Some(video), Some(cb)) = (
                inner.video.borrow().as_ref(),
                inner.callbacks.borrow().as_ref(),
            ) {
                for (event, f) in [
                    ("playing", &cb.on_playing),
                    ("waiting", &cb.on_waiting),
                    ("timeupdate", &cb.on_timeupdate),
                ] {
                    let _ = video
                        .remove_event_listener_with_callback(event, f.as_ref().unchecked_ref());
                }
            }
            // The callbacks are dropped later, never from inside one of them.
            let leftover = inner.callbacks.borrow_mut().take();
            if let Some(cb) = leftover {
                let later = Closure::once_into_js(move || drop(cb));
                if let Some(w) = web_sys::window() {
                    let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                        later.unchecked_ref(),
                        0,
                    );
                }
            }
        }

        /// "Retry now": starts over at once.
        pub fn retry_now(&self) {
            let inner = &self.0;
            if inner.stopped.get() || inner.video.borrow().is_none() {
                return;
            }
            cancel_timer(inner);
            if let Some(hls) = inner.hls.borrow_mut().take() {
                hls.destroy();
            }
            let _ = inner.state.status.try_set(PlayerStatus::Connecting);
            if global_has_hls() {
                play(inner);
            }
        }

        /// "Go live": seeks to where hls.js would play at the target latency
        /// (natively: the end of the seekable range) and plays.
        pub fn jump_to_live(&self) {
            let inner = &self.0;
            let Some(video) = inner.video.borrow().clone() else {
                return;
            };
            if let Some(edge) = live_edge(inner, &video) {
                video.set_current_time(edge as f64 / 1000.0);
            }
            let _ = video.play();
            let _ = inner.state.behind.try_set(false);
        }

        /// The quality menu: -1 is Auto.
        pub fn choose_level(&self, level: i32) {
            if let Some(hls) = self.0.hls.borrow().as_ref() {
                hls.set_current_level(level);
            }
        }
    }

    fn cancel_timer(inner: &Inner) {
        if let (Some(id), Some(w)) = (inner.timer.take(), web_sys::window()) {
            w.clear_timeout_with_handle(id);
        }
    }

    /// The live edge in milliseconds of media time.
    fn live_edge(inner: &Inner, video: &HtmlVideoElement) -> Option<i64> {
        if inner.native.get() {
            let seekable = video.seekable();
            let n = seekable.length();
            return (n > 0).then(|| seekable.end(n - 1).ok()).flatten().map(ms);
        }
        inner
            .hls
            .borrow()
            .as_ref()
            .and_then(|h| h.live_sync_position())
            .map(ms)
    }

    fn callbacks(weak: Weak<Inner>) -> Callbacks {
        let w = weak.clone();
        let on_playing = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = w.upgrade() {
                measure(&inner, |m| m.playing(now_ms()));
                set_playing(&inner);
            }
        });
        let w = weak.clone();
        let on_waiting = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = w.upgrade() {
                measure(&inner, |m| m.waiting(now_ms()));
            }
        });
        let w = weak.clone();
        let on_timeupdate = Closure::<dyn FnMut()>::new(move || {
            let Some(inner) = w.upgrade() else { return };
            let Some(video) = inner.video.borrow().clone() else {
                return;
            };
            if inner.vod {
                let _ = inner.state.position_ms.try_set(ms(video.current_time()));
                let d = video.duration();
                if d.is_finite() {
                    let _ = inner.state.duration_ms.try_set(ms(d));
                }
                if video.ended() {
                    let _ = inner.state.status.try_set(PlayerStatus::Ended);
                    return;
                }
            }
            if video.paused() {
                return;
            }
            // Playback advancing means playing, whichever event came first.
            measure(&inner, |m| m.playing(now_ms()));
            set_playing(&inner);
            if inner.vod {
                return;
            }
            let date = inner.hls.borrow().as_ref().and_then(|h| h.playing_date());
            if let Some(date) = date {
                let at = date.get_time();
                if at.is_finite() {
                    measure(&inner, |m| m.latency(now_ms() - at as i64));
                    let _ = inner.state.program_ms.try_set(Some(at as i64));
                }
            }
            let target = inner
                .hls
                .borrow()
                .as_ref()
                .and_then(|h| h.target_latency())
                .map(ms)
                .unwrap_or(3000);
            if let Some(edge) = live_edge(&inner, &video) {
                let behind = behind_live(edge, ms(video.current_time()), target);
                if inner.state.behind.try_get_untracked() != Some(behind) {
                    let _ = inner.state.behind.try_set(behind);
                }
            }
        });
        let w = weak.clone();
        let on_error =
            Closure::<dyn FnMut(JsValue, JsValue)>::new(move |_event: JsValue, data: JsValue| {
                let Some(inner) = w.upgrade() else { return };
                if get(&data, "fatal").as_bool() != Some(true) {
                    return;
                }
                measure(&inner, |m| m.error());
                let kind = get(&data, "type").as_string().unwrap_or_default();
                let details = get(&data, "details").as_string().unwrap_or_default();
                if kind == "mediaError" {
                    let _ = inner.state.status.try_set(PlayerStatus::Error(
                        "The video could not be decoded.".into(),
                    ));
                    if let Some(hls) = inner.hls.borrow().as_ref() {
                        hls.recover_media_error();
                    }
                    return;
                }
                if let Some(hls) = inner.hls.borrow_mut().take() {
                    hls.destroy();
                }
                let status =
                    if details.starts_with("manifestLoad") || details.starts_with("levelLoad") {
                        PlayerStatus::Waiting
                    } else {
                        PlayerStatus::Error(format!("Playback failed ({details})."))
                    };
                let _ = inner.state.status.try_set(status);
                let _ = inner.state.levels.try_set(Vec::new());
                // Start over after a pause: the stream may go live, or come back.
                schedule_retry(&inner);
            });
        let w = weak.clone();
        // The playlist says EXT-X-ENDLIST: the broadcaster ended the stream
        // (what is buffered still plays out).
        let on_level_updated =
            Closure::<dyn FnMut(JsValue, JsValue)>::new(move |_event: JsValue, data: JsValue| {
                let Some(inner) = w.upgrade() else { return };
                if !inner.vod && get(&get(&data, "details"), "live").as_bool() == Some(false) {
                    let _ = inner.state.status.try_set(PlayerStatus::Ended);
                }
            });
        let w = weak.clone();
        let on_manifest =
            Closure::<dyn FnMut(JsValue, JsValue)>::new(move |_event: JsValue, _data: JsValue| {
                let Some(inner) = w.upgrade() else { return };
                let levels = match inner.hls.borrow().as_ref() {
                    Some(h) => h.levels(),
                    None => return,
                };
                let out: Vec<QualityLevel> = levels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        let height = get(&l, "height").as_f64().unwrap_or(0.0) as u32;
                        let bitrate = get(&l, "bitrate").as_f64().unwrap_or(0.0) as u32;
                        QualityLevel {
                            index: i as i32,
                            label: level_label(height, bitrate),
                        }
                    })
                    .collect();
                let _ = inner.state.levels.try_set(out);
                let chosen = inner.state.chosen.try_get_untracked().unwrap_or(-1);
                if chosen >= 0 {
                    if let Some(h) = inner.hls.borrow().as_ref() {
                        h.set_current_level(chosen);
                    }
                }
            });
        let w = weak.clone();
        let on_level_switched =
            Closure::<dyn FnMut(JsValue, JsValue)>::new(move |_event: JsValue, data: JsValue| {
                let Some(inner) = w.upgrade() else { return };
                if let Some(level) = get(&data, "level").as_f64() {
                    let _ = inner.state.playing_level.try_set(level as i32);
                    let info = inner
                        .hls
                        .borrow()
                        .as_ref()
                        .map(|h| h.levels().get(level as u32));
                    if let Some(l) = info.filter(|l| l.is_object()) {
                        let height = get(&l, "height").as_f64().unwrap_or(0.0) as u32;
                        let bitrate = get(&l, "bitrate").as_f64().unwrap_or(0.0) as u32;
                        measure(&inner, |m| {
                            m.rendition(level_label(height, bitrate), bitrate)
                        });
                    }
                }
            });
        let w = weak.clone();
        let on_retry = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = w.upgrade() {
                inner.timer.set(None);
                play(&inner);
            }
        });
        let w = weak.clone();
        let on_script = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = w.upgrade() {
                play(&inner);
            }
        });
        let w = weak;
        let on_script_error = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = w.upgrade() {
                let _ = inner.state.status.try_set(PlayerStatus::Error(
                    "The player could not be loaded.".into(),
                ));
            }
        });
        Callbacks {
            on_error,
            on_level_updated,
            on_manifest,
            on_level_switched,
            on_playing,
            on_waiting,
            on_timeupdate,
            on_retry,
            on_script,
            on_script_error,
        }
    }

    fn set_playing(inner: &Inner) {
        let _ = inner.state.status.try_update(|s| {
            if !matches!(s, PlayerStatus::Ended | PlayerStatus::Playing) {
                *s = PlayerStatus::Playing;
            }
        });
    }

    fn schedule_retry(inner: &Inner) {
        if inner.stopped.get() {
            return;
        }
        cancel_timer(inner);
        let cb = inner.callbacks.borrow();
        let (Some(cb), Some(w)) = (cb.as_ref(), web_sys::window()) else {
            return;
        };
        if let Ok(id) = w.set_timeout_with_callback_and_timeout_and_arguments_0(
            cb.on_retry.as_ref().unchecked_ref(),
            RETRY_MS,
        ) {
            inner.timer.set(Some(id));
        }
    }

    fn play(inner: &Inner) {
        if inner.stopped.get() || inner.hls.borrow().is_some() {
            return;
        }
        let Some(video) = inner.video.borrow().clone() else {
            return;
        };
        if !global_has_hls() || !Hls::is_supported() {
            // Safari on iOS plays HLS natively. (Chromium also answers
            // canPlayType for HLS now, so hls.js, with low-latency mode and the
            // quality menu, is preferred wherever it runs.)
            if video
                .can_play_type("application/vnd.apple.mpegurl")
                .is_empty()
            {
                let _ = inner.state.status.try_set(PlayerStatus::Error(
                    "This browser cannot play live video (no Media Source Extensions or HLS)."
                        .into(),
                ));
                return;
            }
            inner.native.set(true);
            measure(inner, |m| m.loading(now_ms()));
            match inner.start_at {
                // A media fragment starts native playback there.
                Some(t) if inner.vod => video.set_src(&format!("{}#t={t}", inner.src)),
                _ => video.set_src(&inner.src),
            }
            let _ = video.play();
            return;
        }
        let cb = inner.callbacks.borrow();
        let Some(cb) = cb.as_ref() else {
            return;
        };
        let config = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&config, &"lowLatencyMode".into(), &(!inner.vod).into());
        if !inner.vod {
            // Catch up (up to 1.5× speed, pitch kept) after a stall or a slow
            // start instead of staying further behind live for good.
            let _ = js_sys::Reflect::set(&config, &"maxLiveSyncPlaybackRate".into(), &1.5.into());
        }
        if let (true, Some(t)) = (inner.vod, inner.start_at) {
            let _ = js_sys::Reflect::set(&config, &"startPosition".into(), &t.into());
        }
        let hls = Hls::new(&config);
        // Browser tests and support staff can inspect the live player.
        let _ = js_sys::Reflect::set(&js_sys::global(), &"onairPlayer".into(), &hls);
        hls.on("hlsError", cb.on_error.as_ref());
        hls.on("hlsLevelUpdated", cb.on_level_updated.as_ref());
        hls.on("hlsManifestParsed", cb.on_manifest.as_ref());
        hls.on("hlsLevelSwitched", cb.on_level_switched.as_ref());
        measure(inner, |m| m.loading(now_ms()));
        hls.load_source(&inner.src);
        hls.attach_media(&video);
        *inner.hls.borrow_mut() = Some(hls);
    }
}

#[cfg(test)]
mod tests {
    use super::{behind_live, level_label, live_caption, shortcut, Shortcut, TimedCaption};
    use crate::protocol::events::Caption;
    use std::collections::VecDeque;

    fn cue(start_ms: i64, end_ms: i64, text: &str) -> Caption {
        Caption {
            start_ms,
            end_ms,
            text: text.into(),
        }
    }

    #[test]
    fn live_captions_wait_for_the_picture() {
        // A viewer 8 s behind: the caption for 100.0–103.0 s arrives at 92 s of
        // their picture and shows only from 100 s, until 105 s.
        let mut q = VecDeque::new();
        q.push_back(TimedCaption::new(cue(100_000, 103_000, "hello"), 92_000));
        assert_eq!(live_caption(&q, 92_000), None);
        assert_eq!(live_caption(&q, 99_999), None);
        assert_eq!(
            live_caption(&q, 100_000).map(|c| c.text.as_str()),
            Some("hello")
        );
        assert_eq!(
            live_caption(&q, 105_000).map(|c| c.text.as_str()),
            Some("hello")
        );
        assert_eq!(live_caption(&q, 105_001), None);
        // The next one takes over when the picture reaches it.
        q.push_back(TimedCaption::new(cue(103_000, 106_000, "world"), 95_000));
        assert_eq!(
            live_caption(&q, 102_000).map(|c| c.text.as_str()),
            Some("hello")
        );
        assert_eq!(
            live_caption(&q, 103_000).map(|c| c.text.as_str()),
            Some("world")
        );
    }

    #[test]
    fn late_captions_show_as_they_arrive() {
        // At the live edge transcription lags: the caption for 100–103 s
        // arrives when the picture is at 104 s and shows for its 3 s + 2 s.
        let mut q = VecDeque::new();
        q.push_back(TimedCaption::new(cue(100_000, 103_000, "late"), 104_000));
        assert_eq!(
            live_caption(&q, 104_000).map(|c| c.text.as_str()),
            Some("late")
        );
        assert_eq!(
            live_caption(&q, 109_000).map(|c| c.text.as_str()),
            Some("late")
        );
        assert_eq!(live_caption(&q, 109_001), None);
        // A long window shows at most 6 s + 2 s; hostile times do not overflow.
        let long = TimedCaption::new(cue(0, 60_000, "long"), 0);
        assert_eq!(long.until_ms, 8_000);
        let odd = TimedCaption::new(cue(i64::MAX - 1, i64::MIN, "odd"), i64::MAX);
        assert_eq!(odd.until_ms, i64::MAX);
    }

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
