//! The studio's browser side: devices, preview, `MediaRecorder`, and the
//! ingest WebSocket, all driving [`Publisher`]. Browser objects are not `Send`,
//! so the studio's state lives in a thread-local (the page has one studio).

use std::cell::RefCell;
use std::collections::VecDeque;

use js_sys::{Array, Object, Reflect, Uint8Array};
use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    BlobEvent, CloseEvent, HtmlCanvasElement, HtmlVideoElement, MediaDeviceInfo, MediaDeviceKind,
    MediaRecorder, MediaStream, MediaStreamConstraints, MediaStreamTrack, MessageEvent, WebSocket,
};

use super::{Preset, StudioStatus, PREFERRED_MIME_TYPES};
use crate::browser::{monotonic_ms, now_ms};
use crate::publisher::{Frame, Phase, Publisher};

/// Unacked media kept while the server is unreachable (about a minute at 5 Mbit/s).
const MAX_PENDING_BYTES: usize = 48 * 1024 * 1024;
/// MediaRecorder timeslice: a frame waits up to this long in the browser
/// before it is sent, so it adds half of it to the glass-to-glass latency on
/// average (docs/benchmarks.md, "Glass-to-glass latency").
const CHUNK_MS: i32 = 100;
/// Keyframe interval asked of the browser's encoder: every second, so
/// passthrough segments can end on time with a segment target of 1 s or more.
const KEYFRAME_MS: i32 = 1000;
/// Reconnect backoff: first delay and cap, in milliseconds.
const BACKOFF_MS: (f64, f64) = (500.0, 10_000.0);

/// What the broadcaster picked.
pub struct Choice {
    pub screen: bool,
    pub pip: bool,
    pub camera: String,
    pub mic: String,
    pub preset: Preset,
}

#[derive(Default)]
struct Core {
    /// What is previewed and recorded.
    stream: Option<MediaStream>,
    /// Every captured track (the composite's sources too), stopped at the end.
    tracks: Vec<MediaStreamTrack>,
    recorder: Option<MediaRecorder>,
    /// Counts recorders: a chunk from a replaced one is dropped.
    recorder_generation: u32,
    /// What the recorder was created with (a replacement gets the same).
    recorder_options: Option<Object>,
    ws: Option<WebSocket>,
    publisher: Option<Publisher>,
    stream_id: String,
    token: String,
    started_ms: f64,
    /// (time ms, total bytes sent) samples for the bitrate.
    sent: VecDeque<(f64, u64)>,
    attempts: u32,
    status: Option<RwSignal<StudioStatus>>,
    timers: Vec<i32>,
}

thread_local! {
    static CORE: RefCell<Core> = RefCell::new(Core::default());
}

