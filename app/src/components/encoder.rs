//! The "Encoder (OBS)" panel: where OBS and other encoders publish a stream
//! over RTMP, RTMPS or SRT, with copy buttons, the key hidden until shown,
//! and the settings that suit low latency.

use leptos::prelude::*;

use super::clipboard::copy;
use crate::streams::{encoder_settings, EncoderInfo, RECOMMENDED_ENCODER};

/// The panel for stream `id` (owner or admin).
#[component]
pub fn EncoderPanel(id: String) -> impl IntoView {
    let info = Resource::new(move || id.clone(), encoder_settings);
    view! {
        <div class="notice encoder" role="group" aria-label="Encoder settings" data-testid="encoder-panel">
            <Suspense fallback=|| view! { <p class="muted">"Loading the encoder settings…"</p> }>
                {move || info.get().map(|r| match r {
                    Ok(i) => view! { <EncoderFields info=i /> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert" data-testid="encoder-error">{e.to_string()}</p> }.into_any(),
                })}
            </Suspense>
        </div>
    }
}

#[component]
fn EncoderFields(info: EncoderInfo) -> impl IntoView {
    let shown = RwSignal::new(false);
    let copied = RwSignal::new(None::<&'static str>);
    let key = StoredValue::new(info.stream_key.clone());
    let server = info.rtmp_server.clone();
    view! {
        <h3>"Encoder (OBS)"</h3>
        {match server {
            None => view! {
                <p class="muted" data-testid="encoder-off">"This server takes no RTMP: its operator has turned the listener off (--rtmp-addr)."</p>
            }.into_any(),
            Some(server) => {
                let copy_server = server.clone();
                view! {
                    <p>"In OBS: Settings → Stream → Service " <strong>"Custom"</strong> "."</p>
                    <div class="field-row">
                        <span class="field-label">"Server"</span>
                        <code data-testid="encoder-server">{server}</code>
                        <button type="button" class="button-secondary" data-testid="copy-server"
                            on:click=move |_| copy(copy_server.clone(), copied, "server")>"Copy"</button>
                    </div>
                }.into_any()
            }
        }}
        <div class="field-row">
            <span class="field-label">"Stream key"</span>
            <code data-testid="encoder-key">{move || if shown.get() { key.get_value() } else { "•".repeat(24) }}</code>
            <button type="button" class="button-secondary" data-testid="show-key"
                on:click=move |_| shown.update(|s| *s = !*s)>{move || if shown.get() { "Hide" } else { "Show" }}</button>
            <button type="button" class="button-secondary" data-testid="copy-key"
                on:click=move |_| copy(key.get_value(), copied, "stream key")>"Copy"</button>
        </div>
        {info.rtmps_server.clone().map(|rtmps| {
            let copy_rtmps = rtmps.clone();
            view! {
                <div class="field-row">
                    <span class="field-label">"RTMPS server"</span>
                    <code data-testid="encoder-rtmps">{rtmps}</code>
                    <button type="button" class="button-secondary" data-testid="copy-rtmps"
                        on:click=move |_| copy(copy_rtmps.clone(), copied, "RTMPS server")>"Copy"</button>
                </div>
                <p class="muted">"RTMPS is RTMP inside TLS: the same stream key, encrypted on the way."</p>
            }
        })}
        {info.srt_url.clone().map(|srt| {
            let copy_srt = srt.clone();
            view! {
                <div class="field-row">
                    <span class="field-label">"SRT URL"</span>
                    <code data-testid="encoder-srt">{srt}</code>
                    <button type="button" class="button-secondary" data-testid="copy-srt"
                        on:click=move |_| copy(copy_srt.clone(), copied, "SRT URL")>"Copy"</button>
                </div>
                <p class="muted" data-testid="encoder-srt-help">
                    "For SRT (lossy or long-distance links), use the SRT URL as OBS's Server and leave its Stream key empty; set the "
                    <strong>"passphrase"</strong> " (OBS: append " <code>"&passphrase=<stream key>"</code>
                    " to the URL) to the stream key: the stream is then encrypted and the key never crosses the network."
                </p>
            }
        })}
        {info.whip_url.clone().map(|whip| {
            let copy_whip = whip.clone();
            view! {
                <div class="field-row">
                    <span class="field-label">"WHIP URL"</span>
                    <code data-testid="encoder-whip">{whip}</code>
                    <button type="button" class="button-secondary" data-testid="copy-whip"
                        on:click=move |_| copy(copy_whip.clone(), copied, "WHIP URL")>"Copy"</button>
                </div>
                <p class="muted" data-testid="encoder-whip-help">
                    "For WebRTC (OBS 30+): Service " <strong>"WHIP"</strong>
                    ", Server the WHIP URL, Bearer Token the stream key. H.264 video and Opus audio."
                </p>
            }
        })}
        <p class="muted" role="status" data-testid="copied">{move || copied.get().map(|w| format!("Copied the {w}."))}</p>
        {info.loopback_only.then(|| view! {
            <p class="notice warning" data-testid="encoder-loopback">
                "The RTMP listener only accepts encoders on the server's own machine. To stream from another computer, the operator starts Onair with "
                <code>"--rtmp-addr 0.0.0.0:1935"</code> "."
            </p>
        })}
        <p class="muted">"Keep the key secret: anyone with it can go live on this stream. “New ingest token” replaces it at once."</p>
        <details>
            <summary>"Recommended settings"</summary>
            <ul data-testid="encoder-recommended">
                <li>"Encoder: H.264 (x264 or hardware), rate control CBR; audio AAC, 48 kHz, 128–160 kbit/s"</li>
                <li>"Keyframe interval: 1 s (low latency needs a keyframe every segment)"</li>
                {RECOMMENDED_ENCODER.iter().map(|(res, kbps)| view! {
                    <li>{format!("{res}: {kbps} kbit/s")}</li>
                }).collect_view()}
            </ul>
        </details>
    }
}
