//! Conformance cases for accounts and sessions: registration, login, tokens,
//! password changes and account deletion.

use crate::testkit::graph::every_list;
use crate::testkit::Refusal::*;
use crate::testkit::{refusal, Fixture, Refusal, NO_USER};
use crate::{
    Account, ChangePassword, Clash, Entity, Event, LoginSession, NewAccount, NewUser, Page, Result,
    Session, SessionId, UserId,
};

/// Input of register.
fn new_account(username: &str, email: &str, password: &str) -> NewAccount {
    NewAccount {
        username: username.into(),
        email: email.into(),
        password: password.into(),
    }
}

/// Registers an account.
async fn register(f: &Fixture, username: &str, email: &str, password: &str) -> Result<Account> {
    f.kith
        .accounts()
        .register(new_account(username, email, password))
        .await
}

/// The email [`Fixture::user`] gives Alice, in several cases.
const ALICE_EMAILS: [&str; 3] = [
    "alice@example.com",
    "ALICE@EXAMPLE.COM",
    "Alice@example.Com",
];

/// Registers `username` and `email` with a valid password.
async fn registers(f: &Fixture, username: &str, email: &str) -> Account {
    register(f, username, email, "password1").await.unwrap()
}

/// Creates `username` without a password, with `email` if given.
async fn passwordless(f: &Fixture, username: &str, email: Option<&str>) -> Account {
    let input = NewUser {
        username: username.into(),
        email: email.map(Into::into),
    };
    f.kith.accounts().create_user(input).await.unwrap()
}

/// The sessions of `user`, oldest first.
async fn sessions_of(f: &Fixture, user: UserId) -> Vec<Session> {
    f.kith.accounts().sessions(user).await.unwrap()
}

/// Asserts that `user` has no session left and every token in `logins` is refused.
async fn assert_signed_out(f: &Fixture, user: UserId, logins: &[LoginSession]) {
    assert_eq!(sessions_of(f, user).await, vec![]);
    for login in logins {
        assert_token_refused(f, &login.token).await;
    }
}

/// Logs in with `login` and `password`, which must succeed.
async fn login_as(f: &Fixture, login: &str, password: &str) -> LoginSession {
    let result = f.kith.accounts().login(login, password).await;
    result.unwrap_or_else(|e| panic!("logging in as {login}: {e}"))
}

/// Logs `username` in with the password [`Fixture::user`] gave it.
async fn login(f: &Fixture, username: &str) -> LoginSession {
    login_as(f, username, &Fixture::password_of(username)).await
}

/// Asserts that logging in with `login` and `password` is refused.
async fn assert_login_refused(f: &Fixture, login: &str, password: &str) {
    f.refuses(
        f.kith.accounts().login(login, password).await,
        InvalidCredentials,
    );
}

/// Asserts that `token` opens no session.
async fn assert_token_refused(f: &Fixture, token: &str) {
    assert_eq!(
        refusal(f.kith.accounts().authenticate(token).await),
        Unauthenticated
    );
}

/// Asserts that the token of `login` opens its session.
async fn assert_token_works(f: &Fixture, login: &LoginSession) {
    let session = f.kith.accounts().authenticate(&login.token).await.unwrap();
    assert_eq!(session, login.session);
}

/// Asserts that registering `input` fails naming `field` and stores nothing:
/// neither its username nor its email logs in afterwards.
async fn assert_register_invalid(f: &Fixture, input: NewAccount, field: &'static str) {
    assert_eq!(
        refusal(f.kith.accounts().register(input.clone()).await),
        Invalid(field)
    );
    for login in [&input.username, &input.email] {
        assert_login_refused(f, login, &input.password).await;
    }
}

