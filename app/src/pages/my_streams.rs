//! `/streams`: the signed-in broadcaster's streams, a form to create one, and
//! for each stream: edit (title, description, visibility), a new ingest token
//! (with a confirm step, shown once) and delete (with a confirm step).
//!
//! A new stream's ingest token is shown once, for `onair publish` or OBS-like
//! tools; the studio itself needs no token. Refusals from the server (a title
//! that breaks the rules, a live stream that cannot be deleted) are shown as
//! the server words them.

use crate::components::head::PageTitle;
use leptos::prelude::*;

use crate::accounts::current_user;
use crate::components::stream_meta::{StateBadge, StreamTime};
use crate::format::clock_secs;
use crate::recordings::{get_recording, DeleteRecording, Mp4State, RecordingSummary};
use crate::streams::{
    my_streams, CreateStream, DeleteStream, NewStream, RegenerateIngestToken, Stream, StreamPatch,
    UpdateStream, Visibility,
};

/// The visibility a `<select>` value names (public if unknown).
fn visibility_from(value: &str) -> Visibility {
    Visibility::parse(value).unwrap_or(Visibility::Public)
}

/// The broadcaster's streams.
#[component]
pub fn MyStreamsPage() -> impl IntoView {
    let create = ServerAction::<CreateStream>::new();
    // Bumped by a row after an edit or a deletion: the list is read again.
    let changed = RwSignal::new(0u32);
    let streams = Resource::new(
        move || (create.version().get(), changed.get()),
        |_| my_streams(),
    );
    let me = Resource::new(|| (), |_| current_user());
    let title = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let visibility = RwSignal::new(String::from("public"));
    // A stream made: the form is empty again for the next one (the choice
    // of visibility stays).
    Effect::new(move |_| {
        if create.value().get().is_some_and(|r| r.is_ok()) {
            title.set(String::new());
            description.set(String::new());
        }
    });
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let description = description.get_untracked();
        create.dispatch(CreateStream {
            stream: NewStream {
                title: title.get_untracked(),
                description: (!description.trim().is_empty()).then_some(description),
                visibility: visibility_from(&visibility.get_untracked()),
            },
        });
    };
    view! {
        <PageTitle text="My streams · Onair" />
        <section class="my-streams">
            <h1>"My streams"</h1>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    me.await.ok().flatten().map(|u| {
                        let href = format!("/u/{}", u.username);
                        view! {
                            <p class="muted">
                                "Public streams are listed on your profile, "
                                <a href=href.clone() data-testid="profile-link">{href.clone()}</a>
                                ". Unlisted and private ones appear only here."
                            </p>
                        }
                    })
                })}
            </Transition>
            <form class="stream-form" data-testid="new-stream" on:submit=submit>
                <label>"Title" <input required maxlength="120" data-testid="new-title" prop:value=title on:input=move |e| title.set(event_target_value(&e)) /></label>
                <label>"Description" <textarea maxlength="2000" data-testid="new-description" prop:value=description on:input=move |e| description.set(event_target_value(&e))></textarea></label>
                <label>
                    "Visibility "
                    <select data-testid="new-visibility" on:change=move |e| visibility.set(event_target_value(&e))>
                        <VisibilityOptions selected=Visibility::Public />
                    </select>
                </label>
                <button type="submit" class="button-primary" data-testid="create" disabled=move || create.pending().get()>
                    "Create stream"
                </button>
            </form>
            {move || create.value().get().map(|r| match r {
                Ok(s) => view! {
                    <div class="notice" role="status" data-testid="created">
                        <p>"Created " <strong>{s.title.clone()}</strong> ". "
                            <a href=format!("/studio/{}", s.id) data-testid="created-studio">"Open the studio"</a></p>
                        {s.ingest_token.map(|t| view! {
                            <p>"Ingest token for other publishers (shown once): " <code data-testid="created-token">{t}</code></p>
                        })}
                    </div>
                }.into_any(),
                Err(e) => view! { <p class="error" role="alert" data-testid="create-error">{e.to_string()}</p> }.into_any(),
            })}
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match streams.await {
                        Ok(list) if list.is_empty() => view! { <p class="muted" data-testid="no-streams">"No streams yet."</p> }.into_any(),
                        Ok(list) => view! {
                            <ul class="stream-list" data-testid="stream-list">
                                {list.into_iter().map(|s| view! { <Row stream=s changed /> }).collect_view()}
                            </ul>
                        }.into_any(),
                        Err(e) => view! {
                            <p class="error" role="alert" data-testid="streams-error">
                                {e.to_string()} " " <a href="/login">"Sign in"</a>
                            </p>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The three visibilities as `<option>`s, one of them selected.
#[component]
fn VisibilityOptions(selected: Visibility) -> impl IntoView {
    let options = [
        (
            Visibility::Public,
            "Public: listed on the home page and your profile",
        ),
        (Visibility::Unlisted, "Unlisted: anyone with the link"),
        (Visibility::Private, "Private: signed links only"),
    ];
    options
        .into_iter()
        .map(
            |(v, label)| view! { <option value=v.as_str() selected=v == selected>{label}</option> },
        )
        .collect_view()
}

/// Which panel of a row is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Panel {
    Closed,
    Edit,
    Encoder,
    Token,
    Delete,
    DeleteRecording,
}

/// One stream with its links, and edit, new token and delete.
#[component]
fn Row(stream: Stream, changed: RwSignal<u32>) -> impl IntoView {
    let update = ServerAction::<UpdateStream>::new();
    let regenerate = ServerAction::<RegenerateIngestToken>::new();
    let delete = ServerAction::<DeleteStream>::new();
    let delete_recording = ServerAction::<DeleteRecording>::new();
    let panel = RwSignal::new(Panel::Closed);
    let original = StoredValue::new(stream.clone());
    let title = RwSignal::new(stream.title.clone());
    let description = RwSignal::new(stream.description.clone());
    let visibility = RwSignal::new(stream.visibility);

    // After a saved edit or a deletion, read the list again from the server.
    Effect::new(move |_| {
        let saved = update.value().get().is_some_and(|r| r.is_ok());
        let deleted = delete.value().get().is_some_and(|r| r.is_ok())
            || delete_recording.value().get().is_some_and(|r| r.is_ok());
        if saved || deleted {
            changed.update(|n| *n += 1);
        }
    });

    // Opens a panel (or closes it if it is open), forgetting earlier answers:
    // a token is shown once, and an old error does not linger.
    let toggle = move |p: Panel| {
        update.clear();
        regenerate.clear();
        delete.clear();
        delete_recording.clear();
        if p == Panel::Edit {
            original.with_value(|s| {
                title.set(s.title.clone());
                description.set(s.description.clone());
                visibility.set(s.visibility);
            });
        }
        panel.update(|open| *open = if *open == p { Panel::Closed } else { p });
    };
    let id = stream.id.clone();
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        update.dispatch(UpdateStream {
            id: original.with_value(|s| s.id.clone()),
            patch: StreamPatch {
                title: Some(title.get_untracked()),
                description: Some(description.get_untracked()),
                visibility: Some(visibility.get_untracked()),
            },
        });
    };
    let regenerate_now = move |_| {
        regenerate.dispatch(RegenerateIngestToken {
            id: original.with_value(|s| s.id.clone()),
        });
    };
    let delete_now = move |_| {
        delete.dispatch(DeleteStream {
            id: original.with_value(|s| s.id.clone()),
        });
    };
    let delete_recording_now = move |_| {
        delete_recording.dispatch(DeleteRecording {
            id: original.with_value(|s| s.id.clone()),
        });
    };
    let error = move |e: crate::error::AppError, testid: &'static str| {
        view! { <p class="error" role="alert" data-testid=testid>{e.to_string()}</p> }
    };

    let panel_view = move || {
        match panel.get() {
        Panel::Closed => ().into_any(),
        Panel::Edit => view! {
            <form class="stream-form edit-form" data-testid="edit-form" on:submit=save>
                <label>"Title"
                    <input required maxlength="120" data-testid="edit-title"
                        prop:value=move || title.get() on:input=move |e| title.set(event_target_value(&e)) />
                </label>
                <label>"Description"
                    <textarea maxlength="2000" data-testid="edit-description"
                        prop:value=move || description.get() on:input=move |e| description.set(event_target_value(&e))></textarea>
                </label>
                <label>"Visibility "
                    <select data-testid="edit-visibility" on:change=move |e| visibility.set(visibility_from(&event_target_value(&e)))>
                        <VisibilityOptions selected=visibility.get_untracked() />
                    </select>
                </label>
                <div class="row-buttons">
                    <button type="submit" class="button-primary" data-testid="edit-save" disabled=move || update.pending().get()>
                        {move || if update.pending().get() { "Saving…" } else { "Save changes" }}
                    </button>
                    <button type="button" class="button-secondary" data-testid="edit-cancel" on:click=move |_| toggle(Panel::Edit)>"Cancel"</button>
                </div>
                {move || update.value().get().and_then(Result::err).map(|e| error(e, "edit-error"))}
            </form>
        }.into_any(),
        Panel::Encoder => view! {
            <crate::components::encoder::EncoderPanel id=original.with_value(|s| s.id.clone()) />
            <crate::components::health::HealthPanel id=original.with_value(|s| s.id.clone()) />
        }.into_any(),
        Panel::Token => match regenerate.value().get() {
            Some(Ok(s)) => view! {
                <div class="notice warning" role="status" data-testid="token-shown">
                    <p>"New ingest token, shown only now; copy it: "
                        <code data-testid="row-token">{s.ingest_token.unwrap_or_default()}</code></p>
                    <p>"The previous token no longer works. Update every publisher that used it."</p>
                    <button type="button" class="button-secondary" data-testid="token-done" on:click=move |_| toggle(Panel::Token)>"Done"</button>
                </div>
            }.into_any(),
            other => view! {
                <div class="notice warning" role="group" aria-label="Confirm a new ingest token" data-testid="token-confirm">
                    <p>"A new token replaces the current one at once: publishers using the old token ("
                        <code>"onair publish"</code>", OBS-like tools) can no longer connect or resume. "
                        "A broadcast already connected keeps going. The studio page needs no token."</p>
                    <div class="row-buttons">
                        <button type="button" class="button-danger" data-testid="token-confirm-button"
                            disabled=move || regenerate.pending().get() on:click=regenerate_now>"Replace the token"</button>
                        <button type="button" class="button-secondary" data-testid="token-cancel" on:click=move |_| toggle(Panel::Token)>"Cancel"</button>
                    </div>
                    {other.and_then(Result::err).map(|e| error(e, "token-error"))}
                </div>
            }.into_any(),
        },
        Panel::Delete => view! {
            <div class="notice warning" role="group" aria-label="Confirm deletion" data-testid="delete-confirm">
                <p>"Delete " <strong>{original.with_value(|s| s.title.clone())}</strong>
                    " for good? Its watch and studio links stop working. This cannot be undone."</p>
                <div class="row-buttons">
                    <button type="button" class="button-danger" data-testid="delete-confirm-button"
                        disabled=move || delete.pending().get() on:click=delete_now>"Delete stream"</button>
                    <button type="button" class="button-secondary" data-testid="delete-cancel" on:click=move |_| toggle(Panel::Delete)>"Cancel"</button>
                </div>
                {move || delete.value().get().and_then(Result::err).map(|e| error(e, "delete-error"))}
            </div>
        }.into_any(),
        Panel::DeleteRecording => view! {
            <div class="notice warning" role="group" aria-label="Confirm deleting the recording" data-testid="recording-delete-confirm">
                <p>"Delete the recording of " <strong>{original.with_value(|s| s.title.clone())}</strong>
                    "? Its video, playlists, MP4 and thumbnail are removed from storage. The stream itself stays. This cannot be undone."</p>
                <div class="row-buttons">
                    <button type="button" class="button-danger" data-testid="recording-delete-confirm-button"
                        disabled=move || delete_recording.pending().get() on:click=delete_recording_now>"Delete recording"</button>
                    <button type="button" class="button-secondary" data-testid="recording-delete-cancel" on:click=move |_| toggle(Panel::DeleteRecording)>"Cancel"</button>
                </div>
                {move || delete_recording.value().get().and_then(Result::err).map(|e| error(e, "recording-delete-error"))}
            </div>
        }.into_any(),
    }
    };

    let Stream {
        title: shown_title,
        visibility: shown_visibility,
        state,
        started_at,
        ended_at,
        recording,
        ..
    } = stream;
    let has_recording = recording.is_some();
    view! {
        <li class="stream-item my-stream" data-testid="stream-row" data-id=id.clone() data-state=state.as_str()>
            <div class="row-head">
                <StateBadge state />
                " "
                <strong data-testid="row-title">{shown_title}</strong>
                <span class="muted" data-testid="row-visibility">{format!(" · {}", shown_visibility.as_str())}</span>
                " "
                <StreamTime state started_at ended_at />
            </div>
            <div class="row-actions">
                <a href=format!("/studio/{id}")>"Studio"</a>
                <a href=format!("/watch/{id}")>"Watch"</a>
                <button type="button" class="link-button" data-testid="edit"
                    aria-expanded=move || (panel.get() == Panel::Edit).to_string() on:click=move |_| toggle(Panel::Edit)>"Edit"</button>
                <button type="button" class="link-button" data-testid="encoder"
                    aria-expanded=move || (panel.get() == Panel::Encoder).to_string() on:click=move |_| toggle(Panel::Encoder)>"Encoder (OBS)"</button>
                <button type="button" class="link-button" data-testid="new-token"
                    aria-expanded=move || (panel.get() == Panel::Token).to_string() on:click=move |_| toggle(Panel::Token)>"New ingest token"</button>
                {has_recording.then(|| view! {
                    <button type="button" class="link-button danger" data-testid="delete-recording"
                        aria-expanded=move || (panel.get() == Panel::DeleteRecording).to_string() on:click=move |_| toggle(Panel::DeleteRecording)>"Delete recording"</button>
                })}
                <button type="button" class="link-button danger" data-testid="delete"
                    aria-expanded=move || (panel.get() == Panel::Delete).to_string() on:click=move |_| toggle(Panel::Delete)>"Delete"</button>
            </div>
            {recording.map(|r| view! { <RecordingLine id=id.clone() summary=r /> })}
            {panel_view}
        </li>
    }
}

