//! How a session record becomes the row a repository stores: encoded (without its merge base,
//! and without its id when ids are hashed), size-checked, with its user key and its listed
//! values.

use std::borrow::Cow;

use time::{OffsetDateTime, UtcOffset};

use super::{RepositoryStore, SessionError, BASE_KEY, MAX_USER_KEY_LEN};
use crate::ports::{Codec, SessionId, SessionRecord, SessionRow};

/// The id encoded into the rows of a store that hashes ids: such a row holds no session id,
/// and `load` restores the id it looked the row up by.
pub(crate) const NO_ID: SessionId = SessionId(0);

/// The most bytes a session's listed values may take, as JSON: they are copied beside the
/// session for its user's list, and a list shows a few short values (a device, an address).
pub(crate) const MAX_LISTED_VALUES_LEN: usize = 4096;

/// What a create or a save wrote.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// The user the write gave one more session (a login), whose sessions the per-user limit
    /// then trims; `None` for any other write.
    pub login_of: Option<String>,
}

impl<R, C: Codec> RepositoryStore<R, C> {
    /// The row that stores `record` at `now` under `key`, the repository key of its id
    /// ([`RepositoryStore::key`]: the caller has it already).
    pub(crate) fn row(
        &self,
        key: String,
        record: &SessionRecord<'_>,
        now: OffsetDateTime,
    ) -> Result<SessionRow, SessionError> {
        debug_assert_eq!(key, self.key(record.id));
        check_expiry(record.expiry_date)?;
        let user_key = self.user_key_of(record)?;
        let listed_values = self.listed_values_of(record)?;
        let encoded = if self.hashes_ids() {
            // A hashed table must not hold working ids, and a codec encodes the whole record.
            let record = SessionRecord {
                id: NO_ID,
                data: Cow::Borrowed(record.data.as_ref()),
                expiry_date: record.expiry_date,
            };
            self.codec.encode_row_without(&key, &record, BASE_KEY)
        } else {
            self.codec.encode_row_without(&key, record, BASE_KEY)
        };
        let data = encoded.map_err(SessionError::Encode)?;
        if let Some(limit) = self.policy.max_encoded_size {
            if data.len() > limit {
                return Err(SessionError::TooLarge {
                    size: data.len(),
                    limit,
                });
            }
        }
        Ok(SessionRow {
            id: key,
            data,
            expires_at: record.expiry_date,
            user_key,
            created_at: now,
            saved_at: now,
            listed_values,
            long_lived: self.is_long_lived(record),
        })
    }

    /// Whether the application marked `record` long-lived: its value at the store's path is
    /// exactly JSON `true` (not `"true"`, not `1`). Only the server-side values the application
    /// wrote are read, so a client cannot mark its own session.
    pub(crate) fn is_long_lived(&self, record: &SessionRecord<'_>) -> bool {
        self.policy.long_lived.as_ref().is_some_and(|(path, _)| {
            path.value_in(&record.data) == Some(&serde_json::Value::Bool(true))
        })
    }

    /// The listed values of `record` as a JSON object, `None` when the store lists none.
    fn listed_values_of(&self, record: &SessionRecord<'_>) -> Result<Option<String>, SessionError> {
        if self.policy.listed_values.is_empty() {
            return Ok(None);
        }
        let listed: serde_json::Map<String, serde_json::Value> = self
            .policy
            .listed_values
            .iter()
            .filter_map(|path| {
                let value = path.value_in(&record.data)?;
                Some((path.as_str().to_owned(), value.clone()))
            })
            .collect();
        let json = serde_json::Value::Object(listed).to_string();
        if json.len() > MAX_LISTED_VALUES_LEN {
            return Err(SessionError::Unstorable(
                "its listed values (`with_listed_values`) take more than 4096 bytes as JSON: \
                 list a few short values, such as a device name",
            ));
        }
        Ok(Some(json))
    }

    /// The user `record` belongs to (per-user index), `None` for no user or no index.
    pub(crate) fn user_key_of(
        &self,
        record: &SessionRecord<'_>,
    ) -> Result<Option<String>, SessionError> {
        let Some(path) = &self.policy.user_key else {
            return Ok(None);
        };
        match path.user_key_of(&record.data) {
            Some(key) if key.len() > MAX_USER_KEY_LEN => Err(SessionError::UserKeyTooLong {
                len: key.len(),
                limit: MAX_USER_KEY_LEN,
            }),
            Some(key) if !is_storable_user_key(&key) => Err(SessionError::Unstorable(
                "its user key (per-user index) contains a NUL character, which PostgreSQL \
                 cannot store; index a value without one",
            )),
            key => Ok(key),
        }
    }
}

/// Whether every backend can store `user_key`: PostgreSQL's `text` holds no NUL character, so
/// none is stored anywhere (and none is looked up: no stored key has one).
pub(crate) fn is_storable_user_key(user_key: &str) -> bool {
    !user_key.contains('\0')
}

/// Refuses an expiry outside the years 1 to 9999 in UTC: what every backend stores (PostgreSQL
/// and its drivers convert to UTC and fail on instants `time` cannot hold there; MySQL's
/// `datetime` ends with 9999).
fn check_expiry(expiry: OffsetDateTime) -> Result<(), SessionError> {
    match expiry.checked_to_offset(UtcOffset::UTC) {
        Some(utc) if (1..=9999).contains(&utc.year()) => Ok(()),
        _ => Err(SessionError::Unstorable(
            "its expiry lies outside the years 1 to 9999 (UTC), the range every session \
             database stores; give it a nearer expiry",
        )),
    }
}
