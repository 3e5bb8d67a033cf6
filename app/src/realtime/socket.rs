//! The events socket in the browser: a `WebSocket`, a heartbeat interval and
//! a reconnect timer, reporting into a [`RoomHandle`]'s signals. Browser
//! objects are not `Send`, so this lives in an `Rc` that the page keeps (in a
//! `SendWrapper`) and whose callbacks hold only a `Weak`.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, Event, MessageEvent, WebSocket};

use super::{
    close_message, events_url, heartbeat, is_final_close, new_viewer_id, Beat, Link, RoomHandle,
    BACKOFF_MS, TICK_MS, VIEWER_ID_KEY,
};
use crate::browser::now_ms;
use crate::protocol::events::{
    valid_viewer_id, ClientMessage, ClientRole, Envelope, ModerationAction, ServerEvent,
};
use crate::retry::backoff_ms;

/// The close code the client uses when it replaces or leaves a connection.
const CLIENT_CLOSE: u16 = 1000;

/// This browser's viewer id: the one in localStorage, or a new one kept
/// there (or kept for this page only, when storage is not available).
pub(super) fn viewer_id() -> String {
    let storage = web_sys::window().and_then(|w| w.local_storage().ok().flatten());
    if let Some(id) = storage
        .as_ref()
        .and_then(|s| s.get_item(VIEWER_ID_KEY).ok().flatten())
        .filter(|id| valid_viewer_id(id))
    {
        return id;
    }
    let id = new_viewer_id(js_sys::Math::random);
    if let Some(s) = storage {
        let _ = s.set_item(VIEWER_ID_KEY, &id);
    }
    id
}

/// The JS callbacks, made once per connection and shared by every socket it
/// opens, so reconnects do not pile up closures.
struct Callbacks {
    on_open: Closure<dyn FnMut(Event)>,
    on_message: Closure<dyn FnMut(MessageEvent)>,
    on_close: Closure<dyn FnMut(CloseEvent)>,
    on_tick: Closure<dyn FnMut()>,
    on_retry: Closure<dyn FnMut()>,
    on_timeout_over: Closure<dyn FnMut()>,
}

struct Inner {
    url: Option<String>,
    role: ClientRole,
    viewer_id: Option<String>,
    token: Option<String>,
    handle: RoomHandle,
    ws: RefCell<Option<WebSocket>>,
    /// Reconnect attempts since the last welcome.
    attempts: Cell<u32>,
    /// A welcome arrived once: later drops are "reconnecting".
    welcomed: Cell<bool>,
    last_heard: Cell<f64>,
    last_ping: Cell<f64>,
    tick: Cell<Option<i32>>,
    retry: Cell<Option<i32>>,
    /// Gives the chat box back when this user's timeout ends.
    timeout_over: Cell<Option<i32>>,
    stopped: Cell<bool>,
    callbacks: RefCell<Option<Callbacks>>,
}

/// One room connection, with its reconnects.
#[derive(Clone)]
pub struct Conn(Rc<Inner>);

impl Conn {
    /// Connects to `stream`'s room and keeps reconnecting until [`Conn::stop`].
    pub fn start(
        stream: String,
        role: ClientRole,
        token: Option<String>,
        handle: RoomHandle,
    ) -> Self {
        let url = web_sys::window().and_then(|w| {
            let loc = w.location();
            let https = loc.protocol().ok()? == "https:";
            Some(events_url(https, &loc.host().ok()?, &stream))
        });
        let conn = Conn(Rc::new(Inner {
            url,
            role,
            // The studio does not count as a viewer, so it needs no id.
            viewer_id: (role == ClientRole::Viewer).then(viewer_id),
            token,
            handle,
            ws: RefCell::new(None),
            attempts: Cell::new(0),
            welcomed: Cell::new(false),
            last_heard: Cell::new(now_ms() as f64),
            last_ping: Cell::new(now_ms() as f64),
            tick: Cell::new(None),
            retry: Cell::new(None),
            timeout_over: Cell::new(None),
            stopped: Cell::new(false),
            callbacks: RefCell::new(None),
        }));
        let callbacks = callbacks(Rc::downgrade(&conn.0));
        if let Some(w) = web_sys::window() {
            if let Ok(id) = w.set_interval_with_callback_and_timeout_and_arguments_0(
                callbacks.on_tick.as_ref().unchecked_ref(),
                TICK_MS,
            ) {
                conn.0.tick.set(Some(id));
            }
        }
        *conn.0.callbacks.borrow_mut() = Some(callbacks);
        connect(&conn.0);
        conn
    }

