//! Every codec end to end on PostgreSQL (`DATABASE_URL`): the behavioural suite per codec, and
//! rows that another codec wrote.
//!
//! MessagePack, the default, runs the suite in `postgres_suite.rs`.

mod common;

use common::codecs::{all, every_kind_of_value, Named};
use time::{Duration, OffsetDateTime};
use tower_sessions_seaorm_store::{codec::SessionId, session_store, Record, SessionStore};

#[cfg(feature = "json")]
mod json {
    use tower_sessions_seaorm_store::codec::JsonCodec;

    crate::behaviour_suite!(crate::common::codecs::CodecFixture::new(JsonCodec));
}

#[cfg(feature = "bincode")]
mod bincode {
    use tower_sessions_seaorm_store::codec::BincodeCodec;

    crate::behaviour_suite!(crate::common::codecs::CodecFixture::new(BincodeCodec));
}

#[tokio::test]
async fn a_row_written_by_one_codec_is_a_decode_error_for_every_other() {
    let fixture = common::PgFixture::new().await;
    for (writer, write_codec) in all() {
        let mut record = Record::from(every_kind_of_value(
            SessionId::random(),
            OffsetDateTime::now_utc() + Duration::days(1),
        ));
        let writing = fixture
            .store
            .clone()
            .with_codec(Named::new(writer, write_codec));
        writing.create(&mut record).await.unwrap();
        assert_eq!(
            crate::common::without_base(writing.load(&record.id).await.unwrap()),
            Some(record.clone()),
            "{writer}"
        );

        for (reader, read_codec) in all() {
            if reader == writer {
                continue;
            }
            let reading = fixture
                .store
                .clone()
                .with_codec(Named::new(reader, read_codec));
            let err = reading.load(&record.id).await.unwrap_err();
            assert!(
                matches!(err, session_store::Error::Decode(_)),
                "{reader} reading a {writer} row: {err:?}"
            );
        }
    }
    fixture.finish().await;
}

#[cfg(feature = "json")]
#[tokio::test]
async fn a_json_session_reads_in_sql() {
    use tower_sessions_seaorm_store::{
        codec::JsonCodec,
        sea_orm::{ConnectionTrait, DbBackend, Statement},
    };
    let fixture = common::codecs::CodecFixture::new(JsonCodec).await;
    let mut record = Record::from(every_kind_of_value(
        SessionId::random(),
        OffsetDateTime::now_utc() + Duration::days(1),
    ));
    fixture.store.create(&mut record).await.unwrap();

    let row = fixture
        .conn()
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT convert_from(data, 'UTF8')::jsonb #>> '{{data,user,name}}', \
                        convert_from(data, 'UTF8')::jsonb ->> 'id' = id \
                 FROM {}",
                fixture.table()
            ),
        ))
        .await
        .unwrap()
        .expect("the session's row");
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "Ada Lovelace");
    assert!(
        row.try_get_by_index::<bool>(1).unwrap(),
        "the JSON id is the id column"
    );
    fixture.finish().await;
}
