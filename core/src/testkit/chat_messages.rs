//! Conformance cases for chat messages: sending, idempotent retries,
//! replies, edits, deletes, reactions, history and resuming with
//! `changes_since`.

use crate::chat::MAX_CHANGES;
use crate::testkit::chat::{
    configured, direct, group, member, new_message, say, say_many, seen, seqs,
};
use crate::testkit::graph::ids;
use crate::testkit::Fixture;
use crate::testkit::Refusal::*;
use crate::{
    Account, Change, ChangeSet, Chat, Clash, Clock, Conversation, ConversationId, Denied, Entity,
    Event, History, MemberRole, Message, MessageId, MessageReaction, NewMessage, ReactionKind,
    Updated, UserId,
};

/// The seqs of a history page and whether there is more.
async fn page_of(
    chat: &Chat<'_>,
    viewer: UserId,
    id: ConversationId,
    from: History,
    limit: Option<u32>,
) -> (Vec<u64>, bool) {
    let page = chat.history(viewer, id, from, limit).await.unwrap();
    (seqs(&page.messages), page.more)
}

/// Every change to `id` after version 0, read `limit` versions at a time.
async fn all_changes(f: &Fixture, viewer: UserId, id: ConversationId, limit: u32) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut since = 0;
    for _ in 0..1000 {
        let set = f
            .kith
            .chat()
            .changes_since(viewer, id, since, Some(limit))
            .await;
        let set = set.unwrap();
        assert!(set.until > since || !set.more, "no progress from {since}");
        assert!(
            set.until <= since + u64::from(limit),
            "more than {limit} versions"
        );
        changes.extend(set.changes);
        since = set.until;
        if !set.more {
            return changes;
        }
    }
    panic!("changes did not end after 1000 calls");
}

/// Messages take seqs 1, 2, 3 and versions 1, 2, 3, and every member, the sender included, is told.
pub async fn send_assigns_gap_free_seqs_and_tells_every_member(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id, carol.id]).await;
    let everyone = ids(&[&alice, &bob, &carol]);
    let chat = f.kith.chat();
    let mut sent = Vec::new();
    for (n, (sender, body)) in (1..).zip([(alice.id, "one"), (bob.id, " two\n"), (alice.id, "3")]) {
        f.tick();
        let client_id = format!("c-{n}");
        let message = chat.send(sender, team.id, new_message(&client_id, body));
        let message = message.await.unwrap();
        let expected = Message {
            id: message.id,
            conversation_id: team.id,
            seq: n,
            version: n,
            sender,
            client_id,
            body: Some(body.into()),
            reply_to: None,
            reactions: vec![],
            created_at: f.clock.now(),
            edited_at: None,
            deleted_at: None,
        };
        assert_eq!(message, expected);
        f.assert_event(Event::MessageCreated { message }, &everyone);
        sent.push(expected);
    }
    let view = seen(&f, carol.id, team.id).await;
    assert_eq!(view.messages, sent);
    let conversation = view.conversation;
    let state = (conversation.last_seq, conversation.version);
    assert_eq!(state, (3, 3));
    assert_eq!(conversation.last_activity, sent[2].created_at);
}

/// Sending again with a used client id returns the first message, storing and telling nothing; other senders' keys are their own.
pub async fn send_with_a_used_client_id_returns_the_first_message(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let chat = f.kith.chat();
    let first = chat.send(alice.id, team.id, new_message("c-1", "hello"));
    let first = first.await.unwrap();
    f.take_events();
    let before = seen(&f, bob.id, team.id).await;
    f.tick();
    for body in ["hello", "something else"] {
        let again = chat.send(alice.id, team.id, new_message("c-1", body)).await;
        assert_eq!(again.unwrap(), first);
        f.assert_no_events();
    }
    assert_eq!(seen(&f, bob.id, team.id).await, before);
    let of_bob = chat.send(bob.id, team.id, new_message("c-1", "hello"));
    let of_bob = of_bob.await.unwrap();
    assert_eq!((of_bob.seq, of_bob.sender), (2, bob.id));
    f.take_events();
    assert_eq!(
        seen(&f, bob.id, team.id).await.messages,
        vec![first, of_bob]
    );
}