/// Registering returns the account; username or email login opens a session its token proves.
pub async fn register_returns_account_and_login_works(f: Fixture) {
    let account = register(&f, "Alice", "Alice@Example.com", "correct horse")
        .await
        .unwrap();
    assert_eq!(account.username, "Alice");
    assert_eq!(account.email.as_deref(), Some("Alice@Example.com"));
    assert!(account.has_password);

    let by_name = login_as(&f, "alice", "correct horse").await;
    assert_eq!(by_name.account, account);
    let by_email = login_as(&f, "alice@example.COM", "correct horse").await;
    assert_ne!(by_name.token, by_email.token);
    let session = f
        .kith
        .accounts()
        .authenticate(&by_name.token)
        .await
        .unwrap();
    assert_eq!(session, by_name.session);
    assert_eq!(session.user_id, account.id);
    f.assert_no_events();
}

/// Usernames outside 3 to 30 characters are refused; 3 and 30 are accepted.
pub async fn register_rejects_usernames_of_bad_length(f: Fixture) {
    for bad in ["", "ab", &"a".repeat(31)] {
        let input = new_account(bad, "x@example.com", "password1");
        assert_register_invalid(&f, input, "username").await;
    }
    registers(&f, "abc", "x@example.com").await;
    registers(&f, &"b".repeat(30), "y@example.com").await;
}

/// Usernames with anything but ASCII letters, digits and `_` are refused.
pub async fn register_rejects_usernames_with_other_characters(f: Fixture) {
    for bad in [
        "al ice",
        "alicé",
        "a-b",
        "al.ice",
        "alice!",
        "ali@ce",
        "ｆｕｌｌ",
    ] {
        let input = new_account(bad, "x@example.com", "password1");
        assert_register_invalid(&f, input, "username").await;
    }
    let ok = registers(&f, "Al_1ce_", "x@example.com").await;
    assert_eq!(ok.username, "Al_1ce_");
}

/// A username of only underscores is refused; with a letter or digit it is fine.
pub async fn register_rejects_usernames_of_only_underscores(f: Fixture) {
    for bad in ["___", &"_".repeat(30)] {
        let input = new_account(bad, "x@example.com", "password1");
        assert_register_invalid(&f, input, "username").await;
    }
    registers(&f, "__1", "x@example.com").await;
}

/// A username already taken, in any case, is a conflict that stores nothing.
pub async fn register_refuses_a_username_taken_in_any_case(f: Fixture) {
    let alice = f.user("alice").await;
    for taken in ["alice", "ALICE", "aLiCe"] {
        f.refuses(
            register(&f, taken, "other@example.com", "another password").await,
            Conflict(Clash::UsernameTaken),
        );
    }
    // The first account is untouched and the email of the attempts is free.
    let session = login(&f, "alice").await;
    assert_eq!(session.account, alice);
    assert_login_refused(&f, "alice", "another password").await;
    registers(&f, "carol", "other@example.com").await;
}

/// Malformed email addresses are refused.
pub async fn register_rejects_invalid_emails(f: Fixture) {
    let long_local = format!("{}@example.com", "a".repeat(65));
    let long = format!("a@{}.com", "b".repeat(250));
    for bad in [
        "",
        "alice",
        "alice@",
        "@example.com",
        "alice@example",
        "alice@example.c",
        "alice@@example.com",
        "al ice@example.com",
        "alice@exa_mple.com",
        "alice@-example.com",
        "alice@example.c0m",
        ".alice@example.com",
        "al..ice@example.com",
        &long_local,
        &long,
    ] {
        assert_register_invalid(&f, new_account("alice", bad, "password1"), "email").await;
    }
    registers(&f, "alice", "alice@example.com").await;
}

/// An email already registered, in any case, is a conflict that stores nothing.
pub async fn register_refuses_an_email_taken_in_any_case(f: Fixture) {
    let alice = f.user("alice").await;
    for taken in ALICE_EMAILS {
        f.refuses(
            register(&f, "bob", taken, "another password").await,
            Conflict(Clash::EmailTaken),
        );
    }
    let by_email = login_as(&f, "alice@example.com", &Fixture::password_of("alice")).await;
    assert_eq!(by_email.account, alice);
    // The username of the attempts is still free.
    registers(&f, "bob", "bob@example.com").await;
}