    /// Sends a message if the socket is open.
    pub fn send(&self, message: &ClientMessage) -> bool {
        send(&self.0, message)
    }

    /// The page is going away: closes the socket and clears every timer.
    pub fn stop(&self) {
        let inner = &self.0;
        inner.stopped.set(true);
        if let Some(w) = web_sys::window() {
            if let Some(id) = inner.tick.take() {
                w.clear_interval_with_handle(id);
            }
            for timer in [&inner.retry, &inner.timeout_over] {
                if let Some(id) = timer.take() {
                    w.clear_timeout_with_handle(id);
                }
            }
        }
        drop_socket(inner);
        // The callbacks are dropped later, never from inside one of them.
        let leftover = inner.callbacks.borrow_mut().take();
        if let Some(cb) = leftover {
            let later = Closure::once_into_js(move || drop(cb));
            if let Some(w) = web_sys::window() {
                let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                    later.unchecked_ref(),
                    0,
                );
            }
        }
    }
}

fn send(inner: &Inner, message: &ClientMessage) -> bool {
    let ws = inner.ws.borrow();
    let Some(ws) = ws.as_ref().filter(|ws| ws.ready_state() == WebSocket::OPEN) else {
        return false;
    };
    match serde_json::to_string(message) {
        Ok(text) => ws.send_with_str(&text).is_ok(),
        Err(_) => false,
    }
}