/// A client id already used in another conversation is a conflict; nothing is stored.
pub async fn client_id_reused_in_another_conversation_is_a_conflict(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let pair = direct(&f, alice.id, bob.id).await;
    let chat = f.kith.chat();
    chat.send(alice.id, team.id, new_message("c-1", "hello"))
        .await
        .unwrap();
    f.take_events();
    let before = seen(&f, alice.id, pair.id).await;
    let reused = chat
        .send(alice.id, pair.id, new_message("c-1", "hello"))
        .await;
    f.refuses(reused, Conflict(Clash::ClientIdReused));
    assert_eq!(seen(&f, alice.id, pair.id).await, before);
    assert!(before.messages.is_empty());
}

/// A client id must be 1 to 64 visible ASCII characters.
pub async fn send_rejects_invalid_client_ids(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let pair = direct(&f, alice.id, bob.id).await;
    let chat = f.kith.chat();
    let long = "x".repeat(65);
    let before = seen(&f, alice.id, pair.id).await;
    for client_id in ["", "has space", "tab\t", "caf\u{e9}", &long] {
        let sent = chat
            .send(alice.id, pair.id, new_message(client_id, "hi"))
            .await;
        f.refuses(sent, Invalid("client_id"));
    }
    assert_eq!(seen(&f, alice.id, pair.id).await, before);
    for client_id in ["x".repeat(64), "a-B_9.~!{}".into()] {
        let sent = chat
            .send(alice.id, pair.id, new_message(&client_id, "hi"))
            .await;
        assert_eq!(sent.unwrap().client_id, client_id);
    }
}

/// A body must not be blank, longer than configured or hold control characters other than newlines and tabs; it is kept as sent.
pub async fn send_rejects_blank_long_or_control_bodies(f: Fixture) {
    let f = configured(f, |c| c.max_message_chars = 10);
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let pair = direct(&f, alice.id, bob.id).await;
    let chat = f.kith.chat();
    let too_long = ["x".repeat(11), "\u{e9}".repeat(11)];
    let bad = [
        "",
        " \n\t ",
        &too_long[0],
        &too_long[1],
        "bell\u{7}",
        "\u{1b}[31m",
    ];
    let before = seen(&f, alice.id, pair.id).await;
    for body in bad {
        let sent = chat.send(alice.id, pair.id, new_message("c-1", body)).await;
        f.refuses(sent, Invalid("body"));
    }
    assert_eq!(seen(&f, alice.id, pair.id).await, before);
    for (n, body) in (1..).zip(["\u{e9}".repeat(10), " hi\n\tthere".into()]) {
        let sent = chat.send(alice.id, pair.id, new_message(&format!("c-{n}"), &body));
        assert_eq!(sent.await.unwrap().body, Some(body));
    }
}

/// A reply must refer to a message of the same conversation; a valid one is stored.
pub async fn reply_to_must_be_a_message_of_the_same_conversation(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let pair = direct(&f, alice.id, bob.id).await;
    let elsewhere = say(&f, alice.id, pair.id, "elsewhere").await;
    let question = say(&f, bob.id, team.id, "question?").await;
    let chat = f.kith.chat();
    let reply = |reply_to| NewMessage {
        client_id: "c-reply".into(),
        body: "answer".into(),
        reply_to: Some(reply_to),
    };
    let before = seen(&f, alice.id, team.id).await;
    for other in [elsewhere.id, MessageId::new(42)] {
        let sent = chat.send(alice.id, team.id, reply(other)).await;
        f.refuses(sent, Invalid("reply_to"));
    }
    assert_eq!(seen(&f, alice.id, team.id).await, before);
    let answer = chat.send(alice.id, team.id, reply(question.id)).await;
    assert_eq!(answer.unwrap().reply_to, Some(question.id));
    f.take_events();
    let messages = seen(&f, bob.id, team.id).await.messages;
    assert_eq!(messages[1].reply_to, Some(question.id));
}

