//! A forward pass after the first allocates nothing but its output.
//!
//! A counting global allocator sees every allocation of every thread while
//! a later forward runs. With one rayon thread that is exactly the output.
//! With two, rayon's scheduler itself allocates on each forward: two blocks,
//! 1,520 B (the size of a crossbeam-deque injector block) and 2,304 B,
//! measured on rayon 1.12; the test bounds those at 4 KiB, the same for
//! every model and batch, so any buffer of sepconv's would still show.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ndarray::Array4;
use sepconv::mobilenet::{MobileNet, MobileNetConfig, Variant};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::SeqCst) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
            BYTES.fetch_add(layout.size(), Ordering::SeqCst);
        }
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::SeqCst) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
            BYTES.fetch_add(new_size, Ordering::SeqCst);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn second_forward_allocates_only_its_output() {
    // Standard (depthwise + pointwise) and FullConv (im2col everywhere).
    for (variant, batch) in [
        (Variant::Standard, 1),
        (Variant::Standard, 3),
        (Variant::FullConv, 2),
    ] {
        let config = MobileNetConfig::new()
            .with_alpha(0.25)
            .with_resolution(96)
            .with_classes(10)
            .with_variant(variant);
        let net = MobileNet::<f32>::seeded(&config, 1).unwrap();
        let x = Array4::<f32>::from_elem(net.input_shape(batch), 0.5);
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (allocations, bytes) = pool.install(|| {
                let first = net.forward(x.view()).unwrap();
                assert_eq!(net.forward(x.view()).unwrap(), first);
                ALLOCATIONS.store(0, Ordering::SeqCst);
                BYTES.store(0, Ordering::SeqCst);
                COUNTING.store(true, Ordering::SeqCst);
                let second = net.forward(x.view());
                COUNTING.store(false, Ordering::SeqCst);
                assert_eq!(second.unwrap(), first);
                (
                    ALLOCATIONS.load(Ordering::SeqCst),
                    BYTES.load(Ordering::SeqCst),
                )
            });
            let what = format!("{variant:?}, batch {batch}, {threads} thread(s)");
            if threads == 1 {
                assert_eq!(
                    (allocations, bytes),
                    (1, batch * 10 * 4),
                    "{what}: expected only the [{batch}, 10] f32 logits"
                );
            } else {
                assert!(
                    allocations <= 3 && bytes <= batch * 10 * 4 + 4096,
                    "{what}: {allocations} allocations, {bytes} B"
                );
            }
        }
    }
}
