//! The broadcaster studio (`/studio/:id`): pick a camera and microphone or a
//! screen, preview, go live, end. The browser records with `MediaRecorder`
//! and sends the chunks over the ingest WebSocket; [`crate::publisher`] keeps
//! the protocol (numbering, acks, resend after a drop, recorder restarts).
//!
//! The studio also joins the stream's room ([`crate::realtime`]) as the
//! studio, which is not counted as a viewer: the status panel shows the viewer
//! count, and the chat is there to read, answer and moderate.

use crate::components::head::PageTitle;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::accounts::{current_user, Role, User};
use crate::components::chat::Chat;
use crate::format::{clock_secs, human_bitrate};
use crate::protocol::events::ClientRole;
use crate::protocol::StreamState;
use crate::realtime::use_room;
use crate::streams::{get_stream, Stream};

/// The recorder MIME types the studio tries, best first: H.264 (copied by the
/// server without re-encoding), then VP9, then VP8.
pub const PREFERRED_MIME_TYPES: [&str; 6] = [
    "video/webm;codecs=h264,opus",
    "video/x-matroska;codecs=avc1,opus",
    "video/mp4;codecs=avc1,mp4a.40.2",
    "video/webm;codecs=vp9,opus",
    "video/webm;codecs=vp8,opus",
    "video/webm",
];

/// A resolution and bitrate preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Label in the picker.
    pub label: &'static str,
    /// Requested width and height.
    pub width: u32,
    /// Requested height.
    pub height: u32,
    /// Video bits per second given to the recorder.
    pub video_bps: u32,
}

/// The presets in the picker; the first is the default.
pub const PRESETS: [Preset; 3] = [
    Preset {
        label: "720p · 2.5 Mbit/s",
        width: 1280,
        height: 720,
        video_bps: 2_500_000,
    },
    Preset {
        label: "1080p · 5 Mbit/s",
        width: 1920,
        height: 1080,
        video_bps: 5_000_000,
    },
    Preset {
        label: "480p · 1 Mbit/s",
        width: 854,
        height: 480,
        video_bps: 1_000_000,
    },
];

/// What the status panel shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StudioStatus {
    /// Connection phase: idle, previewing, connecting, live, reconnecting, ending, ended, failed.
    pub phase: String,
    /// The error to show, if any.
    pub error: Option<String>,
    /// Recorder MIME type in use.
    pub mime_type: String,
    /// Bits per second sent over the last few seconds.
    pub bitrate: u64,
    /// Highest acked chunk.
    pub acked: Option<u64>,
    /// Chunks waiting for an ack.
    pub pending: usize,
    /// Reconnects so far.
    pub reconnects: u32,
    /// Seconds since going live.
    pub elapsed_s: u64,
}

/// Who is at the studio, as far as going live goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StudioAccess {
    /// The stream's broadcaster, or an admin: going live is theirs.
    Owner,
    /// Not signed in: the stream's ingest token is the only way to go live.
    SignedOut,
    /// Signed in as someone else (the owner's name): only with the token.
    NotOwner(String),
    /// No such stream for this user (or a private one of someone else's).
    Missing,
}

/// What `user` may do at the studio of `stream` (`None`: the lookup failed).
pub fn studio_access(user: Option<&User>, stream: Option<&Stream>) -> StudioAccess {
    match (user, stream) {
        (None, _) => StudioAccess::SignedOut,
        (Some(_), None) => StudioAccess::Missing,
        (Some(u), Some(s)) if u.role == Role::Admin || u.username == s.owner.username => {
            StudioAccess::Owner
        }
        (Some(_), Some(s)) => StudioAccess::NotOwner(s.owner.username.clone()),
    }
}

