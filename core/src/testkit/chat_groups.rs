//! Conformance cases for group conversations: creation, members, roles,
//! leaving and renaming.

use crate::testkit::blocks::block;
use crate::testkit::chat::{
    configured, conversation_ids, created, entry, group, member, member_ids, new_message, say,
    say_many, seen,
};
use crate::testkit::graph::ids;
use crate::testkit::Refusal::*;
use crate::testkit::{Fixture, Refusal, NO_USER};
use crate::{
    Account, Clock, Conversation, ConversationId, ConversationKind, Denied, Entity, Event, History,
    MemberRole, NewGroup, UnreadCounts, UserId,
};

/// The input of a group called `title` with `members`.
fn new_group(title: &str, members: &[UserId]) -> NewGroup {
    NewGroup {
        title: title.into(),
        members: members.to_vec(),
    }
}

/// Asserts that `actor` creating groups with each list of members is
/// refused as paired, and that nobody is in any conversation afterwards.
async fn assert_groups_refused(
    f: &Fixture,
    actor: UserId,
    refused: Vec<(Vec<UserId>, Refusal)>,
    users: &[UserId],
) {
    for (members, refusal) in refused {
        let created = f
            .kith
            .chat()
            .create_group(actor, new_group("Team", &members))
            .await;
        f.refuses(created, refusal);
    }
    for &user in users {
        assert!(conversation_ids(f, user).await.is_empty(), "{user}");
    }
}

/// Asserts that `actor` adding each list of users to `id` is refused as
/// paired, changing nothing and telling nobody.
async fn assert_adds_refused(
    f: &Fixture,
    actor: UserId,
    id: ConversationId,
    refused: Vec<(Vec<UserId>, Refusal)>,
) {
    let before = seen(f, actor, id).await;
    for (users, refusal) in refused {
        f.refuses(f.kith.chat().add_members(actor, id, &users).await, refusal);
        assert_eq!(seen(f, actor, id).await, before);
    }
}

/// The creator of a group is its admin, the others members; duplicates and the creator are ignored; every member is told.
pub async fn create_group_makes_the_creator_admin_and_tells_every_member(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let now = f.clock.now();
    let input = new_group("  Team  ", &[carol.id, bob.id, alice.id, carol.id]);
    let team = f.kith.chat().create_group(alice.id, input).await.unwrap();
    let expected = created(
        team.id,
        ConversationKind::Group,
        Some("Team"),
        alice.id,
        now,
    );
    assert_eq!(team, expected);
    let members = vec![
        member(alice.id, MemberRole::Admin, now, 0),
        member(bob.id, MemberRole::Member, now, 0),
        member(carol.id, MemberRole::Member, now, 0),
    ];
    let event = Event::ConversationCreated {
        conversation: expected.clone(),
        members: members.clone(),
    };
    f.assert_event(event, &ids(&[&alice, &bob, &carol]));
    for user in [alice.id, bob.id, carol.id] {
        let view = seen(&f, user, expected.id).await;
        assert_eq!(
            (view.conversation, view.members),
            (expected.clone(), members.clone())
        );
        assert_eq!(conversation_ids(&f, user).await, vec![expected.id]);
    }
}

/// A group title must be 1 to 100 characters without control characters once trimmed.
pub async fn create_group_rejects_bad_titles(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let long = "x".repeat(101);
    for title in ["", "   ", &long, "bell\u{7}", "two\nlines"] {
        let created = f
            .kith
            .chat()
            .create_group(alice.id, new_group(title, &[bob.id]))
            .await;
        f.refuses(created, Invalid("title"));
    }
    assert!(conversation_ids(&f, alice.id).await.is_empty());
    for title in ["x".repeat(100), "é".repeat(100)] {
        let created = f
            .kith
            .chat()
            .create_group(alice.id, new_group(&title, &[]))
            .await;
        assert_eq!(created.unwrap().title, Some(title));
    }
}

