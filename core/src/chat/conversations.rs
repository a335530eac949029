//! Conversations and their members: direct conversations found or created,
//! groups created, joined, left, renamed, and their admins.

use super::*;
use crate::error::{Clash, Denied, Entity, Error, Result};
use crate::events::{Delivery, Event};
use crate::ids::{ConversationId, UserId};
use crate::storage::Removed;
use crate::validate;

impl Chat<'_> {
    /// The direct conversation between the actor and `other`, created if it
    /// does not exist yet.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`user_id`) for oneself; [`Error::NotFound`] if
    /// `other` does not exist or blocks the actor; [`Error::Forbidden`] if the
    /// actor blocks `other` or, under [`DirectMessages::FriendsOnly`], they
    /// are not friends.
    pub async fn open_direct(&self, actor: UserId, other: UserId) -> Result<Conversation> {
        if actor == other {
            return Err(Error::invalid("user_id", "cannot be yourself"));
        }
        self.kith.account(actor).await?;
        self.kith.account(other).await?;
        if self.kith.storage.links(actor, other).await?.blocked_by {
            return Err(Error::NotFound(Entity::User));
        }
        self.may_message(actor, other).await?;
        let store = &self.kith.storage;
        if let Some(existing) = store.direct_conversation(actor, other).await? {
            return Ok(existing);
        }
        let now = self.kith.clock.now();
        let conversation = Conversation {
            id: ConversationId::new(self.kith.ids.next_id()),
            kind: ConversationKind::Direct,
            title: None,
            created_by: actor,
            created_at: now,
            last_seq: 0,
            version: 0,
            last_activity: now,
        };
        let mut pair = [actor, other];
        pair.sort();
        let members: Vec<Member> = pair
            .into_iter()
            .map(|user_id| Member {
                user_id,
                role: MemberRole::Member,
                joined_at: now,
                last_read_seq: 0,
            })
            .collect();
        match store.create_conversation(&conversation, &members).await {
            Ok(()) => {}
            // Someone created it at the same time: use theirs.
            Err(Error::Conflict(Clash::DirectExists)) => {
                return store
                    .direct_conversation(actor, other)
                    .await?
                    .ok_or(Error::NotFound(Entity::Conversation));
            }
            Err(e) => return Err(e),
        }
        self.kith.emit(Delivery::new(
            Event::ConversationCreated {
                conversation: conversation.clone(),
                members,
            },
            pair,
        ));
        Ok(conversation)
    }

    /// Checks that every user in `users` is live and that the actor may add
    /// them: neither blocks the other.
    async fn may_add(&self, actor: UserId, users: &[UserId]) -> Result<()> {
        for &user in users {
            self.kith.account(user).await?;
            let links = self.kith.storage.links(actor, user).await?;
            if links.blocked_by {
                return Err(Error::NotFound(Entity::User));
            }
            if links.visible.blocking {
                return Err(Error::Forbidden(Denied::BlockedByActor));
            }
        }
        Ok(())
    }

    fn check_size(&self, members: usize) -> Result<()> {
        let max = self.kith.config.max_group_members;
        if members > max {
            return Err(Error::invalid(
                "members",
                format!("a group has at most {max} members"),
            ));
        }
        Ok(())
    }

    /// Creates a group with the actor as its admin.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `title` or too many `members`;
    /// [`Error::NotFound`] if a member does not exist or blocks the actor;
    /// [`Error::Forbidden`] if the actor blocks a member.
    pub async fn create_group(&self, actor: UserId, input: NewGroup) -> Result<Conversation> {
        let title = validate::title("title", &input.title)?;
        let mut others: Vec<UserId> = Vec::new();
        for u in input.members {
            if u != actor && !others.contains(&u) {
                others.push(u);
            }
        }
        self.check_size(others.len() + 1)?;
        self.kith.account(actor).await?;
        self.may_add(actor, &others).await?;
        let now = self.kith.clock.now();
        let conversation = Conversation {
            id: ConversationId::new(self.kith.ids.next_id()),
            kind: ConversationKind::Group,
            title: Some(title),
            created_by: actor,
            created_at: now,
            last_seq: 0,
            version: 0,
            last_activity: now,
        };
        let mut members: Vec<Member> = std::iter::once((actor, MemberRole::Admin))
            .chain(others.iter().map(|&u| (u, MemberRole::Member)))
            .map(|(user_id, role)| Member {
                user_id,
                role,
                joined_at: now,
                last_read_seq: 0,
            })
            .collect();
        members.sort_by_key(|m| m.user_id);
        self.kith
            .storage
            .create_conversation(&conversation, &members)
            .await?;
        let recipients: Vec<UserId> = members.iter().map(|m| m.user_id).collect();
        self.kith.emit(Delivery::new(
            Event::ConversationCreated {
                conversation: conversation.clone(),
                members,
            },
            recipients,
        ));
        Ok(conversation)
    }

    /// A conversation the actor is a member of.
    ///
    /// # Errors
    /// [`Error::NotFound`] if it does not exist or the actor is not a member.
    pub async fn conversation(&self, actor: UserId, id: ConversationId) -> Result<Conversation> {
        Ok(self.scene(actor, id).await?.conversation)
    }

    /// The current members of a conversation, ordered by user id.
    ///
    /// # Errors
    /// As [`Self::conversation`].
    pub async fn members(&self, actor: UserId, id: ConversationId) -> Result<Vec<Member>> {
        Ok(self.scene(actor, id).await?.members)
    }

    /// Adds users to a group (an admin's action). Users already in it are
    /// skipped; returns the members added. New members start with everything
    /// before their arrival read.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member, or a user does not
    /// exist or blocks the actor; [`Error::Forbidden`] if the conversation is
    /// direct, the actor is not an admin or blocks a user;
    /// [`Error::InvalidInput`] (`members`) if the group would grow too large.
    pub async fn add_members(
        &self,
        actor: UserId,
        id: ConversationId,
        users: &[UserId],
    ) -> Result<Vec<Member>> {
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        scene.require_admin()?;
        let mut new: Vec<UserId> = Vec::new();
        for &u in users {
            if !scene.members.iter().any(|m| m.user_id == u) && !new.contains(&u) {
                new.push(u);
            }
        }
        if new.is_empty() {
            return Ok(Vec::new());
        }
        self.check_size(scene.members.len() + new.len())?;
        self.may_add(actor, &new).await?;
        let now = self.kith.clock.now();
        new.sort();
        let added: Vec<Member> = new
            .iter()
            .map(|&user_id| Member {
                user_id,
                role: MemberRole::Member,
                joined_at: now,
                last_read_seq: scene.conversation.last_seq,
            })
            .collect();
        self.kith.lanes.forget_roster(id);
        let max = self.kith.config.max_group_members;
        let version = self
            .kith
            .storage
            .add_members(id, &added, actor, max)
            .await?;
        self.kith.emit(Delivery::new(
            Event::MembersAdded {
                conversation_id: id,
                members: added.clone(),
                by: actor,
                version,
            },
            scene.recipients().into_iter().chain(new),
        ));
        Ok(added)
    }

    /// Removes a member from a group (an admin's action; see [`Self::leave`]
    /// for oneself).
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member, or ([`Entity::Member`])
    /// `user` is not; [`Error::Forbidden`] if the conversation is direct or
    /// the actor is not an admin.
    pub async fn remove_member(
        &self,
        actor: UserId,
        id: ConversationId,
        user: UserId,
    ) -> Result<()> {
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        if user == actor {
            return self.depart(scene, actor, None).await;
        }
        scene.require_admin()?;
        if !scene.members.iter().any(|m| m.user_id == user) {
            return Err(Error::NotFound(Entity::Member));
        }
        self.depart(scene, user, Some(actor)).await
    }

    /// The actor leaves a group. If they were its last admin, the member who
    /// joined earliest becomes admin.
    ///
    /// # Errors
    /// [`Error::NotFound`] if the actor is not a member; [`Error::Forbidden`]
    /// for a direct conversation.
    pub async fn leave(&self, actor: UserId, id: ConversationId) -> Result<()> {
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        self.depart(scene, actor, None).await
    }

    /// Removes `user` from the scene's group, by the scene's member (an
    /// admin, `by`, or `user` leaving). If no admin remains, the member who
    /// joined earliest becomes one: storage decides it in the same
    /// transaction, so it holds however many writers change the group.
    async fn depart(&self, scene: Scene, user: UserId, by: Option<UserId>) -> Result<()> {
        if scene.conversation.kind == ConversationKind::Direct {
            return Err(Error::Forbidden(Denied::DirectConversation));
        }
        let id = scene.conversation.id;
        self.kith.lanes.forget_roster(id);
        let Removed {
            version,
            promoted: promote,
        } = self
            .kith
            .storage
            .remove_member(id, user, by)
            .await?
            .ok_or(Error::NotFound(Entity::Member))?;
        self.kith.emit(Delivery::new(
            Event::MemberRemoved {
                conversation_id: id,
                user_id: user,
                by: scene.me.user_id,
                promoted: promote,
                version,
            },
            scene.recipients(),
        ));
        Ok(())
    }

    /// Makes a member an admin or a plain member (an admin's action). The last
    /// admin cannot step down while other members remain.
    ///
    /// # Errors
    /// As [`Self::remove_member`]; [`Error::InvalidInput`] (`role`) when it
    /// would leave the group without an admin.
    pub async fn set_role(
        &self,
        actor: UserId,
        id: ConversationId,
        user: UserId,
        role: MemberRole,
    ) -> Result<()> {
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        scene.require_admin()?;
        let target = scene
            .members
            .iter()
            .find(|m| m.user_id == user)
            .ok_or(Error::NotFound(Entity::Member))?;
        if target.role == role {
            return Ok(());
        }
        let admins = scene
            .members
            .iter()
            .filter(|m| m.role == MemberRole::Admin)
            .count();
        if role == MemberRole::Member && admins == 1 {
            return Err(Error::invalid("role", "a group needs at least one admin"));
        }
        let version = self
            .kith
            .storage
            .set_role(id, user, role, actor)
            .await?
            .ok_or(Error::NotFound(Entity::Member))?;
        self.kith.emit(Delivery::new(
            Event::MemberRoleChanged {
                conversation_id: id,
                user_id: user,
                role,
                by: actor,
                version,
            },
            scene.recipients(),
        ));
        Ok(())
    }

    /// Renames a group (an admin's action).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (`title`); otherwise as [`Self::remove_member`].
    pub async fn rename(
        &self,
        actor: UserId,
        id: ConversationId,
        title: &str,
    ) -> Result<Conversation> {
        let title = validate::title("title", title)?;
        let _lane = self.kith.lanes.enter(id).await;
        let scene = self.scene(actor, id).await?;
        scene.require_admin()?;
        let version = self.kith.storage.rename(id, &title, actor).await?;
        self.kith.emit(Delivery::new(
            Event::ConversationRenamed {
                conversation_id: id,
                title: title.clone(),
                by: actor,
                version,
            },
            scene.recipients(),
        ));
        Ok(Conversation {
            title: Some(title),
            version,
            ..scene.conversation
        })
    }
}