/// The sender edits a message: new body, edit time and version, every member told; seq and activity stay.
pub async fn edit_replaces_the_body_and_tells_members(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let typo = say(&f, alice.id, team.id, "helo").await;
    say(&f, bob.id, team.id, "hi").await;
    let before = seen(&f, bob.id, team.id).await.conversation;
    f.tick();
    let chat = f.kith.chat();
    let edited = chat
        .edit(alice.id, team.id, typo.id, "hello")
        .await
        .unwrap();
    let expected = Message {
        body: Some("hello".into()),
        edited_at: Some(f.clock.now()),
        version: 3,
        ..typo
    };
    assert_eq!(edited, expected);
    let event = Event::MessageEdited {
        message: expected.clone(),
    };
    f.assert_event(event, &[alice.id, bob.id]);
    let view = seen(&f, bob.id, team.id).await;
    assert_eq!(view.messages[0], expected);
    let conversation = view.conversation;
    assert_eq!((conversation.last_seq, conversation.version), (2, 3));
    assert_eq!(conversation.last_activity, before.last_activity);
}

/// Alice's group of alice and bob, where alice sent a message; the events
/// are discarded.
async fn group_with_a_message(f: &Fixture) -> ([Account; 2], Conversation, MessageId) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(f, alice.id, &[bob.id]).await;
    let m = say(f, alice.id, team.id, "mine").await.id;
    ([alice, bob], team, m)
}

/// [`group_with_a_message`] after alice deleted the message.
async fn group_with_a_deleted_message(f: &Fixture) -> ([Account; 2], Conversation, MessageId) {
    let ([alice, bob], team, m) = group_with_a_message(f).await;
    f.kith.chat().delete(alice.id, team.id, m).await.unwrap();
    f.take_events();
    ([alice, bob], team, m)
}

/// Only the sender may edit, and only with a valid body.
pub async fn edit_of_someone_elses_message_is_forbidden(f: Fixture) {
    let ([alice, bob], team, m) = group_with_a_message(&f).await;
    let chat = f.kith.chat();
    let before = seen(&f, alice.id, team.id).await;
    let edited = chat.edit(bob.id, team.id, m, "ours").await;
    f.refuses(edited, Forbidden(Denied::NotSender));
    f.refuses(chat.edit(alice.id, team.id, m, " ").await, Invalid("body"));
    assert_eq!(seen(&f, alice.id, team.id).await, before);
}

/// A deleted or unknown message cannot be edited.
pub async fn edit_of_a_deleted_or_unknown_message_is_not_found(f: Fixture) {
    let ([alice, _], team, m) = group_with_a_deleted_message(&f).await;
    let chat = f.kith.chat();
    let before = seen(&f, alice.id, team.id).await;
    for message in [m, MessageId::new(42)] {
        let edited = chat.edit(alice.id, team.id, message, "fixed").await;
        f.refuses(edited, NotFound(Entity::Message));
    }
    assert_eq!(seen(&f, alice.id, team.id).await, before);
}

