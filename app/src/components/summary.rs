//! A stream's transcript and summary on the dashboard: how many lines the
//! transcript has (and a link to it), the latest summary with how it was
//! made, "Generate summary" / "Regenerate", progress while it is made
//! (polled), and why it failed (the previous summary stays).

use leptos::prelude::*;

use crate::components::stream_meta::format_time;
use crate::error::AppError;
use crate::summaries::{get_summary, GenerateSummary, SummaryState, SummaryStatus};

/// How often the panel reads the progress while a summary is made, ms.
#[cfg(feature = "hydrate")]
const POLL_MS: u64 = 700;

/// The transcript-and-summary panel of a stream (owner and admins).
///
/// Its state is read in the browser only (an effect, not a serialized
/// resource): the dashboard's own resources hydrate in the order the server
/// made them, and a resource out here, beside the refreshing analytics, would
/// be made in a different order on each side.
#[component]
pub fn SummaryPanel(id: String) -> impl IntoView {
    let tick = RwSignal::new(0u32);
    let status = RwSignal::new(None::<Result<SummaryStatus, AppError>>);
    let sid = id.clone();
    Effect::new(move |_| {
        let n = tick.get();
        let id = sid.clone();
        leptos::task::spawn_local(async move {
            let answer = get_summary(id).await;
            // A slower, older answer never replaces a newer one.
            if tick.get_untracked() == n {
                status.set(Some(answer));
            }
        });
    });
    let generate = ServerAction::<GenerateSummary>::new();
    // Once the request to start answers, read the state again.
    Effect::new(move |_| {
        if generate.value().get().is_some() {
            tick.update(|n| *n += 1);
        }
    });
    // Poll while a summary is being made.
    Effect::new(move |_| {
        let running = status.with(|s| {
            s.as_ref()
                .and_then(|r| r.as_ref().ok())
                .is_some_and(|s| s.state == SummaryState::Running)
        });
        if running {
            #[cfg(feature = "hydrate")]
            leptos::prelude::set_timeout(
                move || tick.update(|n| *n += 1),
                std::time::Duration::from_millis(POLL_MS),
            );
        }
    });
    let start_error = move || {
        generate.value().get().and_then(Result::err).map(|e| {
            view! { <p class="error" data-testid="summary-start-error" role="alert">{e.to_string()}</p> }
        })
    };
    view! {
        <section class="summary-panel" data-testid="summary-panel">
            <h2>"Transcript and summary"</h2>
            {move || match status.get() {
                None => view! { <p class="muted" data-testid="summary-loading">"Loading…"</p> }.into_any(),
                Some(Err(e)) => view! { <p class="error" data-testid="summary-load-error">{e.to_string()}</p> }.into_any(),
                Some(Ok(s)) => view! { <Panel s=s id=id.clone() generate=generate /> }.into_any(),
            }}
            {start_error}
        </section>
    }
}

#[component]
fn Panel(s: SummaryStatus, id: String, generate: ServerAction<GenerateSummary>) -> impl IntoView {
    let running = s.state == SummaryState::Running;
    let lines = s.transcript_lines;
    let transcript = format!("/watch/{id}/transcript");
    let has_summary = s.summary.is_some();
    let button_id = id.clone();
    view! {
        {if lines == 0 {
            view! {
                <p class="muted empty" data-testid="transcript-empty">
                    "No transcript yet: captions were off or nobody spoke. With live captions on, the transcript and a summary of the stream appear here. "
                    <a href=transcript data-testid="dashboard-transcript-link">"Transcript page"</a>
                </p>
            }.into_any()
        } else {
            view! {
                <p data-testid="transcript-info">
                    {format!("The transcript has {lines} {}. ", if lines == 1 { "line" } else { "lines" })}
                    <a href=transcript data-testid="dashboard-transcript-link">"Open the transcript"</a>
                </p>
            }.into_any()
        }}
        {(!s.llm).then(|| view! {
            <p class="muted" data-testid="summary-extractive-note">
                "No AI model is configured (--llm-url), so summaries are extractive: the transcript's most central sentences, in their order."
            </p>
        })}
        {running.then(|| {
            let (done, total) = (s.done_parts, s.total_parts);
            view! {
                <p class="summary-progress" data-testid="summary-progress" role="status">
                    "Summarising… "
                    {(total > 0).then(|| view! {
                        <progress max=total.to_string() value=done.to_string()></progress>
                        {format!(" {done} of {total} model calls")}
                    })}
                </p>
            }
        })}
        {(s.state == SummaryState::Failed).then(|| view! {
            <p class="error" data-testid="summary-error" role="alert">
                {format!("The summary failed: {}.", s.error.clone().unwrap_or_default())}
                {has_summary.then_some(" The previous summary is kept.")}
            </p>
        })}
        {match s.summary.clone() {
            Some(sum) => view! {
                <div class="summary" data-testid="summary" data-kind=sum.kind.as_str()>
                    <p class="muted" data-testid="summary-label">{format!("{} · made {}", sum.label, format_time(&sum.created_at))}</p>
                    <p class="summary-text" data-testid="summary-text">{sum.text}</p>
                </div>
            }.into_any(),
            None => (!running).then(|| view! {
                <p class="muted" data-testid="summary-empty">"No summary yet."</p>
            }).into_any(),
        }}
        <p>
            <button type="button" class="button-primary" data-testid="summary-generate"
                disabled=move || running || lines == 0 || generate.pending().get()
                on:click=move |_| { generate.dispatch(GenerateSummary { id: button_id.clone() }); }>
                {if has_summary { "Regenerate summary" } else { "Generate summary" }}
            </button>
        </p>
    }
}