/// Opens a socket (the first, or after a drop).
fn connect(inner: &Inner) {
    if inner.stopped.get() || inner.ws.borrow().is_some() {
        return;
    }
    let Some(url) = inner.url.as_deref() else {
        let _ = inner
            .handle
            .link
            .try_set(Link::Closed("Cannot work out the server address.".into()));
        return;
    };
    let ws = match WebSocket::new(url) {
        Ok(ws) => ws,
        Err(_) => return schedule_retry(inner),
    };
    {
        let cb = inner.callbacks.borrow();
        let Some(cb) = cb.as_ref() else { return };
        ws.set_onopen(Some(cb.on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(cb.on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(cb.on_close.as_ref().unchecked_ref()));
    }
    // Connecting counts as hearing: a socket that never opens is replaced
    // after the silence limit too.
    inner.last_heard.set(now_ms() as f64);
    *inner.ws.borrow_mut() = Some(ws);
}

/// Forgets the current socket: its handlers are removed, so nothing from it
/// arrives any more, and it is closed.
fn drop_socket(inner: &Inner) {
    let ws = inner.ws.borrow_mut().take();
    if let Some(ws) = ws {
        ws.set_onopen(None);
        ws.set_onmessage(None);
        ws.set_onclose(None);
        let _ = ws.close_with_code(CLIENT_CLOSE);
    }
}

/// Reconnects after an exponential, jittered delay.
fn schedule_retry(inner: &Inner) {
    if inner.stopped.get() || inner.retry.get().is_some() {
        return;
    }
    let attempt = inner.attempts.get().saturating_add(1);
    inner.attempts.set(attempt);
    let delay = backoff_ms(attempt, BACKOFF_MS.0, BACKOFF_MS.1, js_sys::Math::random());
    let cb = inner.callbacks.borrow();
    let (Some(cb), Some(w)) = (cb.as_ref(), web_sys::window()) else {
        return;
    };
    if let Ok(id) = w.set_timeout_with_callback_and_timeout_and_arguments_0(
        cb.on_retry.as_ref().unchecked_ref(),
        delay as i32,
    ) {
        inner.retry.set(Some(id));
    }
}

/// This user was moderated: a timeout ends by itself (the server sends
/// nothing then), so the chat box comes back at `until_ms`; a ban or an
/// unban cancels that.
fn watch_timeout(inner: &Inner, action: ModerationAction, until_ms: Option<i64>) {
    let Some(w) = web_sys::window() else { return };
    if let Some(id) = inner.timeout_over.take() {
        w.clear_timeout_with_handle(id);
    }
    let (ModerationAction::Timeout, Some(until)) = (action, until_ms) else {
        return;
    };
    // A second of slack for clocks that differ a little.
    let delay = (until as f64 - now_ms() as f64 + 1000.0).clamp(0.0, i32::MAX as f64) as i32;
    let cb = inner.callbacks.borrow();
    let Some(cb) = cb.as_ref() else { return };
    if let Ok(id) = w.set_timeout_with_callback_and_timeout_and_arguments_0(
        cb.on_timeout_over.as_ref().unchecked_ref(),
        delay,
    ) {
        inner.timeout_over.set(Some(id));
    }
}

/// Says so and schedules the next attempt: "reconnecting" once the room was
/// joined, still "connecting" before.
fn set_retrying(inner: &Inner) {
    let link = if inner.welcomed.get() {
        Link::Reconnecting
    } else {
        Link::Connecting
    };
    let _ = inner.handle.link.try_set(link);
    schedule_retry(inner);
}

/// Whether an event came from the socket in use (not one already replaced).
fn is_current(inner: &Inner, event: &Event) -> bool {
    let ws = inner.ws.borrow();
    match (ws.as_ref(), event.target()) {
        (Some(ws), Some(target)) => JsValue::from(ws.clone()) == JsValue::from(target),
        _ => false,
    }
}

fn callbacks(weak: Weak<Inner>) -> Callbacks {
    let w = weak.clone();
    let on_open = Closure::<dyn FnMut(Event)>::new(move |e: Event| {
        let Some(inner) = w.upgrade() else { return };
        if !is_current(&inner, &e) {
            return;
        }
        inner.last_heard.set(now_ms() as f64);
        inner.last_ping.set(now_ms() as f64);
        let hello = inner.handle.room.try_with_untracked(|r| {
            r.hello(inner.role, inner.viewer_id.clone(), inner.token.clone())
        });
        if let Some(hello) = hello {
            send(&inner, &hello);
        }
    });
    let w = weak.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        let Some(inner) = w.upgrade() else { return };
        if !is_current(&inner, &e) {
            return;
        }
        inner.last_heard.set(now_ms() as f64);
        let Some(text) = e.data().as_string() else {
            return;
        };
        // Frames this build does not know are skipped: newer servers may add some.
        let Ok(envelope) = serde_json::from_str::<Envelope>(&text) else {
            return;
        };
        match &envelope.event {
            ServerEvent::Pong => return,
            ServerEvent::Welcome { .. } => {
                inner.attempts.set(0);
                inner.welcomed.set(true);
                let _ = inner.handle.link.try_set(Link::Open);
            }
            _ => {}
        }
        let moderation = match &envelope.event {
            ServerEvent::Moderation {
                action,
                username,
                until_ms,
                ..
            } => Some((*action, username.clone(), *until_ms)),
            _ => None,
        };
        let applied = inner
            .handle
            .room
            .try_maybe_update(|room| {
                let applied = room.apply(envelope);
                (applied, applied)
            })
            .unwrap_or(false);
        if let (true, Some((action, username, until_ms))) = (applied, moderation) {
            let me = inner.handle.room.try_with_untracked(|r| r.username.clone());
            if me.flatten().as_deref() == Some(username.as_str()) {
                watch_timeout(&inner, action, until_ms);
            }
            let _ = inner.handle.moderation.try_set(Some((action, username)));
        }
    });
    let w = weak.clone();
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
        let Some(inner) = w.upgrade() else { return };
        if !is_current(&inner, &e) {
            return;
        }
        drop_socket(&inner);
        if inner.stopped.get() {
            return;
        }
        let code = e.code();
        if is_final_close(code) {
            let _ = inner
                .handle
                .link
                .try_set(Link::Closed(close_message(code, &e.reason())));
            return;
        }
        set_retrying(&inner);
    });
    let w = weak.clone();
    let on_tick = Closure::<dyn FnMut()>::new(move || {
        let Some(inner) = w.upgrade() else { return };
        let open = match inner.ws.borrow().as_ref() {
            Some(ws) => ws.ready_state() == WebSocket::OPEN,
            None => return,
        };
        let now = now_ms() as f64;
        match heartbeat(now, inner.last_heard.get(), inner.last_ping.get()) {
            Beat::Wait => {}
            Beat::Ping if open => {
                inner.last_ping.set(now);
                send(&inner, &ClientMessage::Ping);
            }
            Beat::Ping => {}
            Beat::Dead => {
                // A half-open connection may take minutes to report its close:
                // leave it and start a new one.
                drop_socket(&inner);
                set_retrying(&inner);
            }
        }
    });
    let w = weak.clone();
    let on_retry = Closure::<dyn FnMut()>::new(move || {
        if let Some(inner) = w.upgrade() {
            inner.retry.set(None);
            connect(&inner);
        }
    });
    let w = weak;
    let on_timeout_over = Closure::<dyn FnMut()>::new(move || {
        if let Some(inner) = w.upgrade() {
            inner.timeout_over.set(None);
            let _ = inner.handle.room.try_update(|r| r.can_chat = true);
        }
    });
    Callbacks {
        on_open,
        on_message,
        on_close,
        on_tick,
        on_retry,
        on_timeout_over,
    }
}
