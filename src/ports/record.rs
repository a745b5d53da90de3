//! The session record as the store sees it, owned by this crate so that neither the rules nor
//! the codecs depend on one version of tower-sessions. Each tower-sessions version converts its
//! own `Record` and `Id` at the edge ([`crate::compat`]), borrowing the data rather than copying it.

use std::{borrow::Cow, collections::HashMap, fmt, str::FromStr};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A session's values by key, as tower-sessions keeps them.
pub type SessionData = HashMap<String, serde_json::Value>;

/// A session id: 128 random bits, printed as 22 URL-safe base64 characters without padding
/// (the cookie's value and the `id` column's), exactly as tower-sessions prints its `Id`.
///
/// ```
/// use tower_sessions_seaorm_store::codec::SessionId;
///
/// let id = SessionId(7);
/// assert_eq!(id.to_string(), "BwAAAAAAAAAAAAAAAAAAAA");
/// assert_eq!("BwAAAAAAAAAAAAAAAAAAAA".parse::<SessionId>(), Ok(id));
/// assert!("not an id".parse::<SessionId>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename = "Id")]
pub struct SessionId(pub i128);

impl SessionId {
    /// A fresh id from the thread's cryptographically secure generator, as tower-sessions draws
    /// its own.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// The id's text, as `Display` prints it, written into `buffer` (no allocation: every load
    /// and save computes its key from it). Never `None`: 16 bytes are always 22 base64
    /// characters, all ASCII.
    pub(crate) fn text(self, buffer: &mut [u8; 22]) -> Option<&str> {
        match URL_SAFE_NO_PAD.encode_slice(self.0.to_le_bytes(), buffer) {
            Ok(22) => std::str::from_utf8(buffer).ok(),
            _ => None,
        }
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text(&mut [0u8; 22]).ok_or(fmt::Error)?)
    }
}

/// A string that is not a session id (22 URL-safe base64 characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a session id (22 URL-safe base64 characters)")]
pub struct InvalidSessionId;

impl FromStr for SessionId {
    type Err = InvalidSessionId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut decoded = [0u8; 16];
        match URL_SAFE_NO_PAD.decode_slice(s.as_bytes(), &mut decoded) {
            Ok(16) => Ok(Self(i128::from_le_bytes(decoded))),
            _ => Err(InvalidSessionId),
        }
    }
}

/// One session: its id, its values and when it expires. What codecs encode and decode.
///
/// The data is a [`Cow`]: a driving adapter lends the caller's data for `create` and `save`
/// (nothing is copied), and codecs decode into owned data for `load`.
///
/// Its serde shape is tower-sessions' `Record`'s, field for field (`id`, `data`, `expiry_date`),
/// so a serde codec writes the same bytes for both; the MessagePack golden-bytes tests hold it to
/// that.
///
/// ```
/// use std::collections::HashMap;
/// use tower_sessions_seaorm_store::codec::{SessionId, SessionRecord};
///
/// // A session's values, as tower-sessions keeps them.
/// let data: HashMap<String, serde_json::Value> =
///     [("user_id".to_owned(), serde_json::json!(42))].into();
/// let record = SessionRecord::borrowed(SessionId(7), &data, time::OffsetDateTime::UNIX_EPOCH);
/// assert_eq!(record.data.get("user_id"), Some(&serde_json::json!(42)));
/// let owned = record.into_owned(); // SessionRecord<'static>, independent of `data`
/// assert_eq!(owned.id, SessionId(7));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename = "Record")]
pub struct SessionRecord<'a> {
    /// The session's id.
    pub id: SessionId,
    /// The session's values.
    pub data: Cow<'a, SessionData>,
    /// When the session expires; loads at or after it find nothing.
    pub expiry_date: OffsetDateTime,
}

impl<'a> SessionRecord<'a> {
    /// A record lending `data`.
    pub fn borrowed(id: SessionId, data: &'a SessionData, expiry_date: OffsetDateTime) -> Self {
        Self {
            id,
            data: Cow::Borrowed(data),
            expiry_date,
        }
    }

    /// A record owning `data`.
    pub fn owned(
        id: SessionId,
        data: SessionData,
        expiry_date: OffsetDateTime,
    ) -> SessionRecord<'static> {
        SessionRecord {
            id,
            data: Cow::Owned(data),
            expiry_date,
        }
    }

    /// The same record owning its data (copied only if it was borrowed).
    pub fn into_owned(self) -> SessionRecord<'static> {
        SessionRecord::owned(self.id, self.data.into_owned(), self.expiry_date)
    }
}
