//! `/search?q=`: titles, descriptions and transcript lines that match, best
//! first, each linking to the stream (transcript lines: to their moment in
//! the recording). Matches are shown as `<mark>` elements built from plain
//! text fragments, never as HTML from the server.

use crate::components::head::PageTitle;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::search::{search, Fragment, SearchField, SearchHit, MAX_QUERY_CHARS};

/// The fragments of a hit: plain text, with matches in `<mark>`.
pub fn highlighted(frags: &[Fragment]) -> impl IntoView {
    frags
        .iter()
        .map(|f| {
            if f.mark {
                view! { <mark>{f.text.clone()}</mark> }.into_any()
            } else {
                f.text.clone().into_any()
            }
        })
        .collect_view()
}

fn field_label(hit: &SearchHit) -> String {
    match (hit.field, &hit.at) {
        (SearchField::Transcript, Some(at)) => format!("said at {at}"),
        (SearchField::Transcript, None) => "said in the stream".into(),
        (SearchField::Title, _) => "title".into(),
        (SearchField::Description, _) => "description".into(),
    }
}

/// The search page.
#[component]
pub fn SearchPage() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    let results = Resource::new(q, |q| async move {
        if q.trim().is_empty() {
            None
        } else {
            Some(search(q, None).await)
        }
    });
    view! {
        <PageTitle text="Search · Onair" />
        <section class="search-page" data-testid="search-page">
            <h1>"Search"</h1>
            <form class="search-form" action="/search" method="get" role="search">
                <input type="search" name="q" prop:value=q maxlength=MAX_QUERY_CHARS.to_string()
                    aria-label="Search streams and transcripts" data-testid="search-input"
                    placeholder="Words said in a stream, or in its title" />
                " "
                <button type="submit" class="button-primary">"Search"</button>
            </form>
            <Transition fallback=|| view! { <p class="muted" data-testid="search-loading">"Searching…"</p> }>
                {move || Suspend::new(async move {
                    match results.await {
                        None => view! {
                            <p class="muted" data-testid="search-start">
                                "Search the titles and descriptions of streams, and what was said in them."
                            </p>
                        }.into_any(),
                        Some(Err(e)) => view! { <p class="error" data-testid="search-error">{e.to_string()}</p> }.into_any(),
                        Some(Ok(r)) if r.results.is_empty() => view! {
                            <p class="muted empty" data-testid="search-no-results">
                                {format!("Nothing found for “{}”. ", r.query)}
                                "Every word must match; public streams and your own are searched."
                            </p>
                        }.into_any(),
                        Some(Ok(r)) => {
                            let n = r.results.len();
                            let hits = r.results.into_iter().map(|hit| {
                                let label = field_label(&hit);
                                view! {
                                    <li class="search-hit" data-testid="search-hit" data-field=format!("{:?}", hit.field).to_lowercase()
                                        data-stream=hit.stream_id.clone()>
                                        <a class="search-hit-title" href=hit.url.clone()>{hit.title.clone()}</a>
                                        <span class="muted">{format!(" · {label}")}{hit.owner.clone().map(|o| format!(" · by {o}"))}</span>
                                        <p class="search-snippet">
                                            <a href=hit.url.clone() data-testid="search-hit-link">{highlighted(&hit.fragments)}</a>
                                        </p>
                                    </li>
                                }
                            }).collect_view();
                            view! {
                                <p class="muted" data-testid="search-count">
                                    {format!("{n} {} for “{}”", if n == 1 { "result" } else { "results" }, r.query)}
                                </p>
                                <ol class="search-results" data-testid="search-results">{hits}</ol>
                            }.into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
}
