//! Rooms: ids, backlog and resume, viewer counts, chat rules and moderation.

use super::*;

fn room() -> Room {
    Room {
        stream_id: "s".into(),
        owner_id: "owner".into(),
        key: 1,
        fanout: Vec::new(),
        inner: Mutex::new(Inner {
            next_id: 100,
            backlog: VecDeque::new(),
            viewers: HashMap::new(),
            connections: 0,
            empty_since: None,
            sent_viewers: 0,
            state: StreamState::Live,
            broadcaster_away: false,
            private: false,
            rules: Rules::default(),
            bans: HashMap::new(),
            buckets: HashMap::new(),
            last_post: HashMap::new(),
        }),
        config: RealtimeConfig {
            backlog: 4,
            ..RealtimeConfig::default()
        },
    }
}

#[test]
fn tabs_of_one_browser_count_once() {
    let r = room();
    r.join(Some("v:a"), None, None);
    r.join(Some("v:a"), None, None);
    r.join(Some("v:b"), None, None);
    r.join(None, None, None); // the studio
    assert_eq!(r.viewers(), 2);
    r.leave(Some("v:a"), 0);
    assert_eq!(r.viewers(), 2);
    r.leave(Some("v:a"), 0);
    assert_eq!(r.viewers(), 1);
    // The count goes out once per change.
    assert!(!r.tick(Instant::now()));
    let newest = r.snapshot().0;
    assert!(!r.tick(Instant::now()));
    assert_eq!(r.snapshot().0, newest, "no change, no event");
}

#[test]
fn a_member_leaves_when_its_task_panics() {
    let r = Arc::new(room());
    let (kept, _) = r.enter(Some("v:a"), None, None);
    let inside = r.clone();
    let task = std::thread::spawn(move || {
        let (_member, _) = inside.enter(Some("v:b"), None, None);
        let (_studio, _) = inside.enter(None, None, None);
        assert_eq!(inside.viewers(), 2);
        panic!("a connection task fails");
    });
    assert!(task.join().is_err(), "the task panicked");
    assert_eq!(r.viewers(), 1, "b left the room");
    assert_eq!(r.lock().connections, 1, "and so did the studio");
    drop(kept);
    assert_eq!(r.viewers(), 0);
    assert_eq!(r.lock().connections, 0);
    assert!(r.lock().empty_since.is_some());
}

#[test]
fn resume_replays_what_was_missed_or_resyncs() {
    let r = room();
    for n in 0..6 {
        r.broadcast(ServerEvent::Viewers { count: n });
    }
    // Ids 100..=105; the backlog holds the last four (102..=105).
    let j = r.join(None, Some(103), None);
    let ids: Vec<u64> = j.replay.unwrap().iter().map(|f| f.id).collect();
    assert_eq!(ids, [104, 105]);
    assert_eq!(r.join(None, Some(105), None).replay.unwrap().len(), 0);
    assert_eq!(r.join(None, Some(101), None).replay.unwrap().len(), 4);
    assert!(
        r.join(None, Some(100), None).replay.is_none(),
        "102 is the oldest kept"
    );
    assert!(
        r.join(None, Some(7), None).replay.is_none(),
        "another room's ids"
    );
    assert!(
        r.join(None, Some(999), None).replay.is_none(),
        "ids from the future"
    );
}

#[test]
fn posting_rules_in_order() {
    let r = room();
    r.set_rules(ChatConfigRow {
        slow_mode_secs: 0,
        block_links: true,
        banned_words: vec!["darn".into()],
        ..Default::default()
    });
    assert_eq!(
        r.check_post("u", false, "darn", 0).unwrap_err().code,
        "banned_word"
    );
    assert_eq!(
        r.check_post("u", false, "see x.com", 0).unwrap_err().code,
        "links_blocked"
    );
    assert!(
        r.check_post("m", true, "see x.com", 0).is_ok(),
        "moderators may link"
    );
    for _ in 0..5 {
        assert!(r.check_post("u", false, "hi", 0).is_ok());
    }
    assert_eq!(
        r.check_post("u", false, "hi", 0).unwrap_err().code,
        "rate_limited"
    );
    r.set_ban("u", Some(60_000), false);
    assert_eq!(
        r.check_post("u", false, "hi", 5_000).unwrap_err().code,
        "timed_out"
    );
    assert!(
        r.check_post("u", false, "hi", 61_000).is_ok(),
        "the timeout ran out"
    );
    r.set_ban("u", None, false);
    assert_eq!(
        r.check_post("u", false, "hi", 99_000).unwrap_err().code,
        "banned"
    );
    r.set_ban("u", None, true);
    assert!(r.check_post("u", false, "hi", 99_000).is_ok());
}

#[test]
fn slow_mode_spaces_each_users_messages() {
    let r = room();
    r.set_rules(ChatConfigRow {
        slow_mode_secs: 10,
        ..Default::default()
    });
    assert!(r.check_post("u", false, "one", 0).is_ok());
    let e = r.check_post("u", false, "two", 4_000).unwrap_err();
    assert_eq!(e.code, "slow_mode");
    assert!(e.message.contains("6 s"), "{}", e.message);
    assert!(r.check_post("v", false, "other user", 4_000).is_ok());
    assert!(r.check_post("owner", true, "mods skip it", 4_000).is_ok());
    assert!(r.check_post("owner", true, "again", 4_001).is_ok());
    assert!(r.check_post("u", false, "two", 10_000).is_ok());
}
