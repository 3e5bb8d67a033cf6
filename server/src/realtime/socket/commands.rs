//! What a client may ask of its room: chat posts, deletions and the
//! moderation actions, each checked against the person's role.

use super::*;
use crate::realtime::relay::{Effect, RoomMessage};

/// One client message. The outer error closes the connection; the inner
/// one is sent to this client as an `error`.
pub(super) async fn handle(
    conn: &mut Conn,
    state: &EventsDeps,
    room: &Arc<Room>,
    peer: &Peer,
    msg: ClientMessage,
) -> Result<Result<(), Refused>, Closing> {
    let timeout = room.config.send_timeout;
    let db_failed = |e: crate::db::DbError| {
        tracing::error!(stream = %room.stream_id, error = %e, "chat database error");
        Refused::new("unavailable", "The chat could not save that; try again.")
    };
    let need_moderator = || -> Result<&UserRow, Refused> {
        match &peer.user {
            Some(u) if peer.moderator(room) => Ok(u),
            Some(_) => Err(Refused::new("forbidden", "Only moderators can do that.")),
            None => Err(Refused::new("sign_in_required", "Sign in first.")),
        }
    };
    match msg {
        ClientMessage::Ping => {
            conn.send(ServerEvent::Pong, timeout).await?;
            Ok(Ok(()))
        }
        ClientMessage::Beacon { leave, quality } => {
            if let Some((viewer, source)) = &peer.viewing {
                let uid = peer.user.as_ref().map(|u| u.id.as_str());
                state.analytics.beat(
                    &room.stream_id,
                    viewer,
                    uid,
                    *source,
                    quality.as_ref(),
                    leave,
                );
            }
            Ok(Ok(()))
        }
        ClientMessage::Hello { .. } => {
            Ok(Err(Refused::new("bad_message", "hello was already sent")))
        }
        ClientMessage::Chat { text } => {
            let Some(user) = &peer.user else {
                return Ok(Err(Refused::new("sign_in_required", "Sign in to chat.")));
            };
            let text = match check_chat_text(&text) {
                Ok(t) => t,
                Err(m) => return Ok(Err(Refused::new("invalid_message", m))),
            };
            let now = now_ms();
            if let Err(r) = room.check_post(&user.id, peer.moderator(room), text, now) {
                return Ok(Err(r));
            }
            let row = match state
                .db
                .insert_chat(&room.stream_id, &user.id, &user.username, text, now)
                .await
            {
                Ok(r) => r,
                Err(e) => return Ok(Err(db_failed(e))),
            };
            metrics::counter!("onair_chat_messages_total").increment(1);
            let event = ServerEvent::Chat {
                message: chat_message(row, peer.moderator(room)),
            };
            let posted = Effect::Posted {
                user_id: user.id.clone(),
                at: now,
            };
            state
                .rooms
                .post(
                    &room.stream_id,
                    RoomMessage {
                        event,
                        effect: Some(posted),
                    },
                )
                .await;
            Ok(Ok(()))
        }
        ClientMessage::Delete { message_id } => {
            let me = match need_moderator() {
                Ok(u) => u,
                Err(r) => return Ok(Err(r)),
            };
            let row = match state
                .db
                .delete_chat(&room.stream_id, &message_id, &me.id)
                .await
            {
                Ok(Some(r)) => r,
                Ok(None) => {
                    return Ok(Err(Refused::new(
                        "not_found",
                        "That message is gone already.",
                    )))
                }
                Err(e) => return Ok(Err(db_failed(e))),
            };
            let detail: String = row.text.chars().take(200).collect();
            if let Err(e) = state
                .db
                .log_moderation(
                    &room.stream_id,
                    &me.id,
                    "delete",
                    Some(&row.author_id),
                    &detail,
                )
                .await
            {
                tracing::error!(error = %e, "could not log a moderation action");
            }
            let deleted = ServerEvent::ChatDeleted {
                message_id: row.id.clone(),
            };
            state
                .rooms
                .post(&room.stream_id, RoomMessage::event(deleted))
                .await;
            let notice = ServerEvent::Moderation {
                action: ModerationAction::Delete,
                username: row.username,
                by: me.username.clone(),
                until_ms: None,
            };
            state
                .rooms
                .post(&room.stream_id, RoomMessage::event(notice))
                .await;
            Ok(Ok(()))
        }
        ClientMessage::Timeout { username, minutes } => {
            if !(1..=MAX_TIMEOUT_MINUTES).contains(&minutes) {
                return Ok(Err(Refused::new(
                    "invalid_message",
                    format!("A timeout is 1 to {MAX_TIMEOUT_MINUTES} minutes."),
                )));
            }
            let until = now_ms() + i64::from(minutes) * 60_000;
            moderate(
                state,
                room,
                peer,
                &username,
                ModerationAction::Timeout,
                Some(until),
                &format!("{minutes} min"),
            )
            .await
        }
        ClientMessage::Ban { username } => {
            moderate(
                state,
                room,
                peer,
                &username,
                ModerationAction::Ban,
                None,
                "",
            )
            .await
        }
        ClientMessage::Unban { username } => {
            moderate(
                state,
                room,
                peer,
                &username,
                ModerationAction::Unban,
                None,
                "",
            )
            .await
        }
    }
}