/// Users who block the creator, are blocked by them, or do not exist cannot be in a new group.
pub async fn create_group_with_blocked_or_unknown_users_is_refused(f: Fixture) {
    let names = ["alice", "bob", "carol", "dave", "ghost"];
    let [alice, bob, carol, dave, ghost] = f.users(names).await;
    f.delete(&ghost).await;
    block(&f, bob.id, alice.id).await;
    block(&f, alice.id, carol.id).await;
    let everyone = [alice.id, bob.id, carol.id, dave.id];
    let blocking = || Forbidden(Denied::BlockedByActor);
    let refused = vec![
        (vec![dave.id, bob.id], NO_USER),
        (vec![carol.id, dave.id], blocking()),
        (vec![ghost.id], NO_USER),
        (vec![UserId::new(42)], NO_USER),
    ];
    assert_groups_refused(&f, alice.id, refused, &everyone).await;
    assert_groups_refused(&f, bob.id, vec![(vec![alice.id], blocking())], &everyone).await;
    assert_groups_refused(&f, carol.id, vec![(vec![alice.id], NO_USER)], &everyone).await;
}

/// A group may not have more members, the creator included, than configured.
pub async fn create_group_beyond_the_maximum_size_is_invalid(f: Fixture) {
    let f = configured(f, |c| c.max_group_members = 3);
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    let refused = vec![(vec![bob.id, carol.id, dave.id], Invalid("members"))];
    assert_groups_refused(&f, alice.id, refused, &[alice.id, bob.id]).await;
    let members = [bob.id, carol.id, bob.id, alice.id];
    let team = group(&f, alice.id, &members).await;
    let members = f.kith.chat().members(alice.id, team.id).await.unwrap();
    assert_eq!(member_ids(&members), vec![alice.id, bob.id, carol.id]);
}

/// Adding members returns them and tells the old members and the new ones, under a new version.
pub async fn add_members_tells_old_and_new_members(f: Fixture) {
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    say_many(&f, bob.id, team.id, 2).await;
    f.tick();
    let now = f.clock.now();
    let chat = f.kith.chat();
    let added = chat
        .add_members(alice.id, team.id, &[dave.id, carol.id, dave.id])
        .await;
    let expected = vec![
        member(carol.id, MemberRole::Member, now, 2),
        member(dave.id, MemberRole::Member, now, 2),
    ];
    assert_eq!(added.unwrap(), expected);
    let event = Event::MembersAdded {
        conversation_id: team.id,
        members: expected.clone(),
        by: alice.id,
        version: 3,
    };
    f.assert_event(event, &ids(&[&alice, &bob, &carol, &dave]));
    let view = seen(&f, dave.id, team.id).await;
    assert_eq!(view.conversation.version, 3);
    assert_eq!(view.conversation.last_seq, 2);
    let everyone = ids(&[&alice, &bob, &carol, &dave]);
    assert_eq!(member_ids(&view.members), everyone);
    assert_eq!(view.members[2..], expected);
}

/// Adding users who are already members adds nobody and tells nobody.
pub async fn add_members_skips_existing_members(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let chat = f.kith.chat();
    let before = seen(&f, alice.id, team.id).await;
    let added = chat
        .add_members(alice.id, team.id, &[bob.id, alice.id])
        .await;
    assert_eq!(added.unwrap(), vec![]);
    f.assert_no_events();
    assert_eq!(seen(&f, alice.id, team.id).await, before);
    let added = chat
        .add_members(alice.id, team.id, &[bob.id, carol.id])
        .await;
    assert_eq!(member_ids(&added.unwrap()), vec![carol.id]);
    let delivered = f.take_events();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].recipients, vec![alice.id, bob.id, carol.id]);
}

/// A new member sees the history but starts with everything before their arrival read.
pub async fn new_members_see_history_with_nothing_unread(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let mut sent = say_many(&f, alice.id, team.id, 3).await;
    let chat = f.kith.chat();
    chat.add_members(alice.id, team.id, &[carol.id])
        .await
        .unwrap();
    f.take_events();
    assert_eq!(seen(&f, carol.id, team.id).await.messages, sent);
    assert_eq!(
        chat.unread(carol.id).await.unwrap(),
        UnreadCounts::default()
    );
    let summary = chat.conversations(carol.id, &Default::default()).await;
    let summary = summary.unwrap().items.remove(0);
    assert_eq!((summary.last_read_seq, summary.unread), (3, 0));
    sent.push(say(&f, bob.id, team.id, "welcome").await);
    assert_eq!(seen(&f, carol.id, team.id).await.messages, sent);
    let unread = chat.unread(carol.id).await.unwrap();
    assert_eq!(unread.conversations, vec![entry(team.id, 1)]);
}