/// Passwords outside 8 to 128 characters, or only blanks, are refused; 8 and 128 are fine.
pub async fn register_rejects_passwords_of_bad_length(f: Fixture) {
    for bad in ["", "seven77", &"x".repeat(129), "          "] {
        assert_register_invalid(
            &f,
            new_account("alice", "alice@example.com", bad),
            "password",
        )
        .await;
    }
    register(&f, "alice", "alice@example.com", "eight888")
        .await
        .unwrap();
    let long = "y".repeat(128);
    register(&f, "bob", "bob@example.com", &long).await.unwrap();
    login_as(&f, "bob", &long).await;
}

/// An account created without a password cannot log in with any password.
pub async fn create_user_has_no_password_and_cannot_log_in(f: Fixture) {
    let account = passwordless(&f, "Alice", Some("alice@example.com")).await;
    assert_eq!(account.username, "Alice");
    assert_eq!(account.email.as_deref(), Some("alice@example.com"));
    assert!(!account.has_password);
    for login in ["alice", "alice@example.com"] {
        for password in ["", "password1"] {
            assert_login_refused(&f, login, password).await;
        }
    }
    assert_eq!(f.kith.accounts().me(account.id).await.unwrap(), account);
}

/// The app opens sessions for live accounts without a password; unknown ones are not found.
pub async fn create_session_opens_a_session_without_password(f: Fixture) {
    let account = passwordless(&f, "alice", None).await;
    let opened = f.kith.accounts().create_session(account.id).await.unwrap();
    assert_eq!(opened.account, account);
    assert_eq!(opened.session.user_id, account.id);
    assert_token_works(&f, &opened).await;
    let bob = f.user("bob").await;
    let for_bob = f.kith.accounts().create_session(bob.id).await.unwrap();
    assert_eq!(for_bob.session.user_id, bob.id);
    f.refuses(
        f.kith.accounts().create_session(UserId::new(42)).await,
        NO_USER,
    );
}

/// A passwordless account sets a first password without a current one, then logs in.
pub async fn change_password_sets_a_first_password_without_current(f: Fixture) {
    let account = passwordless(&f, "alice", Some("alice@example.com")).await;
    let opened = f.kith.accounts().create_session(account.id).await.unwrap();
    let keep = Some(opened.session.id);
    change_password(&f, account.id, None, "first password", keep)
        .await
        .unwrap();
    // Nothing was revoked, so nobody is told.
    f.assert_no_events();
    assert_token_works(&f, &opened).await;
    let logged = login_as(&f, "alice@example.com", "first password").await;
    assert!(logged.account.has_password);
    assert!(f.kith.accounts().me(account.id).await.unwrap().has_password);
}

/// create_user applies the username and email rules of register.
pub async fn create_user_validates_like_register(f: Fixture) {
    f.user("alice").await;
    let attempt = |username: &str, email: Option<&str>| NewUser {
        username: username.into(),
        email: email.map(Into::into),
    };
    let accounts = f.kith.accounts();
    for bad in ["ab", "al ice", "___"] {
        assert_eq!(
            refusal(accounts.create_user(attempt(bad, None)).await),
            Invalid("username")
        );
    }
    assert_eq!(
        refusal(accounts.create_user(attempt("bob", Some("bob@"))).await),
        Invalid("email")
    );
    f.refuses(
        accounts.create_user(attempt("ALICE", None)).await,
        Conflict(Clash::UsernameTaken),
    );
    f.refuses(
        accounts
            .create_user(attempt("bob", Some("Alice@Example.com")))
            .await,
        Conflict(Clash::EmailTaken),
    );
    // None of the attempts took "bob".
    accounts
        .create_user(attempt("bob", Some("bob@example.com")))
        .await
        .unwrap();
}

/// Any number of accounts may have no email.
pub async fn create_user_allows_many_accounts_without_email(f: Fixture) {
    for name in ["alice", "bob", "carol"] {
        let account = passwordless(&f, name, None).await;
        assert_eq!(account.email, None);
    }
}

