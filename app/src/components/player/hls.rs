//! The browser's glue to hls.js (or Safari's native HLS) and the video
//! element: loading, retries, levels, the live edge, and the quality meter.

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
                let _ =
                    video.remove_event_listener_with_callback(event, f.as_ref().unchecked_ref());
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
            let status = if details.starts_with("manifestLoad") || details.starts_with("levelLoad")
            {
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
                "This browser cannot play live video (no Media Source Extensions or HLS).".into(),
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