/// A former member can be added again, starting with nothing unread.
pub async fn former_members_can_be_added_again(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    say(&f, bob.id, team.id, "bye").await;
    let chat = f.kith.chat();
    chat.leave(bob.id, team.id).await.unwrap();
    say_many(&f, alice.id, team.id, 2).await;
    f.tick();
    let added = chat.add_members(alice.id, team.id, &[bob.id]).await;
    let now = f.clock.now();
    assert_eq!(
        added.unwrap(),
        vec![member(bob.id, MemberRole::Member, now, 3)]
    );
    f.take_events();
    let view = seen(&f, bob.id, team.id).await;
    assert_eq!(view.members[1], member(bob.id, MemberRole::Member, now, 3));
    assert_eq!(view.messages.len(), 3);
    assert_eq!(conversation_ids(&f, bob.id).await, vec![team.id]);
}

/// Users who block the admin, are blocked by them, or do not exist cannot be added; nobody is.
pub async fn add_members_refuses_blocked_or_unknown_users(f: Fixture) {
    let names = ["alice", "bob", "carol", "dave", "erin", "ghost"];
    let [alice, bob, carol, dave, erin, ghost] = f.users(names).await;
    let team = group(&f, alice.id, &[dave.id]).await;
    f.delete(&ghost).await;
    block(&f, bob.id, alice.id).await;
    block(&f, alice.id, carol.id).await;
    let refused = vec![
        (vec![bob.id], NO_USER),
        (vec![erin.id, bob.id], NO_USER),
        (vec![carol.id], Forbidden(Denied::BlockedByActor)),
        (vec![erin.id, carol.id], Forbidden(Denied::BlockedByActor)),
        (vec![ghost.id], NO_USER),
        (vec![UserId::new(42)], NO_USER),
    ];
    assert_adds_refused(&f, alice.id, team.id, refused).await;
    assert!(conversation_ids(&f, erin.id).await.is_empty());
}

/// A group may not grow beyond the configured size; nobody is added then.
pub async fn add_members_beyond_the_maximum_size_is_invalid(f: Fixture) {
    let f = configured(f, |c| c.max_group_members = 3);
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let too_many = vec![(vec![carol.id, dave.id], Invalid("members"))];
    assert_adds_refused(&f, alice.id, team.id, too_many.clone()).await;
    let chat = f.kith.chat();
    let added = chat
        .add_members(alice.id, team.id, &[bob.id, carol.id])
        .await;
    assert_eq!(member_ids(&added.unwrap()), vec![carol.id]);
    f.take_events();
    let one_more = vec![(vec![dave.id], Invalid("members"))];
    assert_adds_refused(&f, alice.id, team.id, one_more).await;
}

/// A plain member may not add, remove, promote or demote members or rename the group.
pub async fn group_admin_actions_by_a_plain_member_are_forbidden(f: Fixture) {
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    let team = group(&f, alice.id, &[bob.id, carol.id]).await;
    let before = seen(&f, alice.id, team.id).await;
    let chat = f.kith.chat();
    let (id, not_admin) = (team.id, || Forbidden(Denied::NotAdmin));
    f.refuses(chat.add_members(bob.id, id, &[dave.id]).await, not_admin());
    f.refuses(chat.add_members(bob.id, id, &[]).await, not_admin());
    f.refuses(chat.remove_member(bob.id, id, carol.id).await, not_admin());
    f.refuses(chat.rename(bob.id, id, "Mine").await, not_admin());
    for (user, role) in [(bob.id, MemberRole::Admin), (alice.id, MemberRole::Member)] {
        f.refuses(chat.set_role(bob.id, id, user, role).await, not_admin());
    }
    assert_eq!(seen(&f, alice.id, id).await, before);
    assert!(conversation_ids(&f, dave.id).await.is_empty());
}

/// Alice's group of alice, bob and carol, with one message, from which
/// alice has removed bob; the removal's events are left to the caller.
async fn group_without_bob(f: &Fixture) -> ([Account; 3], Conversation) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(f, alice.id, &[bob.id, carol.id]).await;
    say(f, alice.id, team.id, "hi").await;
    let removed = f.kith.chat().remove_member(alice.id, team.id, bob.id).await;
    removed.unwrap();
    ([alice, bob, carol], team)
}