/// Login by username ignores its case and surrounding whitespace.
pub async fn login_by_username_ignores_case(f: Fixture) {
    let alice = registers(&f, "Alice", "alice@example.com").await;
    for name in ["Alice", "alice", "ALICE", "aLiCe", " alice "] {
        let session = login_as(&f, name, "password1").await;
        assert_eq!(session.account, alice);
        assert_eq!(session.session.user_id, alice.id);
    }
    f.assert_no_events();
}

/// Login by email ignores its case.
pub async fn login_by_email_ignores_case(f: Fixture) {
    let alice = f.user("alice").await;
    for email in ALICE_EMAILS {
        let session = login_as(&f, email, &Fixture::password_of("alice")).await;
        assert_eq!(session.account, alice);
    }
}

/// A wrong password is refused as invalid credentials and opens no session.
pub async fn login_with_wrong_password_is_refused(f: Fixture) {
    let alice = f.user("alice").await;
    f.user("bob").await;
    for login in ["alice", "alice@example.com"] {
        for password in ["", "wrong password", &Fixture::password_of("bob")] {
            assert_login_refused(&f, login, password).await;
        }
    }
    // The password is case-sensitive.
    assert_login_refused(&f, "alice", &Fixture::password_of("alice").to_uppercase()).await;
    assert!(sessions_of(&f, alice.id).await.is_empty());
}

/// Logging in as someone who does not exist is refused like a wrong password.
pub async fn login_of_unknown_user_is_refused(f: Fixture) {
    f.user("alice").await;
    for login in ["bob", "bob@example.com", "", "alice@example.org"] {
        assert_login_refused(&f, login, &Fixture::password_of("alice")).await;
    }
}

/// Malformed, unknown and made-up tokens do not authenticate.
pub async fn authenticate_rejects_malformed_and_unknown_tokens(f: Fixture) {
    f.user("alice").await;
    let real = login(&f, "alice").await;
    let flipped: String = real
        .token
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    for token in [
        "",
        "short",
        &"z".repeat(64),
        &"0".repeat(64),
        &flipped,
        &real.token[..63],
        &format!("{}0", real.token),
        &format!(" {}", real.token),
    ] {
        assert_token_refused(&f, token).await;
    }
    assert_token_works(&f, &real).await;
}

/// Asserts that `revoked` was revoked, its owner told, and `kept` still works.
async fn assert_session_revoked(f: &Fixture, revoked: &LoginSession, kept: &LoginSession) {
    let user_id = revoked.session.user_id;
    let sessions = vec![revoked.session.id];
    f.assert_event(Event::SessionsRevoked { user_id, sessions }, &[user_id]);
    assert_token_refused(f, &revoked.token).await;
    assert_token_works(f, kept).await;
}

/// Logout revokes only the token's session and tells its owner; a second logout is refused.
pub async fn logout_revokes_the_token_and_tells_the_user(f: Fixture) {
    let alice = f.user("alice").await;
    let first = login(&f, "alice").await;
    let second = login(&f, "alice").await;
    f.kith.accounts().logout(&first.token).await.unwrap();
    assert_session_revoked(&f, &first, &second).await;
    assert_eq!(
        sessions_of(&f, alice.id).await,
        vec![second.session.clone()]
    );
    f.refuses(
        f.kith.accounts().logout(&first.token).await,
        Unauthenticated,
    );
    f.refuses(f.kith.accounts().logout("garbage").await, Unauthenticated);
}

/// What revoking a session the actor does not have returns.
const NO_SESSION: Refusal = NotFound(Entity::Session);

/// Revoking one's session by id refuses its token and tells the owner; others keep working.
pub async fn revoke_session_ends_that_session_only(f: Fixture) {
    let alice = f.user("alice").await;
    let first = login(&f, "alice").await;
    let second = login(&f, "alice").await;
    let accounts = f.kith.accounts();
    accounts
        .revoke_session(alice.id, second.session.id)
        .await
        .unwrap();
    assert_session_revoked(&f, &second, &first).await;
    f.refuses(
        accounts.revoke_session(alice.id, second.session.id).await,
        NO_SESSION,
    );
}

