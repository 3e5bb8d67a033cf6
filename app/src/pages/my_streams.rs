//! `/streams`: the signed-in broadcaster's streams, and a form to create one.
//! A new stream's ingest token is shown once, for `onair publish` or OBS-like
//! tools; the studio itself needs no token.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::streams::{my_streams, CreateStream, NewStream, Stream, StreamState, Visibility};

/// The broadcaster's streams.
#[component]
pub fn MyStreamsPage() -> impl IntoView {
    let create = ServerAction::<CreateStream>::new();
    let streams = Resource::new(move || create.version().get(), |_| my_streams());
    let title = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    let visibility = RwSignal::new(String::from("public"));
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let visibility = match visibility.get_untracked().as_str() {
            "unlisted" => Visibility::Unlisted,
            "private" => Visibility::Private,
            _ => Visibility::Public,
        };
        let description = description.get_untracked();
        create.dispatch(CreateStream {
            stream: NewStream {
                title: title.get_untracked(),
                description: (!description.trim().is_empty()).then_some(description),
                visibility,
            },
        });
    };
    view! {
        <Title text="My streams · Onair" />
        <section class="my-streams">
            <h1>"My streams"</h1>
            <form class="stream-form" data-testid="new-stream" on:submit=submit>
                <label>"Title" <input required maxlength="120" data-testid="new-title" on:input=move |e| title.set(event_target_value(&e)) /></label>
                <label>"Description" <textarea maxlength="2000" data-testid="new-description" on:input=move |e| description.set(event_target_value(&e))></textarea></label>
                <label>
                    "Visibility "
                    <select data-testid="new-visibility" on:change=move |e| visibility.set(event_target_value(&e))>
                        <option value="public">"Public: listed on the home page"</option>
                        <option value="unlisted">"Unlisted: anyone with the link"</option>
                        <option value="private">"Private: signed links only"</option>
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
                                {list.into_iter().map(|s| view! { <Row stream=s /> }).collect_view()}
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

#[component]
fn Row(stream: Stream) -> impl IntoView {
    let state = match stream.state {
        StreamState::Idle => "idle",
        StreamState::Live => "live",
        StreamState::Ended => "ended",
        StreamState::Interrupted => "interrupted",
    };
    view! {
        <li class="stream-item" data-state=state>
            {(stream.state == StreamState::Live).then(|| view! { <span class="live-badge">"LIVE"</span> })}
            <strong>{stream.title}</strong>
            <span class="muted">{format!(" · {state}")}</span>
            " "
            <a href=format!("/studio/{}", stream.id)>"Studio"</a>
            " · "
            <a href=format!("/watch/{}", stream.id)>"Watch"</a>
        </li>
    }
}