/// Deleting leaves a tombstone with its seq, no body and no reactions, telling every member; deleting again changes nothing.
pub async fn delete_leaves_a_tombstone_with_its_seq(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let sent = say_many(&f, alice.id, team.id, 3).await;
    let chat = f.kith.chat();
    let like = Some(ReactionKind::Like);
    chat.react(bob.id, team.id, sent[1].id, like).await.unwrap();
    f.take_events();
    f.tick();
    let deleted = chat.delete(alice.id, team.id, sent[1].id).await.unwrap();
    let tombstone = Message {
        body: None,
        reactions: vec![],
        deleted_at: Some(f.clock.now()),
        version: 5,
        ..sent[1].clone()
    };
    assert_eq!(
        deleted,
        Updated {
            message: tombstone.clone(),
            changed: true
        }
    );
    let event = Event::MessageDeleted {
        message: tombstone.clone(),
    };
    f.assert_event(event, &[alice.id, bob.id]);
    let before = seen(&f, bob.id, team.id).await;
    let expected = vec![sent[0].clone(), tombstone.clone(), sent[2].clone()];
    assert_eq!(before.messages, expected);
    let conversation = &before.conversation;
    assert_eq!((conversation.last_seq, conversation.version), (3, 5));
    f.tick();
    let again = chat.delete(alice.id, team.id, sent[1].id).await;
    let unchanged = Updated {
        message: tombstone,
        changed: false,
    };
    assert_eq!(again.unwrap(), unchanged);
    f.assert_no_events();
    assert_eq!(seen(&f, bob.id, team.id).await, before);
}

/// Only the sender may delete a message; an unknown one is not found.
pub async fn delete_of_someone_elses_or_unknown_message_is_refused(f: Fixture) {
    let ([alice, bob], team, m) = group_with_a_message(&f).await;
    let chat = f.kith.chat();
    let before = seen(&f, alice.id, team.id).await;
    let deleted = chat.delete(bob.id, team.id, m).await;
    f.refuses(deleted, Forbidden(Denied::NotSender));
    let unknown = chat.delete(alice.id, team.id, MessageId::new(42)).await;
    f.refuses(unknown, NotFound(Entity::Message));
    assert_eq!(seen(&f, alice.id, team.id).await, before);
}

/// Each member has at most one reaction per message, set, replaced and removed, ordered by user; every member is told of each change.
pub async fn reactions_are_set_replaced_and_removed(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id, carol.id]).await;
    let everyone = ids(&[&alice, &bob, &carol]);
    let news = say(&f, carol.id, team.id, "news").await;
    let chat = f.kith.chat();
    let r = |user_id, kind| MessageReaction { user_id, kind };
    let (like, love, haha) = (ReactionKind::Like, ReactionKind::Love, ReactionKind::Haha);
    let steps = [
        (bob.id, Some(like), vec![r(bob.id, like)]),
        (bob.id, Some(love), vec![r(bob.id, love)]),
        (
            alice.id,
            Some(haha),
            vec![r(alice.id, haha), r(bob.id, love)],
        ),
        (
            carol.id,
            Some(like),
            vec![r(alice.id, haha), r(bob.id, love), r(carol.id, like)],
        ),
        (bob.id, None, vec![r(alice.id, haha), r(carol.id, like)]),
    ];
    let mut now = news.clone();
    for (version, (user_id, kind, reactions)) in (2..).zip(steps) {
        let reacted = chat.react(user_id, team.id, news.id, kind).await.unwrap();
        now = Message {
            reactions,
            version,
            ..news.clone()
        };
        assert_eq!(
            reacted,
            Updated {
                message: now.clone(),
                changed: true
            }
        );
        let message = now.clone();
        let event = Event::ReactionChanged {
            message,
            user_id,
            kind,
        };
        f.assert_event(event, &everyone);
    }
    let before = seen(&f, bob.id, team.id).await;
    assert_eq!(before.messages, vec![now.clone()]);
    for (user, kind) in [(alice.id, Some(haha)), (bob.id, None)] {
        let unchanged = chat.react(user, team.id, news.id, kind).await;
        let same = Updated {
            message: now.clone(),
            changed: false,
        };
        assert_eq!(unchanged.unwrap(), same);
        f.assert_no_events();
    }
    assert_eq!(seen(&f, bob.id, team.id).await, before);
}

