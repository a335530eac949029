//! Conformance cases for accounts, sessions and profiles.

use crate::testkit::Fixture;
use crate::NewAccount;

/// Registering returns the account; logging in with username or email and
/// the password opens a session whose token authenticates.
pub async fn register_returns_account_and_login_works(f: Fixture) {
    let account = f
        .kith
        .accounts()
        .register(NewAccount {
            username: "Alice".into(),
            email: "Alice@Example.com".into(),
            password: "correct horse".into(),
        })
        .await
        .unwrap();
    assert_eq!(account.username, "Alice");
    assert_eq!(account.email.as_deref(), Some("Alice@Example.com"));
    assert!(account.has_password);

    let by_name = f.kith.accounts().login("alice", "correct horse").await.unwrap();
    assert_eq!(by_name.account, account);
    let by_email = f
        .kith
        .accounts()
        .login("alice@example.COM", "correct horse")
        .await
        .unwrap();
    assert_ne!(by_name.token, by_email.token);
    let session = f.kith.accounts().authenticate(&by_name.token).await.unwrap();
    assert_eq!(session, by_name.session);
    assert_eq!(session.user_id, account.id);
}
