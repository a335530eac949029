//! Input rules. Every user-supplied value passes through here before storage
//! sees it; a failure names the field and changes nothing.

use time::Date;

use crate::clock::Timestamp;
use crate::error::{Error, Result};

/// Usernames: 3 to 30 characters.
pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=30;
/// Passwords: 8 to 128 characters.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;
/// Display names: at most 50 characters.
pub const DISPLAY_NAME_MAX: usize = 50;
/// Bios: at most 500 characters.
pub const BIO_MAX: usize = 500;
/// Location and job: at most 100 characters.
pub const SHORT_TEXT_MAX: usize = 100;
/// At most 20 interests, each 1 to 30 characters.
pub const INTERESTS_MAX: usize = 20;
/// See [`INTERESTS_MAX`].
pub const INTEREST_LEN_MAX: usize = 30;
/// URLs: at most 2048 characters.
pub const URL_MAX: usize = 2048;

/// A username: ASCII letters, digits and `_`, 3 to 30 of them, not only
/// underscores. Returns it unchanged; uniqueness ignores case.
pub fn username(field: &'static str, s: &str) -> Result<String> {
    let len = s.chars().count();
    if !USERNAME_LEN.contains(&len) {
        return Err(Error::invalid(field, "must be 3 to 30 characters long"));
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Error::invalid(
            field,
            "may contain only letters a-z, digits and underscores",
        ));
    }
    if s.bytes().all(|b| b == b'_') {
        return Err(Error::invalid(field, "must contain a letter or digit"));
    }
    Ok(s.to_owned())
}

/// An email address of the form `local@domain.tld`, at most 254 characters.
/// Returns it trimmed.
pub fn email(field: &'static str, s: &str) -> Result<String> {
    let s = s.trim();
    let bad = || Error::invalid(field, "is not a valid email address");
    if s.is_empty() || s.len() > 254 {
        return Err(bad());
    }
    let (local, domain) = s.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
    {
        return Err(bad());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.len() > 63
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    {
        return Err(bad());
    }
    let tld = labels.last().copied().unwrap_or_default();
    if tld.len() < 2 || !tld.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(bad());
    }
    Ok(s.to_owned())
}

/// A new password: 8 to 128 characters, not only whitespace.
pub fn password(field: &'static str, s: &str) -> Result<()> {
    let len = s.chars().count();
    if !PASSWORD_LEN.contains(&len) {
        return Err(Error::invalid(field, "must be 8 to 128 characters long"));
    }
    if s.trim().is_empty() {
        return Err(Error::invalid(field, "must not be only whitespace"));
    }
    Ok(())
}

/// Optional free text: trimmed, at most `max` characters, no control
/// characters except newlines when `multiline`; empty becomes `None`.
pub fn text(
    field: &'static str,
    value: Option<&str>,
    max: usize,
    multiline: bool,
) -> Result<Option<String>> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if v.chars()
        .any(|c| c.is_control() && !(multiline && c == '\n'))
    {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(Some(v.to_owned()))
}

/// An optional `http` or `https` URL without whitespace.
pub fn url(field: &'static str, value: Option<&str>) -> Result<Option<String>> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
        .ok_or_else(|| Error::invalid(field, "must be an http or https URL"))?;
    if rest.is_empty()
        || v.len() > URL_MAX
        || v.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid(field, "must be an http or https URL"));
    }
    Ok(Some(v.to_owned()))
}

/// An optional phone number: digits with spaces, `+`, `-`, `(`, `)`, at most
/// 32 characters and at least 3 digits.
pub fn phone(field: &'static str, value: Option<&str>) -> Result<Option<String>> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let digits = v.bytes().filter(u8::is_ascii_digit).count();
    if v.len() > 32
        || digits < 3
        || !v
            .bytes()
            .all(|b| b.is_ascii_digit() || b" +-()".contains(&b))
    {
        return Err(Error::invalid(field, "is not a valid phone number"));
    }
    Ok(Some(v.to_owned()))
}

