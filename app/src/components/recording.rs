//! A stream's recording on the dashboard: thumbnail, duration, renditions,
//! storage, and the MP4 (its progress while it is made, polled every 2 s,
//! then the download link).

use leptos::prelude::*;

use crate::format::{clock_secs, human_bytes};
use crate::recordings::{get_recording, Mp4State};

/// The recording panel of a stream; an empty state when it has none yet.
#[component]
pub fn RecordingPanel(id: String) -> impl IntoView {
    let tick = RwSignal::new(0u32);
    let rec_id = id.clone();
    let rec = Resource::new(
        move || tick.get(),
        move |_| {
            let id = rec_id.clone();
            async move { get_recording(id).await.ok() }
        },
    );
    Effect::new(move |_| {
        let building = rec
            .get()
            .flatten()
            .is_some_and(|r| matches!(r.mp4.state, Mp4State::Pending | Mp4State::Building));
        if building {
            #[cfg(feature = "hydrate")]
            leptos::prelude::set_timeout(
                move || tick.update(|n| *n += 1),
                std::time::Duration::from_secs(2),
            );
        }
    });
    let watch = format!("/watch/{id}");
    view! {
        <h2>"Recording"</h2>
        <Transition fallback=|| ()>
            {move || {
                let watch = watch.clone();
                Suspend::new(async move {
                    let Some(r) = rec.await else {
                        return view! {
                            <p class="muted empty" data-testid="dashboard-recording-empty">
                                "When the stream ends, its recording appears here: a VOD to watch again, a downloadable MP4 and a thumbnail."
                            </p>
                        }.into_any();
                    };
                    let renditions = r.renditions.iter().map(|x| x.name.clone()).collect::<Vec<_>>().join(", ");
                    view! {
                        <div class="recording-line" data-testid="dashboard-recording">
                            {r.thumbnail.clone().map(|src| view! { <a href=watch.clone()><img class="thumb" src=src alt="" width="160" /></a> })}
                            <span><a href=watch.clone()>"Watch"</a>" · "{clock_secs(r.duration_ms / 1000)}" · "{renditions}" · "{human_bytes(r.store_bytes)}" stored"</span>
                            <span data-testid="dashboard-recording-mp4" data-state=format!("{:?}", r.mp4.state).to_lowercase()>
                                {match (r.mp4.state, r.mp4.url.clone()) {
                                    (Mp4State::Ready, Some(url)) => view! {
                                        <a href=url download="">"Download MP4"</a>
                                        {r.mp4.bytes.map(|b| format!(" ({})", human_bytes(b)))}
                                    }.into_any(),
                                    (Mp4State::Failed, _) => view! {
                                        <span class="error">{format!("MP4 failed: {}", r.mp4.error.clone().unwrap_or_default())}</span>
                                    }.into_any(),
                                    (Mp4State::Pending, _) => view! { "MP4 queued…" }.into_any(),
                                    (_, _) => view! {
                                        "Making the MP4… "
                                        <progress max="100" value=r.mp4.progress.to_string()></progress>
                                        {format!(" {}%", r.mp4.progress)}
                                    }.into_any(),
                                }}
                            </span>
                        </div>
                    }.into_any()
                })
            }}
        </Transition>
    }
}