/// Revoking another user's session is not found, and that session keeps working.
pub async fn revoke_session_of_another_user_is_not_found(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let hers = login(&f, "alice").await;
    login(&f, "bob").await;
    let accounts = f.kith.accounts();
    f.refuses(
        accounts.revoke_session(bob.id, hers.session.id).await,
        NO_SESSION,
    );
    f.refuses(
        accounts.revoke_session(alice.id, SessionId::new(42)).await,
        NO_SESSION,
    );
    assert_token_works(&f, &hers).await;
    assert_eq!(sessions_of(&f, alice.id).await, vec![hers.session]);
}

/// sessions lists the actor's own sessions, oldest first.
pub async fn sessions_lists_own_sessions_oldest_first(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    assert!(sessions_of(&f, alice.id).await.is_empty());
    let mut opened = Vec::new();
    for _ in 0..3 {
        opened.push(login(&f, "alice").await.session);
        login(&f, "bob").await;
        f.tick();
    }
    let listed = sessions_of(&f, alice.id).await;
    assert_eq!(listed, opened);
    assert!(listed.iter().all(|s| s.user_id == alice.id));
    assert_eq!(sessions_of(&f, bob.id).await.len(), 3);
}

/// Changes the password of `user` from `current` to `new`, keeping `keep`.
async fn change_password(
    f: &Fixture,
    user: UserId,
    current: Option<&str>,
    new: &str,
    keep: Option<SessionId>,
) -> Result<()> {
    let input = ChangePassword {
        current_password: current.map(Into::into),
        new_password: new.into(),
        keep_session: keep,
    };
    f.kith.accounts().change_password(user, input).await
}

/// The new password of the cases that change Alice's.
const NEW_PASSWORD: &str = "brand new password";

/// After a refused password change: the old password still logs in, the
/// new one does not, and the session `kept` still works.
async fn assert_password_unchanged(f: &Fixture, kept: &LoginSession, new: &str) {
    assert_login_refused(f, "alice", new).await;
    assert_token_works(f, kept).await;
    login(f, "alice").await;
}

/// A wrong current password is refused as invalid credentials and changes nothing.
pub async fn change_password_with_wrong_current_changes_nothing(f: Fixture) {
    let alice = f.user("alice").await;
    let session = login(&f, "alice").await;
    let wrong = Some("wrong password");
    let result = change_password(&f, alice.id, wrong, NEW_PASSWORD, None).await;
    f.refuses(result, InvalidCredentials);
    assert_password_unchanged(&f, &session, NEW_PASSWORD).await;
}

/// An account with a password must give its current password to change it.
pub async fn change_password_without_current_is_invalid(f: Fixture) {
    let alice = f.user("alice").await;
    let session = login(&f, "alice").await;
    let result = change_password(&f, alice.id, None, NEW_PASSWORD, None).await;
    f.refuses(result, Invalid("current_password"));
    assert_password_unchanged(&f, &session, NEW_PASSWORD).await;
}

/// A new password outside 8 to 128 characters is refused and changes nothing.
pub async fn change_password_rejects_new_password_of_bad_length(f: Fixture) {
    let alice = f.user("alice").await;
    let current = Fixture::password_of("alice");
    let session = login(&f, "alice").await;
    for bad in ["short", &"x".repeat(129), "         "] {
        let result = change_password(&f, alice.id, Some(&current), bad, None).await;
        f.refuses(result, Invalid("new_password"));
        assert_password_unchanged(&f, &session, bad).await;
    }
}

