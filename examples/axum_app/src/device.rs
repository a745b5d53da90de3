//! How a person recognises a device: "Firefox on Linux", "signed in 5 minutes ago".
//!
//! Pure functions of the User-Agent header and of unix seconds, so the HTTP tests include this
//! file (`#[path]`) and test it directly.

use std::fmt;

/// The browser family, from the User-Agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Browser {
    Firefox,
    Chrome,
    Edge,
    Safari,
    Other,
}

/// The operating system, from the User-Agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Windows,
    Mac,
    Linux,
    Android,
    Ios,
    Other,
}

/// A device as its User-Agent describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    pub browser: Browser,
    pub os: Os,
}

impl Device {
    /// Reads the browser and the OS from a User-Agent header.
    ///
    /// Order matters, because User-Agents name their ancestors: Edge says "Chrome" and
    /// "Safari", Chrome says "Safari", iOS says "like Mac OS X", Android says "Linux".
    pub fn from_user_agent(ua: &str) -> Self {
        let has = |needle: &str| ua.contains(needle);
        let browser = if has("Edg/") || has("EdgA/") || has("EdgiOS/") || has("Edge/") {
            Browser::Edge
        } else if has("Firefox/") || has("FxiOS/") {
            Browser::Firefox
        } else if has("OPR/") || has("SamsungBrowser/") {
            // Chromium-based, but not what its user calls Chrome.
            Browser::Other
        } else if has("Chrome/") || has("CriOS/") || has("Chromium/") {
            Browser::Chrome
        } else if has("Safari/") && has("Version/") {
            Browser::Safari
        } else {
            Browser::Other
        };
        let os = if has("iPhone") || has("iPad") || has("iPod") {
            Os::Ios
        } else if has("Android") {
            Os::Android
        } else if has("Windows") {
            Os::Windows
        } else if has("Macintosh") || has("Mac OS X") {
            Os::Mac
        } else if has("Linux") || has("X11") {
            Os::Linux
        } else {
            Os::Other
        };
        Self { browser, os }
    }
}

impl fmt::Display for Device {
    /// "Firefox on Linux", "Chrome", "A browser on Windows", "Unknown device".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let browser = match self.browser {
            Browser::Firefox => "Firefox",
            Browser::Chrome => "Chrome",
            Browser::Edge => "Edge",
            Browser::Safari => "Safari",
            Browser::Other => "A browser",
        };
        let os = match self.os {
            Os::Windows => "Windows",
            Os::Mac => "macOS",
            Os::Linux => "Linux",
            Os::Android => "Android",
            Os::Ios => "iOS",
            Os::Other => {
                return f.write_str(match self.browser {
                    Browser::Other => "Unknown device",
                    _ => browser,
                })
            }
        };
        write!(f, "{browser} on {os}")
    }
}

/// `then` relative to `now` (both unix seconds), as people say it: "just now",
/// "5 minutes ago", "an hour ago", "yesterday", "3 days ago". A `then` in the future (clocks
/// differ) is "just now".
pub fn relative_time(then: i64, now: i64) -> String {
    const MINUTE: i64 = 60;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    const TWO_DAYS: i64 = 2 * DAY;
    let ago = now.saturating_sub(then).max(0);
    let count = |n: i64, one: &str, unit: &str| match n {
        1 => one.to_owned(),
        n => format!("{n} {unit}s ago"),
    };
    match ago {
        0..MINUTE => "just now".to_owned(),
        MINUTE..HOUR => count(ago / MINUTE, "a minute ago", "minute"),
        HOUR..DAY => count(ago / HOUR, "an hour ago", "hour"),
        DAY..TWO_DAYS => "yesterday".to_owned(),
        _ => count(ago / DAY, "a day ago", "day"),
    }
}