fn obj(pairs: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (k, v) in pairs {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o
}

fn message(e: &JsValue) -> String {
    Reflect::get(e, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

fn set_status(f: impl FnOnce(&mut StudioStatus)) {
    let signal = CORE.with(|c| c.borrow().status);
    if let Some(s) = signal {
        s.update(f);
    }
}

fn fail(text: String) {
    set_status(|s| {
        s.phase = "failed".into();
        s.error = Some(text);
    });
}

/// Asks for the devices and shows the preview.
pub fn preview(
    choice: Choice,
    video: NodeRef<leptos::html::Video>,
    status: RwSignal<StudioStatus>,
    cameras: RwSignal<Vec<(String, String)>>,
    mics: RwSignal<Vec<(String, String)>>,
) {
    CORE.with(|c| c.borrow_mut().status = Some(status));
    stop_capture();
    status.update(|s| {
        s.error = None;
        s.phase = "idle".into();
    });
    leptos::task::spawn_local(async move {
        match capture(&choice).await {
            Ok((stream, tracks)) => {
                if let Some(el) = video.get_untracked() {
                    let el: &HtmlVideoElement = &el;
                    el.set_src_object(Some(&stream));
                }
                CORE.with(|c| {
                    let mut c = c.borrow_mut();
                    c.stream = Some(stream);
                    c.tracks = tracks;
                });
                status.update(|s| s.phase = "previewing".into());
                // Labels are only readable after permission was granted.
                if let Ok((cams, mcs)) = devices().await {
                    cameras.set(cams);
                    mics.set(mcs);
                }
            }
            Err(e) => fail(format!("Could not open the devices: {}", message(&e))),
        }
    });
}

async fn devices() -> Result<(Vec<(String, String)>, Vec<(String, String)>), JsValue> {
    let md = web_sys::window()
        .ok_or(JsValue::NULL)?
        .navigator()
        .media_devices()?;
    let list: Array = JsFuture::from(md.enumerate_devices()?)
        .await?
        .unchecked_into();
    let (mut cams, mut mics) = (Vec::new(), Vec::new());
    for d in list.iter() {
        let d: MediaDeviceInfo = d.unchecked_into();
        let entry = (d.device_id(), d.label());
        match d.kind() {
            MediaDeviceKind::Videoinput => cams.push(entry),
            MediaDeviceKind::Audioinput => mics.push(entry),
            _ => {}
        }
    }
    Ok((cams, mics))
}

fn device(id: &str, extra: &[(&str, JsValue)]) -> JsValue {
    let mut pairs: Vec<(&str, JsValue)> = extra.to_vec();
    if !id.is_empty() {
        pairs.push(("deviceId", obj(&[("exact", id.into())]).into()));
    }
    obj(&pairs).into()
}

async fn user_media(video: JsValue, audio: JsValue) -> Result<MediaStream, JsValue> {
    let md = web_sys::window()
        .ok_or(JsValue::NULL)?
        .navigator()
        .media_devices()?;
    let constraints: MediaStreamConstraints =
        obj(&[("video", video), ("audio", audio)]).unchecked_into();
    Ok(
        JsFuture::from(md.get_user_media_with_constraints(&constraints)?)
            .await?
            .unchecked_into(),
    )
}

fn tracks_of(stream: &MediaStream) -> Vec<MediaStreamTrack> {
    stream
        .get_tracks()
        .iter()
        .map(|t| t.unchecked_into())
        .collect()
}

/// Opens the chosen devices. Returns the stream to record and every track to
/// stop later.
async fn capture(choice: &Choice) -> Result<(MediaStream, Vec<MediaStreamTrack>), JsValue> {
    let size = [
        (
            "width",
            obj(&[("ideal", choice.preset.width.into())]).into(),
        ),
        (
            "height",
            obj(&[("ideal", choice.preset.height.into())]).into(),
        ),
        ("frameRate", obj(&[("ideal", 30.into())]).into()),
    ];
    let mic = device(&choice.mic, &[]);
    if !choice.screen {
        let stream = user_media(device(&choice.camera, &size), mic).await?;
        let tracks = tracks_of(&stream);
        return Ok((stream, tracks));
    }
    let md = web_sys::window()
        .ok_or(JsValue::NULL)?
        .navigator()
        .media_devices()?;
    let screen: MediaStream = JsFuture::from(md.get_display_media()?)
        .await?
        .unchecked_into();
    let voice = user_media(JsValue::FALSE, mic).await?;
    let mut tracks = tracks_of(&screen);
    tracks.extend(tracks_of(&voice));
    let out = MediaStream::new()?;
    if choice.pip {
        let camera = user_media(device(&choice.camera, &size), JsValue::FALSE).await?;
        tracks.extend(tracks_of(&camera));
        let composite = composite(&screen, &camera)?;
        for t in composite.get_video_tracks().iter() {
            out.add_track(&t.unchecked_into());
        }
    } else {
        for t in screen.get_video_tracks().iter() {
            out.add_track(&t.unchecked_into());
        }
    }
    for t in voice.get_audio_tracks().iter() {
        out.add_track(&t.unchecked_into());
    }
    Ok((out, tracks))
}

/// Draws the screen with the camera in the bottom-right corner into a canvas,
/// 30 times a second, and records the canvas.
fn composite(screen: &MediaStream, camera: &MediaStream) -> Result<MediaStream, JsValue> {
    let doc = web_sys::window()
        .and_then(|w| w.document())
        .ok_or(JsValue::NULL)?;
    let video_of = |s: &MediaStream| -> Result<HtmlVideoElement, JsValue> {
        let v: HtmlVideoElement = doc.create_element("video")?.unchecked_into();
        v.set_muted(true);
        v.set_src_object(Some(s));
        let _ = v.play();
        Ok(v)
    };
    let (big, small) = (video_of(screen)?, video_of(camera)?);
    let canvas: HtmlCanvasElement = doc.create_element("canvas")?.unchecked_into();
    canvas.set_width(1280);
    canvas.set_height(720);
    let ctx: web_sys::CanvasRenderingContext2d = canvas
        .get_context("2d")?
        .ok_or(JsValue::NULL)?
        .unchecked_into();
    let draw = Closure::<dyn FnMut()>::new(move || {
        let _ = ctx.draw_image_with_html_video_element_and_dw_and_dh(&big, 0.0, 0.0, 1280.0, 720.0);
        let _ = ctx
            .draw_image_with_html_video_element_and_dw_and_dh(&small, 960.0, 520.0, 300.0, 180.0);
    });
    if let Some(w) = web_sys::window() {
        if let Ok(id) = w.set_interval_with_callback_and_timeout_and_arguments_0(
            draw.as_ref().unchecked_ref(),
            33,
        ) {
            CORE.with(|c| c.borrow_mut().timers.push(id));
        }
    }
    draw.forget();
    let capture = Reflect::get(&canvas, &"captureStream".into())?;
    let capture: js_sys::Function = capture.unchecked_into();
    Ok(capture.call1(&canvas, &30.into())?.unchecked_into())
}

fn stop_capture() {
    CORE.with(|c| {
        let mut c = c.borrow_mut();
        for t in c.tracks.drain(..) {
            t.stop();
        }
        if let Some(w) = web_sys::window() {
            for id in c.timers.drain(..) {
                w.clear_interval_with_handle(id);
            }
        }
        c.stream = None;
    });
}

fn best_mime_type() -> String {
    PREFERRED_MIME_TYPES
        .iter()
        .find(|m| MediaRecorder::is_type_supported(m))
        .map(|m| m.to_string())
        .unwrap_or_default()
}

/// Starts recording and publishing the previewed stream.
pub fn go_live(stream_id: String, token: String, preset: Preset, status: RwSignal<StudioStatus>) {
    let Some(stream) = CORE.with(|c| c.borrow().stream.clone()) else {
        fail("Start the preview first.".into());
        return;
    };
    let mime = best_mime_type();
    let options = obj(&[
        ("mimeType", mime.as_str().into()),
        ("videoBitsPerSecond", preset.video_bps.into()),
        ("audioBitsPerSecond", 128_000.into()),
        ("videoKeyFrameIntervalDuration", KEYFRAME_MS.into()),
    ]);
    CORE.with(|c| c.borrow_mut().recorder_options = Some(options));
    CORE.with(|c| {
        let mut c = c.borrow_mut();
        c.status = Some(status);
        c.stream_id = stream_id;
        c.token = token;
        c.started_ms = monotonic_ms();
        c.sent.clear();
        c.attempts = 0;
        c.publisher = Some(Publisher::new(
            c.token.clone(),
            mime.clone(),
            now_ms(),
            MAX_PENDING_BYTES,
        ));
    });
    status.update(|s| {
        s.mime_type = mime;
        s.error = None;
        s.phase = "connecting".into();
    });
    if let Err(e) = start_recorder(&stream) {
        return fail(e);
    }
    connect();
    // The status panel ticks once a second (elapsed time, bitrate).
    let tick = Closure::<dyn FnMut()>::new(refresh);
    if let Some(w) = web_sys::window() {
        if let Ok(id) = w.set_interval_with_callback_and_timeout_and_arguments_0(
            tick.as_ref().unchecked_ref(),
            1000,
        ) {
            CORE.with(|c| c.borrow_mut().timers.push(id));
        }
    }
    tick.forget();
}

/// Starts a new recorder on `stream` (replacing the current one, whose late
/// chunks are dropped) and feeds its chunks to the publisher.
fn start_recorder(stream: &MediaStream) -> Result<(), String> {
    let (options, generation, old) = CORE.with(|c| {
        let mut c = c.borrow_mut();
        c.recorder_generation = c.recorder_generation.wrapping_add(1);
        (
            c.recorder_options.clone().unwrap_or_else(Object::new),
            c.recorder_generation,
            c.recorder.take(),
        )
    });
    if let Some(old) = old {
        old.set_ondataavailable(None);
        if old.state() == web_sys::RecordingState::Recording {
            let _ = old.stop();
        }
    }
    let recorder = MediaRecorder::new_with_media_stream_and_media_recorder_options(
        stream,
        options.unchecked_ref(),
    )
    .map_err(|e| format!("This browser cannot record: {}", message(&e)))?;
    let on_data = Closure::<dyn FnMut(BlobEvent)>::new(move |e: BlobEvent| {
        let Some(blob) = e.data() else { return };
        if blob.size() == 0.0 {
            return;
        }
        leptos::task::spawn_local(async move {
            if let Ok(buf) = JsFuture::from(blob.array_buffer()).await {
                // Read after the await: a chunk of a recorder replaced
                // meanwhile continues a container the server does not have.
                if CORE.with(|c| c.borrow().recorder_generation) != generation {
                    return;
                }
                let bytes = Uint8Array::new(&buf).to_vec();
                let frames = with_publisher(|p| p.on_chunk(bytes));
                send(frames);
                refresh();
            }
        });
    });
    recorder.set_ondataavailable(Some(on_data.as_ref().unchecked_ref()));
    on_data.forget();
    recorder
        .start_with_time_slice(CHUNK_MS)
        .map_err(|e| format!("The recorder did not start: {}", message(&e)))?;
    CORE.with(|c| c.borrow_mut().recorder = Some(recorder));
    Ok(())
}

/// A reconnect landed on a new session (another node, after the owner
/// died): it needs a new container, so a new recorder on the same capture.
fn restart_recorder_if_asked() {
    if !with_publisher(|p| p.take_recorder_restart()) {
        return;
    }
    let Some(stream) = CORE.with(|c| c.borrow().stream.clone()) else {
        return;
    };
    if let Err(e) = start_recorder(&stream) {
        fail(e);
    }
}

fn with_publisher<T: Default>(f: impl FnOnce(&mut Publisher) -> T) -> T {
    CORE.with(|c| c.borrow_mut().publisher.as_mut().map(f).unwrap_or_default())
}

fn send(frames: Vec<Frame>) {
    let ws = CORE.with(|c| c.borrow().ws.clone());
    let Some(ws) = ws else { return };
    for f in frames {
        let _ = match f {
            Frame::Text(t) => ws.send_with_str(&t),
            Frame::Binary(b) => ws.send_with_u8_array(&b),
        };
    }
}

fn ingest_url(stream_id: &str) -> Option<String> {
    let loc = web_sys::window()?.location();
    let scheme = if loc.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!(
        "{scheme}://{}/api/v1/streams/{stream_id}/ingest",
        loc.host().ok()?
    ))
}

fn connect() {
    let Some(url) = CORE.with(|c| ingest_url(&c.borrow().stream_id)) else {
        return fail("Cannot work out the server address.".into());
    };
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(e) => return fail(format!("Cannot connect: {}", message(&e))),
    };
    ws.set_binary_type(web_sys::BinaryType::Arraybuffer);
    let onopen = Closure::<dyn FnMut()>::new(move || {
        let hello = with_publisher(|p| vec![p.on_open()]);
        send(hello);
        refresh();
    });
    let onmessage = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        if let Some(text) = e.data().as_string() {
            let frames = with_publisher(|p| p.on_message(&text));
            if with_publisher(|p| p.phase() == Phase::Live) {
                CORE.with(|c| c.borrow_mut().attempts = 0);
            }
            send(frames);
            restart_recorder_if_asked();
            refresh();
        }
    });
    let this = ws.clone();
    let onclose = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
        let current = CORE.with(|c| c.borrow().ws.as_ref().is_some_and(|w| w == &this));
        if !current {
            return;
        }
        CORE.with(|c| c.borrow_mut().ws = None);
        with_publisher(|p| p.on_close(e.code(), &e.reason()));
        let reconnect = with_publisher(|p| p.wants_connection());
        refresh();
        if reconnect {
            schedule_reconnect();
        } else {
            finish_recording();
        }
    });
    ws.set_onopen(Some(onopen.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
    ws.set_onclose(Some(onclose.as_ref().unchecked_ref()));
    onopen.forget();
    onmessage.forget();
    onclose.forget();
    CORE.with(|c| c.borrow_mut().ws = Some(ws));
}

/// Exponential backoff with jitter, so many studios do not reconnect in step.
fn schedule_reconnect() {
    let attempts = CORE.with(|c| {
        let mut c = c.borrow_mut();
        c.attempts += 1;
        c.attempts
    });
    let delay =
        crate::retry::backoff_ms(attempts, BACKOFF_MS.0, BACKOFF_MS.1, js_sys::Math::random());
    let again = Closure::once_into_js(connect);
    if let Some(w) = web_sys::window() {
        let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
            again.unchecked_ref(),
            delay as i32,
        );
    }
}

