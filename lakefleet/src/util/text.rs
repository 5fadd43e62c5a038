//! Bounded texts. Every string that leaves a task for a message header, a
//! Redis value, a log line or an error message goes through here, so that a
//! hostile or broken source (a 20 MB field, a 300 KB dataset name) can never
//! grow a header past RabbitMQ's frame size or a Redis value past reason.

/// The most bytes of an error message kept in headers, Redis and logs.
pub const MAX_MESSAGE: usize = 1024;
/// The most bytes of a source value quoted in an error message.
pub const MAX_QUOTE: usize = 64;

/// `s` when it is at most `max` bytes; otherwise its first bytes (cut on a
/// character boundary) followed by `… (N bytes)`.
pub fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// A source value for an error message: quoted, at most [`MAX_QUOTE`] bytes,
/// with its length when it was cut (`"abc…" (20971520 bytes)`).
pub fn quote(v: &[u8]) -> String {
    if v.len() <= MAX_QUOTE {
        return format!("{:?}", String::from_utf8_lossy(v));
    }
    let head = String::from_utf8_lossy(&v[..MAX_QUOTE]);
    let head = head.trim_end_matches('\u{fffd}');
    format!("{:?}… ({} bytes)", head, v.len())
}

/// A URL with its password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    if url.contains(',') {
        // Several nodes (AMQP_URL of a cluster): each redacted.
        return url.split(',').map(|u| redact(u.trim())).collect::<Vec<_>>().join(",");
    }
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Whether `url` parses with one of `schemes`; the error names `name` (the
/// variable and its flag) and the redacted URL.
pub fn check_scheme(name: &str, url: &str, schemes: &[&str]) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if schemes.contains(&u.scheme()) => Ok(()),
        Ok(u) => Err(format!("{name} {}: scheme {:?} is not {}", redact(url), u.scheme(), schemes.join(" or "))),
        Err(e) => Err(format!("{name} {}: {e}", redact(url))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_cut_with_their_length() {
        assert_eq!(bounded("short", 10), "short");
        let long = "é".repeat(1000); // 2000 bytes
        let b = bounded(&long, 101);
        assert!(b.ends_with("… (2000 bytes)"), "{b}");
        assert!(b.len() < 120, "{}", b.len());
        assert_eq!(quote(b"12"), "\"12\"");
        let q = quote(&vec![b'x'; 20 << 20]);
        assert!(q.starts_with("\"xxxx") && q.ends_with("… (20971520 bytes)") && q.len() < 100, "{q}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(super::redact("amqp://guest:secret@host:5672/%2f"), "amqp://guest:***@host:5672/%2f");
        assert_eq!(super::redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(super::redact("amqp://u:a@h1/%2f, amqp://u:b@h2/%2f"), "amqp://u:***@h1/%2f,amqp://u:***@h2/%2f");
    }
}