/// Removing a member tells everyone who was a member before, the removed one included.
pub async fn remove_member_tells_the_members_before_the_change(f: Fixture) {
    let ([alice, bob, carol], team) = group_without_bob(&f).await;
    let removed = Event::MemberRemoved {
        conversation_id: team.id,
        user_id: bob.id,
        by: alice.id,
        promoted: None,
        version: 2,
    };
    f.assert_event(removed, &ids(&[&alice, &bob, &carol]));
    let view = seen(&f, carol.id, team.id).await;
    assert_eq!(member_ids(&view.members), vec![alice.id, carol.id]);
    assert_eq!(view.conversation.version, 2);
}

/// A removed member no longer finds the conversation, counts it unread or hears of new messages.
pub async fn removed_members_lose_the_conversation_and_its_events(f: Fixture) {
    let ([alice, bob, carol], team) = group_without_bob(&f).await;
    let chat = f.kith.chat();
    f.take_events();
    let (b, id, gone) = (bob.id, team.id, || NotFound(Entity::Conversation));
    f.refuses(chat.conversation(b, id).await, gone());
    f.refuses(chat.members(b, id).await, gone());
    f.refuses(chat.history(b, id, History::Latest, None).await, gone());
    f.refuses(
        chat.send(b, id, new_message("c-1", "still here")).await,
        gone(),
    );
    f.refuses(chat.mark_read(b, id, 1).await, gone());
    f.refuses(chat.changes_since(b, id, 0, None).await, gone());
    f.refuses(chat.leave(b, id).await, gone());
    assert!(conversation_ids(&f, b).await.is_empty());
    assert_eq!(chat.unread(b).await.unwrap(), UnreadCounts::default());
    let sent = chat.send(alice.id, id, new_message("c-1", "after")).await;
    let message = sent.unwrap();
    assert_eq!(message.seq, 2);
    let created = Event::MessageCreated { message };
    f.assert_event(created, &[alice.id, carol.id]);
}

/// Removing someone who is not a member is not found and changes nothing.
pub async fn remove_of_a_non_member_is_not_found(f: Fixture) {
    let [alice, bob, dave] = f.users(["alice", "bob", "dave"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let chat = f.kith.chat();
    chat.remove_member(alice.id, team.id, bob.id).await.unwrap();
    f.take_events();
    let before = seen(&f, alice.id, team.id).await;
    for user in [bob.id, dave.id, UserId::new(42)] {
        let removed = chat.remove_member(alice.id, team.id, user).await;
        f.refuses(removed, NotFound(Entity::Member));
    }
    assert_eq!(seen(&f, alice.id, team.id).await, before);
}

/// Leaving (or removing oneself) tells the members before the change and ends the membership.
pub async fn leave_tells_the_members_and_ends_membership(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id, carol.id]).await;
    let chat = f.kith.chat();
    let left = |user_id, version| Event::MemberRemoved {
        conversation_id: team.id,
        user_id,
        by: user_id,
        promoted: None,
        version,
    };
    chat.leave(carol.id, team.id).await.unwrap();
    f.assert_event(left(carol.id, 1), &ids(&[&alice, &bob, &carol]));
    let gone = || NotFound(Entity::Conversation);
    f.refuses(chat.conversation(carol.id, team.id).await, gone());
    f.refuses(chat.leave(carol.id, team.id).await, gone());
    assert!(conversation_ids(&f, carol.id).await.is_empty());
    chat.remove_member(bob.id, team.id, bob.id).await.unwrap();
    f.assert_event(left(bob.id, 2), &ids(&[&alice, &bob]));
    let view = seen(&f, alice.id, team.id).await;
    let only_alice = vec![member(alice.id, MemberRole::Admin, team.created_at, 0)];
    assert_eq!((view.members, view.conversation.version), (only_alice, 2));
}

/// When the last admin leaves, the member who joined earliest becomes admin.
pub async fn last_admin_leaving_promotes_the_earliest_member(f: Fixture) {
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    let team = group(&f, alice.id, &[dave.id]).await;
    f.tick();
    let chat = f.kith.chat();
    chat.add_members(alice.id, team.id, &[bob.id, carol.id])
        .await
        .unwrap();
    f.take_events();
    chat.leave(alice.id, team.id).await.unwrap();
    let left = Event::MemberRemoved {
        conversation_id: team.id,
        user_id: alice.id,
        by: alice.id,
        promoted: Some(dave.id),
        version: 2,
    };
    f.assert_event(left, &ids(&[&alice, &bob, &carol, &dave]));
    let members = chat.members(bob.id, team.id).await.unwrap();
    let roles: Vec<_> = members.iter().map(|m| (m.user_id, m.role)).collect();
    let expected = vec![
        (bob.id, MemberRole::Member),
        (carol.id, MemberRole::Member),
        (dave.id, MemberRole::Admin),
    ];
    assert_eq!(roles, expected);
    chat.rename(dave.id, team.id, "Dave's").await.unwrap();
}

