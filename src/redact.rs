//! The one place secrets are masked before anything is written (files, logs, the screen).

/// What replaces a secret.
pub const MASK: &str = "***";

/// Query parameters whose values are treated as secrets (matched case-insensitively as a
/// substring of the name, so `api_key`, `access_token`, `X-Auth` are all covered).
const SECRET_NAMES: [&str; 7] = [
    "token", "key", "secret", "password", "passwd", "auth", "sig",
];

/// Masks the password of a URL's user-info and the values of secret-looking query parameters.
pub fn url(url: &str) -> String {
    // The fragment too: OAuth's implicit flow puts `#access_token=…` there.
    let (url, fragment) = match url.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (url, None),
    };
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = mask_userinfo(before_query);
    if let Some(query) = query {
        out.push('?');
        out.push_str(&params(query));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(&params(fragment));
    }
    out
}

/// `a=1&token=x` with the values of secret-looking names masked.
fn params(text: &str) -> String {
    text.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_name(name) => format!("{name}={MASK}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether a parameter or header name looks like it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAMES.iter().any(|s| name.contains(s))
}

/// Masks secrets in a command line: `--token=…`, `--api-key …`, `KEY=…` assignments, and
/// URLs inside it.
pub fn command(line: &str) -> String {
    let mut out = Vec::new();
    let mut mask_next = false;
    for word in line.split(' ') {
        if mask_next {
            out.push(String::from(MASK));
            mask_next = false;
            continue;
        }
        let masked = match word.split_once('=') {
            Some((name, _)) if is_secret_name(name.trim_start_matches('-')) => {
                format!("{name}={MASK}")
            }
            _ if word.contains("://") => url(word),
            _ => {
                mask_next = word.starts_with('-') && is_secret_name(word.trim_start_matches('-'));
                word.to_string()
            }
        };
        out.push(masked);
    }
    out.join(" ")
}

/// Names of headers whose values are always secrets, whatever `is_secret_name` says.
const SECRET_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// Masks the value of a `Name: value` header line when the name looks secret; a line that
/// is not `Name: value` is masked whole, since it may be a secret missing its colon.
pub fn header(line: &str) -> String {
    match line.split_once(':') {
        Some((name, _)) if is_secret_header(name.trim()) => format!("{}: {MASK}", name.trim()),
        Some(_) => line.to_string(),
        None => String::from(MASK),
    }
}

/// Whether a header's value is a secret.
pub fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.contains(&name.to_ascii_lowercase().as_str()) || is_secret_name(name)
}

fn mask_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:{MASK}@{host}{path}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_passwords_and_secret_parameters() {
        assert_eq!(
            url("ws://bob:hunter2@host:80/ws?room=1&token=abc&api_key=z"),
            "ws://bob:***@host:80/ws?room=1&token=***&api_key=***"
        );
    }

    #[test]
    fn masks_secrets_in_the_fragment_too() {
        assert_eq!(
            url("ws://h/ws?room=1#access_token=PLANTED&state=7"),
            "ws://h/ws?room=1#access_token=***&state=7"
        );
        assert_eq!(url("ws://h/ws#token=x"), "ws://h/ws#token=***");
        assert_eq!(url("ws://h/ws#section"), "ws://h/ws#section");
    }

    #[test]
    fn masks_secret_headers_only() {
        assert_eq!(header("Authorization: Bearer abc"), "Authorization: ***");
        assert_eq!(header("X-Api-Key: abc"), "X-Api-Key: ***");
        assert_eq!(header("X-Room: 7"), "X-Room: 7");
        assert_eq!(header("Bearer abc"), "***");
    }

    #[test]
    fn masks_secrets_in_command_lines() {
        assert_eq!(
            command("OPENAI_API_KEY=sk-1 python bot.py --token abc --port 8080 --url ws://u:p@h/"),
            "OPENAI_API_KEY=*** python bot.py --token *** --port 8080 --url ws://u:***@h/"
        );
    }

    #[test]
    fn leaves_plain_urls_alone() {
        for u in ["ws://127.0.0.1:8080/ws", "ws://h/p?room=1&x", "not a url"] {
            assert_eq!(url(u), u);
        }
    }
}
