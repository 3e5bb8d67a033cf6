//! The chat panel of a stream's room, used by the watch page and the studio,
//! and the viewer count. Everything comes from a [`RoomHandle`].
//!
//! Messages are rendered as text, never as HTML. The list follows new
//! messages while it is scrolled to the bottom; scrolled up, it stays put and
//! a "New messages" pill jumps down. The input counts characters against
//! [`MAX_CHAT_CHARS`] and says why it is disabled (signed out, banned or timed
//! out, connecting). Moderators get Delete, Timeout and Ban on hover, an
//! Unban in the latest notice, and an Unban field.

use leptos::prelude::*;

use crate::protocol::events::{
    check_chat_text, ChatMessage, ChatSettings, ClientMessage, ModerationAction, MAX_CHAT_CHARS,
};
use crate::realtime::{watching, Link, RoomHandle};

/// Within this many pixels of the bottom, the list counts as scrolled down.
const STICK_PX: i32 = 40;
/// The timeout the moderator button gives, in minutes.
const TIMEOUT_MINUTES: u32 = 10;

/// The room's rules in one line, or nothing when there are none.
pub fn rules_text(settings: &ChatSettings) -> Option<String> {
    let mut parts = Vec::new();
    if settings.slow_mode_secs > 0 {
        parts.push(format!(
            "Slow mode: one message every {} s",
            settings.slow_mode_secs
        ));
    }
    if settings.block_links {
        parts.push("no links".to_string());
    }
    match settings.banned_words.len() {
        0 => {}
        1 => parts.push("1 blocked word".to_string()),
        n => parts.push(format!("{n} blocked words")),
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// "3 watching", once the room said how many.
#[component]
pub fn ViewerCount(
    /// The room.
    room: RoomHandle,
) -> impl IntoView {
    view! {
        <span class="viewer-count" data-testid="viewer-count" hidden=move || !room.welcomed()>
            {move || watching(room.viewers())}
        </span>
    }
}

/// The chat of a room: messages, the input, notices and moderation.
#[component]
pub fn Chat(
    /// The room.
    room: RoomHandle,
) -> impl IntoView {
    let r = room.room;
    // Signing in comes back to this page.
    let sign_in = crate::return_to::sign_in_here();
    let messages = Memo::new(move |_| r.with(|r| r.messages.iter().cloned().collect::<Vec<_>>()));
    let me = Memo::new(move |_| r.with(|r| r.username.clone()));
    let moderator = Memo::new(move |_| r.with(|r| r.moderator));
    let can_chat = Memo::new(move |_| r.with(|r| r.can_chat));
    let welcomed = Memo::new(move |_| r.with(|r| r.state.is_some()));
    let server_error = Memo::new(move |_| r.with(|r| r.error.as_ref().map(|(_, m)| m.clone())));
    let notice = Memo::new(move |_| r.with(|r| r.notice.clone()));
    let rules = Memo::new(move |_| r.with(|r| rules_text(&r.settings)));
    let link = Memo::new(move |_| room.link.get());
    let open = move || link.with(|l| *l == Link::Open);

    let text = RwSignal::new(String::new());
    let local_error = RwSignal::new(None::<String>);
    // What was sent last and has not come back yet: put back into the input
    // if the server refuses it.
    let last_sent = RwSignal::new(None::<String>);
    let list = NodeRef::<leptos::html::Ol>::new();
    let stuck = RwSignal::new(true);
    let unseen = RwSignal::new(false);

    let count = move || text.with(|t| t.trim().chars().count());
    let signed_out = move || welcomed.get() && me.with(Option::is_none);
    let barred = move || welcomed.get() && me.with(Option::is_some) && !can_chat.get();
    // An ended stream's chat is read-only (the server refuses posts too).
    let closed = Memo::new(move |_| {
        r.with(|r| {
            matches!(
                r.state,
                Some(
                    crate::protocol::StreamState::Ended | crate::protocol::StreamState::Interrupted
                )
            )
        })
    });
    let input_disabled = move || !welcomed.get() || !can_chat.get() || closed.get();
    let send_disabled =
        move || input_disabled() || !open() || check_chat_text(&text.get()).is_err();

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let checked = text.with_untracked(|t| check_chat_text(t).map(str::to_owned));
        match checked {
            Err(e) => local_error.set(Some(e)),
            Ok(t) => {
                r.update(|r| r.error = None);
                if room.send(ClientMessage::Chat { text: t.clone() }) {
                    local_error.set(None);
                    last_sent.set(Some(t));
                    text.set(String::new());
                    stuck.set(true);
                } else {
                    local_error.set(Some("Not connected. Wait a moment and try again.".into()));
                }
            }
        }
    };
    // A refusal puts the text back, unless something new was typed meanwhile.
    Effect::new(move |_| {
        if server_error.get().is_none() {
            return;
        }
        if let Some(t) = last_sent.get_untracked() {
            if text.with_untracked(String::is_empty) {
                text.set(t);
            }
            last_sent.set(None);
        }
    });
    // Follow new messages while scrolled down; otherwise offer the pill.
    Effect::new(move |prev: Option<Option<String>>| {
        let last = messages.with(|ms| ms.last().map(|m| m.id.clone()));
        let mine = me.get_untracked();
        if let Some(m) = messages.with(|ms| ms.last().cloned()) {
            if mine.as_deref() == Some(m.author.username.as_str())
                && last_sent.get_untracked().as_deref() == Some(m.text.as_str())
            {
                last_sent.set(None);
            }
        }
        let grew = last.is_some() && prev.as_ref().is_some_and(|p| *p != last);
        if stuck.get_untracked() {
            scroll_to_bottom(list);
        } else if grew {
            unseen.set(true);
        }
        last
    });
    let on_scroll = move |_| {
        if let Some(el) = list.get_untracked() {
            let at_bottom = el.scroll_height() - el.scroll_top() - el.client_height() <= STICK_PX;
            stuck.set(at_bottom);
            if at_bottom {
                unseen.set(false);
            }
        }
    };
    let jump_down = move |_| {
        stuck.set(true);
        unseen.set(false);
        scroll_to_bottom(list);
    };

    let unban_name = RwSignal::new(String::new());
    let unban = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let name = unban_name.with_untracked(|n| n.trim().to_owned());
        if name.is_empty() {
            return;
        }
        if room.send(ClientMessage::Unban { username: name }) {
            unban_name.set(String::new());
        } else {
            local_error.set(Some("Not connected. Wait a moment and try again.".into()));
        }
    };
    // "Unban" in the notice of a ban or timeout, for moderators.
    let undo = move || {
        let (action, name) = room.moderation.get()?;
        let undoable = matches!(action, ModerationAction::Ban | ModerationAction::Timeout);
        (undoable && moderator.get()).then(|| {
            let label = format!("Unban {name}");
            view! {
                <button type="button" class="link-button" data-testid="chat-undo"
                    on:click=move |_| { room.send(ClientMessage::Unban { username: name.clone() }); }>
                    {label}
                </button>
            }
        })
    };

    view! {
        <section class="chat" data-testid="chat" data-state=move || link.with(Link::name) aria-label="Chat">
            <header class="chat-head">
                <h2>"Chat"</h2>
                <span class="chat-link" data-testid="chat-link">{move || link.with(Link::text)}</span>
            </header>
            {move || rules.get().map(|t| view! { <p class="chat-rules muted" data-testid="chat-rules">{t}</p> })}
            <div class="chat-body">
                <ol class="chat-list" data-testid="chat-messages" node_ref=list on:scroll=on_scroll aria-live="polite">
                    <For each=move || messages.get() key=|m| m.id.clone() let:m>
                        <ChatLine message=m room=room me=me moderator=moderator />
                    </For>
                </ol>
                <button type="button" class="chat-new" data-testid="chat-new" hidden=move || !unseen.get() on:click=jump_down>
                    "New messages ↓"
                </button>
            </div>
            {move || notice.get().map(|n| view! {
                <p class="chat-notice" data-testid="chat-notice" role="status">{n} " " {undo}</p>
            })}
            <form class="chat-form" on:submit=submit>
                <input type="text" class="chat-input" data-testid="chat-input" autocomplete="off"
                    aria-label="Chat message"
                    placeholder=move || if closed.get() { "Chat is closed" } else if welcomed.get() { "Say something…" } else { "Connecting…" }
                    disabled=input_disabled
                    prop:value=move || text.get()
                    on:input=move |e| {
                        text.set(event_target_value(&e));
                        local_error.set(None);
                    } />
                <button type="submit" class="chat-send" data-testid="chat-send" disabled=send_disabled>
                    "Send"
                </button>
            </form>
            <p class="chat-meta">
                <span class="chat-count" data-testid="chat-count" class:over=move || { count() > MAX_CHAT_CHARS }>
                    {move || format!("{}/{}", count(), MAX_CHAT_CHARS)}
                </span>
                {move || closed.get().then(|| view! {
                    <span class="chat-why" data-testid="chat-closed">"The stream has ended: the chat is read-only."</span>
                })}
                {move || (signed_out() && !closed.get()).then(|| view! {
                    <a href=move || sign_in.get() class="chat-why" data-testid="chat-signin">"Sign in to chat"</a>
                })}
                {move || barred().then(|| view! {
                    <span class="chat-why" data-testid="chat-barred">"You cannot chat in this stream right now (timed out or banned)."</span>
                })}
            </p>
            {move || local_error.get().or_else(|| server_error.get()).map(|e| view! {
                <p class="chat-error error" role="alert" data-testid="chat-error">{e}</p>
            })}
            <Show when=move || moderator.get()>
                <form class="chat-tools" data-testid="chat-tools" on:submit=unban>
                    <label>
                        "Let someone chat again: "
                        <input type="text" data-testid="chat-unban-name" placeholder="username" autocomplete="off"
                            prop:value=move || unban_name.get()
                            on:input=move |e| unban_name.set(event_target_value(&e)) />
                    </label>
                    <button type="submit" data-testid="chat-unban" disabled=move || unban_name.with(|n| n.trim().is_empty())>
                        "Unban"
                    </button>
                </form>
            </Show>
        </section>
    }
}