/// Admins promote and demote members, telling every member; setting the same role changes nothing.
pub async fn set_role_promotes_and_demotes_and_tells_members(f: Fixture) {
    let [alice, bob, carol] = f.users(["alice", "bob", "carol"]).await;
    let team = group(&f, alice.id, &[bob.id, carol.id]).await;
    let chat = f.kith.chat();
    let changed = |by, user_id, role, version| Event::MemberRoleChanged {
        conversation_id: team.id,
        user_id,
        role,
        by,
        version,
    };
    let everyone = ids(&[&alice, &bob, &carol]);
    let steps = [
        (alice.id, bob.id, MemberRole::Admin, 1),
        (bob.id, alice.id, MemberRole::Member, 2),
        (bob.id, carol.id, MemberRole::Admin, 3),
    ];
    for (by, user, role, version) in steps {
        chat.set_role(by, team.id, user, role).await.unwrap();
        f.assert_event(changed(by, user, role, version), &everyone);
    }
    let before = seen(&f, alice.id, team.id).await;
    let roles: Vec<_> = before.members.iter().map(|m| m.role).collect();
    let (admin, plain) = (MemberRole::Admin, MemberRole::Member);
    assert_eq!(roles, vec![plain, admin, admin]);
    chat.set_role(carol.id, team.id, alice.id, plain)
        .await
        .unwrap();
    f.assert_no_events();
    assert_eq!(seen(&f, alice.id, team.id).await, before);
    let renamed = chat.rename(alice.id, team.id, "Mine").await;
    f.refuses(renamed, Forbidden(Denied::NotAdmin));
    // Another admin remains, so nobody is promoted.
    chat.leave(bob.id, team.id).await.unwrap();
    let left = Event::MemberRemoved {
        conversation_id: team.id,
        user_id: bob.id,
        by: bob.id,
        promoted: None,
        version: 4,
    };
    f.assert_event(left, &everyone);
}

/// The only admin cannot step down; roles of non-members are not found.
pub async fn demoting_the_only_admin_is_invalid(f: Fixture) {
    let [alice, bob, dave] = f.users(["alice", "bob", "dave"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let chat = f.kith.chat();
    let before = seen(&f, alice.id, team.id).await;
    let demoted = chat.set_role(alice.id, team.id, alice.id, MemberRole::Member);
    f.refuses(demoted.await, Invalid("role"));
    for user in [dave.id, UserId::new(42)] {
        let promoted = chat.set_role(alice.id, team.id, user, MemberRole::Admin);
        f.refuses(promoted.await, NotFound(Entity::Member));
    }
    assert_eq!(seen(&f, alice.id, team.id).await, before);
}

/// Renaming sets the trimmed title under a new version and tells every member.
pub async fn rename_tells_members_and_bumps_the_version(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    say(&f, bob.id, team.id, "hi").await;
    f.tick();
    let chat = f.kith.chat();
    let before = chat.conversation(bob.id, team.id).await.unwrap();
    let renamed = chat.rename(alice.id, team.id, "  Crew ").await.unwrap();
    let expected = Conversation {
        title: Some("Crew".into()),
        version: 2,
        ..before
    };
    assert_eq!(renamed, expected);
    let event = Event::ConversationRenamed {
        conversation_id: team.id,
        title: "Crew".into(),
        by: alice.id,
        version: 2,
    };
    f.assert_event(event, &[alice.id, bob.id]);
    assert_eq!(chat.conversation(bob.id, team.id).await.unwrap(), expected);
}

/// Renaming to a blank or too long title is invalid and changes nothing.
pub async fn rename_rejects_bad_titles(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let team = group(&f, alice.id, &[bob.id]).await;
    let chat = f.kith.chat();
    let before = seen(&f, alice.id, team.id).await;
    for title in ["", "  ", &"x".repeat(101), "bell\u{7}"] {
        f.refuses(
            chat.rename(alice.id, team.id, title).await,
            Invalid("title"),
        );
    }
    assert_eq!(seen(&f, alice.id, team.id).await, before);
}