/// Interests: lowercased tags of letters, digits, `-` and `_`, without
/// duplicates (first occurrence kept), at most [`INTERESTS_MAX`].
pub fn interests(field: &'static str, tags: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.trim().trim_start_matches('#').to_lowercase();
        let len = tag.chars().count();
        if len == 0 || len > INTEREST_LEN_MAX {
            return Err(Error::invalid(
                field,
                "each interest must be 1 to 30 characters",
            ));
        }
        if !tag
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::invalid(
                field,
                "interests may contain only letters, digits, '-' and '_'",
            ));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    if out.len() > INTERESTS_MAX {
        return Err(Error::invalid(field, "at most 20 interests"));
    }
    Ok(out)
}

/// A birth date: not in the future and not before 1900.
pub fn birth_date(
    field: &'static str,
    date: Option<Date>,
    today: Timestamp,
) -> Result<Option<Date>> {
    match date {
        Some(d) if d > today.date() => Err(Error::invalid(field, "must not be in the future")),
        Some(d) if d.year() < 1900 => Err(Error::invalid(field, "must not be before 1900")),
        other => Ok(other),
    }
}

/// A name filter for lists: trimmed and lowercased; empty becomes `None`.
pub fn name_filter(field: &'static str, value: Option<&str>) -> Result<Option<String>> {
    Ok(text(field, value, DISPLAY_NAME_MAX, false)?.map(|s| s.to_lowercase()))
}

/// A group title: trimmed, 1 to 100 characters, one line.
pub fn title(field: &'static str, s: &str) -> Result<String> {
    text(field, Some(s), SHORT_TEXT_MAX, false)?
        .ok_or_else(|| Error::invalid(field, "must not be empty"))
}

/// A message's idempotency key: 1 to 64 visible ASCII characters.
pub fn client_id(field: &'static str, s: &str) -> Result<()> {
    if s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            "must be 1 to 64 visible ASCII characters",
        ));
    }
    Ok(())
}

/// A message body: not blank, at most `max` characters, no control
/// characters other than newlines and tabs. Kept as written (not trimmed).
pub fn message_body(field: &'static str, s: &str, max: usize) -> Result<String> {
    if s.trim().is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if s.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(username("username", "alice_01").is_ok());
        for bad in [
            "al",
            "a".repeat(31).as_str(),
            "al ice",
            "alicé",
            "___",
            "a-b",
        ] {
            assert!(username("username", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        for good in ["a@b.co", "first.last+tag@mail.example.org", " x@y.io "] {
            assert!(email("email", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "a@b.c",
            "@b.co",
            "a@.co",
            "a..b@c.co",
            "a b@c.co",
            "a@b_c.co",
            "a@-b.co",
        ] {
            assert!(email("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chat_inputs() {
        assert_eq!(title("title", "  Team  ").unwrap(), "Team");
        assert!(title("title", "   ").is_err());
        assert!(client_id("client_id", "c-1").is_ok());
        assert!(client_id("client_id", "").is_err());
        assert!(client_id("client_id", "has space").is_err());
        assert!(client_id("client_id", &"x".repeat(65)).is_err());
        assert_eq!(message_body("body", " hi\n", 10).unwrap(), " hi\n");
        assert!(message_body("body", " \n ", 10).is_err());
        assert!(message_body("body", "toolong", 3).is_err());
        assert!(message_body("body", "bell\u{7}", 10).is_err());
    }

    #[test]
    fn passwords() {
        assert!(password("password", "long enough").is_ok());
        assert!(password("password", "short").is_err());
        assert!(password("password", "        ").is_err());
        assert!(password("password", &"x".repeat(129)).is_err());
    }

    #[test]
    fn texts_urls_phones_interests() {
        assert_eq!(
            text("bio", Some("  hi \n there "), 10, true)
                .unwrap()
                .as_deref(),
            Some("hi \n there")
        );
        assert!(text("display_name", Some("a\nb"), 10, false).is_err());
        assert_eq!(text("bio", Some("   "), 10, true).unwrap(), None);
        assert!(text("bio", Some("toolong"), 3, true).is_err());
        assert!(url("avatar_url", Some("https://x.io/a.png")).is_ok());
        assert!(url("avatar_url", Some("javascript:alert(1)")).is_err());
        assert!(phone("phone", Some("+1 (555) 010-0000")).is_ok());
        assert!(phone("phone", Some("call me")).is_err());
        assert_eq!(
            interests(
                "interests",
                &["Rust".into(), "#rust".into(), "hiking".into()]
            )
            .unwrap(),
            vec!["rust", "hiking"]
        );
        assert!(interests("interests", &["no spaces".into()]).is_err());
    }
}
