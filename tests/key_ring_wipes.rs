//! A key ring wipes its keys when it is dropped: the memory it frees holds no key.
//!
//! Observed from outside, through an allocator that looks for a key's bytes in every block
//! freed while a test watches; a control test proves the detector finds a key left in freed
//! memory.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Mutex,
    },
};

use time::OffsetDateTime;
use tower_sessions_seaorm_store::codec::{
    Codec, Encrypted, KeyRing, MessagePackCodec, SessionId, SessionRecord,
};

const KEY: [u8; 32] = *b"an example key of thirty-two byt";

/// The system allocator, counting the freed blocks that hold [`KEY`] while armed.
struct Watching;

static ARMED: AtomicBool = AtomicBool::new(false);
static KEYS_FREED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::SeqCst) {
            // The block is still ours until `System.dealloc`.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if block.windows(KEY.len()).any(|window| window == KEY) {
                KEYS_FREED.fetch_add(1, Ordering::SeqCst);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// One watch at a time: the count is global.
static WATCH: Mutex<()> = Mutex::new(());

/// How many freed blocks held the key while `work` ran.
fn keys_freed_by(work: impl FnOnce()) -> usize {
    let _one_at_a_time = WATCH
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    KEYS_FREED.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    work();
    ARMED.store(false, Ordering::SeqCst);
    KEYS_FREED.load(Ordering::SeqCst)
}

#[test]
fn the_detector_finds_a_key_left_in_freed_memory() {
    let freed = keys_freed_by(|| drop(std::hint::black_box(KEY.to_vec())));
    assert_eq!(freed, 1);
}

#[test]
fn a_dropped_key_ring_leaves_no_key_in_freed_memory() {
    use base64::Engine as _;
    let key_base64 = base64::engine::general_purpose::STANDARD.encode(KEY);
    let freed = keys_freed_by(|| {
        let ring = KeyRing::new(1, KEY)
            .with_old_key(2, KEY)
            .unwrap()
            .with_old_key(3, KEY)
            .unwrap();
        let from_text = KeyRing::from_base64(4, &key_base64)
            .unwrap()
            .with_old_key_base64(5, &key_base64)
            .unwrap();
        let codec = Encrypted::new(MessagePackCodec, ring.clone());
        let record =
            SessionRecord::owned(SessionId(7), Default::default(), OffsetDateTime::now_utc());
        let row = codec.encode_row("row", &record).unwrap();
        assert_eq!(codec.decode_row("row", &row).unwrap(), record);
        drop(std::hint::black_box((ring, from_text, codec)));
    });
    assert_eq!(freed, 0, "a key ring freed memory that still held its key");
}
