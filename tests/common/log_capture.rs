//! Captures every tracing event (all targets, all levels, the database driver's included) as
//! text, so a test can search it for secrets.

use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A subscriber that records everything at TRACE into the returned buffer. Install it with
/// `tracing::subscriber::set_default` on a current-thread runtime so every event is seen.
pub fn capture_everything() -> (impl tracing::Subscriber + Send + Sync, Captured) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    (subscriber, captured)
}

/// A subscriber that prints every span of this crate when it closes, with all its fields, into
/// the returned buffer (and nothing of the database driver). Install it with
/// `tracing::subscriber::set_default` on a current-thread runtime.
pub fn capture_spans() -> (impl tracing::Subscriber + Send + Sync, Captured) {
    use tracing_subscriber::fmt::format::FmtSpan;
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    (subscriber, captured)
}
