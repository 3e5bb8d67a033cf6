//! The live player: hls.js in low-latency mode, driven from Rust through
//! wasm-bindgen. Safari, which plays HLS natively, gets the URL directly.
//!
//! The page shows what is happening instead of a black box: waiting for the
//! stream to start (the master playlist is not there yet), buffering, playing,
//! or a playback error, and it retries by itself.

use leptos::prelude::*;

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
    fn text(&self) -> String {
        match self {
            PlayerStatus::Connecting => "Connecting…".into(),
            PlayerStatus::Waiting => "The stream is not live yet. Waiting for it to start…".into(),
            PlayerStatus::Playing => "Live".into(),
            PlayerStatus::Ended => "The stream has ended.".into(),
            PlayerStatus::Error(m) => format!("{m} Retrying…"),
        }
    }
}

/// A video element playing the HLS stream at `src` (a master playlist URL).
#[component]
pub fn Player(
    /// The master playlist URL.
    src: String,
) -> impl IntoView {
    let video = NodeRef::<leptos::html::Video>::new();
    let status = RwSignal::new(PlayerStatus::Connecting);
    #[cfg(feature = "hydrate")]
    {
        let src = src.clone();
        Effect::new(move |_| {
            if let Some(el) = video.get() {
                hls::start(el, src.clone(), status);
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = &src;
    view! {
        <div class="player">
            <video
                node_ref=video
                data-testid="player"
                controls=true
                muted=true
                autoplay=true
                playsinline=true
            ></video>
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
                {move || status.get().text()}
            </p>
        </div>
    }
}

#[cfg(feature = "hydrate")]
mod hls {
    use leptos::prelude::*;
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;
    use web_sys::HtmlVideoElement;

    use super::PlayerStatus;

    /// Where `make build` puts hls.js.
    const HLS_JS: &str = "/pkg/hls.min.js";
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
    }

    fn global_has_hls() -> bool {
        js_sys::Reflect::has(&js_sys::global(), &JsValue::from_str("Hls")).unwrap_or(false)
    }

    /// Loads hls.js once, then plays `src` in `video`.
    pub fn start(video: HtmlVideoElement, src: String, status: RwSignal<PlayerStatus>) {
        if global_has_hls() {
            play(video, src, status);
            return;
        }
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
            return;
        };
        let Ok(script) = doc.create_element("script") else {
            return;
        };
        let Ok(script) = script.dyn_into::<web_sys::HtmlScriptElement>() else {
            return;
        };
        script.set_src(HLS_JS);
        let onload = Closure::once_into_js(move || play(video, src, status));
        script.set_onload(Some(onload.unchecked_ref()));
        let onerror = Closure::once_into_js(move || {
            status.set(PlayerStatus::Error(
                "The player could not be loaded.".into(),
            ))
        });
        script.set_onerror(Some(onerror.unchecked_ref()));
        if let Some(head) = doc.head() {
            let _ = head.append_child(&script);
        }
    }

    fn play(video: HtmlVideoElement, src: String, status: RwSignal<PlayerStatus>) {
        if !Hls::is_supported() {
            // Safari and iOS play HLS natively.
            video.set_src(&src);
            status.set(PlayerStatus::Playing);
            return;
        }
        let config = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&config, &"lowLatencyMode".into(), &true.into());
        let handle: JsValue = Hls::new(&config).into();
        let hls: &Hls = handle.unchecked_ref();
        // Browser tests and support staff can inspect the live player.
        let _ = js_sys::Reflect::set(&js_sys::global(), &"onairPlayer".into(), &handle);

        let on_playing = Closure::<dyn FnMut()>::new(move || {
            status.update(|s| {
                if *s != PlayerStatus::Ended {
                    *s = PlayerStatus::Playing;
                }
            })
        });
        let _ =
            video.add_event_listener_with_callback("playing", on_playing.as_ref().unchecked_ref());
        on_playing.forget();

        let current = handle.clone();
        let retry_video = video.clone();
        let retry_src = src.clone();
        let on_error =
            Closure::<dyn FnMut(JsValue, JsValue)>::new(move |_event: JsValue, data: JsValue| {
                let get = |k: &str| js_sys::Reflect::get(&data, &k.into()).ok();
                let fatal = get("fatal").and_then(|v| v.as_bool()).unwrap_or(false);
                if !fatal {
                    return;
                }
                let kind = get("type").and_then(|v| v.as_string()).unwrap_or_default();
                let details = get("details")
                    .and_then(|v| v.as_string())
                    .unwrap_or_default();
                let this: &Hls = current.unchecked_ref();
                if kind == "mediaError" {
                    status.set(PlayerStatus::Error(
                        "The video could not be decoded.".into(),
                    ));
                    this.recover_media_error();
                    return;
                }
                this.destroy();
                if details.starts_with("manifestLoad") || details.starts_with("levelLoad") {
                    status.set(PlayerStatus::Waiting);
                } else {
                    status.set(PlayerStatus::Error(format!("Playback failed ({details}).")));
                }
                // Start over after a pause: the stream may go live, or come back.
                let video = retry_video.clone();
                let src = retry_src.clone();
                let again = Closure::once_into_js(move || play(video, src, status));
                if let Some(w) = web_sys::window() {
                    let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                        again.unchecked_ref(),
                        RETRY_MS,
                    );
                }
            });
        hls.on("hlsError", on_error.as_ref());
        on_error.forget();
        // The playlist says EXT-X-ENDLIST: the broadcaster ended the stream
        // (what is buffered still plays out).
        let on_level =
            Closure::<dyn FnMut(JsValue, JsValue)>::new(move |_event: JsValue, data: JsValue| {
                let live = js_sys::Reflect::get(&data, &"details".into())
                    .and_then(|d| js_sys::Reflect::get(&d, &"live".into()))
                    .ok()
                    .and_then(|v| v.as_bool());
                if live == Some(false) {
                    status.set(PlayerStatus::Ended);
                }
            });
        hls.on("hlsLevelUpdated", on_level.as_ref());
        on_level.forget();
        hls.load_source(&src);
        hls.attach_media(&video);
    }
}