/// A password change revokes all sessions but `keep_session` and names exactly those revoked.
pub async fn change_password_revokes_other_sessions_and_keeps_one(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let bobs = login(&f, "bob").await;
    let [first, kept, third] = [
        login(&f, "alice").await,
        login(&f, "alice").await,
        login(&f, "alice").await,
    ];
    let current = Fixture::password_of("alice");
    let keep = Some(kept.session.id);
    change_password(&f, alice.id, Some(&current), NEW_PASSWORD, keep)
        .await
        .unwrap();
    assert_revoked(&f, alice.id, &[&first, &third]);
    for revoked in [&first, &third] {
        assert_token_refused(&f, &revoked.token).await;
    }
    assert_token_works(&f, &kept).await;
    assert_eq!(sessions_of(&f, alice.id).await, vec![kept.session.clone()]);
    assert_token_works(&f, &bobs).await;
    assert_login_refused(&f, "alice", &current).await;
    login_as(&f, "alice", NEW_PASSWORD).await;
    assert_eq!(bob, login(&f, "bob").await.account);
}

/// Takes the events and asserts they are exactly one SessionsRevoked to
/// `user` listing the sessions of `revoked`, in any order.
fn assert_revoked(f: &Fixture, user: UserId, revoked: &[&LoginSession]) {
    let mut events = f.take_events();
    assert_eq!(events.len(), 1, "{events:?}");
    let delivery = events.remove(0);
    assert_eq!(delivery.recipients, vec![user]);
    let Event::SessionsRevoked {
        user_id,
        mut sessions,
    } = delivery.event
    else {
        panic!("expected SessionsRevoked, got {:?}", delivery.event);
    };
    assert_eq!(user_id, user);
    let mut expected: Vec<SessionId> = revoked.iter().map(|l| l.session.id).collect();
    expected.sort();
    sessions.sort();
    assert_eq!(sessions, expected);
}

/// Without `keep_session`, a password change revokes every session.
pub async fn change_password_without_keep_revokes_every_session(f: Fixture) {
    let alice = f.user("alice").await;
    let sessions = [login(&f, "alice").await, login(&f, "alice").await];
    let current = Fixture::password_of("alice");
    change_password(&f, alice.id, Some(&current), NEW_PASSWORD, None)
        .await
        .unwrap();
    assert_revoked(&f, alice.id, &[&sessions[0], &sessions[1]]);
    assert_signed_out(&f, alice.id, &sessions).await;
}

/// Deleting with a wrong or missing password is refused and changes nothing.
pub async fn delete_account_with_wrong_or_missing_password_changes_nothing(f: Fixture) {
    let alice = f.user("alice").await;
    let session = login(&f, "alice").await;
    f.refuses(
        f.kith
            .accounts()
            .delete_account(alice.id, Some("wrong password"))
            .await,
        InvalidCredentials,
    );
    assert_eq!(
        refusal(f.kith.accounts().delete_account(alice.id, None).await),
        Invalid("password")
    );
    f.assert_no_events();
    assert_token_works(&f, &session).await;
    login(&f, "alice").await;
    assert_eq!(f.kith.accounts().me(alice.id).await.unwrap(), alice);
    f.kith.accounts().profile(None, alice.id).await.unwrap();
    f.refuses(
        register(&f, "alice", "new@example.com", "password1").await,
        Conflict(Clash::UsernameTaken),
    );
}

/// A deleted account cannot log in, its tokens are refused and its profile is not found.
pub async fn delete_account_ends_login_sessions_and_profile(f: Fixture) {
    let [alice, bob] = f.users(["alice", "bob"]).await;
    let session = login(&f, "alice").await;
    f.delete(&alice).await;
    assert_login_refused(&f, "alice", &Fixture::password_of("alice")).await;
    assert_login_refused(&f, "alice@example.com", &Fixture::password_of("alice")).await;
    assert_signed_out(&f, alice.id, &[session]).await;
    let accounts = f.kith.accounts();
    assert_eq!(refusal(accounts.me(alice.id).await), NO_USER);
    for viewer in [None, Some(bob.id), Some(alice.id)] {
        assert_eq!(refusal(accounts.profile(viewer, alice.id).await), NO_USER);
        assert_eq!(
            refusal(accounts.profile_by_username(viewer, "alice").await),
            NO_USER
        );
    }
    assert_eq!(refusal(accounts.create_session(alice.id).await), NO_USER);
    f.refuses(
        accounts
            .delete_account(alice.id, Some(&Fixture::password_of("alice")))
            .await,
        NO_USER,
    );
}