/// The studio page.
#[component]
pub fn StudioPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let room = use_room(
        params.read_untracked().get("id").unwrap_or_default(),
        ClientRole::Studio,
        None,
    );
    let status = RwSignal::new(StudioStatus {
        phase: "idle".into(),
        ..StudioStatus::default()
    });
    let source = RwSignal::new(String::from("camera"));
    let preset = RwSignal::new(0usize);
    let pip = RwSignal::new(false);
    let token = RwSignal::new(String::new());
    let confirming = RwSignal::new(false);
    let video = NodeRef::<leptos::html::Video>::new();
    let cameras = RwSignal::new(Vec::<(String, String)>::new());
    let mics = RwSignal::new(Vec::<(String, String)>::new());
    let camera = RwSignal::new(String::new());
    let mic = RwSignal::new(String::new());

    let phase = move || status.get().phase;
    let live = move || {
        matches!(
            phase().as_str(),
            "connecting" | "live" | "reconnecting" | "ending"
        )
    };
    let can_preview =
        move || matches!(phase().as_str(), "idle" | "previewing" | "ended" | "failed");
    // The stream is live, but not from this tab: another tab, device or
    // encoder has it. (If that publisher dropped, going live here resumes
    // the stream, so it is allowed.)
    let elsewhere = move || {
        !live()
            && room.state() == Some(StreamState::Live)
            && !room.room.with(|r| r.broadcaster_away)
    };
    // Who is here decides whether Go live can work: said before any device
    // is picked, not refused after Go live.
    let access = Resource::new(id, |id| async move {
        let user = current_user().await.ok().flatten();
        let stream = get_stream(id).await.ok();
        studio_access(user.as_ref(), stream.as_ref())
    });
    let owner = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(a) = access.get() {
            owner.set(a == StudioAccess::Owner);
        }
    });
    let can_go_live = move || {
        phase() == "previewing" && !elsewhere() && (owner.get() || !token.get().trim().is_empty())
    };
    // While live, leaving or reloading the page asks first (it would end
    // the broadcast for every viewer).
    #[cfg(feature = "hydrate")]
    {
        let guard = window_event_listener(leptos::ev::beforeunload, move |e| {
            if live() {
                e.prevent_default();
                e.set_return_value("You are live: leaving ends the broadcast.");
            }
        });
        on_cleanup(move || guard.remove());
    }

    let preview = move |_| {
        #[cfg(feature = "hydrate")]
        media::preview(
            media::Choice {
                screen: source.get_untracked() == "screen",
                pip: pip.get_untracked(),
                camera: camera.get_untracked(),
                mic: mic.get_untracked(),
                preset: PRESETS[preset.get_untracked().min(PRESETS.len() - 1)],
            },
            video,
            status,
            cameras,
            mics,
        );
    };
    let go_live = move |_| {
        #[cfg(feature = "hydrate")]
        media::go_live(
            id(),
            token.get_untracked(),
            PRESETS[preset.get_untracked().min(PRESETS.len() - 1)],
            status,
        );
        #[cfg(not(feature = "hydrate"))]
        let _ = id();
    };
    let end = move |_| {
        confirming.set(false);
        #[cfg(feature = "hydrate")]
        media::end(status);
    };

    view! {
        <PageTitle text="Studio · Onair" />
        <section class="studio" data-testid="studio">
            <h1>"Studio"</h1>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let here = format!("/studio/{}", id());
                    match access.await {
                        StudioAccess::Owner => ().into_any(),
                        StudioAccess::SignedOut => view! {
                            <p class="notice warning" data-testid="studio-signed-out" role="status">
                                "You are not signed in. "
                                <a href=crate::return_to::sign_in_href("/login", &here) data-testid="studio-sign-in">"Sign in"</a>
                                " as this stream's broadcaster to go live, or paste the stream's ingest token below."
                            </p>
                        }.into_any(),
                        StudioAccess::NotOwner(name) => view! {
                            <p class="notice warning" data-testid="studio-not-owner" role="status">
                                {format!("This is {name}'s stream: only they can go live here, or someone with its ingest token (paste it below).")}
                            </p>
                        }.into_any(),
                        StudioAccess::Missing => view! {
                            <p class="notice warning" data-testid="studio-missing" role="status">
                                "There is no stream of yours at this address. "
                                <a href="/streams">"My streams"</a>" lists yours."
                            </p>
                        }.into_any(),
                    }
                })}
            </Suspense>
            <div class="studio-grid">
                <div class="studio-main">
                    <div class="studio-preview">
                        <video node_ref=video data-testid="preview" muted=true autoplay=true playsinline=true></video>
                    </div>
                    <dl class="studio-status" data-testid="status" data-phase=phase>
                        <dt>"Status"</dt><dd data-testid="status-phase">{phase}</dd>
                        <dt>"Elapsed"</dt><dd data-testid="status-elapsed">{move || clock_secs(status.get().elapsed_s)}</dd>
                        <dt>"Sending"</dt><dd data-testid="status-bitrate">{move || human_bitrate(status.get().bitrate)}</dd>
                        <dt>"Chunks acked"</dt><dd data-testid="status-acked">{move || status.get().acked.map(|a| (a + 1).to_string()).unwrap_or_else(|| "0".into())}</dd>
                        <dt>"Pending"</dt><dd data-testid="status-pending">{move || status.get().pending}</dd>
                        <dt>"Reconnects"</dt><dd data-testid="status-reconnects">{move || status.get().reconnects}</dd>
                        <dt>"Recorder"</dt><dd data-testid="status-mime">{move || status.get().mime_type}</dd>
                        <dt>"Viewers"</dt><dd data-testid="status-viewers" title="Distinct viewers watching now (this studio is not counted)">
                            {move || if room.welcomed() { room.viewers().to_string() } else { "—".to_string() }}
                        </dd>
                    </dl>
                    <p class="studio-captions" data-testid="studio-captions" aria-live="polite"
                        data-empty=move || room.room.with(|r| r.caption.is_none()).to_string()>
                        {move || room.room.with(|r| r.caption.as_ref().map(|c| c.text.clone())).unwrap_or_else(|| {
                            "What you say appears here as captions while you are live, when this server transcribes streams.".to_string()
                        })}
                    </p>
                    {move || status.get().error.map(|e| view! { <p class="error" role="alert" data-testid="status-error">{e}</p> })}
                    {move || view! { <crate::components::health::HealthPanel id=id() /> }}
                    <details class="studio-encoder" data-testid="studio-encoder">
                        <summary>"Go live from OBS or another encoder instead"</summary>
                        {move || view! { <crate::components::encoder::EncoderPanel id=id() /> }}
                    </details>
                    <p class="muted">
                        "Viewers watch at " <a href=move || format!("/watch/{}", id())>{move || format!("/watch/{}", id())}</a>
                    </p>
                </div>
                <div class="studio-side">
                    <form class="studio-controls" on:submit=|e| e.prevent_default()>
                        <fieldset disabled=live>
                            <legend>"Source"</legend>
                            <label>
                                <input type="radio" name="source" value="camera" data-testid="source-camera"
                                    prop:checked=move || source.get() == "camera"
                                    on:change=move |_| source.set("camera".into()) />
                                " Camera and microphone"
                            </label>
                            <label>
                                <input type="radio" name="source" value="screen" data-testid="source-screen"
                                    prop:checked=move || source.get() == "screen"
                                    on:change=move |_| source.set("screen".into()) />
                                " Screen"
                            </label>
                            <label class:hidden=move || source.get() != "screen">
                                <input type="checkbox" data-testid="pip" prop:checked=move || pip.get()
                                    on:change=move |e| pip.set(event_target_checked(&e)) />
                                " Camera picture-in-picture"
                            </label>
                            <label>
                                "Camera "
                                <select data-testid="camera" on:change=move |e| camera.set(event_target_value(&e))>
                                    <option value="">"Default"</option>
                                    {move || cameras.get().into_iter().map(|(id, label)| view! { <option value=id>{label}</option> }).collect_view()}
                                </select>
                            </label>
                            <label>
                                "Microphone "
                                <select data-testid="mic" on:change=move |e| mic.set(event_target_value(&e))>
                                    <option value="">"Default"</option>
                                    {move || mics.get().into_iter().map(|(id, label)| view! { <option value=id>{label}</option> }).collect_view()}
                                </select>
                            </label>
                            <label>
                                "Quality "
                                <select data-testid="preset" on:change=move |e| preset.set(event_target_value(&e).parse().unwrap_or(0))>
                                    {PRESETS.iter().enumerate().map(|(i, p)| view! { <option value=i.to_string()>{p.label}</option> }).collect_view()}
                                </select>
                            </label>
                            <label>
                                "Ingest token "
                                <input type="password" autocomplete="off" data-testid="token"
                                    placeholder="not needed when signed in as the owner"
                                    on:input=move |e| token.set(event_target_value(&e)) />
                            </label>
                        </fieldset>
                        {move || elsewhere().then(|| view! {
                            <p class="notice warning" data-testid="live-elsewhere" role="status">
                                "This stream is already live from another tab, device or encoder. End it there (or wait for it to end) to go live here."
                            </p>
                        })}
                        <div class="studio-buttons">
                            <button type="button" data-testid="preview-button" disabled=move || !can_preview() on:click=preview>
                                "Preview"
                            </button>
                            <button type="button" class="button-primary" data-testid="go-live" disabled=move || !can_go_live() on:click=go_live>
                                "Go live"
                            </button>
                            <Show when=move || live() && !confirming.get()>
                                <button type="button" class="button-danger" data-testid="end" on:click=move |_| confirming.set(true)>
                                    "End stream"
                                </button>
                            </Show>
                            <Show when=move || confirming.get()>
                                <span class="confirm" data-testid="end-confirm-box">
                                    "End the stream for everyone? "
                                    <button type="button" class="button-danger" data-testid="end-confirm" on:click=end>"End now"</button>
                                    <button type="button" data-testid="end-cancel" on:click=move |_| confirming.set(false)>"Keep streaming"</button>
                                </span>
                            </Show>
                        </div>
                    </form>
                    <Chat room=room />
                </div>
            </div>
        </section>
    }
}

