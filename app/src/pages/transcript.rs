//! `/watch/{id}/transcript`: a stream's transcript, one timestamped line each
//! (`m:ss`, `h:mm:ss`), every line a link to that moment of the recording
//! (`/watch/{id}?t=<seconds>`), with WebVTT, SRT and text downloads. A
//! private stream's shared link carries `?token=`, which is passed on.

use crate::components::head::PageTitle;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::error::AppError;
use crate::format::clock;
use crate::protocol::StreamState;
use crate::transcripts::{download_url, get_transcript, moment_url, Transcript, FORMATS};

/// What to say when the transcript cannot be shown.
fn load_error(e: &AppError) -> String {
    match e.status_code() {
        404 => "There is no such stream, or it is private: sign in as its owner or open the link it was shared with.".into(),
        _ => format!("The transcript could not be loaded: {e}"),
    }
}

/// The transcript page.
#[component]
pub fn TranscriptPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let data = Resource::new(
        move || {
            (
                params.read().get("id").unwrap_or_default(),
                query.read().get("token"),
            )
        },
        |(id, token)| async move { (get_transcript(id, token.clone()).await, token) },
    );
    view! {
        <section class="transcript-page" data-testid="transcript-page">
            <Suspense fallback=|| view! { <p class="muted" data-testid="transcript-loading">"Loading the transcript…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        (Err(e), _) => view! {
                            <PageTitle text="Transcript · Onair" />
                            <h1>"Transcript"</h1>
                            <p class="error" data-testid="transcript-error">{load_error(&e)}</p>
                        }.into_any(),
                        (Ok(t), token) => view! { <Lines t=t token=token /> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn Lines(t: Transcript, token: Option<String>) -> impl IntoView {
    let id = t.stream_id.clone();
    let token = token.as_deref();
    let watch = match crate::transcripts::url_token(token) {
        Some(tok) => format!("/watch/{id}?token={tok}"),
        None => format!("/watch/{id}"),
    };
    let downloads = FORMATS
        .iter()
        .map(|f| {
            view! {
                <a class="button-secondary" href=download_url(&id, f, token) download=""
                    data-testid=format!("transcript-download-{f}")>
                    {format!("Download .{f}")}
                </a>
            }
        })
        .collect_view();
    let count = t.lines.len();
    let empty = t.lines.is_empty();
    let live = t.state == StreamState::Live;
    let lines = t
        .lines
        .iter()
        .map(|l| {
            let href = moment_url(&id, l.start_ms, token);
            view! {
                <li data-testid="transcript-line" data-start-ms=l.start_ms.to_string()>
                    <a href=href class="transcript-line">
                        <span class="transcript-time">{clock(l.start_ms)}</span>
                        <span class="transcript-text">{l.text.clone()}</span>
                    </a>
                </li>
            }
        })
        .collect_view();
    view! {
        <PageTitle text=format!("Transcript · {} · Onair", t.title) />
        <p><a href=watch data-testid="transcript-back">"← Back to the stream"</a></p>
        <h1 data-testid="transcript-title">{format!("Transcript: {}", t.title)}</h1>
        {if empty {
            view! {
                <p class="muted empty" data-testid="transcript-empty">
                    "No transcript yet: captions were off or nobody spoke."
                    {live.then_some(" Lines appear here while the stream is live with captions on.")}
                </p>
            }.into_any()
        } else {
            view! {
                <p class="transcript-actions">
                    <span class="muted">{format!("{count} lines · click a line to watch from there · ")}</span>
                    {downloads}
                </p>
                <ol class="transcript-lines" data-testid="transcript-lines">{lines}</ol>
            }.into_any()
        }}
    }
}