/// A deleted or unknown message cannot be reacted to.
pub async fn reacting_to_a_deleted_or_unknown_message_is_not_found(f: Fixture) {
    let ([alice, bob], team, m) = group_with_a_deleted_message(&f).await;
    let chat = f.kith.chat();
    let before = seen(&f, alice.id, team.id).await;
    let like = Some(ReactionKind::Like);
    for (message, kind) in [(m, like), (m, None), (MessageId::new(42), like)] {
        let reacted = chat.react(bob.id, team.id, message, kind).await;
        f.refuses(reacted, NotFound(Entity::Message));
    }
    assert_eq!(seen(&f, alice.id, team.id).await, before);
}

/// History pages go back from the newest or from a seq, or forward from a seq, saying whether more lie beyond.
pub async fn history_pages_latest_before_and_after(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let pair = direct(&f, alice.id, bob.id).await;
    let chat = f.kith.chat();
    let (b, id) = (bob.id, pair.id);
    assert_eq!(
        page_of(&chat, b, id, History::Latest, None).await,
        (vec![], false)
    );
    let sent = say_many(&f, alice.id, id, 5).await;
    let all = || (vec![1, 2, 3, 4, 5], false);
    let expected = [
        (History::Latest, Some(2), (vec![4, 5], true)),
        (History::Before(4), Some(2), (vec![2, 3], true)),
        (History::Before(2), Some(2), (vec![1], false)),
        (History::Before(1), Some(2), (vec![], false)),
        (History::After(0), Some(2), (vec![1, 2], true)),
        (History::After(2), Some(2), (vec![3, 4], true)),
        (History::After(3), Some(2), (vec![4, 5], false)),
        (History::After(5), Some(2), (vec![], false)),
        (History::Latest, None, all()),
        (History::Latest, Some(5), all()),
        (History::Before(6), Some(5), all()),
        (History::After(0), Some(5), all()),
    ];
    for (from, limit, page) in expected {
        let got = page_of(&chat, b, id, from, limit).await;
        assert_eq!(got, page, "{from:?} limit {limit:?}");
    }
    let latest = chat.history(b, id, History::Latest, None).await.unwrap();
    assert_eq!(latest.messages, sent);
}

/// Paging through many messages backwards or forwards, with any page size, sees each once, without gaps.
pub async fn history_pages_through_many_messages_without_gaps(f: Fixture) {
    let f = configured(f, |c| c.send_rate = None);
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let pair = direct(&f, alice.id, bob.id).await;
    let sent = say_many(&f, alice.id, pair.id, 27).await;
    let chat = f.kith.chat();
    for limit in [1, 7, 10, 26, 27, 100] {
        let mut back: Vec<Message> = Vec::new();
        let mut from = History::Latest;
        loop {
            let page = chat
                .history(bob.id, pair.id, from, Some(limit))
                .await
                .unwrap();
            assert!(page.messages.len() <= limit as usize);
            back.splice(0..0, page.messages);
            if !page.more {
                break;
            }
            from = History::Before(back[0].seq);
        }
        assert_eq!(back, sent, "backwards by {limit}");
        let mut forth: Vec<Message> = Vec::new();
        loop {
            let after = History::After(forth.last().map_or(0, |m| m.seq));
            let page = chat.history(bob.id, pair.id, after, Some(limit)).await;
            let page = page.unwrap();
            assert!(page.messages.len() <= limit as usize);
            forth.extend(page.messages);
            if !page.more {
                break;
            }
        }
        assert_eq!(forth, sent, "forwards by {limit}");
    }
}

/// A history page holds 1 to 100 messages.
pub async fn history_rejects_limits_outside_1_to_100(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let pair = direct(&f, alice.id, bob.id).await;
    say_many(&f, alice.id, pair.id, 2).await;
    let chat = f.kith.chat();
    for from in [History::Latest, History::Before(2), History::After(0)] {
        for limit in [0, 101] {
            let page = chat.history(bob.id, pair.id, from, Some(limit)).await;
            f.refuses(page, Invalid("limit"));
        }
        let page = chat.history(bob.id, pair.id, from, Some(100)).await;
        assert!(!page.unwrap().messages.is_empty());
    }
}