#[cfg(feature = "hydrate")]
mod media;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_go_live_is_known_up_front() {
        use crate::accounts::{Role, User};
        let user = |name: &str, role: Role| User {
            id: name.into(),
            username: name.into(),
            role,
        };
        let stream: crate::streams::Stream = serde_json::from_value(serde_json::json!({
            "id": "s1", "owner": {"id": "ann", "username": "ann"}, "title": "t",
            "description": "", "visibility": "public", "state": "idle",
            "created_at": "2026-12-07T00:00:00Z", "started_at": null, "ended_at": null
        }))
        .expect("a stream");
        let ann = user("ann", Role::Broadcaster);
        let bob = user("bob", Role::Broadcaster);
        let root = user("root", Role::Admin);
        assert_eq!(
            studio_access(Some(&ann), Some(&stream)),
            StudioAccess::Owner
        );
        assert_eq!(
            studio_access(Some(&root), Some(&stream)),
            StudioAccess::Owner
        );
        assert_eq!(
            studio_access(Some(&bob), Some(&stream)),
            StudioAccess::NotOwner("ann".into())
        );
        assert_eq!(studio_access(None, Some(&stream)), StudioAccess::SignedOut);
        assert_eq!(studio_access(None, None), StudioAccess::SignedOut);
        assert_eq!(studio_access(Some(&bob), None), StudioAccess::Missing);
    }

    #[test]
    fn h264_is_preferred() {
        assert!(PREFERRED_MIME_TYPES[0].contains("h264"));
        let vp9 = PREFERRED_MIME_TYPES.iter().position(|m| m.contains("vp9"));
        let vp8 = PREFERRED_MIME_TYPES.iter().position(|m| m.contains("vp8"));
        assert!(vp9 < vp8);
    }
}
