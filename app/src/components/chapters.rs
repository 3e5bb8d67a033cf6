//! A recording's chapters in the pages.
//!
//! - [`ChapterList`]: under the recording's player on the watch page, a
//!   strip of the chapters along the recording (each as wide as it is long)
//!   and the list of them (`m:ss` and title); a click seeks there, and the
//!   chapter playing is highlighted. Hidden when there are none.
//! - [`ChaptersPanel`]: on the stream's dashboard (owner and admins), the
//!   chapters with *Make chapters* (progress while a job runs, polled; why it
//!   failed), and an editor of their starts and titles with *Save*, which
//!   shows the server's reason for a list it refuses.

use leptos::prelude::*;

use crate::chapters::{
    current, format_start, get_chapters, parse_start, Chapter, ChaptersStatus, EditChapters,
    GenerateChapters,
};
use crate::error::AppError;
use crate::format::clock;

/// How often the panel reads the progress while chapters are made, ms.
#[cfg(feature = "hydrate")]
const POLL_MS: u64 = 700;

/// The chapters under a recording's player: `position_ms` and `duration_ms`
/// are the player's, `seek` moves it to a start (ms).
#[component]
pub fn ChapterList(
    chapters: Signal<Vec<Chapter>>,
    position_ms: Signal<i64>,
    duration_ms: Signal<i64>,
    seek: Callback<i64>,
) -> impl IntoView {
    let now = Memo::new(move |_| chapters.with(|c| current(c, position_ms.get())));
    // Each chapter's length, seconds (the last one's to the end, once known).
    let strip = move || {
        let end = duration_ms.get();
        let list = chapters.get();
        let starts: Vec<i64> = list.iter().map(|c| c.start_ms).collect();
        list.into_iter()
            .enumerate()
            .map(|(i, c)| {
                let next = starts.get(i + 1).copied().unwrap_or(end);
                let secs = next.saturating_sub(c.start_ms).max(0) as f64 / 1000.0;
                let start = c.start_ms;
                let label = format!("{} {}", clock(start), c.title);
                view! {
                    <button type="button" class="chapter-mark" tabindex="-1"
                        data-testid="chapter-mark"
                        data-current=move || (now.get() == Some(i)).to_string()
                        style=format!("flex-grow: {secs:.3}")
                        title=label.clone() aria-label=label
                        on:click=move |_| seek.run(start)></button>
                }
            })
            .collect_view()
    };
    let items = move || {
        chapters
            .get()
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let start = c.start_ms;
                view! {
                    <li>
                        <button type="button" class="chapter" data-testid="chapter"
                            data-start-ms=start.to_string()
                            aria-current=move || (now.get() == Some(i)).then_some("true")
                            on:click=move |_| seek.run(start)>
                            <span class="chapter-time">{clock(start)}</span>
                            <span class="chapter-title">{c.title}</span>
                        </button>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <Show when=move || chapters.with(|c| !c.is_empty())>
            <nav class="chapters" data-testid="chapters" aria-label="Chapters">
                // Markers along the recording: the native controls have no
                // bar of ours to put them on, so the strip sits under it.
                <div class="chapter-strip" data-testid="chapter-strip"
                    hidden=move || duration_ms.get() <= 0>
                    {strip}
                </div>
                <h2 class="chapters-head">"Chapters"</h2>
                <ol class="chapter-list">{items}</ol>
            </nav>
        </Show>
    }
}

/// One row of the editor: its start as typed, and its title.
#[derive(Clone, Copy)]
struct Row {
    key: u32,
    start: RwSignal<String>,
    title: RwSignal<String>,
}

/// What the editor sends, or why it cannot: a start that is not `m:ss`.
fn read_rows(rows: &[Row]) -> Result<Vec<Chapter>, String> {
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let typed = r.start.get_untracked();
            let start_ms = parse_start(&typed).ok_or_else(|| {
                format!(
                    "chapter {}: the start \"{}\" is not a time like 1:05",
                    i + 1,
                    typed.trim()
                )
            })?;
            Ok(Chapter {
                start_ms,
                title: r.title.get_untracked(),
            })
        })
        .collect()
}

