//! The built-in profiles, compiled into the binary from `profiles/*.toml`.

/// The profile used when none is named.
pub const DEFAULT: &str = "smoke";

/// Name and TOML text of every built-in profile, in the order `soak profiles` lists them.
const BUILTINS: &[(&str, &str)] = &[
    ("smoke", include_str!("../../profiles/smoke.toml")),
    ("baseline", include_str!("../../profiles/baseline.toml")),
    ("burst", include_str!("../../profiles/burst.toml")),
    (
        "blocking-check",
        include_str!("../../profiles/blocking-check.toml"),
    ),
    ("soak-1h", include_str!("../../profiles/soak-1h.toml")),
    ("soak-4h", include_str!("../../profiles/soak-4h.toml")),
    ("leak-hunt", include_str!("../../profiles/leak-hunt.toml")),
    ("rooms", include_str!("../../profiles/rooms.toml")),
    (
        "socketio-chat",
        include_str!("../../profiles/socketio-chat.toml"),
    ),
    (
        "telegram-bot",
        include_str!("../../profiles/telegram-bot.toml"),
    ),
];

/// The TOML text of a built-in profile.
pub fn get(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Names of the built-in profiles.
pub fn names() -> Vec<&'static str> {
    BUILTINS.iter().map(|(n, _)| *n).collect()
}