async fn moderate(
    state: &EventsDeps,
    room: &Arc<Room>,
    peer: &Peer,
    username: &str,
    action: ModerationAction,
    until: Option<i64>,
    detail: &str,
) -> Result<Result<(), Refused>, Closing> {
    let me = match &peer.user {
        Some(u) if peer.moderator(room) => u,
        Some(_) => {
            return Ok(Err(Refused::new(
                "forbidden",
                "Only moderators can do that.",
            )))
        }
        None => return Ok(Err(Refused::new("sign_in_required", "Sign in first."))),
    };
    let failed = |e: crate::db::DbError| {
        tracing::error!(stream = %room.stream_id, error = %e, "moderation database error");
        Ok(Err(Refused::new(
            "unavailable",
            "That did not go through; try again.",
        )))
    };
    let target = match state.db.user_by_username(username).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            return Ok(Err(Refused::new(
                "not_found",
                format!("There is no user {username}."),
            )))
        }
        Err(e) => return failed(e),
    };
    if action != ModerationAction::Unban && room.is_moderator(&target.id, &target.role) {
        return Ok(Err(Refused::new(
            "forbidden",
            "Moderators cannot be timed out or banned.",
        )));
    }
    let (name, stored) = match action {
        ModerationAction::Unban => (
            "unban",
            state
                .db
                .remove_chat_ban(&room.stream_id, &target.id)
                .await
                .map(|_| ()),
        ),
        ModerationAction::Ban => (
            "ban",
            state
                .db
                .set_chat_ban(&room.stream_id, &target.id, None, &me.id)
                .await,
        ),
        _ => (
            "timeout",
            state
                .db
                .set_chat_ban(&room.stream_id, &target.id, until, &me.id)
                .await,
        ),
    };
    if let Err(e) = stored {
        return failed(e);
    }
    if let Err(e) = state
        .db
        .log_moderation(&room.stream_id, &me.id, name, Some(&target.id), detail)
        .await
    {
        tracing::error!(error = %e, "could not log a moderation action");
    }
    // The ban holds on every node where the room is open (each applies it
    // as the event arrives).
    let event = ServerEvent::Moderation {
        action,
        username: target.username,
        by: me.username.clone(),
        until_ms: until,
    };
    let ban = Effect::Ban {
        user_id: target.id,
        until,
        lift: action == ModerationAction::Unban,
    };
    state
        .rooms
        .post(
            &room.stream_id,
            RoomMessage {
                event,
                effect: Some(ban),
            },
        )
        .await;
    Ok(Ok(()))
}
