//! Who may see what: the roles a viewer can have towards a user, and the
//! rules that map roles and settings to permissions. Every privacy decision
//! in Kith is made here.

use crate::ids::UserId;
use crate::model::{Links, Visibility};

/// How a viewer stands towards the owner of something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The viewer is the owner.
    Owner,
    /// The viewer and the owner are friends.
    Friend,
    /// A signed-in user with no friendship and no block.
    Stranger,
    /// One of the two blocks the other.
    Blocked,
    /// Nobody is signed in.
    Anonymous,
}

impl Role {
    /// The role of `viewer` towards `owner`, given the links between them
    /// (from the viewer's side; ignored for the owner and anonymous viewers).
    pub fn of(viewer: Option<UserId>, owner: UserId, links: &Links) -> Role {
        let blocked = links.blocked_by || links.visible.blocking;
        Role::between(viewer, owner, links.visible.friends, blocked)
    }

    /// The role of `viewer` towards `owner` from the two links that decide
    /// it: whether they are friends, and whether either blocks the other
    /// (as storage reports them beside each item of a list). A follower
    /// is a stranger here: following shows nothing more.
    pub fn between(viewer: Option<UserId>, owner: UserId, friends: bool, blocked: bool) -> Role {
        match viewer {
            None => Role::Anonymous,
            Some(v) if v == owner => Role::Owner,
            Some(_) if blocked => Role::Blocked,
            Some(_) if friends => Role::Friend,
            Some(_) => Role::Stranger,
        }
    }

    /// Whether this viewer may know the user exists at all (see their card).
    pub fn can_see_user(self) -> bool {
        self != Role::Blocked
    }

    /// Whether this viewer may see what `visibility` protects: profile
    /// details, friend and follower lists.
    pub fn can_see(self, visibility: Visibility) -> bool {
        match (self, visibility) {
            (Role::Owner, _) => true,
            (Role::Blocked, _) => false,
            (_, Visibility::Public) => true,
            (Role::Friend, Visibility::Friends) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Relationship;

    fn links(friends: bool, blocking: bool, blocked_by: bool) -> Links {
        Links {
            visible: Relationship {
                friends,
                blocking,
                ..Relationship::default()
            },
            blocked_by,
        }
    }

    #[test]
    fn roles_follow_links() {
        let (me, other) = (UserId::new(1), UserId::new(2));
        let none = Links::default();
        assert_eq!(Role::of(Some(me), me, &none), Role::Owner);
        assert_eq!(Role::of(None, me, &none), Role::Anonymous);
        assert_eq!(
            Role::of(Some(other), me, &links(true, false, false)),
            Role::Friend
        );
        assert_eq!(Role::of(Some(other), me, &none), Role::Stranger);
        assert_eq!(
            Role::of(Some(other), me, &links(true, true, false)),
            Role::Blocked
        );
        assert_eq!(
            Role::of(Some(other), me, &links(false, false, true)),
            Role::Blocked
        );
    }

    #[test]
    fn visibility_table() {
        use Role::*;
        use Visibility::*;
        let table = [
            (Owner, [true, true, true]),
            (Friend, [true, true, false]),
            (Stranger, [true, false, false]),
            (Anonymous, [true, false, false]),
            (Blocked, [false, false, false]),
        ];
        for (role, expect) in table {
            for (vis, want) in [Public, Friends, Private].into_iter().zip(expect) {
                assert_eq!(role.can_see(vis), want, "{role:?} {vis:?}");
            }
        }
    }
}