/// A stream's recording: thumbnail, duration, and the MP4's state, polled
/// every two seconds while it is being made.
#[component]
fn RecordingLine(id: String, summary: RecordingSummary) -> impl IntoView {
    let tick = RwSignal::new(0u32);
    let initial = StoredValue::new(summary.clone());
    let rec_id = id.clone();
    let latest = Resource::new(
        move || tick.get(),
        move |n| {
            let id = rec_id.clone();
            async move {
                if n == 0 {
                    return None;
                }
                get_recording(id).await.ok()
            }
        },
    );
    // (state, progress, download URL)
    let status = move || match latest.get().flatten() {
        Some(r) => (
            r.mp4.state,
            r.mp4.progress,
            r.mp4.url.clone(),
            r.mp4.error.clone(),
        ),
        None => initial.with_value(|i| (i.mp4, i.progress, i.download.clone(), None)),
    };
    Effect::new(move |_| {
        let (state, ..) = status();
        if matches!(state, Mp4State::Pending | Mp4State::Building) {
            #[cfg(feature = "hydrate")]
            leptos::prelude::set_timeout(
                move || tick.update(|n| *n += 1),
                std::time::Duration::from_secs(2),
            );
        }
    });
    let watch = format!("/watch/{id}");
    view! {
        <div class="recording-line" data-testid="recording">
            {summary.thumbnail.map(|src| view! {
                <a href=watch.clone()><img class="thumb" src=src alt="" width="96" loading="lazy" /></a>
            })}
            <span>"Recording · " <span data-testid="recording-duration">{clock_secs(summary.duration_ms / 1000)}</span></span>
            " · "
            <span data-testid="recording-mp4" data-state=move || format!("{:?}", status().0).to_lowercase()>
                {move || match status() {
                    (Mp4State::Ready, _, Some(url), _) => view! { <a href=url download="">"Download MP4"</a> }.into_any(),
                    (Mp4State::Ready, _, None, _) => view! { "MP4 ready" }.into_any(),
                    (Mp4State::Failed, _, _, e) => view! { <span class="error">{format!("MP4 failed: {}", e.unwrap_or_else(|| "unknown error".into()))}</span> }.into_any(),
                    (Mp4State::Pending, ..) => view! { "MP4 queued…" }.into_any(),
                    (Mp4State::Building, p, ..) => view! {
                        "Making the MP4… "
                        <progress max="100" value=p.to_string()></progress>
                        {format!(" {p}%")}
                    }.into_any(),
                }}
            </span>
        </div>
    }
}