/// Ends the stream: the recorder stops (its last chunk still goes out), then
/// `end` is sent once the server has everything.
pub fn end(status: RwSignal<StudioStatus>) {
    status.update(|s| s.phase = "ending".into());
    let recorder = CORE.with(|c| c.borrow().recorder.clone());
    if let Some(r) = recorder {
        let onstop = Closure::once_into_js(move || {
            // The final dataavailable fires before stop: give its async read a moment.
            let later = Closure::once_into_js(move || {
                let frames = with_publisher(|p| p.end());
                send(frames);
                refresh();
            });
            if let Some(w) = web_sys::window() {
                let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                    later.unchecked_ref(),
                    200,
                );
            }
        });
        r.set_onstop(Some(onstop.unchecked_ref()));
        let _ = r.stop();
    }
}

fn finish_recording() {
    let recorder = CORE.with(|c| c.borrow_mut().recorder.take());
    if let Some(r) = recorder {
        if r.state() == web_sys::RecordingState::Recording {
            let _ = r.stop();
        }
    }
    stop_capture();
    CORE.with(|c| {
        if let Some(w) = web_sys::window() {
            for id in c.borrow_mut().timers.drain(..) {
                w.clear_interval_with_handle(id);
            }
        }
    });
}

/// Copies the publisher's state into the status panel.
fn refresh() {
    let Some((phase, stats, failure, started, sent)) = CORE.with(|c| {
        let mut c = c.borrow_mut();
        let started = c.started_ms;
        let p = c.publisher.as_ref()?;
        let (phase, stats, failure) = (p.phase(), p.stats(), p.failure().map(ToString::to_string));
        let t = monotonic_ms();
        c.sent.push_back((t, stats.bytes_sent));
        while c.sent.len() > 2 && c.sent.front().is_some_and(|(at, _)| t - at > 5000.0) {
            c.sent.pop_front();
        }
        let sent = match (c.sent.front(), c.sent.back()) {
            (Some((t0, b0)), Some((t1, b1))) if t1 > t0 => {
                ((b1 - b0) as f64 * 8000.0 / (t1 - t0)) as u64
            }
            _ => 0,
        };
        Some((phase, stats, failure, started, sent))
    }) else {
        return;
    };
    if phase == Phase::Ended {
        finish_recording();
    }
    set_status(|s| {
        let connected_once = stats.acked.is_some() || stats.reconnects > 0;
        s.phase = match phase {
            Phase::Disconnected if connected_once => "reconnecting",
            Phase::Disconnected | Phase::Connecting => "connecting",
            Phase::Live => "live",
            Phase::Ending => "ending",
            Phase::Ended => "ended",
            Phase::Failed => "failed",
        }
        .into();
        if let Some(f) = failure {
            s.error = Some(f);
        }
        s.acked = stats.acked;
        s.pending = stats.pending;
        s.reconnects = stats.reconnects;
        s.bitrate = sent;
        s.elapsed_s = ((monotonic_ms() - started) / 1000.0).max(0.0) as u64;
    });
}
