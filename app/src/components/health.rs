//! The "Stream health" panel: what the server measures of the broadcaster's
//! input (protocol, codecs, picture, frame rate, bitrate, keyframe interval,
//! reconnects) and what to change, refreshed while it is open.

use leptos::prelude::*;

use crate::health::{fps, kbps, read_health, seconds, verdict, StreamHealth, Verdict};

/// How often the panel reads the numbers again, ms.
const REFRESH_MS: u64 = 2000;

/// The panel for stream `id` (owner or admin).
#[component]
pub fn HealthPanel(id: String) -> impl IntoView {
    let tick = RwSignal::new(0u32);
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(
            move || tick.update(|n| *n = n.wrapping_add(1)),
            std::time::Duration::from_millis(REFRESH_MS),
        ) {
            on_cleanup(move || handle.clear());
        }
    });
    let health = Resource::new(move || (id.clone(), tick.get()), |(id, _)| read_health(id));
    view! {
        <div class="notice health" role="group" aria-label="Stream health" data-testid="health-panel">
            <h3>"Stream health"</h3>
            <Transition fallback=|| view! { <p class="muted">"Measuring the input…"</p> }>
                {move || health.get().map(|r| match r {
                    Ok(h) => view! { <HealthFields health=h /> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert" data-testid="health-error">{e.to_string()}</p> }.into_any(),
                })}
            </Transition>
        </div>
    }
}

#[component]
fn HealthFields(health: StreamHealth) -> impl IntoView {
    if !health.live {
        return view! {
            <p class="muted" data-testid="health-idle">"Not live: the numbers appear once media arrives."</p>
        }
        .into_any();
    }
    let protocol = match health.protocol.as_deref() {
        Some("rtmp") => "RTMP (encoder)".to_string(),
        Some("rtmps") => "RTMPS (encoder)".to_string(),
        Some("srt") => "SRT (encoder)".to_string(),
        Some("whip") => "WebRTC (WHIP)".to_string(),
        Some("websocket") => "WebSocket (studio or onair publish)".to_string(),
        Some(other) => other.to_string(),
        None => "—".to_string(),
    };
    let video = health.video.clone();
    let picture = video
        .as_ref()
        .map(|v| format!("{} · {}×{}", v.codec, v.width, v.height))
        .unwrap_or_else(|| "none".into());
    let rate = video
        .as_ref()
        .and_then(|v| v.frame_rate_x100)
        .map(fps)
        .unwrap_or_else(|| "—".into());
    let keys = video
        .as_ref()
        .and_then(|v| v.keyframe_interval_ms)
        .map(seconds)
        .unwrap_or_else(|| "—".into());
    let audio = health
        .audio
        .as_ref()
        .map(|a| {
            let how = if a.copied { "copied" } else { "encoded to AAC" };
            format!(
                "{} · {} Hz · {} ch · {how}",
                a.codec, a.sample_rate, a.channels
            )
        })
        .unwrap_or_else(|| "none".into());
    let bitrate = health.bitrate_bps.map(kbps).unwrap_or_else(|| "—".into());
    let warnings = health.warnings.clone();
    let judged = verdict(&health);
    view! {
        {judged.map(|(v, why)| {
            let name = match v {
                Verdict::Excellent => "excellent",
                Verdict::Ok => "ok",
                Verdict::Poor => "poor",
            };
            view! {
                <p class="health-verdict" data-testid="health-verdict" data-verdict=name>
                    <strong>{v.label()}</strong>" · "{why}
                </p>
            }
        })}
        <dl class="health-grid">
            <dt>"Protocol"</dt><dd data-testid="health-protocol">{protocol}</dd>
            <dt>"Video"</dt><dd data-testid="health-video">{picture}</dd>
            <dt>"Frame rate"</dt><dd data-testid="health-fps">{rate}</dd>
            <dt>"Keyframe interval"</dt><dd data-testid="health-keyframes">{keys}</dd>
            <dt>"Audio"</dt><dd data-testid="health-audio">{audio}</dd>
            <dt>"Input bitrate"</dt><dd data-testid="health-bitrate">{bitrate}</dd>
            <dt>"Reconnects"</dt><dd data-testid="health-reconnects">{health.reconnects}</dd>
        </dl>
        {warnings.into_iter().map(|w| view! {
            <p class="notice warning" role="alert" data-testid="health-warning" data-code=w.code.clone()>{w.message}</p>
        }).collect_view()}
    }
    .into_any()
}