/// Resuming returns every message, member and title changed since a version, once each, in its current state and version order.
pub async fn changes_since_returns_each_change_once_in_its_current_state(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let id = team.id;
    let [m1, m2, m3] = say_many(&f, alice.id, id, 3).await.try_into().unwrap();
    let chat = f.kith.chat();
    chat.edit(alice.id, id, m1.id, "first edit").await.unwrap();
    let like = Some(ReactionKind::Like);
    chat.react(bob.id, id, m2.id, like).await.unwrap();
    chat.delete(alice.id, id, m3.id).await.unwrap();
    f.tick();
    let joined = f.clock.now();
    chat.add_members(alice.id, id, &[carol.id]).await.unwrap();
    chat.rename(alice.id, id, "New").await.unwrap();
    chat.set_role(alice.id, id, bob.id, MemberRole::Admin)
        .await
        .unwrap();
    chat.edit(alice.id, id, m1.id, "second edit").await.unwrap();
    chat.leave(carol.id, id).await.unwrap();
    f.take_events();
    let now = seen(&f, bob.id, id).await.messages;
    let (m1, m2, m3) = (now[0].clone(), now[1].clone(), now[2].clone());
    assert_eq!([m1.version, m2.version, m3.version], [10, 5, 6], "{now:?}");
    let expected = [
        Change::Message { message: m2 },
        Change::Message { message: m3 },
        Change::Renamed {
            title: "New".into(),
            version: 8,
        },
        Change::Member {
            member: member(bob.id, MemberRole::Admin, team.created_at, 0),
            left: false,
            version: 9,
        },
        Change::Message { message: m1 },
        Change::Member {
            member: member(carol.id, MemberRole::Member, joined, 3),
            left: true,
            version: 11,
        },
    ];
    let set = |changes: &[Change]| ChangeSet {
        conversation_id: id,
        changes: changes.to_vec(),
        until: 11,
        more: false,
    };
    for since in [0, 4, 8, 10, 11] {
        let got = chat.changes_since(alice.id, id, since, None).await.unwrap();
        let from = expected.iter().position(|c| c.version() > since);
        let tail = from.map_or(&[][..], |i| &expected[i..]);
        assert_eq!(got, set(tail), "since {since}");
    }
}

/// Resuming covers at most `limit` versions per call; following `until` while `more` sees every change once.
pub async fn changes_since_pages_with_until_and_more(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let sent = say_many(&f, alice.id, team.id, 5).await;
    let chat = f.kith.chat();
    let edited = chat.edit(alice.id, team.id, sent[0].id, "edited").await;
    let edited = edited.unwrap();
    f.take_events();
    let message = |m: &Message| Change::Message { message: m.clone() };
    // The first message changed last: it is reported once, at version 6.
    let pages = [
        (0, vec![message(&sent[1])], 2, true),
        (2, vec![message(&sent[2]), message(&sent[3])], 4, true),
        (4, vec![message(&sent[4]), message(&edited)], 6, false),
    ];
    for (since, changes, until, more) in pages {
        let got = chat.changes_since(bob.id, team.id, since, Some(2)).await;
        let expected = ChangeSet {
            conversation_id: team.id,
            changes,
            until,
            more,
        };
        assert_eq!(got.unwrap(), expected, "since {since}");
    }
    let everything = all_changes(&f, bob.id, team.id, MAX_CHANGES).await;
    assert_eq!(everything.len(), 5);
    for limit in [1, 2, 3, 5, 6] {
        let paged = all_changes(&f, bob.id, team.id, limit).await;
        assert_eq!(paged, everything, "limit {limit}");
    }
}