/// One message, with moderator controls on hover.
#[component]
fn ChatLine(
    message: ChatMessage,
    room: RoomHandle,
    me: Memo<Option<String>>,
    moderator: Memo<bool>,
) -> impl IntoView {
    let ChatMessage {
        id, author, text, ..
    } = message;
    let name = author.username;
    let author_is_moderator = author.moderator;
    let mine = {
        let name = name.clone();
        move || me.with(|me| me.as_deref() == Some(name.as_str()))
    };
    // Moderators cannot time out or ban themselves or other moderators.
    let punishable = {
        let mine = mine.clone();
        move || moderator.get() && !author_is_moderator && !mine()
    };
    let delete = {
        let id = id.clone();
        move |_| {
            room.send(ClientMessage::Delete {
                message_id: id.clone(),
            });
        }
    };
    let timeout = {
        let name = name.clone();
        move |_| {
            room.send(ClientMessage::Timeout {
                username: name.clone(),
                minutes: TIMEOUT_MINUTES,
            });
        }
    };
    let ban = {
        let name = name.clone();
        move |_| {
            room.send(ClientMessage::Ban {
                username: name.clone(),
            });
        }
    };
    let author_attr = name.clone();
    view! {
        <li class="chat-message" data-testid="chat-message" data-id=id data-author=author_attr class:mine=mine>
            <span class="chat-author" class:moderator=author_is_moderator>{name}</span>
            {author_is_moderator.then(|| view! { <span class="chat-badge" title="Moderator">"MOD"</span> })}
            <span class="chat-text" data-testid="chat-text">{text}</span>
            <span class="chat-mod">
                <Show when=move || moderator.get()>
                    <button type="button" data-testid="chat-delete" title="Delete this message" on:click=delete.clone()>"Delete"</button>
                </Show>
                <Show when=punishable.clone()>
                    <button type="button" data-testid="chat-timeout" title="No chatting for 10 minutes" on:click=timeout.clone()>"Timeout 10 min"</button>
                    <button type="button" data-testid="chat-ban" title="No chatting in this stream until unbanned" on:click=ban.clone()>"Ban"</button>
                </Show>
            </span>
        </li>
    }
}

fn scroll_to_bottom(list: NodeRef<leptos::html::Ol>) {
    if let Some(el) = list.get_untracked() {
        el.set_scroll_top(el.scroll_height());
    }
}

#[cfg(test)]
mod tests {
    use super::rules_text;
    use crate::protocol::events::ChatSettings;

    #[test]
    fn rules_read_as_one_line() {
        assert_eq!(rules_text(&ChatSettings::default()), None);
        let s = ChatSettings {
            slow_mode_secs: 5,
            block_links: true,
            banned_words: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            rules_text(&s).as_deref(),
            Some("Slow mode: one message every 5 s · no links · 2 blocked words")
        );
    }
}