/// A deleted account's username and email can be registered again by a new account.
pub async fn delete_account_frees_username_and_email(f: Fixture) {
    let alice = f.user("alice").await;
    f.delete(&alice).await;
    let again = register(&f, "ALICE", "Alice@Example.com", "new password")
        .await
        .unwrap();
    assert_ne!(again.id, alice.id);
    let session = login_as(&f, "alice", "new password").await;
    assert_eq!(session.account, again);
    assert_login_refused(&f, "alice", &Fixture::password_of("alice")).await;
    let view = f
        .kith
        .accounts()
        .profile_by_username(None, "alice")
        .await
        .unwrap();
    assert_eq!(view.user.id, again.id);
}

/// Account deletion is told to the account and its former friends, and nobody else.
pub async fn delete_account_tells_the_user_and_former_friends(f: Fixture) {
    let [alice, bob, carol, dave] = f.users(["alice", "bob", "carol", "dave"]).await;
    f.befriend(alice.id, bob.id).await;
    f.befriend(carol.id, alice.id).await;
    f.follow(dave.id, alice.id).await;
    let password = Fixture::password_of("alice");
    f.kith
        .accounts()
        .delete_account(alice.id, Some(&password))
        .await
        .unwrap();
    let events = f.take_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].event, Event::AccountDeleted { user_id: alice.id });
    let (first, friends) = events[0].recipients.split_first().unwrap();
    assert_eq!(*first, alice.id);
    let mut friends = friends.to_vec();
    friends.sort();
    let mut expected = vec![bob.id, carol.id];
    expected.sort();
    assert_eq!(friends, expected);
}

/// Account deletion removes its friendships, requests, follows, blocks and mutes everywhere.
pub async fn delete_account_removes_friendships_requests_and_follows(f: Fixture) {
    let [alice, bob, carol, dave, erin, gina, henry] = f
        .users(["alice", "bob", "carol", "dave", "erin", "gina", "henry"])
        .await;
    let graph = f.kith.graph();
    f.befriend(alice.id, bob.id).await;
    f.follow(alice.id, carol.id).await;
    f.follow(dave.id, alice.id).await;
    graph.send_friend_request(alice.id, erin.id).await.unwrap();
    graph.send_friend_request(gina.id, alice.id).await.unwrap();
    graph.block(henry.id, alice.id).await.unwrap();
    graph.mute(carol.id, alice.id).await.unwrap();
    f.delete(&alice).await;

    for user in [&bob, &carol, &dave, &erin, &gina, &henry] {
        for (list, len) in every_list(&f, user.id, &Page::first()).await {
            assert_eq!(len.unwrap(), 0, "{list} of {}", user.username);
        }
    }
    for user in [&bob, &carol, &dave] {
        let counts = graph.counts(Some(user.id), user.id).await.unwrap();
        assert_eq!(counts, Default::default(), "counts of {}", user.username);
    }
    assert_eq!(refusal(graph.relationship(bob.id, alice.id).await), NO_USER);
    // Whoever registers the name next starts with no links.
    let again = f.user("alice").await;
    let rel = graph.relationship(bob.id, again.id).await.unwrap();
    assert_eq!(rel, Default::default());
}

/// An account without a password is deleted without one.
pub async fn delete_account_without_password_when_there_is_none(f: Fixture) {
    let account = passwordless(&f, "alice", None).await;
    f.kith
        .accounts()
        .delete_account(account.id, None)
        .await
        .unwrap();
    f.assert_event(
        Event::AccountDeleted {
            user_id: account.id,
        },
        &[account.id],
    );
    assert_eq!(refusal(f.kith.accounts().me(account.id).await), NO_USER);
}