/// The chapters panel of a stream's dashboard (owner and admins).
///
/// Like the summary panel, its state is read in the browser only (an
/// effect, not a serialized resource), so it does not change the order of
/// the dashboard's own resources between the server and the browser.
#[component]
pub fn ChaptersPanel(id: String) -> impl IntoView {
    let tick = RwSignal::new(0u32);
    let status = RwSignal::new(None::<Result<ChaptersStatus, AppError>>);
    let rows = RwSignal::new(Vec::<Row>::new());
    let next_key = StoredValue::new(0u32);
    let new_row = move |start: String, title: String| {
        let key = next_key.get_value();
        next_key.set_value(key.wrapping_add(1));
        Row {
            key,
            start: RwSignal::new(start),
            title: RwSignal::new(title),
        }
    };
    let sid = id.clone();
    Effect::new(move |_| {
        let n = tick.get();
        let id = sid.clone();
        leptos::task::spawn_local(async move {
            let answer = get_chapters(id, None).await;
            // A slower, older answer never replaces a newer one.
            if tick.get_untracked() != n {
                return;
            }
            if let Ok(s) = &answer {
                let list = s.chapters.as_ref().map(|c| c.chapters.clone());
                rows.set(
                    list.unwrap_or_default()
                        .into_iter()
                        .map(|c| new_row(format_start(c.start_ms), c.title))
                        .collect(),
                );
            }
            status.set(Some(answer));
        });
    });
    let generate = ServerAction::<GenerateChapters>::new();
    let save = ServerAction::<EditChapters>::new();
    let local_error = RwSignal::new(None::<String>);
    // Once a start or a save answers, read the state again.
    Effect::new(move |_| {
        if generate.value().get().is_some() {
            tick.update(|n| *n += 1);
        }
    });
    Effect::new(move |_| {
        if save.value().get().is_some_and(|r| r.is_ok()) {
            tick.update(|n| *n += 1);
        }
    });
    let running = move || {
        status.with(|s| {
            s.as_ref()
                .and_then(|r| r.as_ref().ok())
                .is_some_and(|s| s.running)
        })
    };
    // Poll while they are being made.
    Effect::new(move |_| {
        if running() {
            #[cfg(feature = "hydrate")]
            leptos::prelude::set_timeout(
                move || tick.update(|n| *n += 1),
                std::time::Duration::from_millis(POLL_MS),
            );
        }
    });
    let gen_id = id.clone();
    let save_id = id.clone();
    let on_save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        match read_rows(&rows.get_untracked()) {
            Err(e) => local_error.set(Some(e)),
            Ok(chapters) => {
                local_error.set(None);
                save.dispatch(EditChapters {
                    id: save_id.clone(),
                    chapters,
                });
            }
        }
    };
    let add = move |_| {
        let last =
            rows.with_untracked(|r| r.last().and_then(|r| parse_start(&r.start.get_untracked())));
        let start = last.map_or(0, |ms| ms.saturating_add(60_000));
        let row = new_row(format_start(start), String::new());
        rows.update(|r| r.push(row));
    };
    let save_error = move || {
        let server = save
            .value()
            .get()
            .and_then(Result::err)
            .map(|e| e.to_string());
        local_error.get().or(server).map(|e| {
            view! { <p class="error" data-testid="chapters-save-error" role="alert">{e}</p> }
        })
    };
    let saved = move || {
        (save.value().get().is_some_and(|r| r.is_ok()) && local_error.get().is_none())
            .then(|| view! { <span class="muted" data-testid="chapters-saved" role="status">"Saved."</span> })
    };
    let start_error = move || {
        generate.value().get().and_then(Result::err).map(|e| {
            view! { <p class="error" data-testid="chapters-start-error" role="alert">{e.to_string()}</p> }
        })
    };
    let state = move || {
        status.get().map(|r| match r {
            Err(e) => view! { <p class="error" data-testid="chapters-load-error">{e.to_string()}</p> }
                .into_any(),
            Ok(s) => {
                let how = s.chapters.as_ref().map(|c| {
                    let made = crate::components::stream_meta::format_time(&c.updated_at);
                    let by = match (c.kind, c.model.as_deref()) {
                        (crate::chapters::ChaptersKind::Llm, Some(m)) => format!("Made by {m}"),
                        (crate::chapters::ChaptersKind::Llm, None) => "Made by an AI model".into(),
                        (crate::chapters::ChaptersKind::Builtin, _) => {
                            "Made by the built-in topic segmentation (no AI model configured)".into()
                        }
                        (crate::chapters::ChaptersKind::Edited, _) => "Edited".into(),
                    };
                    view! {
                        <p class="muted" data-testid="chapters-label" data-kind=c.kind.as_str()>
                            {format!("{by} · {made}")}
                        </p>
                    }
                });
                view! {
                    {s.running.then(|| {
                        let (done, total) = (s.done_calls, s.total_calls);
                        view! {
                            <p class="summary-progress" data-testid="chapters-progress" role="status">
                                "Making chapters… "
                                {(total > 0).then(|| view! {
                                    <progress max=total.to_string() value=done.to_string()></progress>
                                    {format!(" {done} of {total} model calls")}
                                })}
                            </p>
                        }
                    })}
                    {s.error.clone().map(|e| view! {
                        <p class="error" data-testid="chapters-error" role="alert">
                            {format!("Making chapters failed: {e}.")}
                            {s.chapters.is_some().then_some(" The previous chapters are kept.")}
                        </p>
                    })}
                    {how}
                    {(s.chapters.is_none() && !s.running).then(|| view! {
                        <p class="muted" data-testid="chapters-empty">
                            "No chapters yet. They are made from the transcript when the recording is built; make them now, or add them by hand."
                        </p>
                    })}
                }
                .into_any()
            }
        })
    };
    let has_chapters = move || {
        status.with(|s| {
            s.as_ref()
                .and_then(|r| r.as_ref().ok())
                .is_some_and(|s| s.chapters.is_some())
        })
    };
    view! {
        <section class="summary-panel chapters-panel" data-testid="chapters-panel">
            <h2>"Chapters"</h2>
            {move || status.with(Option::is_none).then(|| view! { <p class="muted">"Loading…"</p> })}
            {state}
            {start_error}
            <p>
                <button type="button" class="button-secondary" data-testid="chapters-generate"
                    disabled=move || running() || generate.pending().get() || status.with(Option::is_none)
                    on:click=move |_| { generate.dispatch(GenerateChapters { id: gen_id.clone() }); }>
                    {move || if has_chapters() { "Make chapters again" } else { "Make chapters" }}
                </button>
            </p>
            <form class="chapters-editor" data-testid="chapters-editor" on:submit=on_save
                hidden=move || status.with(Option::is_none)>
                <ol class="chapter-rows">
                    <For each=move || rows.get() key=|r| r.key let:row>
                        <li class="chapter-row" data-testid="chapter-row">
                            <input type="text" class="chapter-start" data-testid="chapter-start"
                                inputmode="numeric" size="7" aria-label="Start (m:ss)" placeholder="m:ss"
                                prop:value=move || row.start.get()
                                on:input=move |ev| row.start.set(event_target_value(&ev)) />
                            <input type="text" class="chapter-title-input" data-testid="chapter-title"
                                aria-label="Title" maxlength="200"
                                prop:value=move || row.title.get()
                                on:input=move |ev| row.title.set(event_target_value(&ev)) />
                            <button type="button" class="button-secondary" data-testid="chapter-remove"
                                aria-label="Remove this chapter"
                                on:click=move |_| rows.update(|r| r.retain(|x| x.key != row.key))>
                                "Remove"
                            </button>
                        </li>
                    </For>
                </ol>
                <p class="chapters-buttons">
                    <button type="button" class="button-secondary" data-testid="chapter-add" on:click=add>
                        "Add chapter"
                    </button>
                    <button type="submit" class="button-primary" data-testid="chapters-save"
                        disabled=move || running() || save.pending().get()>
                        "Save chapters"
                    </button>
                    {saved}
                </p>
                {save_error}
            </form>
        </section>
    }
}