/// Resuming from beyond the conversation's version, or with a limit outside 1 to the maximum, is invalid.
pub async fn changes_since_rejects_bad_since_and_limit(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    say_many(&f, alice.id, team.id, 2).await;
    let chat = f.kith.chat();
    let (b, id) = (bob.id, team.id);
    f.refuses(chat.changes_since(b, id, 3, None).await, Invalid("since"));
    for limit in [0, MAX_CHANGES + 1] {
        let changes = chat.changes_since(b, id, 0, Some(limit)).await;
        f.refuses(changes, Invalid("limit"));
    }
    let all = chat.changes_since(b, id, 0, Some(MAX_CHANGES)).await;
    assert_eq!(all.unwrap().changes.len(), 2);
    let none = chat.changes_since(b, id, 2, None).await.unwrap();
    assert!(none.changes.is_empty() && !none.more && none.until == 2);
}

/// Every change to a conversation writes one change-log entry at its version, saying what changed, who did it and to what; changes that change nothing write none.
pub async fn every_version_has_one_change_log_entry(f: Fixture) {
    use crate::{ChangeKind as K, ChangeRecord};
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let chat = f.kith.chat();
    let team = chat
        .create_group(
            alice.id,
            crate::NewGroup {
                title: "Team".into(),
                members: vec![bob.id],
            },
        )
        .await
        .unwrap();
    let id = team.id;
    let send = |user: UserId, client_id: &str| {
        chat.send(
            user,
            id,
            NewMessage {
                client_id: client_id.into(),
                body: "hi".into(),
                reply_to: None,
            },
        )
    };
    let m1 = send(alice.id, "l1").await.unwrap();
    let m2 = send(bob.id, "l2").await.unwrap();
    chat.edit(alice.id, id, m1.id, "hello").await.unwrap();
    let like = Some(ReactionKind::Like);
    chat.react(bob.id, id, m1.id, like).await.unwrap();
    chat.react(bob.id, id, m1.id, like).await.unwrap();
    chat.delete(bob.id, id, m2.id).await.unwrap();
    chat.delete(bob.id, id, m2.id).await.unwrap();
    chat.add_members(alice.id, id, &[carol.id]).await.unwrap();
    chat.set_role(alice.id, id, carol.id, MemberRole::Admin)
        .await
        .unwrap();
    chat.rename(alice.id, id, "Crew").await.unwrap();
    chat.remove_member(carol.id, id, bob.id).await.unwrap();
    // Sends stored together, as one batch.
    let batch: Vec<_> = (0..5)
        .map(|i| {
            send(
                if i % 2 == 0 { alice.id } else { carol.id },
                &format!("b{i}"),
            )
        })
        .collect();
    let batch: Vec<Message> = futures::future::join_all(batch)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let log = f.kith.storage().change_log(id, 0, 100).await.unwrap();
    let entry = |version, kind, actor: &Account, subject: Option<u64>| ChangeRecord {
        version,
        kind,
        actor: actor.id,
        subject,
    };
    let mut expected = vec![
        entry(1, K::MessageCreated, &alice, Some(m1.id.get())),
        entry(2, K::MessageCreated, &bob, Some(m2.id.get())),
        entry(3, K::MessageEdited, &alice, Some(m1.id.get())),
        entry(4, K::ReactionChanged, &bob, Some(m1.id.get())),
        entry(5, K::MessageDeleted, &bob, Some(m2.id.get())),
        entry(6, K::MembersAdded, &alice, None),
        entry(7, K::MemberRoleChanged, &alice, Some(carol.id.get())),
        entry(8, K::ConversationRenamed, &alice, None),
        entry(9, K::MemberRemoved, &carol, Some(bob.id.get())),
    ];
    for message in &batch {
        let sender = if message.sender == alice.id {
            &alice
        } else {
            &carol
        };
        expected.push(entry(
            message.version,
            K::MessageCreated,
            sender,
            Some(message.id.get()),
        ));
    }
    expected.sort_by_key(|e| e.version);
    assert_eq!(log, expected);
    let version = chat.conversation(alice.id, id).await.unwrap().version;
    assert_eq!(version, 14);
    // Paged by version.
    let after = f.kith.storage().change_log(id, 8, 2).await.unwrap();
    assert_eq!(after, expected[8..10].to_vec());
}
